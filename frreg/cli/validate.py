"""``frreg-validate``: gate a LOSO directory and write ``PROMOTE.json`` or ``HOLD.json``.

The verdict lands in LOSO_DIR, replacing any earlier verdict. PROMOTE
additionally needs the corpus file, which must hash to the digest every seed
artifact recorded. Exit codes as ``frreg-gate``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from frreg.cli.gate import add_gate_arguments
from frreg.errors import FrregError
from frreg.options import StrictParser
from frreg.schema import EXIT_FAIL, EXIT_OK, HOLD_FILE, PROMOTE_FILE

PROG = "frreg-validate"


def build_parser() -> argparse.ArgumentParser:
    parser = StrictParser(
        prog=PROG,
        description=f"Gate a LOSO directory and write {PROMOTE_FILE} or {HOLD_FILE} into it.",
        epilog="Exit status: 0 PROMOTE, 1 HOLD, 2 input error.",
    )
    add_gate_arguments(parser)
    parser.add_argument(
        "--corpus",
        dest="corpus",
        metavar="PATH",
        default=None,
        help="corpus the seeds were trained on; its sha256 must match every seed "
        "(default: the path the seed artifacts recorded)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from frreg.gate.verdict import validate
    from frreg.settings import thresholds

    try:
        decision, path = validate(
            args.loso_dir, thresholds(vars(args)), corpus=args.corpus, written_by=PROG
        )
    except FrregError as err:
        from frreg.cli._common import fail

        return fail(PROG, err)
    print("\n".join(decision.report.lines()))
    print(f"wrote {path}")
    return EXIT_OK if decision.report.passed else EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
