"""``frreg-train``: leave-one-source-out training of the fr_regressor_v2 ensemble.

This parser is the authoritative interface of the trainer. Every caller (the
wrapper script, the README, the pytest plugin) is checked against
:func:`build_parser`; flags may be added, never renamed or dropped.

Exit codes: 0 trained and wrote every seed, 2 bad usage or bad corpus, 3 internal
error. Any verdict in the output directory is removed before training starts,
and so are the seed files' temporaries that a killed trainer left there.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from frreg._io import check_output_dir
from frreg.cli._common import fail, guarded
from frreg.errors import CorpusError, FrregError
from frreg.options import StrictParser, add_options
from frreg.schema import DRY_RUN_EPOCHS, DRY_RUN_NOTE, EXIT_OK
from frreg.training.options import CORPUS, DEVICE, ENGINE, OUT_DIR, SEEDS, TRAINING_OPTIONS

PROG = "frreg-train"

#: How to produce a missing corpus: the pre-step the original runbook lacked.
CORPUS_PRESTEP = (
    "produce it first with the corpus pre-step, e.g. "
    "`frreg-corpus --builtin --out {path}` (README, runbook step 0)"
)


def build_parser() -> argparse.ArgumentParser:
    """The trainer's argument parser (the authoritative interface)."""
    parser = StrictParser(
        prog=PROG,
        description="Train one fr_regressor_v2 model per (seed, held-out source) and "
        "write loso_seed{N}.json with held-out PLCC/SROCC/RMSE per fold.",
        epilog="Exit status: 0 success, 2 usage error or unusable corpus, 3 internal error.",
    )
    add_options(parser.add_argument, (SEEDS, CORPUS, OUT_DIR, *TRAINING_OPTIONS))
    parser.add_argument(
        "--dry-run",
        dest="dry_run",
        action="store_true",
        help=f'train {DRY_RUN_EPOCHS} epoch and mark artifacts "note": "{DRY_RUN_NOTE}" '
        "(the gate never promotes them)",
    )
    add_options(parser.add_argument, (DEVICE, ENGINE))
    return parser


@guarded(PROG)
def main(argv: Sequence[str] | None = None) -> int:
    """Run the trainer; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    argv_list = list(sys.argv[1:] if argv is None else argv)
    try:
        from frreg import settings

        train_settings = settings.train_settings(
            vars(args), epochs=DRY_RUN_EPOCHS if args.dry_run else None
        )
        device = settings.device(vars(args))
        out_dir = check_output_dir(args.out_dir)
        corpus_path = Path(args.corpus)
        if not corpus_path.exists():
            from frreg.corpus import check_corpus_complete

            check_corpus_complete(corpus_path)  # an interrupted producer run says so
            raise CorpusError(
                corpus_path, None, "corpus not found; " + CORPUS_PRESTEP.format(path=corpus_path)
            )
        # Before the corpus is read: a network the kernel does not train is bad usage.
        kernel = settings.kernel(args.engine, device, train_settings.model)
        from frreg._terminal import progress_printer
        from frreg.corpus import load_corpus
        from frreg.gate.verdict import clear_verdict
        from frreg.training.loso import remove_stale_temporaries, run_loso
        from frreg.training.record import SeedRecord

        corpus = load_corpus(corpus_path)
        from frreg.dirlock import holding

        out_dir.mkdir(parents=True, exist_ok=True)
        # Shared with other trainers, exclusive of a verdict writer (frreg.dirlock).
        with holding(out_dir, exclusive=False, who=PROG):
            # New seed files invalidate any verdict beside them: remove it before training.
            clear_verdict(out_dir)
            # A killed trainer's half-written seed files (idle temporaries only: a
            # concurrent trainer's live ones stay; see remove_stale_temporaries).
            for stale in remove_stale_temporaries(out_dir):
                print(f"{PROG}: removed {stale.name}, left by a killed trainer", file=sys.stderr)
            for note in corpus.warnings():
                print(f"{PROG}: warning: {note}", file=sys.stderr)
            epochs = train_settings.epochs
            n_models = len(args.seeds) * len(corpus.sources)
            engine = f"{args.engine} {kernel}" if args.engine == "batched" else args.engine
            print(
                f"{PROG}: {corpus.n_rows} rows, {len(corpus.sources)} sources, seeds "
                f"{','.join(map(str, args.seeds))}: {n_models} models x {epochs} epochs "
                f"({engine}, {device}){' [dry-run]' if args.dry_run else ''}",
                file=sys.stderr,
            )
            # The batched engine reports epochs (its models train side by side), the
            # reference engine finished (seed, fold) jobs.
            progress = progress_printer(
                f"{PROG}: training", unit="epochs" if args.engine == "batched" else "jobs"
            )
            try:
                paths = run_loso(
                    corpus,
                    args.seeds,
                    train_settings,
                    out_dir,
                    argv=[PROG, *argv_list],
                    dry_run=args.dry_run,
                    engine=args.engine,
                    device=device,
                    progress=progress,
                    kernel=kernel,
                )
            finally:
                progress.close()  # an error gets a line of its own
    except FrregError as err:
        return fail(PROG, err)
    for seed, path in paths.items():
        rec = SeedRecord.read(path)
        shown = (
            "null (a fold's PLCC is undefined)" if rec.mean_plcc is None else f"{rec.mean_plcc:.4f}"
        )
        print(f"seed {seed}: mean PLCC {shown} over {len(rec.folds)} folds -> {path}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
