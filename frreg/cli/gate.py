"""``frreg-gate``: apply the ship gate to a directory of ``loso_seed{N}.json`` (read-only).

Every number is recomputed from the corpus (``--corpus``, else the path the
seeds recorded, resolved from the seed files' directory when relative), the
seeds' predictions and their stored models, and every
(seed, fold) job is retrained (``--audit all``, the default; ``--audit K`` a
partial audit), exactly as ``frreg-validate`` does. When the
corpus cannot be found that is an input error (exit 2): hand-edited numbers
would otherwise pass on their word; ``--self-reported`` judges the seeds' own
numbers instead, and every line says so. Nothing is written either way.

The fork's trainer's seed files are read too: their numbers are judged as
self-reported (they carry no predictions, weights or corpus digest; their
``NaN`` literals are undefined metrics, which fail), and with the corpus their
folds are checked against its LOSO split.

Exit codes: 0 the ensemble passes, 1 it does not, 2 input error (missing
directory, a missing or malformed seed file, a malformed corpus, a corpus that
cannot be found without --self-reported), 3 internal
error.

``--baseline VERDICT`` (a previous verdict, e.g. the last PROMOTE on main) adds
the change against it: the checks and sources that changed, after the report
(``--json``: under ``"diff"``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from frreg.cli._common import fail, guarded
from frreg.errors import FrregError, InputError
from frreg.gate.options import (
    ALLOW_SEED_SUBSET,
    AUDIT,
    GATE_CORPUS_CHECK,
    GATE_SEEDS,
    SELF_REPORTED,
    THRESHOLD_OPTIONS,
)
from frreg.options import StrictParser, add_options
from frreg.schema import EXIT_FAIL, EXIT_OK

if TYPE_CHECKING:
    from frreg.gate.diff import VerdictDiff
    from frreg.gate.verdict import Decision

PROG = "frreg-gate"


def add_gate_arguments(parser: argparse.ArgumentParser) -> None:
    """LOSO_DIR, --seeds, the thresholds, --corpus and --audit: shared by frreg-gate and
    frreg-validate."""
    parser.add_argument("loso_dir", metavar="LOSO_DIR", help="directory holding loso_seed{N}.json")
    add_options(
        parser.add_argument,
        (GATE_SEEDS, *THRESHOLD_OPTIONS, GATE_CORPUS_CHECK, AUDIT, ALLOW_SEED_SUBSET),
    )


def gate_inputs(args: argparse.Namespace, prog: str) -> dict[str, Any]:
    """What frreg-gate and frreg-validate hand the gate, from their shared arguments
    (the audit's progress drawn on a terminal, as ``prog``)."""
    from frreg._terminal import progress_printer
    from frreg.settings import thresholds

    return {
        "thresholds": thresholds(vars(args)),
        "corpus": args.corpus,
        "audit_jobs": args.audit,
        "baseline": args.baseline,
        "allow_seed_subset": args.allow_seed_subset,
        "progress": progress_printer(f"{prog}: audit, retraining (seed, fold) jobs"),
    }


def verdict_diff(
    decision: Decision, baseline: str | None, prog: str, verdict: Path | None = None
) -> VerdictDiff | None:
    """With ``--baseline``: this decision's verdict (the file written, else the document
    ``frreg-validate`` would write) against the baseline verdict."""
    if baseline is None:
        return None
    from frreg._io import read_json
    from frreg.gate.diff import diff_verdicts, read_verdict
    from frreg.gate.verdict import build_verdict

    doc = (
        build_verdict(decision, written_by=prog)
        if verdict is None
        else read_json(verdict, "verdict")
    )
    return diff_verdicts(doc, read_verdict(baseline), baseline=baseline)


def build_parser() -> argparse.ArgumentParser:
    parser = StrictParser(
        prog=PROG,
        description="Decide whether a LOSO-trained ensemble passes the ship gate.",
        epilog="Exit status: 0 pass, 1 fail, 2 input error, 3 internal error.",
    )
    add_gate_arguments(parser)
    add_options(parser.add_argument, (SELF_REPORTED,))
    parser.add_argument(
        "--json", dest="json", action="store_true", help="print the gate report as JSON"
    )
    return parser


@guarded(PROG)
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from frreg.gate.verdict import READ_ONLY, corpus_mismatch, judge

    try:
        mismatch = corpus_mismatch(args.loso_dir, args.seeds, args.corpus)
        if mismatch is not None:
            raise InputError(mismatch)
        decision = judge(args.loso_dir, **gate_inputs(args, PROG), policy=READ_ONLY)
    except FrregError as err:
        return fail(PROG, err)
    fork = any(a.record.from_fork for a in decision.artifacts.values())
    if not decision.recomputed and not fork and not args.self_reported:
        return fail(
            PROG,
            InputError(
                f"{args.loso_dir}: {decision.unverified}; give --corpus PATH, or "
                "--self-reported to judge the numbers the seed files state"
            ),
        )
    report = decision.report
    try:
        diff = verdict_diff(decision, args.baseline, PROG)
    except FrregError as err:
        return fail(PROG, err)
    if args.json:
        doc = {
            **report.to_dict(),
            "recomputed": decision.recomputed,
            "unverified": decision.unverified,
        }
        if diff is not None:
            doc["diff"] = diff.to_json()
        print(json.dumps(doc, indent=2, allow_nan=False))
    elif decision.recomputed:
        print("\n".join(report.lines()))
    else:
        print(f"numbers are self-reported, not recomputed: {decision.unverified}")
        print("\n".join(report.lines()) + " (self-reported, unverified)")
    if diff is not None and not args.json:
        print("\n".join(diff.lines()))
    return EXIT_OK if report.passed else EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
