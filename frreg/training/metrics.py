"""Held-out agreement metrics: PLCC, SROCC (average ranks for ties) and RMSE.

Undefined correlations (a constant input) are ``None``, never NaN, so that
artifacts stay strict JSON and the gate can fail closed on them.
"""

from __future__ import annotations

import math

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
