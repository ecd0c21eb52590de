"""The committed snapshot of every frreg CLI's surface (``tests/cli_surface.json``).

The snapshot and its diff are :mod:`argvcontract.surface`'s; this module binds
them to frreg's CLIs. Regenerate after a deliberate change::

    python -m frreg.contracts.surface --write tests/cli_surface.json

and check without writing (exit 1 on any difference)::

    python -m frreg.contracts.surface --check tests/cli_surface.json
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from argvcontract import surface
from argvcontract.cli import Cli
from argvcontract.surface import SCHEMA, SurfaceDiff, describe_parser, diff_surface, dumps, load
from frreg.contracts.registry import frreg_clis

PROG = "python -m frreg.contracts.surface"
REGENERATE = f"{PROG} --write tests/cli_surface.json"


def snapshot(clis: Sequence[Cli] | None = None) -> dict[str, Any]:
    """The surface of every CLI in ``clis`` (default: frreg's), keyed by CLI name."""
    return surface.snapshot(frreg_clis() if clis is None else clis, regenerate=REGENERATE)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m frreg.contracts.surface``: write or check the committed snapshot."""
    return surface.main(
        argv,
        clis=frreg_clis,
        prog=PROG,
        regenerate=REGENERATE,
        description="Write or check the CLI surface snapshot of every frreg CLI.",
    )


__all__ = [
    "REGENERATE",
    "SCHEMA",
    "SurfaceDiff",
    "describe_parser",
    "diff_surface",
    "dumps",
    "load",
    "main",
    "snapshot",
]

if __name__ == "__main__":
    sys.exit(main())
