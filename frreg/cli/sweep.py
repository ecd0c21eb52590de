"""``frreg-sweep``: train many recipes at once and say which one deserves to ship.

Every recipe of the grid (the product of the ``--lr``, ``--weight-decay``,
``--batch-size``, ``--dropout`` and ``--hidden`` lists) trains every seed and
leave-one-source-out fold for ``--epochs``, scored every ``--curve-every`` epochs; the
report ranks the candidates (recipe x epoch count) against OLS and libvmaf's own SVR
recipe on the same folds, gives the naive and the selection-adjusted (nested) error of
the best, and prints the exact ``frreg-train`` argv that trains it. A sweep recommends;
the gate still decides, on the run that argv trains.

Exit codes: 0 the sweep was written, 2 bad usage or an unusable corpus or cluster, 3
internal error, 130 interrupted (nothing is written until the end; a rerun starts over).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from frreg._io import check_output_dir
from frreg.cli._common import fail, guarded
from frreg.errors import FrregError, InputError
from frreg.options import StrictParser, add_options
from frreg.schema import EXIT_OK
from frreg.sweep.options import (
    AXES,
    CURVE_EVERY,
    EPOCHS,
    OUT_DIR,
    SCHEDULER,
    SEEDS,
    WORKERS,
    axis_values,
)
from frreg.training.options import CORPUS

PROG = "frreg-sweep"


def build_parser() -> argparse.ArgumentParser:
    parser = StrictParser(
        prog=PROG,
        description="Train every recipe of a grid on every seed and leave-one-source-out "
        "fold in one batched run, score each against OLS and libvmaf's SVR recipe on the "
        "same folds, and recommend one as an exact frreg-train argv.",
        epilog="Exit status: 0 written, 2 usage error, unusable corpus or cluster, 3 internal "
        "error, 130 interrupted.",
    )
    add_options(parser.add_argument, (CORPUS, OUT_DIR, SEEDS, EPOCHS, CURVE_EVERY))
    grid = parser.add_argument_group("the grid (every combination is one recipe)")
    add_options(grid.add_argument, AXES)
    add_options(parser.add_argument, (WORKERS, SCHEDULER))
    return parser


@guarded(PROG)
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except FrregError as err:
        return fail(PROG, err)


def _run(args: argparse.Namespace) -> int:
    from frreg._terminal import clock, progress_printer
    from frreg.corpus import load_corpus
    from frreg.sweep.grid import recipes
    from frreg.sweep.report import build_record, write_outputs
    from frreg.sweep.run import CorpusArrays, run_cluster, run_local
    from frreg.training.batched import ENGINE_VERSION, resolve_kernel

    out_dir = check_output_dir(args.out_dir)
    if args.curve_every > args.epochs:
        raise InputError(f"--curve-every {args.curve_every} is more than --epochs {args.epochs}")
    grid = recipes(axis_values(vars(args)), epochs=args.epochs)
    kernels = set()
    for recipe in grid:
        try:
            kernels.add(resolve_kernel("cpu", None, recipe.settings.model))
        except ValueError as exc:
            raise InputError(f"recipe {recipe.id} ({recipe.axes()}): {exc}") from None
    kernel = "+".join(sorted(kernels))
    corpus = load_corpus(Path(args.corpus))
    for note in corpus.warnings():
        print(f"{PROG}: warning: {note}", file=sys.stderr)
    arrays = CorpusArrays(corpus.features, corpus.codec, corpus.target, corpus.groups)
    n_models = len(grid) * len(args.seeds) * len(corpus.sources)
    where = f"on the Dask cluster at {args.scheduler}" if args.scheduler else "on this machine"
    print(
        f"{PROG}: {corpus.n_rows} rows, {len(corpus.sources)} sources; {len(grid)} recipes x "
        f"{len(args.seeds)} seeds x {len(corpus.sources)} folds = {n_models} models x "
        f"{args.epochs} epochs, scored every {args.curve_every} ({kernel} kernel, {where})",
        file=sys.stderr,
    )
    progress = progress_printer(f"{PROG}: training", unit="model-epochs")
    start = time.monotonic()
    if args.scheduler:
        from frreg.dask_client import connect

        client = connect(args.scheduler)
        try:
            preds = run_cluster(
                client, arrays, grid, args.seeds, args.curve_every, progress=progress
            )
        finally:
            client.close()
    else:
        preds = run_local(
            arrays, grid, args.seeds, args.curve_every, workers=args.workers, progress=progress
        )
    wall = time.monotonic() - start
    print(f"{PROG}: trained in {clock(wall)}; scoring {len(grid)} recipes", file=sys.stderr)
    record = build_record(
        corpus, grid, preds, curve_every=args.curve_every, kernel=kernel,
        engine_version=ENGINE_VERSION, where=where, wall_seconds=wall,
    )  # fmt: skip
    written = write_outputs(record, out_dir)
    rec = record["recommended"]
    chosen = next(c for c in record["sweep"]["candidates"] if c["name"] == rec["candidate"])
    nested = record["sweep"]["selection"]["nested"]
    print(
        f"{PROG}: {rec['candidate']} recommended: pooled RMSE {chosen['pooled_rmse']:.2f} "
        f"(selection-adjusted {nested['estimate_pooled_rmse']:.2f}), worst source "
        f"{chosen['worst_source_rmse']:.2f} ({chosen['worst_source']}); wrote "
        + ", ".join(str(p) for p in written),
        file=sys.stderr,
    )
    print(rec["command"])
    return EXIT_OK
