"""Corpus producer throughput: the naive three-step arrangement vs frreg's.

Both arrangements run the same cells (built-in sources x one encoder x cqs)
with the same encode argv, so the bitstreams — and therefore the scores —
must be identical:

naive
    per cell, one at a time: encode; decode the encode to a temporary raw
    YUV file; a separate ffmpeg run feeds that file and the source to
    single-threaded libvmaf (the original producer's shape).
frreg
    :func:`frreg.producer.produce_corpus`: cells side by side (``--jobs``),
    the encode decoded straight into threaded libvmaf next to the source,
    no raw YUV on disk.
floor
    the encoder alone: the same encode argv for every cell, cells side by side
    as frreg runs them (``--jobs``), nothing decoded or scored. For software
    encoders no producer can be faster; frreg / floor is the cost of decoding
    and scoring on top (issue target: <= 1.25x).

Prints frames/s for each, the speed-up, whether every per-frame score
matches, and frreg's harness overhead: the share of wall time during which
no ffmpeg process was running (Python work, file writes, scheduling gaps).

    .venv/bin/python benchmarks/bench_corpus.py --size 640x360 --frames 60
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from frreg.producer import (
    ProducerSettings,
    builtin_sources,
    produce_corpus,
    quality_args,
    vmaf_log_path,
)
from frreg.producer import ffmpeg as ff
from frreg.producer.encoders import BITSTREAM_FORMATS, DEFAULT_PRESETS, PRODUCIBLE_ENCODERS
from frreg.producer.runner import default_jobs, default_vmaf_threads
from frreg.producer.sources import BUILTIN_SOURCE_IDS, Source

# benchmarks/_machine.py, beside this file (also when this file is loaded by path)
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import cpu_model

TARGET_SPEEDUP = 1.3
TARGET_FLOOR_RATIO = 1.25
TARGET_OVERHEAD = 0.05


def naive_cell(
    exe: Path, src: Source, encoder: str, cq: int, preset: str, frames: int, work: Path
) -> dict[str, Any]:
    """Encode, decode to raw YUV on disk, then score in a separate single-threaded run."""
    muxer, ext = BITSTREAM_FORMATS[encoder]
    encoded = ff.encode(
        exe,
        src.input_args(),
        frames,
        quality_args(encoder, cq, preset),
        muxer,
        work / f"enc{ext}",
        timeout=3600,
    )
    raw = work / "dist.yuv"
    ff.run_tool(
        [
            str(exe),
            "-hide_banner",
            "-nostdin",
            "-y",
            "-v",
            "error",
            "-i",
            str(encoded.path),
            "-f",
            "rawvideo",
            "-pix_fmt",
            src.pix_fmt,
            str(raw),
        ],
        what="decode",
        timeout=3600,
    )
    ref_trim = f"trim=end_frame={frames}," if frames < src.frames else ""
    ff.run_tool(
        [
            str(exe),
            "-hide_banner",
            "-nostdin",
            "-v",
            "error",
            *ff.raw_input_args(raw, src.width, src.height, src.pix_fmt, src.framerate),
            *src.input_args(),
            "-lavfi",
            f"[1:v]{ref_trim}null[ref];[0:v][ref]libvmaf=model={ff.VMAF_MODEL}"
            ":log_fmt=json:log_path=naive.json",
            "-f",
            "null",
            "-",
        ],
        what="score",
        timeout=3600,
        cwd=work,
    )
    return json.loads((work / "naive.json").read_text())


def floor_cell(
    exe: Path, src: Source, encoder: str, cq: int, preset: str, frames: int, work: Path
) -> None:
    """The encode alone, with the producer's own argv (``ff.encode``)."""
    muxer, ext = BITSTREAM_FORMATS[encoder]
    ff.encode(
        exe,
        src.input_args(),
        frames,
        quality_args(encoder, cq, preset),
        muxer,
        work / f"enc{ext}",
        timeout=3600,
    )


def per_frame(log: dict[str, Any]) -> list[dict[str, float]]:
    """Canonical columns of every frame in a libvmaf log."""
    return [
        {
            col: next(f["metrics"][n] for n in names if n in f["metrics"])
            for col, names in ff.LIBVMAF_METRICS.items()
        }
        for f in log["frames"]
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--size", default="640x360", help="source size WxH (default: 640x360)")
    parser.add_argument("--frames", type=int, default=60, help="frames per source (default: 60)")
    parser.add_argument(
        "--sources",
        nargs="+",
        default=["testsrc2_30fps", "mandelbrot_24fps", "zoneplate_30fps"],
        choices=BUILTIN_SOURCE_IDS,
        help="built-in sources (default: testsrc2_30fps mandelbrot_24fps zoneplate_30fps)",
    )
    parser.add_argument("--encoder", default="libx264", choices=PRODUCIBLE_ENCODERS)
    parser.add_argument("--preset", help="encoder preset (default: the producer's)")
    parser.add_argument("--cq", type=int, nargs="+", default=[23, 35], help="default: 23 35")
    parser.add_argument("--jobs", type=int, help="frreg --jobs (default: the producer's)")
    parser.add_argument("--vmaf-threads", type=int, help="frreg libvmaf threads")
    parser.add_argument(
        "--rounds", type=int, default=1, help="alternate-order rounds; best is kept"
    )
    parser.add_argument(
        "--cache-dir", type=Path, help="built-in source cache (default: a temp dir)"
    )
    args = parser.parse_args(argv)
    width, height = (int(x) for x in args.size.lower().split("x"))
    preset = args.preset or DEFAULT_PRESETS[args.encoder]
    jobs = args.jobs or default_jobs()
    threads = args.vmaf_threads or default_vmaf_threads(jobs)

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="frreg-bench-") as tmp_name:
        tmp = Path(tmp_name)
        exe = ff.resolve_ffmpeg()
        info = ff.probe_ffmpeg(exe)
        sources = builtin_sources(
            args.cache_dir or tmp / "cache",
            ids=args.sources,
            frames=args.frames,
            size=(width, height),
        )
        cells = [(s, cq) for s in sources for cq in sorted(set(args.cq))]
        n_frames = sum(s.frames for s, _ in cells)

        naive_times, frreg_times, floor_times, overheads, harness_cpu = [], [], [], [], []
        naive_logs: dict[tuple[str, int], dict[str, Any]] = {}
        ours_rows: list[dict[str, Any]] = []
        for rnd in range(args.rounds):
            order = ("naive", "floor", "frreg") if rnd % 2 == 0 else ("frreg", "floor", "naive")
            for arrangement in order:
                if arrangement == "floor":
                    from concurrent.futures import ThreadPoolExecutor

                    start = time.perf_counter()
                    with ThreadPoolExecutor(max_workers=jobs) as pool:
                        futures = []
                        for src, cq in cells:
                            work = tmp / f"floor-{rnd}-{src.id}-{cq}"
                            work.mkdir()
                            futures.append(
                                pool.submit(
                                    floor_cell, exe, src, args.encoder, cq, preset, src.frames, work
                                )
                            )
                        for f in futures:
                            f.result()
                    floor_times.append(time.perf_counter() - start)
                elif arrangement == "naive":
                    start = time.perf_counter()
                    for src, cq in cells:
                        work = tmp / f"naive-{rnd}-{src.id}-{cq}"
                        work.mkdir()
                        naive_logs[(src.id, cq)] = naive_cell(
                            exe, src, args.encoder, cq, preset, src.frames, work
                        )
                    naive_times.append(time.perf_counter() - start)
                else:
                    out = tmp / f"frreg-{rnd}" / "corpus.jsonl"
                    settings = ProducerSettings(
                        encoders=(args.encoder,),
                        cqs=tuple(args.cq),
                        presets={args.encoder: preset},
                        ffmpeg=os.fspath(exe),
                        jobs=jobs,
                        vmaf_threads=threads,
                    )
                    start, cpu_start = time.perf_counter(), time.process_time()
                    result = produce_corpus(out, sources, settings)
                    wall = time.perf_counter() - start
                    harness_cpu.append((time.process_time() - cpu_start) / wall)
                    frreg_times.append(wall)
                    # Busy time is the union of ffmpeg intervals; the rest is harness.
                    overheads.append(max(0.0, wall - result.tool_busy_s) / wall)
                    assert result.written, [f.format() for f in result.failed]
                    ours_rows = [json.loads(line) for line in out.read_text().splitlines()]
                    ours_logs = {
                        (c["src"], c["cq"]): json.loads(
                            gzip.decompress(vmaf_log_path(out, c["key"]).read_bytes())
                        )
                        for c in json.loads(result.manifest.read_text())["cells"]
                    }

        mismatches = 0
        for (src_id, cq), log in naive_logs.items():
            mine = [
                {col: r[col] for col in ff.LIBVMAF_METRICS}
                for r in ours_rows
                if r["src"] == src_id and r["cq"] == cq
            ]
            if mine != per_frame(log) or per_frame(ours_logs[(src_id, cq)]) != per_frame(log):
                mismatches += 1
                print(f"MISMATCH {src_id}/{args.encoder}/cq{cq}", file=sys.stderr)

    naive_s, frreg_s, floor_s = min(naive_times), min(frreg_times), min(floor_times)
    best = frreg_times.index(frreg_s)
    overhead, cpu_share = overheads[best], harness_cpu[best]
    speedup = naive_s / frreg_s
    print(
        f"ffmpeg {info.version}, libvmaf {info.libvmaf_version}; {len(cells)} cells "
        f"({len(sources)} sources x {args.encoder} {preset} x cq {sorted(set(args.cq))}), "
        f"{width}x{height}, {n_frames} frames; cores {default_jobs()}"
    )
    print(
        f"naive  (encode; decode to raw; libvmaf 1 thread; 1 cell at a time): "
        f"{naive_s:7.2f} s  {n_frames / naive_s:7.1f} frames/s"
    )
    print(
        f"frreg  (encode; decode into libvmaf x{threads} threads; {jobs} jobs):          "
        f"{frreg_s:7.2f} s  {n_frames / frreg_s:7.1f} frames/s"
    )
    print(
        f"floor  (the encode alone, {jobs} jobs):                             "
        f"{floor_s:7.2f} s  {n_frames / floor_s:7.1f} frames/s"
    )
    print(
        f"{cpu_model()}, {os.cpu_count()} cores; load average before "
        "{:.2f} {:.2f} {:.2f}, after {:.2f} {:.2f} {:.2f}".format(*load_before, *os.getloadavg())
    )
    print(f"speed-up {speedup:.2f}x (target >= {TARGET_SPEEDUP}x)")
    print(
        f"frreg / floor {frreg_s / floor_s:.2f}x (target <= {TARGET_FLOOR_RATIO}x): decoding and "
        "scoring on top of the encode"
    )
    print(
        f"per-frame scores identical: {'yes' if not mismatches else f'NO ({mismatches} cells differ)'}"
    )
    print(f"frreg harness overhead: {overhead:.1%} of wall time (target < {TARGET_OVERHEAD:.0%})")
    print(
        f"frreg harness CPU (this Python process, threads included): {cpu_share:.1%} of wall time"
    )
    if args.rounds > 1:
        print(
            f"rounds: naive {statistics.median(naive_times):.2f} s median, "
            f"frreg {statistics.median(frreg_times):.2f} s median, "
            f"floor {statistics.median(floor_times):.2f} s median"
        )
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
