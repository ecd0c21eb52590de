"""The gate's options: ``frreg-gate``'s and ``frreg-validate``'s, the thresholds also
offered by the plugin.

Declared once here (see :mod:`frreg.options` for how); thresholds are resolved
once in :func:`frreg.settings.thresholds`. Light: no numpy, as ``pytest
--help`` reads it.
"""

from __future__ import annotations

from frreg.options import (
    Option,
    boolean,
    finite_float,
    nonnegative_float,
    nonnegative_int,
    plcc_threshold,
    seed_list,
    spread_threshold,
    unit_interval,
)
from frreg.schema import (
    DEFAULT_AUDIT_JOBS,
    ENSEMBLE_SEEDS,
    EVIDENCE_BASELINE_DROP_MAX,
    EVIDENCE_BIAS_MAX,
    EVIDENCE_COVERAGE_MIN,
    EVIDENCE_MARGIN_MIN,
    MEAN_PLCC_MIN,
    PER_SEED_PLCC_MIN,
    PLCC_SPREAD_MAX,
)

GATE_SEEDS = Option(
    "seeds", "seeds", "seeds the ensemble must contain", ENSEMBLE_SEEDS, seed_list, "N[,N...]"
)
MEAN_PLCC = Option(
    "mean-plcc-threshold",
    "mean_plcc_threshold",
    "minimum mean over seeds of the per-seed mean PLCC, in [0, 1]",
    MEAN_PLCC_MIN,
    plcc_threshold,
    "X",
)
SPREAD = Option(
    "plcc-spread-max",
    "plcc_spread_max",
    "maximum max-min spread of per-seed mean PLCC, in [0, 1]",
    PLCC_SPREAD_MAX,
    spread_threshold,
    "X",
)
PER_SEED = Option(
    "per-seed-min",
    "per_seed_min",
    "minimum mean PLCC of every seed, in [0, 1]",
    PER_SEED_PLCC_MIN,
    plcc_threshold,
    "X",
)
FOLD_MIN = Option(
    "fold-min",
    "fold_min",
    "also fail any fold whose held-out PLCC is below this, in [0, 1]",
    None,
    plcc_threshold,
    "X",
    shown_default="off",
)

STRICT = Option(
    "strict",
    "strict",
    "enforce frreg's ensemble evidence (OLS margin, bias, conformal coverage, pooled PLCC, "
    "baseline drop): a failed evidence check HOLDs instead of warning",
    False,
    boolean,
    action="store_true",
)
MARGIN_MIN = Option(
    "ols-margin-min",
    "margin_min",
    "evidence: on every fold the ensemble's PLCC minus the OLS baseline's is at least this",
    EVIDENCE_MARGIN_MIN,
    finite_float,
    "X",
)
BIAS_MAX = Option(
    "bias-max",
    "bias_max",
    "evidence: on every held-out source |mean(y - ensemble)| is at most this many VMAF points",
    EVIDENCE_BIAS_MAX,
    nonnegative_float,
    "VMAF",
)
COVERAGE_MIN = Option(
    "coverage-min",
    "coverage_min",
    "evidence: on every held-out source the conformal interval covers at least this share",
    EVIDENCE_COVERAGE_MIN,
    unit_interval,
    "X",
)
BASELINE_DROP_MAX = Option(
    "baseline-drop-max",
    "baseline_drop_max",
    "evidence: with --baseline, no source's ensemble PLCC drops by more than this",
    EVIDENCE_BASELINE_DROP_MAX,
    unit_interval,
    "X",
)
BASELINE = Option(
    "baseline",
    "baseline",
    "a previous verdict (PROMOTE.json) to compare each source's ensemble PLCC with",
    None,
    metavar="VERDICT",
    shown_default="none",
)

#: Gate thresholds shared by ``frreg-gate``, ``frreg-validate`` and the plugin:
#: the ADR-0303 gate's, then frreg's evidence (enforced with --strict).
THRESHOLD_OPTIONS = (
    MEAN_PLCC,
    SPREAD,
    PER_SEED,
    FOLD_MIN,
    STRICT,
    MARGIN_MIN,
    BIAS_MAX,
    COVERAGE_MIN,
    BASELINE,
    BASELINE_DROP_MAX,
)

AUDIT = Option(
    "audit",
    "audit",
    "retrain this many randomly chosen (seed, fold) jobs with the recorded recipe and "
    "require the recorded predictions (0: no audit)",
    DEFAULT_AUDIT_JOBS,
    nonnegative_int,
    "K",
)
ACCEPT_UNVERIFIED = Option(
    "accept-unverified",
    "accept_unverified",
    "judge seed files whose numbers cannot be recomputed (the fork's artifacts: no "
    "predictions, no corpus digest) on what they say; such a verdict says so in its "
    "first field and frreg-export refuses it",
    False,
    action="store_true",
)
GATE_CORPUS_CHECK = Option(
    "corpus",
    "corpus",
    "corpus the seeds were trained on; its sha256 must match every seed, and every "
    "number is recomputed from it",
    None,
    metavar="PATH",
    shown_default="the path the seed artifacts recorded",
)
