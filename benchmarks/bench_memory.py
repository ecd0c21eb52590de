"""Peak memory and time of loading a large corpus and planning its LOSO folds (no training).

Writes a synthetic corpus (:mod:`frreg.synthetic`: 2,000 sources x 2
encoders x 5 cq x 5 frames = 100,000 rows by default; ``--rows`` scales the
frames), then loads it with :func:`frreg.corpus.load_corpus` in a fresh
process, so the peak RSS is the loader's and not the generator's. Prints
rows, sources, seconds, the peak RSS (``resource.getrusage``), the RSS of the
imports alone, the file size, the CPU model and the load average.

    .venv/bin/python benchmarks/bench_memory.py --rows 100000 --sources 2000
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# benchmarks/_machine.py, beside this file (also when this file is loaded by path)
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import cpu_model

ENCODERS = ("libx264", "libx265")
CQS = (22, 28, 34, 40, 46)


def peak_rss_mib() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write(path: Path, rows: int, sources: int) -> None:
    from frreg.synthetic import synthetic_rows, write_corpus

    frames = max(2, rows // (sources * len(ENCODERS) * len(CQS)))
    write_corpus(path, synthetic_rows(n_sources=sources, encoders=ENCODERS, cqs=CQS, frames=frames))


def load(path: Path) -> None:
    """The child: import, note the RSS, load, print one line of numbers."""
    from frreg.corpus import load_corpus

    imported = peak_rss_mib()
    t0 = time.perf_counter()
    corpus = load_corpus(path)
    seconds = time.perf_counter() - t0
    print(
        f"rows {corpus.n_rows}, sources {len(corpus.sources)}, load {seconds:.2f} s, "
        f"peak RSS {peak_rss_mib():.0f} MiB (imports alone {imported:.0f} MiB), "
        f"file {path.stat().st_size / 2**20:.0f} MiB"
    )
    # Planning every (seed, fold) job of the 5-seed ensemble and taking each
    # fold's training rows once, as the gate's recomputation does: folds are
    # index views, so this stays O(rows) whatever the number of sources.
    from frreg.schema import ENSEMBLE_SEEDS
    from frreg.training.loso import plan_jobs

    t0 = time.perf_counter()
    jobs = plan_jobs(corpus, ENSEMBLE_SEEDS)
    rows = sum(len(job.train_idx) for job in jobs[: len(corpus.sources)])
    seconds = time.perf_counter() - t0
    print(
        f"plan {len(jobs)} jobs and walk {len(corpus.sources)} folds' training rows "
        f"({rows} in all) {seconds:.2f} s, peak RSS {peak_rss_mib():.0f} MiB"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="about this many rows")
    parser.add_argument("--sources", type=int, default=2000, help="number of sources")
    parser.add_argument("--write", type=Path, help=argparse.SUPPRESS)  # the children's entries
    parser.add_argument("--load", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write is not None:
        write(args.write, args.rows, args.sources)
        return 0
    if args.load is not None:
        load(args.load)
        return 0
    # Both steps run in children of this small process: on Linux a child's
    # ru_maxrss starts from its parent's RSS at fork, so a parent holding the
    # generated rows would inflate the loader's figure.
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "corpus.jsonl"
        for step in (["--write", str(path), "--rows", str(args.rows)], ["--load", str(path)]):
            child = subprocess.run(
                [sys.executable, __file__, *step, "--sources", str(args.sources)],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if child.returncode != 0:
                print(child.stderr, file=sys.stderr)
                return child.returncode
    print(child.stdout.strip())
    print(f"frreg.training.splits.LeaveOneSourceOut.test_indices; argv {sys.argv[1:]}")
    load1, load5, load15 = os.getloadavg()
    print(
        f"{cpu_model()}; {os.cpu_count()} cores; load average {load1:.2f} {load5:.2f} {load15:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
