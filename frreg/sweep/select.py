"""Scoring a sweep's candidates and choosing among them without fooling oneself.

A candidate is a recipe at one epoch count. Each is scored on its leave-one-source-out
held-out predictions (every row predicted by the models that did not train on its
source), as the ensemble the gate would judge: the mean over seeds.

Choosing the best candidate on the very folds that then report its error is
optimistic: with hundreds of candidates, the minimum of their errors is biased low.
:func:`nested_selection` says by how much: for each source, it chooses the candidate
on the *other* sources' held-out errors only, and scores that choice on the source it
left out; the pooled error of those choices is what the selection procedure itself
achieves on a source it has not seen. (The models that predict the other sources were
trained with the left-out source among their rows, as in any LOSO sweep that does not
retrain per outer fold; what the choice never sees is the left-out source's held-out
error, which is the part that makes a naive estimate optimistic.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from frreg.gate.ensemble import conformal_quantile, members_sigma
from frreg.schema import NOMINAL_COVERAGE
from frreg.training.metrics import plcc

#: What the sweep minimises to choose a candidate: the pooled held-out RMSE (VMAF points)
#: of the ensemble mean; a tie goes to the first in the record's order (recipe by recipe,
#: each recipe's epoch counts ascending).
SELECTION_METRIC: Final = "pooled_rmse"


@dataclass(frozen=True)
class SourceErrors:
    """Per-source sums of squared ensemble errors ``sse`` ``(candidates, sources)`` and
    each source's row count ``rows`` ``(sources,)``: all the selection reads."""

    sources: tuple[str, ...]
    sse: np.ndarray
    rows: np.ndarray

    def pooled_rmse(self, exclude: int | None = None) -> np.ndarray:
        """Each candidate's pooled RMSE over every source but ``exclude``."""
        keep = np.ones(len(self.sources), dtype=bool)
        if exclude is not None:
            keep[exclude] = False
        out: np.ndarray = np.sqrt(self.sse[:, keep].sum(axis=1) / self.rows[keep].sum())
        return out


def source_errors(
    stacks: Sequence[np.ndarray], target: np.ndarray, groups: np.ndarray
) -> SourceErrors:
    """:class:`SourceErrors` of candidates whose held-out predictions are ``stacks``
    (each ``(seeds, rows)``, aligned with ``target``)."""
    sources = tuple(sorted({str(g) for g in groups}))
    masks = [groups == s for s in sources]
    sse = np.empty((len(stacks), len(sources)))
    for c, stack in enumerate(stacks):
        sq = (np.asarray(stack, dtype=np.float64).mean(axis=0) - target) ** 2
        sse[c] = [sq[m].sum() for m in masks]
    return SourceErrors(sources, sse, np.array([m.sum() for m in masks], dtype=np.float64))


def candidate_metrics(stack: np.ndarray, target: np.ndarray, groups: np.ndarray) -> dict[str, Any]:
    """The report's columns for one candidate: its held-out predictions ``stack``
    ``(seeds, rows)`` scored as an ensemble (mean over seeds)."""
    stack = np.asarray(stack, dtype=np.float64)
    mu = stack.mean(axis=0)
    resid = mu - target
    sources = sorted({str(g) for g in groups})
    per_source = {s: float(np.sqrt(np.mean(resid[groups == s] ** 2))) for s in sources}
    worst = max(per_source, key=lambda s: per_source[s])
    seed_means = []
    for seed_pred in stack:
        folds = [plcc(target[groups == s], seed_pred[groups == s]) for s in sources]
        defined = [f for f in folds if f is not None]
        seed_means.append(float(np.mean(defined)) if defined else math.nan)

    def finite(x: float) -> float | None:
        return float(x) if math.isfinite(x) else None

    return {
        "pooled_rmse": float(np.sqrt(np.mean(resid**2))),
        "worst_source_rmse": per_source[worst],
        "worst_source": worst,
        "abs_bias": float(abs(resid.mean())),
        "mean_plcc": finite(float(np.mean(seed_means))),
        "plcc_spread": finite(float(np.max(seed_means) - np.min(seed_means))),
        "sigma_mean": float(members_sigma(stack).mean()),
        "interval_width": finite(2.0 * conformal_quantile(np.abs(resid), NOMINAL_COVERAGE)),
        "per_source_rmse": per_source,
    }


@dataclass(frozen=True)
class NestedSelection:
    """For each source, the candidate chosen without it and that choice's error on it."""

    choices: dict[str, int]  # source -> candidate index
    estimate: float  # pooled RMSE of the choices on their left-out sources
    worst_source_rmse: float
    worst_source: str

    def to_json(self, names: Sequence[str]) -> dict[str, Any]:
        return {
            "estimate_pooled_rmse": self.estimate,
            "worst_source_rmse": self.worst_source_rmse,
            "worst_source": self.worst_source,
            "choices": {s: names[c] for s, c in self.choices.items()},
        }


def choose(errors: SourceErrors, exclude: int | None = None) -> int:
    """The candidate with the smallest pooled RMSE over every source but ``exclude``
    (the first such candidate on a tie)."""
    return int(np.argmin(errors.pooled_rmse(exclude)))


def nested_selection(errors: SourceErrors) -> NestedSelection:
    """Leave-one-source-out selection: source ``s``'s candidate is :func:`choose` without
    ``s``, scored on ``s`` alone; the estimate pools those scores over every source."""
    choices = {s: choose(errors, exclude=i) for i, s in enumerate(errors.sources)}
    sse = np.array([errors.sse[choices[s], i] for i, s in enumerate(errors.sources)])
    per_source = np.sqrt(sse / errors.rows)
    worst = int(np.argmax(per_source))
    return NestedSelection(
        choices,
        float(np.sqrt(sse.sum() / errors.rows.sum())),
        float(per_source[worst]),
        errors.sources[worst],
    )


def pareto_front(points: np.ndarray) -> np.ndarray:
    """Indices of the rows of ``points`` ``(n, objectives)``, all to be minimised, that no
    other row dominates (no worse in every objective and better in one), in row order."""
    pts = np.asarray(points, dtype=np.float64)
    keep = []
    for i, p in enumerate(pts):
        dominated = np.any(np.all(pts <= p, axis=1) & np.any(pts < p, axis=1))
        if not dominated:
            keep.append(i)
    return np.array(keep, dtype=np.int64)
