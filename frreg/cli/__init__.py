"""Command-line entry points. Each module exposes ``build_parser()`` and ``main(argv=None) -> int``."""
