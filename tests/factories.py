"""Builders for gate inputs: seed artifacts made from :class:`SeedRecord`.

The gate must judge files it did not write, so these do not train anything:
:func:`seed_record` fills a typed record by hand and :func:`seed_doc` gives its
JSON, which a test may then edit as an adversary would edit a file.
``test_train.py`` checks that the trainer's real output has the same shape.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from frreg.training.record import FoldRecord, SeedRecord

SOURCES = ("BigBuckBunny", "Tennis_24fps", "crowd_run")
DIGEST = "ab" * 32


def seed_record(
    seed: int, fold_plcc: Mapping[str, float | None] | float, **overrides: Any
) -> SeedRecord:
    """One seed's record; a float gives every source that PLCC."""
    if not isinstance(fold_plcc, Mapping):
        fold_plcc = dict.fromkeys(SOURCES, fold_plcc)
    folds = [
        FoldRecord(s, 100, 50, {"plcc": p, "srocc": p, "rmse": 3.0}) for s, p in fold_plcc.items()
    ]
    fields: dict[str, Any] = {
        "seed": seed,
        "corpus": "corpus.jsonl",
        "corpus_sha256": DIGEST,
        "n_rows": 450,
        "sources": tuple(fold_plcc),
        "epochs": 200,
        "batch_size": 32,
        "lr": 5e-4,
        "weight_decay": 1e-5,
        "num_codecs": 14,
        "encoder_vocab_version": 2,
        "engine": "batched",
        "device": "cpu",
        "wall_time_s": 1.0,
        "config": {"seed": seed},
    }
    fields.update(overrides)
    return SeedRecord.build(folds, **fields)


def seed_doc(
    seed: int, fold_plcc: Mapping[str, float | None] | float, **overrides: Any
) -> dict[str, Any]:
    """The JSON of :func:`seed_record`."""
    return seed_record(seed, fold_plcc, **overrides).to_json()


def write_loso_dir(
    directory: Path, docs: Sequence[dict[str, Any]] | Mapping[int, Any], *, allow_nan: bool = False
) -> Path:
    """Write docs as ``loso_seed{N}.json`` (keyed by doc seed, or by the mapping's key)."""
    directory.mkdir(parents=True, exist_ok=True)
    items = docs.items() if isinstance(docs, Mapping) else ((d["seed"], d) for d in docs)
    for seed, doc in items:
        text = doc if isinstance(doc, str) else json.dumps(doc, allow_nan=allow_nan)
        (directory / f"loso_seed{seed}.json").write_text(text, encoding="utf-8")
    return directory


def passing_docs(level: float = 0.97) -> list[dict[str, Any]]:
    return [seed_doc(s, level) for s in range(5)]


def run_fresh(code: str, *args: str, timeout: float = 300) -> Any:
    """Run ``code`` in a fresh interpreter (so it can change a declaration before any
    frreg module reads it) and return the JSON its last output line prints."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
