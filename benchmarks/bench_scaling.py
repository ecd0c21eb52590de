"""How the batched trainer scales with cores: the same jobs on 1 core, then on N.

The full recipe's 45 (seed, fold) jobs of the 33,840-row synthetic corpus
(``--epochs`` fewer than the recipe's 200 for a quick figure: each epoch costs
the same), trained by :func:`frreg.training.batched.fit_folds_batched` with one
worker thread pinned to one core (``os.sched_setaffinity``), then with one
worker per core pinned to the first N cores, alternating over ``--rounds``;
prints each time, the speed-up (target >= 1.9x on 2 cores) and whether the two
runs' predictions are identical (they must be: a job's numbers never depend
on which thread trained it).

    .venv/bin/python benchmarks/bench_scaling.py --epochs 10
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# benchmarks/_machine.py, beside this file (also when this file is loaded by path)
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import cpu_model

TARGET_SPEEDUP_2 = 1.9


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--epochs", type=int, default=10, help="epochs per job (default: 10)")
    parser.add_argument(
        "--cores", type=int, default=None, help="N, the cores of the second run (default: all)"
    )
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds; best is kept")
    args = parser.parse_args(argv)
    if not hasattr(os, "sched_setaffinity"):
        print("bench_scaling: needs os.sched_setaffinity (Linux)", file=sys.stderr)
        return 2
    available = sorted(os.sched_getaffinity(0))
    n = args.cores or len(available)
    if n < 2 or n > len(available):
        print(f"bench_scaling: --cores must be in [2, {len(available)}]", file=sys.stderr)
        return 2

    import tempfile

    import numpy as np

    from frreg.corpus import load_corpus
    from frreg.schema import ENSEMBLE_SEEDS
    from frreg.synthetic import synthetic_rows, write_corpus
    from frreg.training.batched import fit_folds_batched, resolve_kernel
    from frreg.training.settings import FoldJob, TrainSettings
    from frreg.training.splits import LeaveOneSourceOut

    with tempfile.TemporaryDirectory(prefix="bench_scaling-") as tmp:
        corpus = load_corpus(write_corpus(Path(tmp) / "corpus.jsonl", synthetic_rows()))
    splitter = LeaveOneSourceOut()
    folds = list(zip(splitter.sources(corpus.groups), splitter.split(corpus.groups), strict=True))
    jobs = [
        FoldJob(seed, src, train, test) for seed in ENSEMBLE_SEEDS for src, (train, test) in folds
    ]
    settings = TrainSettings(epochs=args.epochs)
    kernel = resolve_kernel("cpu", None)
    load_before = os.getloadavg()
    print(
        f"{cpu_model()}; {len(available)} cores available; kernel {kernel}; "
        f"{len(jobs)} jobs x {args.epochs} epochs on {corpus.n_rows} rows"
    )

    def train(cores: list[int]) -> tuple[float, list[np.ndarray]]:
        os.sched_setaffinity(0, cores)
        try:
            start = time.perf_counter()
            fits = fit_folds_batched(
                corpus.features,
                corpus.codec,
                corpus.target,
                jobs,
                settings,
                workers=len(cores),
                kernel=kernel,
            )
            return time.perf_counter() - start, [f.predictions for f in fits]
        finally:
            os.sched_setaffinity(0, available)

    ones, many = [], []
    preds_one: list[np.ndarray] = []
    preds_many: list[np.ndarray] = []
    for rnd in range(args.rounds):
        order = ("one", "many") if rnd % 2 == 0 else ("many", "one")
        for which in order:
            if which == "one":
                seconds, preds_one = train(available[:1])
                ones.append(seconds)
            else:
                seconds, preds_many = train(available[:n])
                many.append(seconds)
    one_s, many_s = min(ones), min(many)
    same = all(np.array_equal(a, b) for a, b in zip(preds_one, preds_many, strict=True))
    print(f"1 core, 1 worker:       {one_s:7.1f} s")
    print(f"{n} cores, {n} workers:     {many_s:7.1f} s")
    target = f" (target >= {TARGET_SPEEDUP_2}x on 2 cores)" if n == 2 else ""
    print(f"speed-up {one_s / many_s:.2f}x{target}")
    print(f"predictions identical: {'yes' if same else 'NO'}")
    print(
        "load average before {:.2f} {:.2f} {:.2f}, after {:.2f} {:.2f} {:.2f} (other work on "
        "the machine takes cores from the N-core run first)".format(*load_before, *os.getloadavg())
    )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
