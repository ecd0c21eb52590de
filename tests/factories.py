"""Builders for gate inputs: ``loso_seed{N}.json`` documents written by hand.

The gate must judge files it did not write, so these are independent of
:mod:`frreg.loso`; ``test_train.py`` checks that the trainer's real output
carries the same fields.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

SOURCES = ("BigBuckBunny", "Tennis_24fps", "crowd_run")
DIGEST = "ab" * 32


def seed_doc(
    seed: int, fold_plcc: Mapping[str, float | None] | float, **overrides: Any
) -> dict[str, Any]:
    """One seed's artifact; a float gives every source that PLCC."""
    if not isinstance(fold_plcc, Mapping):
        fold_plcc = dict.fromkeys(SOURCES, fold_plcc)
    folds = [
        {"held_out": s, "n_train": 100, "n_val": 50, "plcc": p, "srocc": p, "rmse": 3.0}
        for s, p in fold_plcc.items()
    ]
    vals = list(fold_plcc.values())
    mean = None if any(v is None for v in vals) else sum(vals) / len(vals)
    doc = {
        "schema_version": 1,
        "seed": seed,
        "corpus": "corpus.jsonl",
        "corpus_sha256": DIGEST,
        "n_rows": 450,
        "sources": list(fold_plcc),
        "n_folds": len(folds),
        "folds": folds,
        "mean_plcc": mean,
        "epochs": 200,
        "batch_size": 32,
        "lr": 5e-4,
        "weight_decay": 1e-5,
        "num_codecs": 14,
        "encoder_vocab_version": 2,
        "note": None,
    }
    doc.update(overrides)
    return doc


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
