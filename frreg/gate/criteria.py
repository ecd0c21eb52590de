"""Every gate criterion, declared once: its name, threshold, option, profile and check.

A :class:`Criterion` is everything frreg knows about one part of the verdict:
the check's name and plugin item id, its threshold (default, unit, the
option's flag, dest and help, and so its ini key), whether it is judged per
held-out source or overall, which profile enforces it, whether changing its
threshold deviates from ADR-0303, and the function that computes it. From
:data:`CRITERIA` come :class:`Thresholds`, the threshold options of
``frreg-gate``, ``frreg-validate`` and the plugin (:mod:`frreg.gate.options`),
the plugin's ``ensemble[...]`` and ``evidence[...]`` items, the strict help,
the verdict's list of deviations, the docs' table (:func:`markdown_table`,
checked by a test) and the tests' expectations. Adding a check is one record
here, its compute function beside it, and its test.

This module is light (no numpy, no torch): the plugin's ``--help`` reads it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Literal

from frreg.options import (
    finite_float,
    nonnegative_float,
    plcc_threshold,
    positive_float,
    spread_threshold,
    unit_interval,
)
from frreg.schema import (
    DATA_NEAR_SD,
    DATA_ORACLE_RMSE_MAX,
    DATA_SHARED_ROWS_MIN,
    DATA_SOURCE_FRAMES_MIN,
    DATA_SOURCE_ROWS_MIN,
    DATA_TARGET_MAX_MIN,
    ENCODER_VOCAB_VERSION,
    ENSEMBLE_SEEDS,
    ENSEMBLE_SIZE,
    EVIDENCE_BASELINE_DROP_MAX,
    EVIDENCE_BIAS_MAX,
    EVIDENCE_COVERAGE_MIN,
    EVIDENCE_INTERVAL_Q_MAX,
    EVIDENCE_MARGIN_MIN,
    EVIDENCE_RMSE_RATIO_MAX,
    EVIDENCE_STABLE_SPREAD_MAX,
    MEAN_PLCC_MIN,
    PER_SEED_PLCC_MIN,
    PLCC_SPREAD_MAX,
    TARGET,
)

if TYPE_CHECKING:
    from frreg.corpus.validity import DataValidity
    from frreg.gate.checks import SeedArtifact
    from frreg.gate.ensemble import EnsembleEvidence, SourceEvidence

# --------------------------------------------------------------------------
# Profiles, stages, scopes
# --------------------------------------------------------------------------

#: ADR-0303's gate, the default decision.
PROFILE_ADR: Final = "adr-0303"
#: frreg's profile (``--strict``), the one a CI should run: chosen by the gate-power
#: benchmark (docs/evidence.md) to HOLD harmful faults and PROMOTE clean ensembles.
PROFILE_STRICT: Final = "strict"
#: Every profile; each criterion names those under which it decides (:attr:`Criterion.decides_under`),
#: and every criterion is computed and reported under every profile.
PROFILES: Final = (PROFILE_ADR, PROFILE_STRICT)
#: Decides under every profile.
ALL_PROFILES: Final = frozenset(PROFILES)
#: Reported under every profile, decides under none.
REPORTED_ONLY: Final = frozenset[str]()

Stage = Literal["data", "ensemble", "evidence"]
#: Judged on the corpus (:func:`frreg.gate.checks.data_checks`): whether its LOSO evidence
#: can be valid at all; plugin items ``frreg-gate::data[<item>]``, after ``corpus``.
STAGE_DATA: Final = "data"
#: Judged on the seed artifacts (:func:`frreg.gate.checks.evaluate`); plugin items
#: ``frreg-gate::ensemble[<item>]``.
STAGE_ENSEMBLE: Final = "ensemble"
#: Judged on the ensemble evidence (:func:`frreg.gate.checks.evidence_checks`);
#: plugin items ``frreg-gate::evidence[<item>]`` (``<item>-<source>`` per source).
STAGE_EVIDENCE: Final = "evidence"

Scope = Literal["overall", "per-source", "per-fold"]


@dataclass(frozen=True)
class Check:
    """One part of the verdict. ``message`` is the line a reviewer reads.

    A check that is not ``enforced`` (frreg's extra evidence outside strict
    mode) is always reported, and a failure shows as WARN, but it does not
    change the verdict.
    """

    name: str
    passed: bool
    message: str
    observed: float | str | None = None
    threshold: float | str | None = None
    enforced: bool = True

    @property
    def status(self) -> str:
        return "PASS" if self.passed else ("FAIL" if self.enforced else "WARN")

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status}


@dataclass(frozen=True)
class GateInputs:
    """What a criterion's compute function judges.

    ``seed_means`` are the recomputed per-seed mean PLCCs of the expected
    ``seeds`` (``None`` where undefined or unusable); ``artifacts`` the usable
    seed artifacts; ``evidence`` the ensemble evidence (evidence stage only)
    and ``baseline`` a previous verdict's per-source evidence.
    """

    seeds: tuple[int, ...] = ()
    seed_means: Mapping[int, float | None] = field(default_factory=dict)
    artifacts: Sequence[SeedArtifact] = ()
    corpus_sha256: str | None = None
    evidence: EnsembleEvidence | None = None
    baseline: Mapping[str, Mapping[str, Any]] | None = None
    #: What :func:`frreg.corpus.validity.assess` found in the corpus (data stage only).
    data: DataValidity | None = None


Compute = Callable[["Criterion", GateInputs, "Thresholds"], list[Check]]


@dataclass(frozen=True, kw_only=True)
class Criterion:
    """One gate criterion (see the module docstring)."""

    #: The check's name in the verdict (per source: ``<name>-<source>``).
    name: str
    #: Its plugin item id under its stage (per source: ``<item>-<source>``); ``None``
    #: when other items judge it (a fold floor is judged by the fold items).
    item: str | None
    stage: Stage
    scope: Scope
    #: The profiles under which a failure HOLDs; under the others it is a WARN.
    decides_under: frozenset[str]
    #: When it passes, for the docs (one line).
    passes_when: str
    compute: Compute
    #: The threshold's key in :class:`Thresholds` and in the verdict's
    #: ``gate.thresholds`` (``None``: no threshold, or a fixed one: :attr:`default`).
    key: str | None = None
    default: float | None = None
    unit: str = ""
    #: The option: ``--<option>`` for the CLIs, ``--frreg-<option>`` for the plugin,
    #: ini key ``frreg_<dest>``; ``None`` when it has no option.
    option: str | None = None
    dest: str | None = None
    parse: Callable[[str], Any] | None = None
    metavar: str = "X"
    help: str = ""
    #: How ``--help`` shows the default when it is not a number (``None``: off).
    shown_default: str | None = None
    #: Whether a threshold other than :attr:`default` deviates from ADR-0303.
    deviation: bool = False
    #: The most permissive threshold its option accepts (a floor at the bottom of its
    #: range, a ceiling at the top): how a test or a brief demo run sets it aside.
    #: For an optional criterion (default ``None``: off) it turns the check on.
    most_permissive: float | None = None
    #: An input it needs (``"baseline"``: a previous verdict); no item without it.
    requires: str | None = None

    def enforced(self, thresholds: Thresholds) -> bool:
        """Whether a failure of this criterion HOLDs under ``thresholds``' profile."""
        return thresholds.profile in self.decides_under

    def check_name(self, source: str | None = None) -> str:
        return self.name + (f"-{source}" if source is not None else "")

    def item_id(self, source: str | None = None) -> str:
        assert self.item is not None, f"{self.name} has no item of its own"
        return f"{self.stage}[{self.item}" + (f"-{source}" if source is not None else "") + "]"


# --------------------------------------------------------------------------
# Thresholds
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Thresholds:
    """What one gate run applies: a threshold per criterion that has one (``values``,
    keyed by :attr:`Criterion.key`; missing keys take the criterion's default), the
    seeds the ensemble must contain, and the profile (``strict``).

    Immutable and hashable. Every value is a finite number; only an optional
    criterion (default ``None``: off) may be ``None``.
    """

    seeds: tuple[int, ...] = ENSEMBLE_SEEDS
    strict: bool = False
    values: Mapping[str, float | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        known = [key for key, _ in threshold_criteria()]
        unknown = sorted(set(self.values) - set(known))
        if unknown:
            raise ValueError(f"unknown threshold(s) {', '.join(unknown)}; expected {known}")
        resolved: dict[str, float | None] = {}
        for key, c in threshold_criteria():
            value = self.values.get(key, c.default)
            if value is None and c.default is not None:
                raise ValueError(f"{key} cannot be null: {c.name} has no 'off'")
            if value is not None and (not _is_number(value) or not math.isfinite(value)):
                raise ValueError(f"{key} is {value!r}, not a finite number")
            resolved[key] = value
        object.__setattr__(self, "values", MappingProxyType(resolved))
        object.__setattr__(self, "seeds", tuple(self.seeds))

    @property
    def profile(self) -> str:
        """The profile that decides: :data:`PROFILE_STRICT` with ``--strict``, else ADR-0303's."""
        return PROFILE_STRICT if self.strict else PROFILE_ADR

    def __hash__(self) -> int:
        return hash((self.seeds, self.strict, tuple(self.values.items())))

    def __getitem__(self, criterion: Criterion) -> float:
        """The threshold applied for ``criterion`` (see :meth:`optional` for one that
        can be off)."""
        value = self.optional(criterion)
        if value is None:
            raise KeyError(f"{criterion.name} is off; read it with Thresholds.optional")
        return value

    def optional(self, criterion: Criterion) -> float | None:
        """The threshold applied for ``criterion``, ``None`` when it is off."""
        assert criterion.key is not None, f"{criterion.name} has no threshold"
        return self.values[criterion.key]

    def to_json(self) -> dict[str, Any]:
        """The verdict's ``gate.thresholds``: every threshold, the seeds, strict."""
        return {**self.values, "seeds": list(self.seeds), "strict": self.strict}

    @classmethod
    def json_keys(cls) -> tuple[str, ...]:
        return (*(key for key, _ in threshold_criteria()), "seeds", "strict")

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Thresholds:
        """Inverse of :meth:`to_json`; raises ``ValueError`` on anything else."""
        if set(doc) != set(cls.json_keys()):
            raise ValueError(f"expected the fields {sorted(cls.json_keys())}")
        seeds = doc["seeds"]
        if not isinstance(seeds, list) or not all(
            isinstance(s, int) and not isinstance(s, bool) for s in seeds
        ):
            raise ValueError("seeds must be a list of integers")
        if not isinstance(doc["strict"], bool):
            raise ValueError("strict must be true or false")
        return cls(
            seeds=tuple(seeds),
            strict=doc["strict"],
            values={key: doc[key] for key, _ in threshold_criteria()},
        )

    @classmethod
    def from_options(cls, values: Mapping[str, Any]) -> Thresholds:
        """From parsed options keyed by dest (``seeds``, ``strict`` and every
        threshold option's :attr:`Criterion.dest`)."""
        return cls(
            seeds=tuple(values["seeds"]),
            strict=bool(values["strict"]),
            values={key: values[c.dest or key] for key, c in threshold_criteria()},
        )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# --------------------------------------------------------------------------
# Compute functions, one per criterion
# --------------------------------------------------------------------------

_NEGATION = {">=": "<", "<=": ">"}


def compare(
    name: str,
    observed: float,
    op: str,
    threshold: float,
    fmt: str = ".4f",
    *,
    enforced: bool = True,
) -> Check:
    """A threshold check whose message reads like a verdict, observed value then threshold."""
    passed = observed >= threshold if op == ">=" else observed <= threshold
    shown = format(observed, fmt)
    return Check(
        name,
        passed,
        f"{name} {shown} {op if passed else _NEGATION[op]} {threshold}",
        observed,
        threshold,
        enforced,
    )


def fmt_metric(x: float | None) -> str:
    return "null" if x is None else f"{x:.4f}"


def finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def _defined_means(c: Criterion, inputs: GateInputs, th: Thresholds) -> list[float] | Check:
    """The expected seeds' means, or the failed check saying which are undefined."""
    means = [inputs.seed_means.get(s) for s in inputs.seeds]
    defined = [m for m in means if m is not None and math.isfinite(m)]
    if inputs.seeds and len(defined) == len(means):
        return defined
    missing = ", ".join(str(s) for s, m in zip(inputs.seeds, means, strict=True) if not finite(m))
    message = f"{c.name} undefined: no usable mean PLCC for seed(s) {missing or '(none)'}"
    return Check(c.name, False, message, None, th[c], c.enforced(th))


def _ensemble_size(c: Criterion, inputs: GateInputs, th: Thresholds) -> list[Check]:
    assert c.default is not None
    return [
        compare(c.name, len(inputs.seeds), ">=", int(c.default), fmt="d", enforced=c.enforced(th))
    ]


def _seed_mean_statistic(statistic: Callable[[list[float]], float], op: str) -> Compute:
    """A criterion over the per-seed mean PLCCs (their mean, spread or minimum)."""

    def compute(c: Criterion, inputs: GateInputs, th: Thresholds) -> list[Check]:
        means = _defined_means(c, inputs, th)
        if isinstance(means, Check):
            return [means]
        return [compare(c.name, statistic(means), op, th[c], enforced=c.enforced(th))]

    return compute


def _fold_min(c: Criterion, inputs: GateInputs, th: Thresholds) -> list[Check]:
    floor = th.optional(c)
    if floor is None:
        return []  # off: no check
    # Undefined folds already fail their seed's checks; this one is about the floor.
    defined = [
        (a.file_seed, f.held_out, f.plcc)
        for a in inputs.artifacts
        for f in a.record.folds
        if f.plcc is not None and math.isfinite(f.plcc)
    ]
    below = [d for d in defined if d[2] < floor]
    worst = min(p for _, _, p in defined) if defined else None
    if below:
        listed = ", ".join(f"seed {s} {src} {p:.4f}" for s, src, p in below[:5])
        more = f" and {len(below) - 5} more" if len(below) > 5 else ""
        message = f"{c.name}: {len(below)} fold(s) < {floor}: {listed}{more}"
        return [Check(c.name, False, message, worst, floor, c.enforced(th))]
    message = f"{c.name} {fmt_metric(worst)} >= {floor}"
    return [Check(c.name, True, message, worst, floor, c.enforced(th))]


#: Fields that must agree across every seed of one ensemble.
PROVENANCE_FIELDS: Final = (
    "corpus_sha256",
    "sources",
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "num_codecs",
    "sweep",
    "encoder_vocab_version",
    "schema_version",
)
#: How each seed was run: every one must have been trained the same way.
RUN_FIELDS: Final = ("engine", "device", "versions", "config")


def _provenance_view(art: SeedArtifact) -> dict[str, Any]:
    """The fields that must agree across seeds (``config`` without its seed)."""
    doc = art.record.to_json()
    doc["config"] = {k: v for k, v in art.record.config.items() if k != "seed"}
    return doc


def _provenance(c: Criterion, inputs: GateInputs, th: Thresholds) -> list[Check]:
    arts = inputs.artifacts
    problems = []
    docs = [(a.file_seed, _provenance_view(a)) for a in arts]
    fork = any(a.record.from_fork for a in arts)
    # Without a corpus digest (the fork's artifacts) the recorded path is all there is.
    for key in (*PROVENANCE_FIELDS, *RUN_FIELDS, *(("corpus",) if fork else ())):
        values = {json.dumps(doc.get(key), sort_keys=True) for _, doc in docs}
        if len(values) > 1:
            per = ", ".join(f"seed {s}={doc.get(key)!r}" for s, doc in docs)
            problems.append(f"seeds disagree on {key}: {per}")
    for a in arts:
        # The fork's minimal seed files record no vocabulary: nothing to compare.
        if a.record.recipe_recorded and a.record.encoder_vocab_version != ENCODER_VOCAB_VERSION:
            problems.append(
                f"seed {a.file_seed} used encoder vocabulary v{a.record.encoder_vocab_version}, "
                f"this frreg expects v{ENCODER_VOCAB_VERSION}"
            )
            break
    expected = inputs.corpus_sha256
    if expected is not None:
        bad = [a.file_seed for a in arts if a.record.corpus_sha256 != expected]
        if bad:
            problems.append(
                f"corpus sha256 {expected[:12]}… differs from the digest recorded by seed(s) "
                f"{', '.join(map(str, bad))}"
            )
    if not arts:
        problems.append("no seed artifacts to compare")
    if problems:
        return [Check(c.name, False, f"{c.name}: " + "; ".join(problems), enforced=c.enforced(th))]
    digest = arts[0].record.corpus_sha256
    if not digest:
        path = arts[0].record.corpus
        shared = f"corpus path {path} and settings" if path else "their settings"
        return [
            Check(
                c.name,
                True,
                f"{c.name}: {len(arts)} seeds share {shared} (no corpus digest: the fork's "
                "artifacts)",
            )
        ]
    return [
        Check(
            c.name,
            True,
            f"{c.name}: {len(arts)} seeds share corpus {digest[:12]}… and settings",
            digest[:12],
        )
    ]


def _sources(inputs: GateInputs) -> Sequence[SourceEvidence]:
    assert inputs.evidence is not None, "evidence criteria need the ensemble evidence"
    return inputs.evidence.sources


def _ols_margin(c: Criterion, inputs: GateInputs, th: Thresholds) -> list[Check]:
    out = []
    floor = th[c]
    for src in _sources(inputs):
        margin = src.margin_plcc
        ok = margin is not None and margin >= floor
        out.append(
            Check(
                c.check_name(src.source),
                ok,
                f"{src.source}: ensemble PLCC {fmt_metric(src.ensemble_plcc)} vs OLS "
                f"{fmt_metric(src.baseline_plcc)}, margin {fmt_metric(margin)} "
                f"{'>=' if ok else '<'} {floor}",
                margin,
                floor,
                c.enforced(th),
            )
        )
    return out


def _bias(c: Criterion, inputs: GateInputs, th: Thresholds) -> list[Check]:
    out = []
    limit = th[c]
    for src in _sources(inputs):
        ok = abs(src.bias) <= limit
        out.append(
            Check(
                c.check_name(src.source),
                ok,
                f"{src.source}: |mean bias| {abs(src.bias):.2f} VMAF {'<=' if ok else '>'} "
                f"{limit} (y - mu {src.bias:+.2f})",
                src.bias,
                limit,
                c.enforced(th),
            )
        )
    return out


def _coverage(c: Criterion, inputs: GateInputs, th: Thresholds) -> list[Check]:
    out = []
    floor = th[c]
    for src in _sources(inputs):
        ok = src.coverage_conformal >= floor
        out.append(
            Check(
                c.check_name(src.source),
                ok,
                f"{src.source}: conformal coverage {src.coverage_conformal:.3f} "
                f"{'>=' if ok else '<'} {floor} (q {src.conformal_q:.2f} VMAF; "
                f"the members' ±1.96 sigma band {src.coverage_gaussian:.3f})",
                src.coverage_conformal,
                floor,
                c.enforced(th),
            )
        )
    return out


def _pooled_plcc(c: Criterion, inputs: GateInputs, th: Thresholds) -> list[Check]:
    assert inputs.evidence is not None
    pooled_plcc = inputs.evidence.pooled_plcc
    seeds = [v for k, v in pooled_plcc.items() if k != "ensemble"]
    pooled = pooled_plcc.get("ensemble")
    mean_seed = (
        None
        if any(v is None for v in seeds)
        else sum(v for v in seeds if v is not None) / len(seeds)
    )
    ok = pooled is not None and mean_seed is not None and pooled >= mean_seed
    message = (
        f"pooled PLCC of the ensemble {fmt_metric(pooled)} {'>=' if ok else '<'} the members' "
        f"mean {fmt_metric(mean_seed)}"
    )
    return [Check(c.name, ok, message, pooled, mean_seed, c.enforced(th))]


def _baseline_drop(c: Criterion, inputs: GateInputs, th: Thresholds) -> list[Check]:
    if inputs.baseline is None:
        return []
    limit = th[c]
    drops = []
    missing = []
    for src in _sources(inputs):
        numbers = inputs.baseline.get(src.source)
        before = numbers.get("ensemble_plcc") if isinstance(numbers, dict) else None
        if not isinstance(before, int | float) or src.ensemble_plcc is None:
            missing.append(src.source)
            continue
        drops.append((float(before) - src.ensemble_plcc, src.source))
    worst = max(drops) if drops else None
    ok = not missing and worst is not None and worst[0] <= limit
    if missing:
        message = f"baseline-relative: no baseline ensemble PLCC for {', '.join(missing)}"
    elif worst is None:
        message = "baseline-relative: nothing to compare"
    else:
        message = (
            f"baseline-relative: largest ensemble PLCC drop {worst[0]:+.4f} ({worst[1]}) "
            f"{'<=' if ok else '>'} {limit}"
        )
    observed = None if worst is None else worst[0]
    return [Check(c.name, ok, message, observed, limit, c.enforced(th))]


def _rmse_vs_ols(c: Criterion, inputs: GateInputs, th: Thresholds) -> list[Check]:
    out = []
    ratio = th[c]
    for src in _sources(inputs):
        ens, ols = src.ensemble_rmse, src.baseline_rmse
        ok = ens is not None and ols is not None and ens <= ratio * ols
        shown = "undefined" if ens is None or ols is None else f"{ens:.2f} vs OLS {ols:.2f}"
        out.append(
            Check(
                c.check_name(src.source),
                ok,
                f"{src.source}: ensemble RMSE {shown} VMAF {'<=' if ok else '>'} {ratio} x OLS",
                ens,
                None if ols is None else ratio * ols,
                c.enforced(th),
            )
        )
    return out


def _interval_width(c: Criterion, inputs: GateInputs, th: Thresholds) -> list[Check]:
    assert inputs.evidence is not None
    q = inputs.evidence.shipped_q
    limit = th[c]
    ok = math.isfinite(q) and q <= limit
    message = (
        f"shipped interval half-width q {q:.2f} VMAF {'<=' if ok else '>'} {limit} "
        "(conformal quantile of every held-out residual of the ensemble mean)"
    )
    return [Check(c.name, ok, message, q if math.isfinite(q) else None, limit, c.enforced(th))]


def _stability(c: Criterion, inputs: GateInputs, th: Thresholds) -> list[Check]:
    assert inputs.evidence is not None
    interval = inputs.evidence.spread_interval
    limit = th[c]
    if interval is None:
        message = "spread interval undefined (fewer than two folds, or an undefined fold)"
        return [Check(c.name, False, message, None, limit, c.enforced(th))]
    low, high = interval
    ok = low <= limit
    message = (
        f"ADR spread {fmt_metric(inputs.evidence.spread)}, bootstrap 95 % interval "
        f"[{low:.4f}, {high:.4f}]: lower end {'<=' if ok else '>'} {limit}"
    )
    return [Check(c.name, ok, message, low, limit, c.enforced(th))]


# --------------------------------------------------------------------------
# The criteria
# --------------------------------------------------------------------------

ENSEMBLE_SIZE_CRITERION: Final = Criterion(
    name="ensemble size",
    item="size",
    stage=STAGE_ENSEMBLE,
    scope="overall",
    decides_under=ALL_PROFILES,
    passes_when="at least N seeds are gated (N fixed: the deployed ensemble's size)",
    compute=_ensemble_size,
    default=ENSEMBLE_SIZE,
)
MEAN_PLCC: Final = Criterion(
    name="mean PLCC",
    item="mean-plcc",
    stage=STAGE_ENSEMBLE,
    scope="overall",
    decides_under=ALL_PROFILES,
    passes_when="the mean over seeds of each seed's mean held-out PLCC >= X",
    compute=_seed_mean_statistic(lambda means: sum(means) / len(means), ">="),
    key="mean_plcc_min",
    default=MEAN_PLCC_MIN,
    unit="PLCC",
    option="mean-plcc-threshold",
    dest="mean_plcc_threshold",
    parse=plcc_threshold,
    help="minimum mean over seeds of the per-seed mean PLCC, in [0, 1]",
    deviation=True,
    most_permissive=0.0,
)
PLCC_SPREAD: Final = Criterion(
    name="PLCC spread",
    item="plcc-spread",
    stage=STAGE_ENSEMBLE,
    scope="overall",
    decides_under=frozenset({PROFILE_ADR}),
    passes_when="max - min of the per-seed mean PLCCs <= X",
    compute=_seed_mean_statistic(lambda means: max(means) - min(means), "<="),
    key="plcc_spread_max",
    default=PLCC_SPREAD_MAX,
    unit="PLCC",
    option="plcc-spread-max",
    dest="plcc_spread_max",
    parse=spread_threshold,
    help="maximum max-min spread of per-seed mean PLCC, in [0, 1]",
    deviation=True,
    most_permissive=1.0,
)
PER_SEED_MIN: Final = Criterion(
    name="per-seed minimum PLCC",
    item="per-seed-min",
    stage=STAGE_ENSEMBLE,
    scope="overall",
    decides_under=ALL_PROFILES,
    passes_when="every seed's mean PLCC >= X (each seed's item, and the lowest here)",
    compute=_seed_mean_statistic(min, ">="),
    key="per_seed_min",
    default=PER_SEED_PLCC_MIN,
    unit="PLCC",
    option="per-seed-min",
    dest="per_seed_min",
    parse=plcc_threshold,
    help="minimum mean PLCC of every seed, in [0, 1]",
    deviation=True,
    most_permissive=0.0,
)
FOLD_MIN: Final = Criterion(
    name="fold minimum PLCC",
    item=None,
    stage=STAGE_ENSEMBLE,
    scope="per-fold",
    decides_under=ALL_PROFILES,
    passes_when="when set, every fold's held-out PLCC >= X (the fold items judge it too)",
    compute=_fold_min,
    key="fold_min",
    default=None,
    unit="PLCC",
    option="fold-min",
    dest="fold_min",
    parse=plcc_threshold,
    help="also fail any fold whose held-out PLCC is below this, in [0, 1]",
    shown_default="off",
    deviation=True,
    most_permissive=0.0,
)
PROVENANCE: Final = Criterion(
    name="provenance",
    item="provenance",
    stage=STAGE_ENSEMBLE,
    scope="overall",
    decides_under=ALL_PROFILES,
    passes_when="every seed was trained on the same corpus digest with the same settings and run",
    compute=_provenance,
)
OLS_MARGIN: Final = Criterion(
    name="evidence ols-margin",
    item="ols-margin",
    stage=STAGE_EVIDENCE,
    scope="per-source",
    decides_under=REPORTED_ONLY,
    passes_when="`margin_plcc >= X`",
    compute=_ols_margin,
    key="margin_min",
    default=EVIDENCE_MARGIN_MIN,
    unit="PLCC",
    option="ols-margin-min",
    dest="margin_min",
    parse=finite_float,
    help="evidence: on every fold the ensemble's PLCC minus the OLS baseline's is at least this",
    most_permissive=-2.0,
)
BIAS: Final = Criterion(
    name="evidence bias",
    item="bias",
    stage=STAGE_EVIDENCE,
    scope="per-source",
    decides_under=frozenset({PROFILE_STRICT}),
    passes_when="`abs(bias) <= B`",
    compute=_bias,
    key="bias_max",
    default=EVIDENCE_BIAS_MAX,
    unit="VMAF",
    option="bias-max",
    dest="bias_max",
    parse=nonnegative_float,
    metavar="VMAF",
    help="evidence: on every held-out source |mean(y - ensemble)| is at most this many VMAF points",
    most_permissive=1e9,
)
COVERAGE: Final = Criterion(
    name="evidence coverage",
    item="coverage",
    stage=STAGE_EVIDENCE,
    scope="per-source",
    decides_under=REPORTED_ONLY,
    passes_when="`coverage_conformal >= C`",
    compute=_coverage,
    key="coverage_min",
    default=EVIDENCE_COVERAGE_MIN,
    unit="share of frames",
    option="coverage-min",
    dest="coverage_min",
    parse=unit_interval,
    help="evidence: on every held-out source the conformal interval covers at least this share",
    most_permissive=0.0,
)
POOLED_PLCC: Final = Criterion(
    name="evidence pooled-plcc",
    item="pooled-plcc",
    stage=STAGE_EVIDENCE,
    scope="overall",
    decides_under=frozenset({PROFILE_STRICT}),
    passes_when="pooled PLCC of `mu` >= the members' mean pooled PLCC",
    compute=_pooled_plcc,
)
BASELINE_DROP: Final = Criterion(
    name="evidence baseline-relative",
    item="baseline-relative",
    stage=STAGE_EVIDENCE,
    scope="overall",
    decides_under=frozenset({PROFILE_STRICT}),
    passes_when="with a previous verdict, no source's `ensemble_plcc` drops by more than D",
    compute=_baseline_drop,
    key="baseline_drop_max",
    default=EVIDENCE_BASELINE_DROP_MAX,
    unit="PLCC",
    option="baseline-drop-max",
    dest="baseline_drop_max",
    parse=unit_interval,
    help="evidence: with a baseline verdict, no source's ensemble PLCC drops by more than this",
    most_permissive=1.0,
    requires="baseline",
)

RMSE_VS_OLS: Final = Criterion(
    name="evidence rmse-vs-ols",
    item="rmse-vs-ols",
    stage=STAGE_EVIDENCE,
    scope="per-source",
    decides_under=REPORTED_ONLY,
    passes_when="`ensemble_rmse <= R * baseline_rmse` (in VMAF points, the in-fold OLS's)",
    compute=_rmse_vs_ols,
    key="rmse_ratio_max",
    default=EVIDENCE_RMSE_RATIO_MAX,
    unit="x OLS RMSE",
    option="rmse-ratio-max",
    dest="rmse_ratio_max",
    parse=positive_float,
    metavar="R",
    help="evidence: on every held-out source the ensemble's RMSE is at most this multiple of "
    "the in-fold OLS baseline's",
    most_permissive=1e9,
)
INTERVAL_WIDTH: Final = Criterion(
    name="evidence interval-width",
    item="interval-width",
    stage=STAGE_EVIDENCE,
    scope="overall",
    decides_under=frozenset({PROFILE_STRICT}),
    passes_when="the shipped conformal half-width `shipped_q <= Q` VMAF",
    compute=_interval_width,
    key="interval_q_max",
    default=EVIDENCE_INTERVAL_Q_MAX,
    unit="VMAF",
    option="interval-q-max",
    dest="interval_q_max",
    parse=positive_float,
    metavar="VMAF",
    help="evidence: the shipped interval's half-width (the conformal quantile of every "
    "held-out residual) is at most this many VMAF points",
    most_permissive=1e9,
)
STABILITY: Final = Criterion(
    name="evidence stability",
    item="stability",
    stage=STAGE_EVIDENCE,
    scope="overall",
    decides_under=frozenset({PROFILE_STRICT}),
    passes_when="the lower end of the ADR spread's bootstrap 95 % interval (over folds) <= S",
    compute=_stability,
    key="stable_spread_max",
    default=EVIDENCE_STABLE_SPREAD_MAX,
    unit="PLCC",
    option="stable-spread-max",
    dest="stable_spread_max",
    parse=spread_threshold,
    help="evidence: the lower end of the ADR spread's bootstrap 95 %% interval over folds is "
    "at most this (the spread is seed noise unless even that end exceeds it)",
    most_permissive=1.0,
)

# --------------------------------------------------------------------------
# The data stage: whether the corpus can give valid LOSO evidence at all
# (frreg/corpus/validity.py measures; docs/verdict.md, "Data validity").
# --------------------------------------------------------------------------


def _data(inputs: GateInputs) -> DataValidity:
    assert inputs.data is not None, "data criteria need the corpus's data validity"
    return inputs.data


def _listed(items: Sequence[str], shown: int = 5) -> str:
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more


def _same_content(c: Criterion, inputs: GateInputs, th: Thresholds) -> list[Check]:
    data = _data(inputs)
    files = {(f.first, f.second): f for f in data.same_files}
    shared = {p.ids: p for p in data.shared}
    out = []
    for first, second in sorted(set(files) | set(shared)):
        found = []
        if (first, second) in files:
            digest = files[first, second].sha256
            found.append(f"the producer manifest records one file for both (sha256 {digest[:12]}…)")
        pair = shared.get((first, second))
        if pair is not None:
            found.append(
                f"{pair.rows} of the {pair.n} rows of {pair.of!a} ({pair.share:.0%}) match a row "
                f"of {pair.other!a} ({pair.exact} identical six-feature vectors)"
            )
        out.append(
            Check(
                c.name,
                False,
                f"{c.name}: sources {first!a} and {second!a} hold the same content: "
                + "; ".join(found)
                + "; LOSO scores each on a model that trained on the other",
                None if pair is None else pair.share,
                DATA_SHARED_ROWS_MIN,
                c.enforced(th),
            )
        )
    if out:
        return out
    top = data.largest
    if top is None:
        message = (
            f"{c.name}: no row of the {len(data.sources)} sources matches one under another id"
        )
    else:
        message = (
            f"{c.name}: no two of the {len(data.sources)} sources share content (largest share "
            f"{top.share:.2f}, {top.of!a} in {top.other!a}, < {DATA_SHARED_ROWS_MIN})"
        )
    observed = 0.0 if top is None else top.share
    return [Check(c.name, True, message, observed, DATA_SHARED_ROWS_MIN, c.enforced(th))]


def _source_rows(c: Criterion, inputs: GateInputs, th: Thresholds) -> list[Check]:
    data = _data(inputs)
    floor = DATA_SOURCE_ROWS_MIN
    small = data.small_sources()
    smallest = min(data.shapes, key=lambda s: s.rows)
    if small:
        listed = _listed([f"{s.source!a} ({s.rows})" for s in small])
        message = (
            f"{c.name}: {len(small)} source(s) with fewer than {floor} rows: {listed}; a held-out "
            "PLCC on so few rows is near 1 by chance (a source split into small ids scores "
            "about 1.0 on each)"
        )
        return [Check(c.name, False, message, smallest.rows, floor, c.enforced(th))]
    message = (
        f"{c.name}: every source has at least {floor} rows (fewest: {smallest.source!a}, "
        f"{smallest.rows})"
    )
    return [Check(c.name, True, message, smallest.rows, floor, c.enforced(th))]


def _manifest(c: Criterion, inputs: GateInputs, th: Thresholds) -> list[Check]:
    found = _data(inputs).manifest
    name = found.path.name
    if not found.present:
        message = (
            f"{c.name}: no producer manifest ({name}; the fork's producer writes none): nothing "
            "ties the source ids to video files, only the rows can show a clip under two ids"
        )
        # Said under every profile, never deciding: the fork's corpora have none.
        return [Check(c.name, False, message, enforced=False)]
    if found.problems:
        message = f"{c.name}: {name} disagrees with the corpus: " + _listed(found.problems, 3)
        return [Check(c.name, False, message, len(found.problems), 0, c.enforced(th))]
    missing = f" ({found.cells_missing} recorded missing)" if found.cells_missing else ""
    message = f"{c.name}: the rows are the {found.cells_done} cells {name} records{missing}"
    return [Check(c.name, True, message, 0, 0, c.enforced(th))]


def _source_span(c: Criterion, inputs: GateInputs, th: Thresholds) -> list[Check]:
    data = _data(inputs)
    narrow = data.narrow_sources()
    if narrow:
        listed = _listed([f"{s.source!a} ({why})" for s, why in narrow])
        message = (
            f"{c.name}: {len(narrow)} of {len(data.shapes)} sources are narrow or short: "
            f"{listed}; their held-out PLCC measures little"
        )
        return [Check(c.name, False, message, len(narrow), 0, c.enforced(th))]
    message = (
        f"{c.name}: every source spans more than one cq and at least {DATA_SOURCE_FRAMES_MIN} "
        "frames"
    )
    return [Check(c.name, True, message, 0, 0, c.enforced(th))]


SAME_CONTENT: Final = Criterion(
    name="data same-content",
    item="same-content",
    stage=STAGE_DATA,
    scope="overall",
    decides_under=ALL_PROFILES,
    passes_when=(
        "no two source ids hold the same content: neither has "
        f"{DATA_SHARED_ROWS_MIN:.0%} of its rows (and {DATA_SOURCE_ROWS_MIN} or more) matched "
        "under the other (an identical six-feature vector, or a row of the same encoder and "
        f"cq, frame index within 1, every feature within {DATA_NEAR_SD} SD), and the producer "
        "manifest records no file under two ids"
    ),
    compute=_same_content,
)
SOURCE_ROWS: Final = Criterion(
    name="data source-rows",
    item="source-rows",
    stage=STAGE_DATA,
    scope="overall",
    decides_under=ALL_PROFILES,
    passes_when="every source has at least N rows (a smaller one's held-out PLCC is chance)",
    compute=_source_rows,
    default=DATA_SOURCE_ROWS_MIN,
)
PRODUCER_MANIFEST: Final = Criterion(
    name="data manifest",
    item="manifest",
    stage=STAGE_DATA,
    scope="overall",
    decides_under=ALL_PROFILES,
    passes_when=(
        "every cell the producer manifest records as done has exactly its frames as rows, and "
        "no row is outside one; a corpus without a manifest is a WARN under every profile"
    ),
    compute=_manifest,
)


def _target_scale(c: Criterion, inputs: GateInputs, th: Thresholds) -> list[Check]:
    top = _data(inputs).target_max
    floor = DATA_TARGET_MAX_MIN
    if top <= floor:
        message = (
            f"{c.name}: the largest {TARGET} in the corpus is {top:.4g}, not on VMAF's 0-100 "
            "scale (VMAF/100 or a 0-1 MOS?): every check in VMAF points would pass on it"
        )
        return [Check(c.name, False, message, top, floor, c.enforced(th))]
    message = f"{c.name}: the largest {TARGET} is {top:.2f}, on VMAF's 0-100 scale"
    return [Check(c.name, True, message, top, floor, c.enforced(th))]


TARGET_SCALE: Final = Criterion(
    name="data target-scale",
    item="target-scale",
    stage=STAGE_DATA,
    scope="overall",
    decides_under=ALL_PROFILES,
    passes_when=f"the largest `{TARGET}` exceeds N: the labels are on VMAF's 0-100 scale",
    compute=_target_scale,
    default=DATA_TARGET_MAX_MIN,
)


def _label_oracle(c: Criterion, inputs: GateInputs, th: Thresholds) -> list[Check]:
    data = _data(inputs)
    found = data.labels
    limit = DATA_ORACLE_RMSE_MAX
    # Judged per source: a label or feature fault on one source of many hides in a pooled RMSE.
    ok = found.worst_rmse <= limit
    said = (
        f"{c.name}: {TARGET} against libvmaf's {found.model} of the six features: worst "
        f"source {found.worst_source!a} RMSE {found.worst_rmse:.2g} VMAF "
        f"{'<=' if ok else '>'} {limit} (pooled {found.rmse:.2g})"
    )
    if not data.manifest.present:
        # Nothing says which model scored a corpus without a producer manifest (the fork's
        # producer, hand-made corpora): said under every profile, never deciding.
        message = said + ("" if ok else "; no producer manifest says which model scored it")
        return [Check(c.name, ok, message, found.worst_rmse, limit, enforced=False)]
    if not ok:
        said += ": labels or features edited, offset or rescaled, or scored by another model"
    return [Check(c.name, ok, said, found.worst_rmse, limit, c.enforced(th))]


LABEL_ORACLE: Final = Criterion(
    name="data label-oracle",
    item="label-oracle",
    stage=STAGE_DATA,
    scope="overall",
    decides_under=frozenset({PROFILE_STRICT}),
    passes_when=(
        f"on every source the corpus's `{TARGET}` is libvmaf's vmaf_v0.6.1 of its own six "
        "features to RMSE <= N VMAF (deciding only beside a producer manifest, which says "
        "the corpus was scored with that model; reported without one)"
    ),
    compute=_label_oracle,
    default=DATA_ORACLE_RMSE_MAX,
    unit="VMAF",
)
SOURCE_SPAN: Final = Criterion(
    name="data source-span",
    item="source-span",
    stage=STAGE_DATA,
    scope="overall",
    decides_under=REPORTED_ONLY,
    passes_when="every source spans more than one cq and at least N distinct frames",
    compute=_source_span,
    default=DATA_SOURCE_FRAMES_MIN,
)


#: Every criterion, in the order the verdict lists its checks.
CRITERIA: Final = (
    ENSEMBLE_SIZE_CRITERION,
    MEAN_PLCC,
    PLCC_SPREAD,
    PER_SEED_MIN,
    FOLD_MIN,
    PROVENANCE,
    SAME_CONTENT,
    SOURCE_ROWS,
    PRODUCER_MANIFEST,
    TARGET_SCALE,
    LABEL_ORACLE,
    SOURCE_SPAN,
    OLS_MARGIN,
    RMSE_VS_OLS,
    BIAS,
    COVERAGE,
    POOLED_PLCC,
    INTERVAL_WIDTH,
    STABILITY,
    BASELINE_DROP,
)


def threshold_criteria() -> tuple[tuple[str, Criterion], ...]:
    """``(key, criterion)`` of every criterion with a configurable threshold, in
    :data:`CRITERIA` order."""
    return tuple((c.key, c) for c in CRITERIA if c.key is not None)


def by_stage(stage: str) -> tuple[Criterion, ...]:
    return tuple(c for c in CRITERIA if c.stage == stage)


def item_criteria(stage: str, *, baseline: bool = False) -> Iterator[Criterion]:
    """The criteria of ``stage`` that have plugin items of their own (those needing a
    baseline only when one is given)."""
    for c in by_stage(stage):
        if c.item is None or (c.requires == "baseline" and not baseline):
            continue
        yield c


def deviations(thresholds: Thresholds) -> list[str]:
    """Thresholds that deviate from ADR-0303, as ``<name> threshold <value> (ADR-0303:
    <default>)``, and the seeds when they are not the deployed ensemble's."""
    out = []
    for _, c in threshold_criteria():
        value = thresholds.optional(c)
        if c.deviation and value != c.default:
            adr = "off" if c.default is None else c.default
            out.append(f"{c.name} threshold {value} (ADR-0303: {adr})")
    if thresholds.seeds != ENSEMBLE_SEEDS:
        out.append(f"seeds {thresholds.seeds} (ADR-0303: {ENSEMBLE_SEEDS})")
    return out


def changed_from_defaults(thresholds: Thresholds) -> list[str]:
    """Every threshold that is not its criterion's default, and the seeds when they are
    not the deployed ensemble's: what a verdict's writer chose rather than frreg
    (``frreg-export`` refuses these without ``--accept-deviations``)."""
    out = []
    for key, c in threshold_criteria():
        value = thresholds.optional(c)
        if value != c.default:
            out.append(f"{key} {value} (default {c.default})")
    if thresholds.seeds != ENSEMBLE_SEEDS:
        out.append(f"seeds {list(thresholds.seeds)} (default {list(ENSEMBLE_SEEDS)})")
    return out


def strict_help() -> str:
    """The ``--strict`` help: what the profile changes, named from the records."""
    adds = ", ".join(
        c.item or c.name for c in CRITERIA if c.decides_under == frozenset({PROFILE_STRICT})
    )
    drops = ", ".join(
        c.item or c.name
        for c in CRITERIA
        if PROFILE_ADR in c.decides_under and PROFILE_STRICT not in c.decides_under
    )
    text = f"decide with frreg's profile instead of ADR-0303's: also enforce {adds}"
    if drops:
        text += f"; report {drops} without deciding on it"
    return text + " (docs/verdict.md, Criteria)"


def markdown_table() -> str:
    """The docs' table of every criterion (docs/verdict.md embeds it; a test compares)."""
    head = (
        "| check (plugin item) | decides under | scope | passes when "
        "| option (CLI / plugin / ini) | default | ADR deviation |"
    )
    lines = [head, "|---|---|---|---|---|---|---|"]
    for c in CRITERIA:
        if c.item is None:
            item = f"`{c.name}` (fold items)"
        else:
            per = "-<source>" if c.scope == "per-source" else ""
            item = f"`{c.stage}[{c.item}{per}]`"
        if c.option is None:
            option, default = "—", "—" if c.default is None else f"{c.default} (fixed)"
        else:
            option = f"`--{c.option}` / `--frreg-{c.option}` / `frreg_{c.dest}`"
            default = c.shown_default or f"{c.default}" + (f" {c.unit}" if c.unit else "")
        if c.requires == "baseline":
            option += " (with `--baseline VERDICT` / `--frreg-baseline`)"
            default = f"off without a baseline; {default}"
        deviation = "yes" if c.deviation else "no"
        profiles = ", ".join(p for p in PROFILES if p in c.decides_under) or "none (reported)"
        lines.append(
            f"| {item} | {profiles} | {c.scope} | {c.passes_when} | {option} | {default} "
            f"| {deviation} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m frreg.gate.criteria: the docs' table
    print(markdown_table(), end="")
