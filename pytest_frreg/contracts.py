"""Fixtures that guard a caller's argv against a CLI's real parser (filled in by issue 5)."""
