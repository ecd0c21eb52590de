"""Leave-one-source-out training runs and their ``loso_seed{N}.json`` artifacts.

:func:`run_loso` trains every (seed, held-out source) model of a corpus and
returns per-seed results; :func:`seed_record` turns one seed's results into
the self-describing artifact dict; :func:`write_seed_artifacts` writes it and
the held-out predictions atomically.
"""

from __future__ import annotations

import csv
import io
import math
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from frreg import __version__
from frreg._io import atomic_writer, sha256_file, write_json_atomic
from frreg.corpus import Corpus
from frreg.metrics import plcc, rmse, srocc
from frreg.schema import (
    DRY_RUN_NOTE,
    ENCODER_VOCAB_VERSION,
    SCHEMA_VERSION,
    seed_artifact_name,
    seed_predictions_name,
)
from frreg.splits import LeaveOneSourceOut
from frreg.train import FoldJob, TrainSettings, train_fold_reference

Engine = Literal["batched", "reference"]
ENGINES: tuple[Engine, ...] = ("batched", "reference")


@dataclass(frozen=True)
class FoldResult:
    """Held-out metrics and predictions of one trained (seed, source) model."""

    seed: int
    held_out: str
    n_train: int
    n_val: int
    plcc: float | None
    srocc: float | None
    rmse: float | None
    test_idx: np.ndarray
    predictions: np.ndarray

    def metrics(self) -> dict[str, Any]:
        return {
            "held_out": self.held_out,
            "n_train": self.n_train,
            "n_val": self.n_val,
            "plcc": self.plcc,
            "srocc": self.srocc,
            "rmse": self.rmse,
        }


def plan_jobs(corpus: Corpus, seeds: Sequence[int]) -> list[FoldJob]:
    """One job per (seed, fold), seeds in the given order, folds in sorted source order."""
    splitter = LeaveOneSourceOut()
    folds = list(zip(splitter.sources(corpus.groups), splitter.split(corpus.groups), strict=True))
    return [
        FoldJob(seed=seed, held_out=str(src), train_idx=tr, test_idx=te)
        for seed in seeds
        for src, (tr, te) in folds
    ]


def _evaluate(job: FoldJob, target: np.ndarray, pred: np.ndarray) -> FoldResult:
    y = target[job.test_idx]
    return FoldResult(
        seed=job.seed,
        held_out=job.held_out,
        n_train=len(job.train_idx),
        n_val=len(job.test_idx),
        plcc=plcc(y, pred),
        srocc=srocc(y, pred),
        rmse=rmse(y, pred),
        test_idx=job.test_idx,
        predictions=np.asarray(pred, dtype=np.float64),
    )


def train_jobs(
    corpus: Corpus,
    jobs: Sequence[FoldJob],
    settings: TrainSettings,
    *,
    engine: Engine = "batched",
    device: str = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> list[FoldResult]:
    """Train ``jobs`` on ``corpus`` and evaluate each on its held-out source."""
    if engine == "batched":
        from frreg.batched import train_folds_batched

        preds = train_folds_batched(
            corpus.features,
            corpus.codec,
            corpus.target,
            jobs,
            settings,
            device=device,
            progress=progress,
        )
    elif engine == "reference":
        preds = []
        for i, job in enumerate(jobs):
            preds.append(
                train_fold_reference(corpus.features, corpus.codec, corpus.target, job, settings)
            )
            if progress is not None:
                progress(i + 1, len(jobs))
    else:  # pragma: no cover - guarded by argparse choices
        raise ValueError(f"unknown engine {engine!r}; expected one of {ENGINES}")
    return [_evaluate(job, corpus.target, p) for job, p in zip(jobs, preds, strict=True)]


def _mean_or_none(values: Sequence[float | None]) -> float | None:
    # A fold with an undefined metric makes the summary undefined: never drop it.
    if not values or any(v is None or not math.isfinite(v) for v in values):
        return None
    return float(np.mean(values))


def summarize(folds: Sequence[FoldResult]) -> dict[str, float | None]:
    """Seed-level summary of fold metrics (population std)."""
    plccs = [f.plcc for f in folds]
    defined = _mean_or_none(plccs) is not None
    arr = np.array(plccs, dtype=np.float64) if defined else None
    return {
        "mean_plcc": _mean_or_none(plccs),
        "std_plcc": float(arr.std()) if arr is not None else None,
        "min_plcc": float(arr.min()) if arr is not None else None,
        "max_plcc": float(arr.max()) if arr is not None else None,
        "mean_srocc": _mean_or_none([f.srocc for f in folds]),
        "mean_rmse": _mean_or_none([f.rmse for f in folds]),
    }


def versions() -> dict[str, str]:
    """Versions of everything that can change a trained number."""
    import torch

    return {
        "frreg": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def run_config(
    corpus_sha256: str,
    seed: int,
    settings: TrainSettings,
    *,
    engine: Engine = "batched",
    device: str = "cpu",
) -> dict[str, Any]:
    """Everything that determines one seed's numbers.

    Stored in the artifact as ``config``; its sha256 is the cache key, so the
    two can never disagree about what a cached result depends on.
    """
    v = versions()
    return {
        "schema_version": SCHEMA_VERSION,
        "corpus_sha256": corpus_sha256,
        "seed": seed,
        **settings.as_dict(),
        "encoder_vocab_version": ENCODER_VOCAB_VERSION,
        "engine": engine,
        "device": device,
        "frreg": v["frreg"],
        "torch": v["torch"],
    }


def seed_record(
    corpus: Corpus,
    seed: int,
    folds: Sequence[FoldResult],
    settings: TrainSettings,
    *,
    argv: Sequence[str] | None = None,
    wall_time_s: float,
    dry_run: bool = False,
    engine: Engine = "batched",
    device: str = "cpu",
) -> dict[str, Any]:
    """The self-describing ``loso_seed{N}.json`` content for one seed."""
    return {
        "schema_version": SCHEMA_VERSION,
        "seed": seed,
        "corpus": str(corpus.path),
        "corpus_sha256": corpus.sha256,
        "n_rows": corpus.n_rows,
        "sources": list(corpus.sources),
        "n_folds": len(folds),
        "folds": [f.metrics() for f in folds],
        **summarize(folds),
        **settings.as_dict(),
        "encoder_vocab_version": ENCODER_VOCAB_VERSION,
        "unknown_encoders": dict(sorted(corpus.unknown_encoders.items())),
        "engine": engine,
        "device": device,
        "wall_time_s": round(wall_time_s, 3),
        "versions": versions(),
        "argv": list(argv) if argv is not None else list(sys.argv),
        "config": run_config(corpus.sha256, seed, settings, engine=engine, device=device),
        "note": DRY_RUN_NOTE if dry_run else None,
    }


def _predictions_csv(corpus: Corpus, folds: Sequence[FoldResult]) -> str:
    frame = corpus.frame
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["held_out", "src", "encoder", "cq", "frame_index", "vmaf", "pred"])
    for fold in folds:
        sub = frame.iloc[fold.test_idx]
        for (src, enc, cq, fi), y, p in zip(
            sub[["src", "encoder", "cq", "frame_index"]].itertuples(index=False, name=None),
            corpus.target[fold.test_idx],
            fold.predictions,
            strict=True,
        ):
            writer.writerow([fold.held_out, src, enc, cq, fi, repr(float(y)), repr(float(p))])
    return buf.getvalue()


def write_seed_artifacts(
    out_dir: str | Path,
    record: dict[str, Any],
    corpus: Corpus,
    folds: Sequence[FoldResult],
) -> Path:
    """Write predictions, then the seed JSON (which records the predictions' digest).

    Both are written to temporary names and renamed; the JSON goes last so a
    reader that finds it always finds matching predictions.
    """
    out = Path(out_dir)
    seed = record["seed"]
    pred_path = out / seed_predictions_name(seed)
    with atomic_writer(pred_path) as fh:
        fh.write(_predictions_csv(corpus, folds))
    record = {
        **record,
        "predictions": {"file": pred_path.name, "sha256": sha256_file(pred_path)},
    }
    path = out / seed_artifact_name(seed)
    write_json_atomic(path, record)
    return path


def run_loso(
    corpus: Corpus,
    seeds: Sequence[int],
    settings: TrainSettings,
    out_dir: str | Path,
    *,
    argv: Sequence[str] | None = None,
    dry_run: bool = False,
    engine: Engine = "batched",
    device: str = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> dict[int, Path]:
    """Train all seeds' folds together and write one artifact per seed."""
    start = time.perf_counter()
    jobs = plan_jobs(corpus, seeds)
    results = train_jobs(corpus, jobs, settings, engine=engine, device=device, progress=progress)
    wall = time.perf_counter() - start
    paths: dict[int, Path] = {}
    for seed in seeds:
        folds = [r for r in results if r.seed == seed]
        record = seed_record(
            corpus,
            seed,
            folds,
            settings,
            argv=argv,
            wall_time_s=wall,
            dry_run=dry_run,
            engine=engine,
            device=device,
        )
        paths[seed] = write_seed_artifacts(out_dir, record, corpus, folds)
    return paths
