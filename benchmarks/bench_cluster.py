"""Corpus production, local process pool vs a Dask cluster on loopback, side by side.

The same built-in grid is produced twice into fresh directories, once with
``frreg-corpus``'s local pool (``--jobs`` = cores) and once through a 2-worker
``distributed.LocalCluster`` on 127.0.0.1 (processes, one thread each); both
corpora must be identical except for ``enc_time_ms``. On one machine the
cluster cannot be faster; the point is its overhead (target: under 10 %).

    .venv/bin/python benchmarks/bench_cluster.py              # ~1 min on 2 cores
    .venv/bin/python benchmarks/bench_cluster.py --frames 30  # smaller

Exit status: 0 when it ran, 1 when it could not (the reason on one line).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

TARGET_OVERHEAD = 0.10


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_cluster.py")
    p.add_argument("--frames", type=int, default=60, help="frames per cell (default: 60)")
    p.add_argument("--size", default="320x180", help="built-in source size (default: 320x180)")
    args = p.parse_args(argv)
    try:
        import distributed
    except ImportError:
        print(
            "bench_cluster: needs the cluster extra: pip install 'frreg[cluster]'", file=sys.stderr
        )
        return 1
    from frreg.cli import corpus as corpus_cli

    grid = ["--builtin", "testsrc2_30fps", "mandelbrot_24fps", "life_25fps", "zoneplate_30fps",
            "--frames", str(args.frames), "--builtin-size", args.size, "--encoder", "libx264",
            "--cq", "22", "30", "38", "46", "--progress", "none"]  # fmt: skip
    n_frames = 4 * 4 * args.frames
    print(f"grid: 4 built-in sources x libx264 x 4 cq x {args.frames} frames ({args.size}); "
          f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench_cluster-") as tmp:
        root = Path(tmp)
        # Render the built-in sources once, untimed, so neither run pays for it.
        corpus_cli.main([*grid[:-2], "--frames", "2", "--out", str(root / "warm.jsonl"),
                         "--progress", "none"])  # fmt: skip
        t0 = time.perf_counter()
        if corpus_cli.main([*grid, "--out", str(root / "local.jsonl")]) != 0:
            return 1
        local_s = time.perf_counter() - t0
        with distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=None, silence_logs=50,
        ) as lc:  # fmt: skip
            t0 = time.perf_counter()
            code = corpus_cli.main(
                [*grid, "--out", str(root / "cluster.jsonl"), "--scheduler", lc.scheduler_address]
            )
            cluster_s = time.perf_counter() - t0
        if code != 0:
            return 1

        def table(name: str) -> list[dict]:
            return [
                {k: v for k, v in json.loads(line).items() if k != "enc_time_ms"}
                for line in (root / name).read_text().splitlines()
            ]

        same = table("local.jsonl") == table("cluster.jsonl")
    print(f"local pool:       {local_s:6.2f} s  {n_frames / local_s:7.1f} frames/s")
    print(f"2-worker cluster: {cluster_s:6.2f} s  {n_frames / cluster_s:7.1f} frames/s")
    overhead = cluster_s / local_s - 1
    verdict = "within" if overhead <= TARGET_OVERHEAD else "OVER"
    print(f"cluster overhead: {overhead:+.1%} ({verdict} the {TARGET_OVERHEAD:.0%} target)")
    print(f"corpora identical but for enc_time_ms: {'yes' if same else 'NO'}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
