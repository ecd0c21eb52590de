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
- a strong non-parametric baseline on the same folds, when the ``baselines``
  extra (scikit-learn) is installed: a nu-SVR in libvmaf's ``vmaf_v0.6.1``
  recipe on the six features, to show how far the ensemble is from what they
  allow (reported only: a verdict must not change with an install);
- intervals: per source, the nested coverage of the leave-one-source-out
  split-conformal interval ``mu +- q``, where ``q`` is the finite-sample
  ``ceil((n + 1) level) / n`` quantile of ``|y - mu|`` over the *other*
  sources' rows (the source is out of training and of calibration), its
  pooled value and worst source; the same for the fork's normalised interval
  ``mu +- q sigma`` (``q`` a quantile of ``|y - mu| / sigma``, the meaning of
  the fork's ``conformal_q_residual``); and the share of frames inside the
  members' band ``mu +- 1.96 sigma`` (``sigma``: their sample standard
  deviation, ddof=1), which is not a calibrated interval;
- member agreement that does not flip on one fold: the per-fold standard
  deviation of PLCC across seeds, and a bootstrap interval (over folds) of
  the ADR-0303 spread.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final

import numpy as np

from frreg.corpus import Corpus
from frreg.schema import NOMINAL_COVERAGE
from frreg.training.metrics import plcc, rmse, srocc
from frreg.training.settings import Scaler
from frreg.training.splits import LeaveOneSourceOut

#: The members' band ``mu +- Z sigma``. The upstream manifest calls it a 95 % interval;
#: nothing calibrates it, so frreg reports its measured coverage under :data:`GAUSSIAN_BAND`.
GAUSSIAN_Z: Final = 1.96
GAUSSIAN_BAND: Final = (
    f"mu ± {GAUSSIAN_Z} sigma (the members' spread): not a calibrated interval; "
    "its coverage is measured, never assumed"
)
#: What the shipped ``q`` can claim, in the words the verdict and the manifest use.
CONFORMAL_GUARANTEE: Final = (
    "q is the split-conformal quantile of the pooled leave-one-source-out residuals: it "
    "targets coverage marginal over frames, pooled over sources (the frames of a new source "
    "drawn like these sources), not per source; one source can be covered far less, as the "
    "nested per-source coverage shows. Frames of one source are not exchangeable with "
    "another's, so the nested figures, not the formula, are the evidence"
)
#: How the nested per-source coverage is computed (the verdict's and the manifest's label).
NESTED_COVERAGE: Final = (
    "per held-out source: the share of its frames inside mu ± q_without_source, q calibrated "
    "on the other sources' leave-one-source-out residuals only; the source is out of "
    "training and of calibration (the other sources' residuals come from fold models that "
    "did train on it: a second-order dependence a leave-two-sources-out run would remove)"
)
#: The fork's normalised conformal interval, the meaning of its manifest key
#: ``confidence.conformal_q_residual`` (lusoris/vmaf ``ai/scripts/train_fr_regressor_v2_ensemble.py``,
#: ``_split_conformal_q`` and ``_ensemble_stats``; consumed by
#: ``ai/scripts/eval_probabilistic_proxy.py``): a row's score is
#: ``|y - mu| / max(sigma, SIGMA_FLOOR)``, ``sigma`` the members' sample standard deviation
#: (ddof=1), and the interval is ``mu +- q sigma``.
SIGMA_FLOOR: Final = 1e-6
#: The fork's smallest ``alpha`` (``max(1e-6, 1 - nominal_coverage)``).
ALPHA_MIN: Final = 1e-6
NORMALISED_RULE: Final = (
    "mu ± conformal_q_residual · sigma: mu the members' mean and sigma their sample standard "
    "deviation (ddof=1), both of the members' scores of the row (the fork's rule)"
)
NORMALISED_SCORE: Final = (
    f"|y - mu| / max(sigma, {SIGMA_FLOOR:g}) of every corpus row's leave-one-source-out "
    "predictions (each row scored by the seeds' fold models that never saw its source)"
)
NORMALISED_GUARANTEE: Final = (
    "conformal_q_residual is the split-conformal quantile of the pooled leave-one-source-out "
    "normalised scores: mu ± q · sigma targets coverage marginal over frames, pooled over "
    "sources (the frames of a new source drawn like these sources), not per source. It holds "
    "for members whose spread behaves like the fold models' spread it was calibrated on; "
    "members_spread compares the production members' spread with it"
)
#: frreg's absolute interval ``mu +- q`` (VMAF points): its own key and method in the
#: manifest (``confidence.absolute``), never ``conformal_q_residual``.
ABSOLUTE_METHOD: Final = "frreg-conformal-absolute"
ABSOLUTE_RULE: Final = (
    "mu ± conformal_half_width, in VMAF points, the same half-width for every row; the "
    "members' spread is not used"
)
ABSOLUTE_SCORE: Final = (
    "|y - mu| of every corpus row's leave-one-source-out predictions (each row predicted by "
    "models that never saw its source)"
)
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
    #: share of the source's frames inside the members' band (:data:`GAUSSIAN_BAND`)
    coverage_gaussian: float
    #: the nested coverage: of ``mu +- conformal_q`` (:data:`NESTED_COVERAGE`)
    coverage_conformal: float
    #: ``q`` calibrated without this source (the other sources' residuals)
    conformal_q: float
    seed_plcc_std: float | None
    #: the strong baseline (:func:`svr_fold_predictions`) on this source; ``None`` when
    #: the ``baselines`` extra is missing (:attr:`EnsembleEvidence.svr_note` says so)
    svr_rmse: float | None = None
    svr_plcc: float | None = None
    #: the fork's normalised interval ``mu +- q sigma`` (:data:`NORMALISED_RULE`) with ``q``
    #: calibrated without this source, and the share of its frames inside it (nested);
    #: ``inf`` / ``nan`` when the members never disagree (no spread to scale)
    conformal_q_normalised: float = math.inf
    coverage_normalised: float = math.nan

    def to_json(self) -> dict[str, Any]:
        """Strict JSON: an infinite ``conformal_q`` (too few other rows for the nominal
        level: the interval is unbounded) is written as ``null``, as is a normalised figure
        that cannot be computed."""
        doc = asdict(self)
        for key in ("conformal_q", "conformal_q_normalised", "coverage_normalised"):
            doc[key] = _json_number(doc[key])
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
    #: The interval half-width that ships: the conformal quantile, at the nominal
    #: level, of every row's LOSO residual |y - mu| (what the export calls ``q``).
    shipped_q: float = math.inf
    #: RMSE of the ensemble mean over every held-out row at once.
    pooled_rmse: float | None = None
    #: ... of the in-fold OLS baseline and of the strong baseline (``None``: not computed).
    pooled_rmse_ols: float | None = None
    pooled_rmse_svr: float | None = None
    #: Why the strong baseline was not computed (``None``: it was).
    svr_note: str | None = None
    #: The nominal level of every interval above.
    level: float = NOMINAL_COVERAGE
    #: The per-source option (:func:`source_level_quantile` at ``level``): ``inf`` with
    #: fewer than :func:`sources_needed` sources.
    source_level_q: float = math.inf
    #: The fork's normalised ``q`` (``conformal_q_residual``: ``mu +- q sigma``) of every
    #: row's LOSO score, and the pooled nested coverage of that rule (each source by the
    #: ``q`` calibrated without it); ``inf`` / ``nan`` when the members never disagree.
    shipped_q_normalised: float = math.inf
    pooled_coverage_normalised: float = math.nan

    @property
    def nested_worst(self) -> SourceEvidence | None:
        """The source the nested coverage covers least (``None`` without sources)."""
        return min(self.sources, key=lambda s: s.coverage_conformal, default=None)

    @property
    def sources_needed(self) -> int:
        """How many sources a per-source (source-level) guarantee at ``level`` needs."""
        return sources_needed(self.level)

    def intervals_json(self) -> dict[str, Any]:
        """What the intervals claim and what the nested evidence shows, self-describing."""
        worst = self.nested_worst
        finite = [s for s in self.sources if math.isfinite(s.coverage_normalised)]
        worst_n = min(finite, key=lambda s: s.coverage_normalised, default=None)
        return {
            "level": self.level,
            "shipped_q_guarantee": CONFORMAL_GUARANTEE,
            "nested_coverage": NESTED_COVERAGE,
            "nested_coverage_pooled": self.pooled_coverage_conformal,
            "nested_coverage_worst": None
            if worst is None
            else {"source": worst.source, "coverage": worst.coverage_conformal},
            "n_sources": len(self.sources),
            "sources_needed_per_source": self.sources_needed,
            "source_level_q": _json_number(self.source_level_q),
            "coverage_gaussian": GAUSSIAN_BAND,
            "normalised": {
                "rule": NORMALISED_RULE,
                "score": NORMALISED_SCORE,
                "conformal_q_residual": _json_number(self.shipped_q_normalised),
                "nested_coverage_pooled": _json_number(self.pooled_coverage_normalised),
                "nested_coverage_worst": None
                if worst_n is None
                else {"source": worst_n.source, "coverage": worst_n.coverage_normalised},
            },
        }

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
            "shipped_q": _json_number(self.shipped_q),
            "pooled_rmse": self.pooled_rmse,
            "pooled_rmse_ols": self.pooled_rmse_ols,
            "pooled_rmse_svr": self.pooled_rmse_svr,
            "strong_baseline": {
                "method": SVR_METHOD,
                "computed": self.svr_note is None,
                "note": self.svr_note,
            },
            "intervals": self.intervals_json(),
        }


def conformal_quantile(residuals: np.ndarray, level: float = NOMINAL_COVERAGE) -> float:
    """The split-conformal half-width: the ``ceil((n + 1) level)``-th smallest residual
    (``inf`` when there are too few residuals for that level)."""
    r = np.sort(np.asarray(residuals, dtype=np.float64))
    k = math.ceil((len(r) + 1) * level)
    return float(r[k - 1]) if 1 <= k <= len(r) else math.inf


def members_sigma(stack: np.ndarray) -> np.ndarray:
    """Per row, the members' sample standard deviation (ddof=1) of ``stack`` ``(members,
    rows)``; zero with one member (the fork's ``_ensemble_stats``)."""
    stack = np.asarray(stack, dtype=np.float64)
    if stack.shape[0] < 2:
        return np.zeros(stack.shape[1], dtype=np.float64)
    out: np.ndarray = stack.std(axis=0, ddof=1)
    return out


def normalised_scores(resid: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """The fork's conformity score ``|y - mu| / max(sigma, SIGMA_FLOOR)`` of absolute
    residuals ``resid``. (The fork falls back to plain residuals, under the same key, when
    every ``sigma`` is below the floor; :func:`conformal_calibration` refuses that case
    instead.)"""
    out: np.ndarray = np.asarray(resid, dtype=np.float64) / np.maximum(
        np.asarray(sigma, dtype=np.float64), SIGMA_FLOOR
    )
    return out


def normalised_quantile(scores: np.ndarray, level: float = NOMINAL_COVERAGE) -> float:
    """The fork's conformal order statistic of ``scores``: with ``alpha = max(1e-6, 1 -
    level)``, the ``ceil((n + 1)(1 - alpha))``-th smallest. ``inf`` when that rank is past
    the largest score (too few rows for the level): the fork clips to the largest score
    there, which claims a coverage the rows cannot support, so frreg states none. At every
    level frreg uses it is :func:`conformal_quantile`'s rank."""
    s = np.sort(np.asarray(scores, dtype=np.float64))
    alpha = max(ALPHA_MIN, 1.0 - level)
    k = math.ceil((len(s) + 1) * (1.0 - alpha))
    return float(s[k - 1]) if 1 <= k <= len(s) else math.inf


def inside_normalised(y: np.ndarray, mu: np.ndarray, sigma: np.ndarray, q: float) -> np.ndarray:
    """Which rows the fork's interval ``[mu - q sigma, mu + q sigma]`` covers, computed as
    its consumer does (``eval_probabilistic_proxy.py``: both bounds inclusive)."""
    return np.logical_and(y >= mu - q * sigma, y <= mu + q * sigma)


def ols_fold_predictions(corpus: Corpus, train_idx: np.ndarray, test_idx: np.ndarray) -> np.ndarray:
    """Least squares on the scaled six features + codec block + intercept, fit on ``train_idx``."""
    scaler = Scaler.fit(corpus.features[train_idx])

    def design(idx: np.ndarray) -> np.ndarray:
        x = scaler.transform(corpus.features[idx])
        return np.hstack([x, corpus.codec[idx], np.ones((len(idx), 1))])

    coef, *_ = np.linalg.lstsq(design(train_idx), corpus.target[train_idx], rcond=None)
    out: np.ndarray = design(test_idx) @ coef
    return out


def sources_needed(level: float = NOMINAL_COVERAGE) -> int:
    """The fewest sources for which a source-level conformal quantile at ``level`` is finite.

    Treating each source as one exchangeable unit, the ``ceil((n + 1) level)``-th smallest
    of ``n`` source scores exists only when ``n >= level / (1 - level)``: 19 sources at the
    nominal level, 9 at 90 %. Counted with :func:`conformal_quantile`'s own arithmetic.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    n = 1
    while math.ceil((n + 1) * level) > n:
        n += 1
    return n


def source_level_quantile(
    resid: np.ndarray,
    groups: np.ndarray,
    coverage: float = NOMINAL_COVERAGE,
    confidence: float = NOMINAL_COVERAGE,
) -> float:
    """The per-source option: a half-width that covers ``coverage`` of a new source's frames
    with probability ``confidence`` over the draw of that source.

    Each source's score is the smallest ``q`` that covers ``coverage`` of its own rows
    (the ``ceil(coverage m)``-th smallest of its ``m`` residuals); the half-width is the
    conformal quantile of those scores at ``confidence``, so sources, not frames, are the
    exchangeable units. ``inf`` with fewer than ``sources_needed(confidence)`` sources.
    """
    resid = np.asarray(resid, dtype=np.float64)
    scores = [
        np.sort(resid[te])[math.ceil(coverage * len(te)) - 1]
        for _, te in LeaveOneSourceOut().test_indices(groups)
    ]
    return conformal_quantile(np.asarray(scores), confidence)


#: The strong baseline is libvmaf's own recipe for these six features: ``vmaf_v0.6.1``'s
#: ``param_dict`` (Netflix/vmaf ``model/vmaf_v0.6.1.json``): a nu-SVR with an RBF kernel,
#: nu 0.9, C 4.0, gamma 0.04, ``norm_type: clip_0to1`` (features and score mapped
#: linearly to [0, 1] by their minimum and maximum over the training rows) and
#: ``score_clip: [0, 100]``. Its ``score_transform`` is off unless libvmaf is asked for
#: it, so it is not applied. vmaf trains on a few thousand rows; so does this, on a fixed
#: subsample of each fold's training rows (the same rows on every run).
SVR_PARAMS: Final = {"kernel": "rbf", "nu": 0.9, "C": 4.0, "gamma": 0.04}
SVR_MAX_ROWS: Final = 2500
SVR_SCORE_CLIP: Final = (0.0, 100.0)
SVR_SEED: Final = 20260303
SVR_METHOD: Final = (
    "nu-SVR in libvmaf vmaf_v0.6.1's recipe (RBF, nu 0.9, C 4.0, gamma 0.04, features and "
    f"score scaled to [0, 1] on the fold's training rows, scores clipped to [0, 100]) on the "
    f"six features, fit on a fixed-seed subsample of at most {SVR_MAX_ROWS} of each fold's "
    "training rows; reported beside the ensemble, never judged"
)
#: The extra that brings the strong baseline, and the note when it is missing.
BASELINES_EXTRA: Final = "baselines"
SVR_MISSING: Final = (
    f"SVR baseline not computed: it needs the {BASELINES_EXTRA} extra "
    f"(pip install 'frreg[{BASELINES_EXTRA}]')"
)


def svr_fold_predictions(
    features: np.ndarray, target: np.ndarray, train_idx: np.ndarray, test_idx: np.ndarray
) -> np.ndarray:
    """The strong baseline (:data:`SVR_METHOD`) fit on ``train_idx``, predicting ``test_idx``.

    Raises ``ImportError`` without scikit-learn (the ``baselines`` extra).
    """
    from sklearn.svm import NuSVR

    fit_idx = np.asarray(train_idx)
    if len(fit_idx) > SVR_MAX_ROWS:
        rng = np.random.default_rng(SVR_SEED)
        fit_idx = np.sort(rng.choice(fit_idx, size=SVR_MAX_ROWS, replace=False))
    x, y = features[fit_idx], target[fit_idx]
    # vmaf's linear rescale: slope * v + intercept, slope 1 / (max - min) (1 for a
    # constant column), intercept -min * slope; the score is mapped back by its inverse.
    x_slope, x_icpt = _rescale(x)
    y_slope, y_icpt = _rescale(y.reshape(-1, 1))
    model = NuSVR(**SVR_PARAMS).fit(x * x_slope + x_icpt, y * y_slope + y_icpt[0])
    scaled = model.predict(features[test_idx] * x_slope + x_icpt)
    out: np.ndarray = np.clip((scaled - y_icpt[0]) / y_slope[0], *SVR_SCORE_CLIP)
    return out


def _rescale(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column: the slope and intercept that map the column's [min, max] onto [0, 1]."""
    lo = x.min(axis=0)
    span = x.max(axis=0) - lo
    slope = 1.0 / np.where(span > 0, span, 1.0)
    return slope, -lo * slope


#: Held-out SVR predictions by a digest of the inputs and the recipe: a gate session
#: computes the evidence twice (its items, then the verdict) on one corpus; a few entries
#: are enough.
_SVR_CACHE: dict[str, np.ndarray] = {}
_SVR_CACHE_SIZE: Final = 4


def svr_loso_predictions(corpus: Corpus) -> np.ndarray | None:
    """Every row's strong-baseline prediction from the fold that held its source out, or
    ``None`` when the ``baselines`` extra is missing."""
    try:
        import sklearn.svm  # noqa: F401  (the extra; imported for real in the fold fit)
    except ImportError:
        return None
    digest = hashlib.sha256(repr((SVR_PARAMS, SVR_MAX_ROWS, SVR_SEED)).encode())
    for arr in (corpus.features, corpus.target):
        digest.update(np.ascontiguousarray(arr, dtype=np.float64).tobytes())
    digest.update("\0".join(map(str, corpus.groups)).encode("utf-8", "surrogatepass"))
    key = digest.hexdigest()
    if key not in _SVR_CACHE:
        out = np.empty(corpus.n_rows, dtype=np.float64)
        for train, test in LeaveOneSourceOut().split(corpus.groups):
            out[test] = svr_fold_predictions(corpus.features, corpus.target, train, test)
        out.setflags(write=False)
        while len(_SVR_CACHE) >= _SVR_CACHE_SIZE:
            _SVR_CACHE.pop(next(iter(_SVR_CACHE)))
        _SVR_CACHE[key] = out
    return _SVR_CACHE[key]


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


def ensemble_evidence(
    corpus: Corpus,
    predictions: Mapping[int, np.ndarray],
    *,
    strong_baseline: bool = True,
    level: float = NOMINAL_COVERAGE,
) -> EnsembleEvidence:
    """Ensemble evidence from each seed's held-out predictions (one per corpus row).

    ``level`` is the intervals' nominal coverage. ``strong_baseline=False``
    skips the SVR (the export's calibration needs only the intervals). Raises ``ValueError`` when fewer than two seeds'
    predictions are given or a prediction is not finite: such evidence cannot
    be computed, and a caller must not treat it as passing.
    """
    seeds = sorted(predictions)
    if len(seeds) < 2:
        raise ValueError(f"ensemble evidence needs at least two seeds, got {len(seeds)}")
    stack = np.vstack([np.asarray(predictions[s], dtype=np.float64) for s in seeds])
    if stack.shape[1] != corpus.n_rows or not np.isfinite(stack).all():
        raise ValueError("every seed needs a finite held-out prediction for every corpus row")
    y = corpus.target
    mu = stack.mean(axis=0)
    sigma = members_sigma(stack)
    resid = np.abs(y - mu)
    inside_gaussian = resid <= GAUSSIAN_Z * sigma
    # The fork's normalised interval needs a spread to scale: none when the members agree
    # everywhere (then its figures are not computed, never passed off as covering).
    has_spread = bool(np.any(sigma >= SIGMA_FLOOR))
    scores = normalised_scores(resid, sigma)
    inside_normalised_rows = np.zeros(corpus.n_rows, dtype=bool)

    folds = LeaveOneSourceOut().test_indices(corpus.groups)
    fold_plcc = np.array(
        [[_nan(plcc(y[te], stack[i, te])) for _, te in folds] for i in range(len(seeds))]
    )
    inside_conformal = np.zeros(corpus.n_rows, dtype=bool)
    ols = np.empty(corpus.n_rows, dtype=np.float64)
    svr, svr_note = (
        _strong_baseline(corpus) if strong_baseline else (None, "SVR baseline not requested")
    )
    out = []
    for k, (src, te) in enumerate(folds):
        others = np.ones(corpus.n_rows, dtype=bool)
        others[te] = False
        q = conformal_quantile(resid[others], level)
        inside_conformal[te] = resid[te] <= q
        q_norm = normalised_quantile(scores[others], level) if has_spread else math.inf
        # as for q above, an infinite q (too few other rows) is an unbounded interval
        inside_normalised_rows[te] = (
            inside_normalised(y[te], mu[te], sigma[te], q_norm) if math.isfinite(q_norm) else True
        )
        train = np.flatnonzero(others)
        base = ols_fold_predictions(corpus, train, te)
        ols[te] = base
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
                svr_rmse=None if svr is None else rmse(y[te], svr[te]),
                svr_plcc=None if svr is None else plcc(y[te], svr[te]),
                conformal_q_normalised=q_norm,
                coverage_normalised=float(inside_normalised_rows[te].mean())
                if has_spread
                else math.nan,
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
        shipped_q=conformal_quantile(resid, level),
        pooled_rmse=rmse(y, mu),
        pooled_rmse_ols=rmse(y, ols),
        pooled_rmse_svr=None if svr is None else rmse(y, svr),
        svr_note=svr_note,
        level=level,
        source_level_q=source_level_quantile(resid, corpus.groups, level, level),
        shipped_q_normalised=normalised_quantile(scores, level) if has_spread else math.inf,
        pooled_coverage_normalised=float(inside_normalised_rows.mean()) if has_spread else math.nan,
    )


def _strong_baseline(corpus: Corpus) -> tuple[np.ndarray | None, str | None]:
    """The SVR's held-out predictions, or why there are none. It is reported, never
    judged, so nothing it raises may turn into evidence that cannot be computed."""
    try:
        pred = svr_loso_predictions(corpus)
    except (ValueError, ArithmeticError, MemoryError) as exc:
        return None, f"SVR baseline not computed: {type(exc).__name__}: {exc}"
    return (None, SVR_MISSING) if pred is None else (pred, None)


def _nan(x: float | None) -> float:
    return math.nan if x is None else x


@dataclass(frozen=True)
class IntervalCalibration:
    """One conformal interval calibrated on the LOSO evidence: the shipped ``q`` and what it
    covers, in-sample and nested, pooled and per held-out source."""

    q: float
    #: the share of every LOSO row inside the interval at the shipped ``q`` (in-sample: ``q``
    #: was calibrated on these rows; at least the nominal level when there are no ties)
    coverage_in_sample: float
    #: per source: rows, the q calibrated without it, the coverage that q gives it (the
    #: nested figure), and the coverage the shipped q gives it (in-sample)
    per_source: Mapping[str, Mapping[str, float | int | None]]
    coverage_nested: float  # pooled nested coverage (each source by its own q)
    #: the source the nested coverage covers least, and that coverage
    nested_worst: tuple[str, float] | None
    #: the per-source option: the source-level q at the level (``inf``: too few sources)
    source_level_q: float

    def to_json(self, level: float, key: str) -> dict[str, Any]:
        """Its numbers, ``q`` under ``key``."""
        worst = self.nested_worst
        return {
            key: _json_number(self.q),
            "coverage_in_sample": self.coverage_in_sample,
            "per_source": {k: dict(v) for k, v in self.per_source.items()},
            "per_source_fields": {
                "q_without_source": "q calibrated on the other sources' scores only",
                "coverage_held_out": "nested (the honest per-source figure): " + NESTED_COVERAGE,
                "coverage_at_shipped_q": "in-sample, not a held-out figure: the shipped q was "
                "calibrated on this source's scores too",
            },
            "pooled_coverage_loso_conformal": self.coverage_nested,
            "nested_coverage": {
                "pooled": self.coverage_nested,
                "worst": None if worst is None else {"source": worst[0], "coverage": worst[1]},
                "n_sources": len(self.per_source),
                "sources_needed_per_source": sources_needed(level),
                "source_level_q": _json_number(self.source_level_q),
                "source_level_q_means": f"covers {level} of a new source's frames with "
                f"probability {level} over sources; null with fewer than "
                f"{sources_needed(level)} sources. Not shipped: the interval that ships "
                f"is {key}",
            },
        }


@dataclass(frozen=True)
class ConformalCalibration:
    """The two shipped intervals, calibrated on the LOSO evidence (each row's predictions by
    the seeds' fold models that never saw its source, at ``level``):

    - ``normalised``: the fork's ``mu +- q sigma`` (:data:`NORMALISED_RULE`), ``q`` the
      conformal quantile of ``|y - mu| / max(sigma, 1e-6)``: the manifest's
      ``conformal_q_residual``, the fork's key with the fork's meaning;
    - ``absolute``: frreg's ``mu +- q`` (:data:`ABSOLUTE_RULE`), ``q`` the conformal quantile
      of ``|y - mu|`` in VMAF points: the manifest's ``absolute.conformal_half_width`` under
      its own method, :data:`ABSOLUTE_METHOD`.

    The members' band ``mu +- 1.96 sigma`` is recorded beside them, not used for them.
    """

    level: float
    n_rows: int
    normalised: IntervalCalibration
    absolute: IntervalCalibration
    sigma_mean: float  # the members' mean standard deviation (ddof=1) on the LOSO rows
    coverage_gaussian: float  # of mu +- GAUSSIAN_Z sigma, pooled (not a calibrated interval)

    @property
    def q(self) -> float:
        """The absolute half-width (VMAF points)."""
        return self.absolute.q

    @property
    def q_normalised(self) -> float:
        """The fork's ``conformal_q_residual`` (a multiple of the members' sigma)."""
        return self.normalised.q

    def to_json(self) -> dict[str, Any]:
        """The manifest's confidence block (less the method and scaling fields the
        manifest adds): the fork's normalised interval at the top level, where the fork's
        consumers read ``conformal_q_residual``, and frreg's absolute one under
        ``absolute``."""
        calibration = (
            "leave-one-source-out predictions of every corpus row (the seeds' fold models)"
        )
        return {
            **self.normalised.to_json(self.level, "conformal_q_residual"),
            "nominal_coverage": self.level,
            "rule": NORMALISED_RULE,
            "score": NORMALISED_SCORE,
            "n_calibration_rows": self.n_rows,
            "calibration": calibration,
            "guarantee": NORMALISED_GUARANTEE,
            "absolute": {
                "method": ABSOLUTE_METHOD,
                **self.absolute.to_json(self.level, "conformal_half_width"),
                "rule": ABSOLUTE_RULE,
                "score": ABSOLUTE_SCORE,
                "n_calibration_rows": self.n_rows,
                "calibration": calibration,
                "guarantee": CONFORMAL_GUARANTEE,
            },
            "members_spread": {
                "sigma_mean": self.sigma_mean,
                "gaussian_z": GAUSSIAN_Z,
                "pooled_coverage_gaussian": self.coverage_gaussian,
                "label": GAUSSIAN_BAND,
            },
        }


def _interval(
    scores: np.ndarray,
    inside: Callable[[np.ndarray, float], np.ndarray],
    groups: np.ndarray,
    level: float,
    quantile: Callable[[np.ndarray, float], float],
) -> IntervalCalibration:
    """Calibrate one interval: ``scores`` per row, ``inside(rows, q)`` which of ``rows`` the
    interval at ``q`` covers, ``quantile(scores, level)`` the conformal order statistic."""

    def covers(rows: np.ndarray, q: float) -> np.ndarray:
        # an infinite q (too few rows for the level) is an unbounded interval, as in
        # ensemble_evidence; it never ships (its q is null, which --check refuses)
        return inside(rows, q) if math.isfinite(q) else np.ones(len(rows), dtype=bool)

    q = quantile(scores, level)
    per_source: dict[str, dict[str, float | int | None]] = {}
    nested: dict[str, float] = {}
    covered = np.zeros(len(scores), dtype=bool)
    for src, te in LeaveOneSourceOut().test_indices(groups):
        others = np.ones(len(scores), dtype=bool)
        others[te] = False
        q_without = quantile(scores[others], level)
        covered[te] = covers(te, q_without)
        nested[str(src)] = float(covered[te].mean())
        per_source[str(src)] = {
            "n_rows": len(te),
            "q_without_source": _json_number(q_without),
            "coverage_held_out": nested[str(src)],
            "coverage_at_shipped_q": float(covers(te, q).mean()),
        }
    worst = min(nested.items(), key=lambda kv: kv[1], default=None)
    return IntervalCalibration(
        q=q,
        coverage_in_sample=float(covers(np.arange(len(scores)), q).mean()),
        per_source=per_source,
        coverage_nested=float(covered.mean()),
        nested_worst=worst,
        source_level_q=source_level_quantile(scores, groups, level, level),
    )


def conformal_calibration(
    corpus: Corpus, predictions: Mapping[int, np.ndarray], level: float = NOMINAL_COVERAGE
) -> ConformalCalibration:
    """Calibrate both shipped intervals from each seed's held-out (LOSO) predictions.

    Raises ``ValueError`` when the predictions cannot be evidence (fewer than two seeds, a
    non-finite prediction) or when the members agree to within ``SIGMA_FLOOR`` on every
    row: ``mu +- q sigma`` then has no spread to scale (the fork stores a plain residual
    quantile under ``conformal_q_residual`` in that case, a different meaning under the
    same key; frreg refuses instead).
    """
    # validates the predictions; the SVR is the report's, not the intervals'
    evidence = ensemble_evidence(corpus, predictions, strong_baseline=False, level=level)
    stack = np.vstack([np.asarray(predictions[s], dtype=np.float64) for s in sorted(predictions)])
    y = corpus.target
    mu = stack.mean(axis=0)
    sigma = members_sigma(stack)
    if not np.any(sigma >= SIGMA_FLOOR):
        raise ValueError(
            f"the members agree to within {SIGMA_FLOOR:g} on every row: the fork's interval "
            "mu ± q·sigma has no spread to scale"
        )
    resid = np.abs(y - mu)
    return ConformalCalibration(
        level=level,
        n_rows=corpus.n_rows,
        normalised=_interval(
            normalised_scores(resid, sigma),
            lambda rows, q: inside_normalised(y[rows], mu[rows], sigma[rows], q),
            corpus.groups,
            level,
            normalised_quantile,
        ),
        absolute=_interval(
            resid, lambda rows, q: resid[rows] <= q, corpus.groups, level, conformal_quantile
        ),
        sigma_mean=float(sigma.mean()),
        coverage_gaussian=evidence.pooled_coverage_gaussian,
    )


def _json_number(x: float) -> float | None:
    return x if math.isfinite(x) else None
