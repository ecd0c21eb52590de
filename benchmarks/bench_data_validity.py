"""How close is "the same content"? The measurement behind the data checks' tolerances.

Produces the 13 built-in sources (the lavfi ten and the three natural clips;
libx264 and libx265 at cq 22 30 38 46, 3 s each, 320x180) and, of two of them
(``zoneplate_30fps``, ``bikes_natural``), three copies made from the pixels:
re-encoded (x264 crf 16, decoded back), noised (ffmpeg ``noise=alls=3:allf=t+u``)
and shifted by one frame (the first dropped). An exact copy is the same rows
under a second id. For each tolerance it prints the largest share of any pair
of distinct sources in the clean 13-source corpus, and the smallest share of a
copy in its original; then what the data checks cost on the 33,840-row
synthetic corpus. docs/verdict.md ("Data validity") quotes the output.

    .venv/bin/python benchmarks/bench_data_validity.py --work /tmp/frdata-bench

The corpus is produced once under ``--work`` (about 3 minutes on 2 cores) and
reused by later runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

from frreg.cli import corpus as corpus_cli
from frreg.corpus import load_corpus
from frreg.corpus.validity import assess, content_shares
from frreg.producer import builtin_sources, resolve_ffmpeg
from frreg.schema import DATA_NEAR_SD, DATA_SHARED_ROWS_MIN
from frreg.synthetic import synthetic_rows, write_corpus

CLEAN = (
    "testsrc2_30fps", "mandelbrot_24fps", "life_25fps", "cellauto_30fps", "gradients_24fps",
    "zoneplate_30fps", "noise_25fps", "testsrc_blur_50fps", "smptehdbars_scroll_30fps",
    "sierpinski_24fps", "bigbuckbunny_natural", "bikes_natural", "carphone_natural",
)  # fmt: skip
COPIED = {"zoneplate_30fps": "zp", "bikes_natural": "bikes"}
#: How each copy is made from its original's pixels (ffmpeg output options).
MADE = {
    "reenc": None,  # x264 crf 16 to a file, decoded back
    "noise": ["-vf", "noise=alls=3:allf=t+u"],
    "shift": ["-vf", "select=gte(n\\,1),setpts=N/FRAME_RATE/TB"],
}
TOLERANCES = (0.05, 0.1, 0.2, 0.3)


def make_copies(work: Path, ffmpeg: Path) -> dict[str, Path]:
    """Every clip to produce, by id: the 13 built-ins and the pixel-level copies."""
    clips = {s.id: s.path for s in builtin_sources(ids=CLEAN)}
    for original, short in COPIED.items():
        for how, vf in MADE.items():
            out = work / f"{short}_{how}.y4m"
            if not out.exists():
                src = ["-v", "error", "-y", "-i", str(clips[original])]
                if vf is None:
                    mkv = work / f"{short}_{how}.mkv"
                    enc = ["-c:v", "libx264", "-crf", "16", "-preset", "medium", str(mkv)]
                    subprocess.run([str(ffmpeg), *src, *enc], check=True)
                    src = ["-v", "error", "-y", "-i", str(mkv)]
                    vf = []
                subprocess.run(
                    [str(ffmpeg), *src, *vf, "-pix_fmt", "yuv420p", str(out)], check=True
                )
            clips[f"{short}_{how}"] = out
    return clips


def produce(work: Path, clips: dict[str, Path]) -> Path:
    out = work / "corpus.jsonl"
    if out.exists():
        return out
    manifest = work / "sources.toml"
    entries = [f'[[sources]]\npath = "{path}"\nid = "{sid}"\n' for sid, path in clips.items()]
    manifest.write_text(
        'encoders = ["libx264", "libx265"]\ncqs = [22, 30, 38, 46]\n' + "\n".join(entries)
    )
    code = corpus_cli.main(["--sources", str(manifest), "--out", str(out), "--progress", "plain"])
    if code != 0:
        raise SystemExit(f"frreg-corpus exited {code}")
    return out


def split(work: Path, corpus: Path) -> tuple[Path, Path]:
    """The clean 13-source corpus, and all of it with the exact copies (the original's rows
    under ``<short>_copy``)."""
    rows = [json.loads(line) for line in corpus.read_text().splitlines()]
    clean = [r for r in rows if r["src"] in CLEAN]
    exact = [{**r, "src": f"{COPIED[r['src']]}_copy"} for r in rows if r["src"] in COPIED]
    return (
        write_corpus(work / "clean.jsonl", clean),
        write_corpus(work / "copies.jsonl", rows + exact),
    )


def family(src: str) -> str:
    for original, short in COPIED.items():
        if src == original or src.startswith(short + "_"):
            return original
    return src


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="where the corpus is made")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    clean_path, copies_path = split(
        args.work, produce(args.work, make_copies(args.work, resolve_ffmpeg(None)))
    )
    clean, copies = load_corpus(clean_path), load_corpus(copies_path)
    print(f"clean: {clean.n_rows} rows, {len(clean.sources)} sources; with copies: "
          f"{copies.n_rows} rows, {len(copies.sources)} sources")  # fmt: skip
    print("tolerance (SD) | clean: largest share of two sources | copies: smallest share in "
          "their original")  # fmt: skip
    for tol in TOLERANCES:
        top = content_shares(clean, tol)
        pairs = {p.ids: p for p in content_shares(copies, tol)}
        worst = min(
            (
                pairs.get(tuple(sorted((c, o))))  # type: ignore[arg-type]
                for o, short in COPIED.items()
                for c in [f"{short}_copy", *(f"{short}_{h}" for h in MADE)]
            ),
            key=lambda p: 0.0 if p is None else p.share,
        )
        shown = "none" if worst is None else f"{worst.share:.2f} ({worst.of} in {worst.other})"
        largest = f"{top[0].share:.2f} ({top[0].of} in {top[0].other})" if top else "0"
        print(f"{tol:>14} | {largest:<40} | {shown}")
    found = assess(copies)
    mixed = [p for p in found.shared if family(p.of) != family(p.other)]
    print(f"at {DATA_NEAR_SD} SD and a share of {DATA_SHARED_ROWS_MIN}: {len(found.shared)} "
          f"pairs hold the same content, {len(mixed)} of them of different content")  # fmt: skip
    for p in found.shared:
        if family(p.of) == family(p.other) and (p.of in COPIED or p.other in COPIED):
            print(f"  {p.of} ~ {p.other}: {p.share:.2f} ({p.exact} identical)")
    big = load_corpus(write_corpus(args.work / "synthetic.jsonl", synthetic_rows()))
    times = []
    for _ in range(5):
        start = time.perf_counter()
        assess(big)
        times.append(time.perf_counter() - start)
    load = os.getloadavg()
    print(f"assess() on the synthetic corpus ({big.n_rows} rows, {len(big.sources)} sources): "
          f"best {min(times):.3f} s, median {sorted(times)[2]:.3f} s "
          f"(cores {os.cpu_count()}, load {load[0]:.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
