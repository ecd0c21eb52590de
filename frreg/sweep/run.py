"""Training a sweep: every recipe x seed x fold, in one batched run or on a Dask cluster.

Locally, every model of every recipe goes to one
:func:`~frreg.training.batched.fit_recipes_batched` call: each model carries its own
recipe, the cores take groups of models longest first, and each model's held-out
predictions are taken every ``curve_every`` epochs. On a cluster
(``scheduler``), each (recipe, seed) is one Dask task running the same call on one
worker thread; the corpus arrays travel once (scattered to every worker). A model's
numbers depend only on its own job and recipe, so both ways give the same predictions,
bit for bit; only the timings differ.

What a worker returns is checked before it is used (its shape, its epochs, finite
numbers): a worker is not trusted to be well-behaved, and a sweep recommends, it never
decides. The recipe it recommends is trained again and judged by the gate.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from frreg.errors import InputError
from frreg.sweep.grid import Recipe
from frreg.training.settings import FoldJob, TrainSettings
from frreg.training.splits import LeaveOneSourceOut

#: Retries of a shard whose task raised on a worker (a lost worker is rescheduled by Dask).
SHARD_RETRIES: Final = 1

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class CorpusArrays:
    """What training reads of a corpus (what a cluster worker receives)."""

    features: np.ndarray
    codec: np.ndarray
    target: np.ndarray
    groups: np.ndarray

    @property
    def n_rows(self) -> int:
        return int(self.target.shape[0])


@dataclass
class SweepPredictions:
    """Every recipe's held-out predictions at every curve epoch, and its training time.

    ``curves[recipe id][epoch]`` is ``(seeds, rows)``: row ``i`` predicted by the seed's
    model that held row ``i``'s source out. ``cpu_seconds[recipe id]`` is the CPU time its
    models took to train (every seed and fold, all epochs, evaluations not counted).
    """

    seeds: tuple[int, ...]
    epochs: tuple[int, ...]
    curves: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)


def curve_epochs(max_epochs: int, every: int) -> tuple[int, ...]:
    """The epochs a curve is taken at: every ``every``-th, and the last."""
    return tuple(sorted({*range(every, max_epochs + 1, every), max_epochs}))


def _jobs(arrays: CorpusArrays, seeds: Sequence[int]) -> list[FoldJob]:
    splitter = LeaveOneSourceOut()
    folds = list(zip(splitter.sources(arrays.groups), splitter.split(arrays.groups), strict=True))
    return [
        FoldJob(seed, str(held_out), train_idx, test_idx)
        for seed in seeds
        for held_out, (train_idx, test_idx) in folds
    ]


def train_shard(
    arrays: CorpusArrays,
    settings: Sequence[TrainSettings],
    seeds: Sequence[int],
    curve_every: int,
    *,
    workers: int | None = None,
    kernel: str | None = None,
    progress: Progress | None = None,
) -> tuple[list[dict[int, np.ndarray]], list[float]]:
    """Train ``settings`` x ``seeds`` x every fold; per recipe, ``{epoch: (seeds, rows)}``
    held-out predictions and its CPU seconds. What a cluster task runs, and what the
    local sweep runs for all recipes at once."""
    from frreg.training.batched import fit_recipes_batched

    folds_jobs = _jobs(arrays, seeds)
    jobs = [job for _ in settings for job in folds_jobs]
    per_job = [s for s in settings for _ in folds_jobs]
    epochs_of = [curve_epochs(s.epochs, curve_every) for s in settings]
    curves = [
        {e: np.full((len(seeds), arrays.n_rows), np.nan) for e in epochs} for epochs in epochs_of
    ]
    seconds = [0.0] * len(settings)
    seed_pos = {seed: i for i, seed in enumerate(seeds)}
    per_recipe = len(folds_jobs)

    def curve(j: int, epoch: int, pred: np.ndarray) -> None:
        job = jobs[j]
        curves[j // per_recipe][epoch][seed_pos[job.seed], job.test_idx] = pred

    def trained(members: np.ndarray, cpu: float) -> None:
        for r in {int(m) // per_recipe for m in members}:
            share = sum(1 for m in members if int(m) // per_recipe == r) / len(members)
            seconds[r] += cpu * share

    fit_recipes_batched(
        arrays.features, arrays.codec, arrays.target, jobs, per_job,
        progress=progress, workers=workers, kernel=kernel,
        curve_every=curve_every, curve=curve, trained=trained,
    )  # fmt: skip
    return curves, seconds


def run_local(
    arrays: CorpusArrays,
    grid: Sequence[Recipe],
    seeds: Sequence[int],
    curve_every: int,
    *,
    workers: int | None = None,
    kernel: str | None = None,
    progress: Progress | None = None,
) -> SweepPredictions:
    """The whole sweep in this process: one batched run over every core."""
    curves, seconds = train_shard(
        arrays, [r.settings for r in grid], seeds, curve_every,
        workers=workers, kernel=kernel, progress=progress,
    )  # fmt: skip
    out = SweepPredictions(tuple(seeds), _shared_epochs(grid, curve_every))
    for recipe, curve, cpu in zip(grid, curves, seconds, strict=True):
        out.curves[recipe.id] = curve
        out.cpu_seconds[recipe.id] = cpu
    return out


def _shared_epochs(grid: Sequence[Recipe], curve_every: int) -> tuple[int, ...]:
    epochs = {curve_epochs(r.settings.epochs, curve_every) for r in grid}
    if len(epochs) != 1:
        raise ValueError("every recipe of a sweep trains for the same number of epochs")
    return next(iter(epochs))


def _shard_task(
    arrays: CorpusArrays, settings: TrainSettings, seed: int, curve_every: int, kernel: str | None
) -> tuple[dict[int, np.ndarray], float]:
    """One (recipe, seed) on a worker: one thread, as many as the worker runs at once."""
    curves, seconds = train_shard(arrays, [settings], [seed], curve_every, workers=1, kernel=kernel)
    return curves[0], seconds[0]


def shard_problem(result: Any, epochs: Sequence[int], n_rows: int) -> str | None:
    """Why a worker's shard result cannot be used (``None``: it can)."""
    if not (isinstance(result, tuple) and len(result) == 2):
        return "not a (curve, seconds) pair"
    curve, seconds = result
    if not isinstance(seconds, float) or not np.isfinite(seconds) or seconds < 0:
        return f"training time {seconds!r} is not a finite number of seconds"
    if not isinstance(curve, dict) or sorted(curve) != list(epochs):
        return f"curve epochs {sorted(curve) if isinstance(curve, dict) else curve!r} are not {list(epochs)}"
    for epoch, pred in curve.items():
        if not isinstance(pred, np.ndarray) or pred.shape != (1, n_rows):
            return f"epoch {epoch}: predictions are not one seed x {n_rows} rows"
        if not np.all(np.isfinite(pred)):
            return f"epoch {epoch}: predictions are not all finite"
    return None


def run_cluster(
    client: Any,
    arrays: CorpusArrays,
    grid: Sequence[Recipe],
    seeds: Sequence[int],
    curve_every: int,
    *,
    kernel: str | None = None,
    progress: Progress | None = None,
) -> SweepPredictions:
    """The sweep as (recipe, seed) tasks on a Dask cluster; one-line :class:`InputError`
    when a shard fails on every try or comes back malformed."""
    from distributed import as_completed

    epochs = _shared_epochs(grid, curve_every)
    out = SweepPredictions(tuple(seeds), epochs)
    for recipe in grid:
        out.curves[recipe.id] = {e: np.full((len(seeds), arrays.n_rows), np.nan) for e in epochs}
        out.cpu_seconds[recipe.id] = 0.0
    [shared] = client.scatter([arrays], broadcast=True)
    futures = {}
    for recipe in grid:
        for i, seed in enumerate(seeds):
            fut = client.submit(
                _shard_task, shared, recipe.settings, seed, curve_every, kernel,
                key=f"frreg-sweep-{recipe.id}-seed{seed}-{time.time_ns()}",
                retries=SHARD_RETRIES, pure=False,
            )  # fmt: skip
            futures[fut] = (recipe, i, seed)
    per_shard = epochs[-1] * len(set(arrays.groups.tolist()))  # model-epochs of one shard
    total = len(futures) * per_shard
    done = 0
    try:
        with client.as_current():
            for fut in as_completed(list(futures)):  # type: ignore[no-untyped-call]
                recipe, i, seed = futures[fut]
                where = f"recipe {recipe.id} seed {seed}"
                try:
                    result = fut.result()
                except Exception as exc:
                    raise InputError(
                        f"--scheduler: {where} failed on the cluster: {type(exc).__name__}: {exc}"
                    ) from None
                problem = shard_problem(result, epochs, arrays.n_rows)
                if problem is not None:
                    raise InputError(f"--scheduler: {where}: a worker returned {problem}")
                curve, seconds = result
                for epoch, pred in curve.items():
                    out.curves[recipe.id][epoch][i] = pred[0]
                out.cpu_seconds[recipe.id] += seconds
                done += per_shard
                if progress is not None:
                    progress(done, total)
    finally:
        client.cancel(list(futures))
    return out
