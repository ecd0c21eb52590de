"""``frreg-gate``: apply the ship gate to a directory of ``loso_seed{N}.json`` (read-only).

Exit codes: 0 the ensemble passes, 1 it does not, 2 input error (missing
directory, malformed artifact).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from frreg.errors import FrregError
from frreg.options import GATE_SEEDS, THRESHOLD_OPTIONS, StrictParser, add_options
from frreg.schema import EXIT_FAIL, EXIT_OK

PROG = "frreg-gate"


def add_gate_arguments(parser: argparse.ArgumentParser) -> None:
    """LOSO_DIR, --seeds and the thresholds: shared by frreg-gate and frreg-validate."""
    parser.add_argument("loso_dir", metavar="LOSO_DIR", help="directory holding loso_seed{N}.json")
    add_options(parser.add_argument, (GATE_SEEDS, *THRESHOLD_OPTIONS))


def build_parser() -> argparse.ArgumentParser:
    parser = StrictParser(
        prog=PROG,
        description="Decide whether a LOSO-trained ensemble passes the ship gate.",
        epilog="Exit status: 0 pass, 1 fail, 2 input error.",
    )
    add_gate_arguments(parser)
    parser.add_argument(
        "--json", dest="json", action="store_true", help="print the gate report as JSON"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from frreg.gate.checks import evaluate, load_loso_dir
    from frreg.settings import thresholds

    try:
        th = thresholds(vars(args))
        report = evaluate(load_loso_dir(args.loso_dir, th.seeds), th)
    except FrregError as err:
        from frreg.cli._common import fail

        return fail(PROG, err)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, allow_nan=False))
    else:
        print("\n".join(report.lines()))
    return EXIT_OK if report.passed else EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
