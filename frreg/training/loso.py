"""Leave-one-source-out runs and their ``loso_seed{N}.json`` artifacts.

:func:`run_loso` trains every (seed, held-out source) model of a corpus and
writes one :class:`~frreg.training.record.SeedRecord` per seed, with its
held-out predictions, atomically. :func:`run_config` is everything a seed's
numbers depend on; its sha256 is the cache key.
"""

from __future__ import annotations

import csv
import io
import os
import platform
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np

from frreg import __version__
from frreg._io import atomic_writer, sha256_file, write_json_atomic
from frreg.corpus import Corpus
from frreg.schema import (
    DRY_RUN_NOTE,
    ENCODER_VOCAB_VERSION,
    SEED_RECORD_VERSION,
    seed_artifact_name,
    seed_predictions_name,
    seed_weights_name,
)
from frreg.training.code_digest import code_digest
from frreg.training.metrics import fold_metrics
from frreg.training.network import MLPConfig
from frreg.training.record import FileRef, FoldRecord, SeedRecord
from frreg.training.settings import Fit, FoldJob, TrainSettings
from frreg.training.splits import LeaveOneSourceOut
from frreg.training.weights import write_weights

Engine = Literal["batched", "reference"]
ENGINES: Final[tuple[Engine, ...]] = ("batched", "reference")

Progress = Callable[[int, int], None]


def engine_version(engine: str) -> int:
    """The numerics version of ``engine`` (part of every cache key)."""
    if engine == "batched":
        from frreg.training.batched import ENGINE_VERSION
    elif engine == "reference":
        from frreg.training.reference import ENGINE_VERSION
    else:
        raise ValueError(f"unknown engine {engine!r}; expected one of {', '.join(ENGINES)}")
    return ENGINE_VERSION


@dataclass(frozen=True)
class TrainedFold:
    """One trained (seed, source) model: its held-out predictions, layers and metrics.

    ``seconds`` is its training time: measured per job by the reference engine,
    the run's time divided evenly over its jobs by the batched one (which
    trains them all at once).
    """

    job: FoldJob
    fit: Fit
    record: FoldRecord
    seconds: float = 0.0

    @property
    def predictions(self) -> np.ndarray:
        return self.fit.predictions


def plan_jobs(corpus: Corpus, seeds: Sequence[int]) -> list[FoldJob]:
    """One job per (seed, fold), seeds in the given order, folds in sorted source order."""
    folds = LeaveOneSourceOut().test_indices(corpus.groups)
    return [
        FoldJob(seed, str(src), None, test_idx, n_rows=corpus.n_rows)
        for seed in seeds
        for src, test_idx in folds
    ]


def fold_record(job: FoldJob, target: np.ndarray, pred: np.ndarray) -> FoldRecord:
    """Held-out metrics of one job's predictions."""
    return FoldRecord(
        held_out=job.held_out,
        n_train=job.n_train,
        n_val=len(job.test_idx),
        metrics=fold_metrics(target[job.test_idx], pred),
    )


def engine_kernel(
    engine: str, device: str = "cpu", kernel: str | None = None, model: MLPConfig | None = None
) -> str:
    """The kernel that trains ``model`` (default: ``MLPConfig()``): for the batched engine
    its compiled (``native``) or ``torch`` kernel, refusing a shape it does not train
    (:func:`frreg.training.batched.resolve_kernel`); the reference loop is always
    ``torch``. Part of every run's ``config``, so of its cache key."""
    if engine == "batched":
        from frreg.training.batched import resolve_kernel

        return resolve_kernel(device, kernel, model)
    if kernel not in (None, "torch"):
        raise ValueError(f"the {engine} engine has only the torch kernel, not {kernel!r}")
    return "torch"


def train_jobs(
    corpus: Corpus,
    jobs: Sequence[FoldJob],
    settings: TrainSettings,
    *,
    engine: Engine = "batched",
    device: str = "cpu",
    progress: Progress | None = None,
    kernel: str | None = None,
) -> list[TrainedFold]:
    """Train ``jobs`` on ``corpus`` and evaluate each on its held-out source
    (``kernel``: see :func:`engine_kernel`)."""
    fits: list[Fit]
    start = time.perf_counter()
    seconds: list[float] = []
    codec = corpus.codec_for(settings.preset_norm)  # the recipe's preset_norm
    if engine == "batched":
        from frreg.training.batched import fit_folds_batched

        fits = fit_folds_batched(
            corpus.features,
            codec,
            corpus.target,
            jobs,
            settings,
            device=device,
            progress=progress,
            kernel=kernel,
        )
        seconds = [(time.perf_counter() - start) / max(len(jobs), 1)] * len(jobs)
    elif engine == "reference":
        from frreg.training.reference import fit_fold_reference

        engine_kernel(engine, device, kernel)  # refuses a kernel it does not have
        fits = []
        for i, job in enumerate(jobs):
            job_start = time.perf_counter()
            fits.append(fit_fold_reference(corpus.features, codec, corpus.target, job, settings))
            seconds.append(time.perf_counter() - job_start)
            if progress is not None:
                progress(i + 1, len(jobs))
    else:
        raise ValueError(f"unknown engine {engine!r}; expected one of {', '.join(ENGINES)}")
    return [
        TrainedFold(job, fit, fold_record(job, corpus.target, fit.predictions), took)
        for job, fit, took in zip(jobs, fits, seconds, strict=True)
    ]


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
    dry_run: bool = False,
    kernel: str | None = None,
) -> dict[str, Any]:
    """Everything that determines one seed's numbers.

    Stored in the artifact as ``config``; its sha256 is the cache key, so the
    two can never disagree about what a cached result depends on. It names the
    data (corpus digest), the recipe, the network's shape, the engine and its
    numerics version, the device, the library versions and the code itself
    (``code``: :mod:`frreg.training.code_digest`), so any change to frreg's
    sources, or to the native binary that trained, retrains instead of serving
    a cached seed.
    """
    v = versions()
    resolved = engine_kernel(engine, device, kernel, settings.model)
    return {
        "schema_version": SEED_RECORD_VERSION,
        "corpus_sha256": corpus_sha256,
        "seed": seed,
        **settings.recipe(),
        "model": settings.model.as_dict(),
        "encoder_vocab_version": ENCODER_VOCAB_VERSION,
        "engine": engine,
        "engine_version": engine_version(engine),
        "kernel": resolved,
        "device": device,
        "dry_run": dry_run,
        "frreg": v["frreg"],
        "torch": v["torch"],
        "code": code_digest(resolved).to_json(),
    }


def seed_record(
    corpus: Corpus,
    seed: int,
    folds: Sequence[TrainedFold],
    settings: TrainSettings,
    *,
    argv: Sequence[str] | None = None,
    wall_time_s: float,
    run_wall_time_s: float | None = None,
    dry_run: bool = False,
    engine: Engine = "batched",
    device: str = "cpu",
    kernel: str | None = None,
) -> SeedRecord:
    """The :class:`SeedRecord` of one seed (its predictions reference is added on write)."""
    recipe = settings.recipe()
    return SeedRecord.build(
        [f.record for f in folds],
        seed=seed,
        corpus=str(corpus.path),
        corpus_abs=str(Path(corpus.path).resolve()),
        corpus_sha256=corpus.sha256,
        n_rows=corpus.n_rows,
        sources=tuple(corpus.sources),
        epochs=recipe["epochs"],
        batch_size=recipe["batch_size"],
        lr=recipe["lr"],
        weight_decay=recipe["weight_decay"],
        num_codecs=recipe["num_codecs"],
        preset_norm=recipe["preset_norm"],
        sweep=recipe["sweep"],
        encoder_vocab_version=ENCODER_VOCAB_VERSION,
        unknown_encoders=dict(sorted(corpus.unknown_encoders.items())),
        engine=engine,
        device=device,
        wall_time_s=round(wall_time_s, 3),
        run_wall_time_s=None if run_wall_time_s is None else round(run_wall_time_s, 3),
        versions=versions(),
        argv=tuple(argv) if argv is not None else tuple(sys.argv),
        config=run_config(
            corpus.sha256,
            seed,
            settings,
            engine=engine,
            device=device,
            dry_run=dry_run,
            kernel=kernel,
        ),
        note=DRY_RUN_NOTE if dry_run else None,
    )


PREDICTIONS_HEADER: Final = ("held_out", "src", "encoder", "cq", "frame_index", "vmaf", "pred")


def predictions_csv(corpus: Corpus, folds: Sequence[TrainedFold]) -> str:
    """The held-out predictions of ``folds``, one CSV row per held-out frame."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(PREDICTIONS_HEADER)
    for fold in folds:
        idx = fold.job.test_idx
        for (src, enc, cq, fi), y, p in zip(
            corpus.row_keys(idx),
            corpus.target[idx],
            fold.predictions,
            strict=True,
        ):
            writer.writerow([fold.job.held_out, src, enc, cq, fi, repr(float(y)), repr(float(p))])
    return buf.getvalue()


def write_seed_artifacts(
    out_dir: str | Path,
    record: SeedRecord,
    corpus: Corpus,
    folds: Sequence[TrainedFold],
) -> Path:
    """Write predictions and weights, then the seed JSON (which records their digests).

    Each is written to a temporary name and renamed; the JSON goes last so a
    reader that finds it always finds the files it names.
    """
    out = Path(out_dir)
    pred_path = out / seed_predictions_name(record.seed)
    # Build the text before the temporary exists: a temporary lives only for
    # one write and a rename (what remove_stale_temporaries relies on).
    text = predictions_csv(corpus, folds)
    with atomic_writer(pred_path) as fh:
        fh.write(text)
    weights_path = write_weights(
        out / seed_weights_name(record.seed), [(f.job.held_out, f.fit.layers) for f in folds]
    )
    record = record.with_files(
        FileRef(pred_path.name, sha256_file(pred_path)),
        FileRef(weights_path.name, sha256_file(weights_path)),
    )
    path = out / seed_artifact_name(record.seed)
    write_json_atomic(path, record.to_json())
    return path


#: How long a seed file's temporary must have been idle before the next
#: trainer removes it as a killed trainer's (see remove_stale_temporaries).
STALE_TEMPORARY_S: Final = 60.0

# atomic_writer's temporaries of the seed files: mkstemp(prefix=".NAME.",
# suffix=".tmp") with NAME a seed file's name and 8 random characters.
_SEED_TEMPORARY = re.compile(
    r"\.loso_seed[0-9]+\.(?:json|predictions\.csv|weights\.npz)\.[A-Za-z0-9_]{8}\.tmp"
)


def remove_stale_temporaries(
    out_dir: str | Path, *, idle_s: float = STALE_TEMPORARY_S, now: float | None = None
) -> list[Path]:
    """Remove the seed-file temporaries a killed trainer left in ``out_dir``; return them.

    Only names :func:`frreg._io.atomic_writer` gives the seed files
    (``.loso_seed{N}.json.XXXXXXXX.tmp``, ``.predictions.csv``, ``.weights.npz``)
    are candidates, and only those not modified for ``idle_s`` seconds.

    The rule is idleness because the names carry no pid and no lock guards
    them: a writer creates its temporary, writes it in one call (the text is
    built beforehand), fsyncs and renames it, so a live writer's temporary is
    seconds old at most. One idle for a minute belongs to a trainer that died
    between mkstemp and rename; a concurrent trainer writing into the same
    directory keeps its own. (A writer stopped for longer than that, e.g. by
    SIGSTOP, fails loudly at its rename: never a torn file.)
    """
    directory = Path(out_dir)
    now = time.time() if now is None else now
    removed: list[Path] = []
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for entry in entries:
        if not _SEED_TEMPORARY.fullmatch(entry.name):
            continue
        try:
            if entry.is_file(follow_symlinks=False) and now - entry.stat().st_mtime > idle_s:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            pass  # gone already (another trainer's cleanup), or not ours to remove
    return sorted(removed)


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
    progress: Progress | None = None,
    kernel: str | None = None,
) -> dict[int, Path]:
    """Train all seeds' folds together and write one artifact per seed; return their paths."""
    start = time.perf_counter()
    kernel = engine_kernel(engine, device, kernel, settings.model)
    # Digest the code now, before training: the seed files name the code as it was
    # when the run started, not as it is minutes later (run_config reuses this digest).
    code_digest(kernel)
    jobs = plan_jobs(corpus, seeds)
    results = train_jobs(
        corpus, jobs, settings, engine=engine, device=device, progress=progress, kernel=kernel
    )
    wall = time.perf_counter() - start
    written: dict[int, Path] = {}
    for seed in seeds:
        folds = [r for r in results if r.job.seed == seed]
        record = seed_record(
            corpus,
            seed,
            folds,
            settings,
            argv=argv,
            wall_time_s=sum(f.seconds for f in folds),
            run_wall_time_s=wall,
            dry_run=dry_run,
            engine=engine,
            device=device,
            kernel=kernel,
        )
        written[seed] = write_seed_artifacts(out_dir, record, corpus, folds)
    return written
