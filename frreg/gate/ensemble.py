"""Evidence about what ships: the ensemble, not its members one at a time.

Computed from the held-out predictions every seed already saved (no
retraining), under the same leave-one-source-out split, once per verdict:

- the ensemble mean ``mu`` (the shipped score) per held-out source: PLCC,
  SROCC, RMSE and the mean bias ``y - mu``; pooled PLCC over all held-out rows,
  per seed and for ``mu`` (Netflix's vmaf cross-validation convention);
- an ordinary-least-squares baseline fit in-fold on the same scaled inputs
  (the six features, standardised on the training rows, plus the codec
  block and an intercept; closed form with ``numpy.linalg.lstsq``), and the
  ensemble's margin over it per fold;
- intervals: per source, the coverage of the deep-ensemble interval
  ``mu +- 1.96 sigma`` (``sigma``: the members' sample standard deviation,
  ddof=1) and of the leave-one-source-out split-conformal interval
  ``mu +- q``, where ``q`` is the finite-sample ``ceil((n + 1) level) / n``
  quantile of ``|y - mu|`` over the other sources' rows;
- member agreement that does not flip on one fold: the per-fold standard
  deviation of PLCC across seeds, and a bootstrap interval (over folds) of
  the ADR-0303 spread.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final

import numpy as np

from frreg.corpus import Corpus
from frreg.schema import NOMINAL_COVERAGE
from frreg.training.metrics import plcc, rmse, srocc
from frreg.training.settings import Scaler
from frreg.training.splits import LeaveOneSourceOut

#: ``mu +- Z sigma`` is what the upstream manifest calls a 95 % interval.
GAUSSIAN_Z: Final = 1.96
#: Bootstrap resamples of the folds for the spread's interval (fixed seed: reproducible).
BOOTSTRAP_RESAMPLES: Final = 2000
_BOOTSTRAP_SEED: Final = 20260303


@dataclass(frozen=True)
class SourceEvidence:
    """The ensemble on one held-out source."""

    source: str
    n_rows: int
    ensemble_plcc: float | None
    ensemble_srocc: float | None
    ensemble_rmse: float | None
    bias: float
    baseline_plcc: float | None
    baseline_rmse: float | None
    margin_plcc: float | None
    coverage_gaussian: float
    coverage_conformal: float
    conformal_q: float
    seed_plcc_std: float | None

    def to_json(self) -> dict[str, Any]:
        """Strict JSON: an infinite ``conformal_q`` (too few other rows for the nominal
        level: the interval is unbounded) is written as ``null``."""
        doc = asdict(self)
        if not math.isfinite(self.conformal_q):
            doc["conformal_q"] = None
        return doc


@dataclass(frozen=True)
class EnsembleEvidence:
    """Every ensemble-level number, per source and pooled."""

    sources: tuple[SourceEvidence, ...]
    pooled_plcc: Mapping[str, float | None]  # per seed ("0" ...) and "ensemble"
    pooled_coverage_gaussian: float
    pooled_coverage_conformal: float
    spread: float | None  # the ADR-0303 spread of per-seed mean PLCC
    spread_interval: tuple[float, float] | None  # bootstrap 95 % interval over folds
    fold_plcc_std_max: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "sources": {
                s.source: {k: v for k, v in s.to_json().items() if k != "source"}
                for s in self.sources
            },
            "pooled_plcc": dict(self.pooled_plcc),
            "pooled_coverage_gaussian": self.pooled_coverage_gaussian,
            "pooled_coverage_conformal": self.pooled_coverage_conformal,
            "spread": self.spread,
            "spread_interval": None if self.spread_interval is None else list(self.spread_interval),
            "fold_plcc_std_max": self.fold_plcc_std_max,
        }


def conformal_quantile(residuals: np.ndarray, level: float = NOMINAL_COVERAGE) -> float:
    """The split-conformal half-width: the ``ceil((n + 1) level)``-th smallest residual
    (``inf`` when there are too few residuals for that level)."""
    r = np.sort(np.asarray(residuals, dtype=np.float64))
    k = math.ceil((len(r) + 1) * level)
    return float(r[k - 1]) if 1 <= k <= len(r) else math.inf


def ols_fold_predictions(corpus: Corpus, train_idx: np.ndarray, test_idx: np.ndarray) -> np.ndarray:
    """Least squares on the scaled six features + codec block + intercept, fit on ``train_idx``."""
    scaler = Scaler.fit(corpus.features[train_idx])

    def design(idx: np.ndarray) -> np.ndarray:
        x = scaler.transform(corpus.features[idx])
        return np.hstack([x, corpus.codec[idx], np.ones((len(idx), 1))])

    coef, *_ = np.linalg.lstsq(design(train_idx), corpus.target[train_idx], rcond=None)
    out: np.ndarray = design(test_idx) @ coef
    return out


def _spread_interval(fold_plcc: np.ndarray) -> tuple[float, float] | None:
    """Bootstrap (over folds) 95 % interval of max - min of the per-seed mean PLCC.

    ``fold_plcc`` is ``(seeds, folds)``.
    """
    if fold_plcc.shape[1] < 2 or not np.isfinite(fold_plcc).all():
        return None
    rng = np.random.default_rng(_BOOTSTRAP_SEED)
    picks = rng.integers(0, fold_plcc.shape[1], size=(BOOTSTRAP_RESAMPLES, fold_plcc.shape[1]))
    means = fold_plcc[:, picks].mean(axis=2)  # (seeds, resamples)
    spreads = means.max(axis=0) - means.min(axis=0)
    lo, hi = np.quantile(spreads, [0.025, 0.975])
    return float(lo), float(hi)


def ensemble_evidence(corpus: Corpus, predictions: Mapping[int, np.ndarray]) -> EnsembleEvidence:
    """Ensemble evidence from each seed's held-out predictions (one per corpus row).

    Raises ``ValueError`` when fewer than two seeds' predictions are given or a
    prediction is not finite: such evidence cannot be computed, and a caller
    must not treat it as passing.
    """
    seeds = sorted(predictions)
    if len(seeds) < 2:
        raise ValueError(f"ensemble evidence needs at least two seeds, got {len(seeds)}")
    stack = np.vstack([np.asarray(predictions[s], dtype=np.float64) for s in seeds])
    if stack.shape[1] != corpus.n_rows or not np.isfinite(stack).all():
        raise ValueError("every seed needs a finite held-out prediction for every corpus row")
    y = corpus.target
    mu = stack.mean(axis=0)
    sigma = stack.std(axis=0, ddof=1)
    resid = np.abs(y - mu)
    inside_gaussian = resid <= GAUSSIAN_Z * sigma

    folds = LeaveOneSourceOut().test_indices(corpus.groups)
    fold_plcc = np.array(
        [[_nan(plcc(y[te], stack[i, te])) for _, te in folds] for i in range(len(seeds))]
    )
    inside_conformal = np.zeros(corpus.n_rows, dtype=bool)
    out = []
    for k, (src, te) in enumerate(folds):
        others = np.ones(corpus.n_rows, dtype=bool)
        others[te] = False
        q = conformal_quantile(resid[others])
        inside_conformal[te] = resid[te] <= q
        train = np.flatnonzero(others)
        base = ols_fold_predictions(corpus, train, te)
        ens, base_plcc = plcc(y[te], mu[te]), plcc(y[te], base)
        column = fold_plcc[:, k]
        out.append(
            SourceEvidence(
                source=str(src),
                n_rows=len(te),
                ensemble_plcc=ens,
                ensemble_srocc=srocc(y[te], mu[te]),
                ensemble_rmse=rmse(y[te], mu[te]),
                bias=float(np.mean(y[te] - mu[te])),
                baseline_plcc=base_plcc,
                baseline_rmse=rmse(y[te], base),
                margin_plcc=None if ens is None or base_plcc is None else ens - base_plcc,
                coverage_gaussian=float(inside_gaussian[te].mean()),
                coverage_conformal=float(inside_conformal[te].mean()),
                conformal_q=q,
                seed_plcc_std=float(column.std(ddof=1)) if np.isfinite(column).all() else None,
            )
        )
    pooled: dict[str, float | None] = {str(s): plcc(y, stack[i]) for i, s in enumerate(seeds)}
    pooled["ensemble"] = plcc(y, mu)
    seed_means = fold_plcc.mean(axis=1)
    finite = bool(np.isfinite(seed_means).all())
    stds = [s.seed_plcc_std for s in out]
    return EnsembleEvidence(
        sources=tuple(out),
        pooled_plcc=pooled,
        pooled_coverage_gaussian=float(inside_gaussian.mean()),
        pooled_coverage_conformal=float(inside_conformal.mean()),
        spread=float(seed_means.max() - seed_means.min()) if finite else None,
        spread_interval=_spread_interval(fold_plcc),
        fold_plcc_std_max=None
        if any(v is None for v in stds)
        else max(v for v in stds if v is not None),
    )


def _nan(x: float | None) -> float:
    return math.nan if x is None else x


@dataclass(frozen=True)
class ConformalCalibration:
    """The shipped interval ``mu +- q``, calibrated on the LOSO evidence.

    ``q`` is the split-conformal half-width of the leave-one-source-out
    residuals ``|y - mu|`` of the ensemble mean over every corpus row (each
    row predicted by models that never saw its source) at ``level``. The
    members' spread is recorded beside it, not used for it.
    """

    q: float
    level: float
    n_rows: int
    #: per source: rows, the q calibrated without it, the coverage that q gives
    #: it (an honest held-out figure), and the coverage the shipped q gives it.
    per_source: Mapping[str, Mapping[str, float | int | None]]
    sigma_mean: float  # the members' mean standard deviation (ddof=1) on the LOSO rows
    coverage_gaussian: float  # of mu +- GAUSSIAN_Z sigma, pooled
    coverage_conformal: float  # pooled held-out-source coverage (each source by its own q)

    def to_json(self) -> dict[str, Any]:
        return {
            "conformal_q_residual": _json_number(self.q),
            "nominal_coverage": self.level,
            "n_calibration_rows": self.n_rows,
            "calibration": "leave-one-source-out residuals |y - mu| of the ensemble mean",
            "per_source": {k: dict(v) for k, v in self.per_source.items()},
            "pooled_coverage_loso_conformal": self.coverage_conformal,
            "members_spread": {
                "sigma_mean": self.sigma_mean,
                "gaussian_z": GAUSSIAN_Z,
                "pooled_coverage_gaussian": self.coverage_gaussian,
            },
        }


def conformal_calibration(
    corpus: Corpus, predictions: Mapping[int, np.ndarray], level: float = NOMINAL_COVERAGE
) -> ConformalCalibration:
    """Calibrate the shipped interval from each seed's held-out (LOSO) predictions."""
    evidence = ensemble_evidence(corpus, predictions)  # validates the predictions
    stack = np.vstack([np.asarray(predictions[s], dtype=np.float64) for s in sorted(predictions)])
    mu = stack.mean(axis=0)
    resid = np.abs(corpus.target - mu)
    q = conformal_quantile(resid, level)
    folds = dict(LeaveOneSourceOut().test_indices(corpus.groups))
    per_source: dict[str, dict[str, float | int | None]] = {}
    for src in evidence.sources:
        te = folds[src.source]
        per_source[src.source] = {
            "n_rows": src.n_rows,
            "q_without_source": _json_number(src.conformal_q),
            "coverage_held_out": src.coverage_conformal,
            "coverage_at_shipped_q": float(np.mean(resid[te] <= q)),
        }
    return ConformalCalibration(
        q=q,
        level=level,
        n_rows=corpus.n_rows,
        per_source=per_source,
        sigma_mean=float(stack.std(axis=0, ddof=1).mean()),
        coverage_gaussian=evidence.pooled_coverage_gaussian,
        coverage_conformal=evidence.pooled_coverage_conformal,
    )


def _json_number(x: float) -> float | None:
    return x if math.isfinite(x) else None
