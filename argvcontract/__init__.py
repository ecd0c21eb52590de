"""Guard the callers of an ``argparse`` CLI against its real parser."""
