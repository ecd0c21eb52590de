"""``frreg-validate``: gate a LOSO directory and write ``PROMOTE.json`` or ``HOLD.json``.

Any earlier verdict in LOSO_DIR is removed first, whatever happens next.
Every number is recomputed from the corpus (which must hash to the digest
every seed recorded), each seed's predictions and its stored models, and
every (seed, fold) job is retrained (``--audit all``; ``--audit K`` retrains K
jobs drawn from the artifacts' content, so a re-run draws the same ones, and
a job that failed once stays failed); PROMOTE needs all of it to agree. What cannot be recomputed (no corpus; the fork's seed files) is HOLD,
or with ``--accept-unverified`` judged on its own numbers in a verdict whose
first field says so, written as ``PROMOTE_UNVERIFIED.json`` (verdict
``PROMOTE_UNVERIFIED``, never ``PROMOTE``). Exit codes: 0 PROMOTE (or
PROMOTE_UNVERIFIED under --accept-unverified), 1 HOLD, 2 input error (a missing
or malformed seed file: no verdict is written), 3 internal error.

``--baseline VERDICT`` also writes the change against that previous verdict,
per check and per source, as ``frreg-verdict-diff.md`` and ``.json`` beside the
verdict, and prints what changed.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path

from frreg.cli._common import fail, guarded
from frreg.cli.gate import add_gate_arguments, gate_inputs, verdict_diff
from frreg.errors import FrregError, InputError
from frreg.gate.options import ACCEPT_UNVERIFIED, CORPUS_ROOT
from frreg.options import StrictParser, add_options
from frreg.schema import EXIT_FAIL, EXIT_OK, HOLD_FILE, PROMOTE_FILE, PROMOTE_UNVERIFIED_FILE

PROG = "frreg-validate"


def build_parser() -> argparse.ArgumentParser:
    parser = StrictParser(
        prog=PROG,
        description=f"Gate a LOSO directory and write {PROMOTE_FILE} or {HOLD_FILE} into it.",
        epilog="Exit status: 0 PROMOTE, 1 HOLD, 2 input error, 3 internal error.",
    )
    add_gate_arguments(parser)
    add_options(parser.add_argument, (ACCEPT_UNVERIFIED, CORPUS_ROOT))
    return parser


@guarded(PROG)
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from frreg.dirlock import holding
    from frreg.gate.diff import write_diff
    from frreg.gate.verdict import (
        UNVERIFIED_ACCEPTED,
        VERDICT_WRITER,
        corpus_mismatch,
        judge_and_write,
        read_baseline,
    )

    try:
        # A wrong --corpus is an input error: refused before the verdict is touched.
        mismatch = corpus_mismatch(args.loso_dir, args.seeds, args.corpus)
        if mismatch is not None:
            raise InputError(f"{mismatch}; {args.loso_dir}'s verdict is left as it was")
        if args.baseline is not None:  # the same for a baseline that is not a verdict
            read_baseline(args.baseline)
        # No frreg-train may rewrite the seed files while they are judged (a missing
        # directory is the gate's to report).
        lock = (
            holding(args.loso_dir, exclusive=True, who=PROG)
            if Path(args.loso_dir).is_dir()
            else contextlib.nullcontext()
        )
        with lock:
            decision, path = judge_and_write(
                args.loso_dir,
                **gate_inputs(args, PROG),
                policy=UNVERIFIED_ACCEPTED if args.accept_unverified else VERDICT_WRITER,
                written_by=PROG,
                corpus_root=args.corpus_root,
            )
        diff = verdict_diff(decision, args.baseline, PROG, verdict=path)
        if diff is not None:
            diff_files = write_diff(path.parent, diff)
    except FrregError as err:
        return fail(PROG, err)
    if not decision.recomputed:
        print(f"UNVERIFIED: numbers are self-reported, not recomputed: {decision.unverified}")
    print("\n".join(decision.report.lines()))
    print(f"wrote {path}")
    if diff is not None:
        print("\n".join(diff.lines()))
        print(f"wrote {' and '.join(str(p) for p in diff_files)}")
    # --accept-unverified asked for a PROMOTE on self-reported numbers: 0, in a file
    # (PROMOTE_UNVERIFIED.json) no consumer of PROMOTE.json mistakes for one.
    return EXIT_OK if path.name in (PROMOTE_FILE, PROMOTE_UNVERIFIED_FILE) else EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
