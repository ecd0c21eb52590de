"""Held-out agreement metrics: PLCC, SROCC (average ranks for ties) and RMSE.

Undefined correlations (a constant input) are ``None``, never NaN, so that
artifacts stay strict JSON and the gate can fail closed on them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np


def _as_pair(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(y_true, dtype=np.float64).ravel()
    b = np.asarray(y_pred, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"length mismatch: {a.size} targets vs {b.size} predictions")
    if a.size < 2:
        raise ValueError(f"need at least two samples, got {a.size}")
    return a, b


def plcc(y_true: np.ndarray, y_pred: np.ndarray) -> float | None:
    """Pearson linear correlation; ``None`` when either side is constant or non-finite."""
    a, b = _as_pair(y_true, y_pred)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return None
    # Test constancy exactly: subtracting a rounded mean leaves residues of
    # ~1e-15 that would turn an undefined correlation into a tiny number.
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    da, db = a - a.mean(), b - b.mean()
    denom = math.sqrt(float(np.dot(da, da)) * float(np.dot(db, db)))
    if denom == 0.0:
        return None
    return max(-1.0, min(1.0, float(np.dot(da, db)) / denom))


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing the mean of the ranks they span."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    # Start index of each run of equal values.
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], x.size]
    run_rank = (starts + ends + 1) / 2.0  # mean of 1-based ranks starts+1 .. ends
    ranks = np.empty_like(x)
    ranks[order] = np.repeat(run_rank, ends - starts)
    return ranks


def srocc(y_true: np.ndarray, y_pred: np.ndarray) -> float | None:
    """Spearman rank correlation (Pearson on average ranks); ``None`` when undefined."""
    a, b = _as_pair(y_true, y_pred)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return None
    return plcc(average_ranks(a), average_ranks(b))


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float | None:
    """Root mean squared error; ``None`` when a prediction is non-finite."""
    a, b = _as_pair(y_true, y_pred)
    value = math.sqrt(float(np.mean((a - b) ** 2)))
    return value if math.isfinite(value) else None


# --------------------------------------------------------------------------
# The fold-metric vocabulary: one record per metric
# --------------------------------------------------------------------------

#: A metric's value on one fold: a number, or ``None`` where it is undefined.
Metric = float | None
#: By default a recorded metric must equal the one recomputed from the stored
#: predictions up to float64 rounding.
RECOMPUTE_ATOL: Final = 1e-9

#: Seed-level statistics over a seed's folds, by the name they are written under
#: (``<stat>_<metric>``, e.g. ``std_plcc``). ``std`` is the sample standard
#: deviation (ddof=1) as the fork's trainer defines it, undefined below two folds.
SUMMARY_STATS: Final = ("mean", "std", "min", "max")


@dataclass(frozen=True)
class FoldMetric:
    """One held-out metric: its name in every artifact, how it is computed and checked.

    The trainer's writer (:func:`frreg.training.loso.fold_record`), the seed file's
    reader and summary (:mod:`frreg.training.record`), the gate's undefined-fold
    check, the evidence's recomputation and the report all iterate
    :data:`FOLD_METRICS`, so a metric added here is written, read, summarised,
    recomputed and verified everywhere.
    """

    #: The fold field and the suffix of its summary fields (``mean_<name>``).
    name: str
    #: How messages and tables show it.
    label: str
    compute: Callable[[np.ndarray, np.ndarray], Metric]
    #: The values a fold can record; anything outside is a malformed artifact.
    lo: float
    hi: float
    #: The seed-level statistics written for it, in :data:`SUMMARY_STATS` order.
    summaries: tuple[str, ...] = ("mean",)
    #: A recorded value must equal the one recomputed from the predictions within this.
    atol: float = RECOMPUTE_ATOL
    #: Whether the fork's trainer writes it (its seed files must then carry it).
    in_fork: bool = True

    def summary_field(self, stat: str) -> str:
        return f"{stat}_{self.name}"

    def summary_range(self, stat: str) -> tuple[float, float]:
        """The values a summary statistic can take: a spread is >= 0, the rest lie
        in the metric's own range."""
        return (0.0, math.inf) if stat == "std" else (self.lo, self.hi)


FOLD_METRICS: Final = (
    FoldMetric("plcc", "PLCC", plcc, -1.0, 1.0, summaries=SUMMARY_STATS),
    FoldMetric("srocc", "SROCC", srocc, -1.0, 1.0),
    FoldMetric("rmse", "RMSE", rmse, 0.0, math.inf),
)
#: The ADR-0303 gate's metric.
GATE_METRIC: Final = "plcc"


def fold_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Metric]:
    """Every fold metric of one fold's held-out predictions, by name."""
    return {m.name: m.compute(y_true, y_pred) for m in FOLD_METRICS}


def summary_fields() -> tuple[tuple[FoldMetric, str], ...]:
    """``(metric, stat)`` of every seed-level summary field, in written order."""
    return tuple((m, stat) for m in FOLD_METRICS for stat in m.summaries)


def _finite_values(values: Sequence[Metric]) -> np.ndarray | None:
    # A fold with an undefined metric makes its summary undefined: never drop it.
    if not values or any(v is None or not math.isfinite(v) for v in values):
        return None
    return np.asarray(values, dtype=np.float64)


def summarize_metric(stat: str, values: Sequence[Metric]) -> Metric:
    """One summary statistic over the folds' values; ``None`` where undefined."""
    arr = _finite_values(values)
    if arr is None:
        return None
    if stat == "mean":
        return float(np.mean(arr))
    if stat == "std":
        return float(arr.std(ddof=1)) if arr.size >= 2 else None
    if stat == "min":
        return float(arr.min())
    if stat == "max":
        return float(arr.max())
    raise ValueError(f"unknown summary statistic {stat!r}; expected one of {SUMMARY_STATS}")
