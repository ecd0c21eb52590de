"""A deterministic synthetic Phase A corpus, for tests and benchmarks.

It has the exact row schema of a real corpus and a learnable relation between
the canonical features and ``vmaf``, but it is not video: use the corpus
producer (``frreg-corpus``) for anything you want to ship.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from frreg._io import atomic_writer
from frreg.schema import CANONICAL_6, PRESET_LADDERS


def synthetic_rows(
    n_sources: int = 9,
    encoders: Sequence[str] = ("libx264", "libx265"),
    cqs: Sequence[int] = (22, 28, 34, 40),
    frames: int = 470,
    seed: int = 0,
    noise: float = 1.5,
) -> list[dict[str, object]]:
    """Rows for ``n_sources x encoders x cqs x frames`` frames (defaults: 33,840 rows)."""
    rng = np.random.default_rng(seed)
    rows: list[dict[str, object]] = []
    for s in range(n_sources):
        src = f"synth{s:02d}"
        complexity = rng.uniform(0.2, 1.0)
        motion = rng.uniform(0.0, 20.0)
        for e, encoder in enumerate(encoders):
            ladder = PRESET_LADDERS[encoder]
            preset = ladder[len(ladder) // 2]
            for cq in cqs:
                base = 1.0 - (cq - 18) / 40.0 * complexity - 0.03 * e
                q = np.clip(
                    base + 0.05 * rng.standard_normal(frames).cumsum() / np.sqrt(frames), 0.05, 1.0
                )
                m = np.abs(motion + rng.normal(0.0, 2.0, frames))
                feats = {
                    "adm2": 0.55 + 0.45 * q + rng.normal(0, 0.01, frames),
                    "vif_scale0": q**2.0 * 0.9 + rng.normal(0, 0.01, frames),
                    "vif_scale1": q**1.5 * 0.93 + rng.normal(0, 0.01, frames),
                    "vif_scale2": q**1.2 + rng.normal(0, 0.01, frames),
                    "vif_scale3": q**1.1 + rng.normal(0, 0.01, frames),
                    "motion2": m,
                }
                vmaf = np.clip(
                    100.0 * q**1.3 - 0.25 * m * (1 - q) + rng.normal(0, noise, frames), 0, 100
                )
                for i in range(frames):
                    row: dict[str, object] = {
                        "src": src,
                        "encoder": encoder,
                        "cq": int(cq),
                        "preset": preset,
                        "frame_index": i,
                        "vmaf": round(float(vmaf[i]), 6),
                    }
                    for name in CANONICAL_6:
                        row[name] = round(float(feats[name][i]), 6)
                    rows.append(row)
    return rows


def write_corpus(path: str | Path, rows: Sequence[dict[str, object]]) -> Path:
    """Write rows as JSONL, atomically."""
    path = Path(path)
    with atomic_writer(path) as fh:
        for row in rows:
            fh.write(json.dumps(row, allow_nan=True) + "\n")
    return path
