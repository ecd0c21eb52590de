"""The ship gate: every check, its name and its threshold, defined once.

:func:`evaluate` turns loaded seed artifacts into a :class:`GateReport`; the
CLIs (``frreg-gate``, ``frreg-validate``) and the pytest plugin all call it,
and the plugin's items are views of the same checks (:func:`fold_problems`,
:func:`check_seed`, :data:`ENSEMBLE_CHECKS`), so a verdict never depends on
how it was computed.

The gate fails closed. A seed passes only when its artifact is present, its
folds cover every source exactly once with finite PLCC (each at least
``fold_min`` when that is set), its recorded mean matches its folds, and it is
not a dry run; the ensemble passes only when every expected seed passed,
there are at least :data:`~frreg.schema.ENSEMBLE_SIZE` of them, the mean and
spread of the per-seed means are within thresholds and every artifact was
trained on the same corpus digest with the same settings.

Malformed artifacts (bad JSON, wrong types) are input errors
(:class:`~frreg.errors.ArtifactError`), not gate failures.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from frreg._io import sha256_file
from frreg.errors import ArtifactError
from frreg.gate.ensemble import EnsembleEvidence
from frreg.schema import (
    DRY_RUN_NOTE,
    ENCODER_VOCAB_VERSION,
    ENSEMBLE_SEEDS,
    ENSEMBLE_SIZE,
    EVIDENCE_BASELINE_DROP_MAX,
    EVIDENCE_BIAS_MAX,
    EVIDENCE_COVERAGE_MIN,
    EVIDENCE_MARGIN_MIN,
    MEAN_PLCC_MIN,
    PER_SEED_PLCC_MIN,
    PLCC_SPREAD_MAX,
    seed_artifact_name,
)
from frreg.training.metrics import FOLD_METRICS
from frreg.training.record import FoldRecord, SeedRecord

# --------------------------------------------------------------------------
# Check names: the plugin's item ids and every front end read these.
# --------------------------------------------------------------------------

ENSEMBLE_SIZE_CHECK: Final = "ensemble size"
MEAN_PLCC_CHECK: Final = "mean PLCC"
SPREAD_CHECK: Final = "PLCC spread"
PER_SEED_MIN_CHECK: Final = "per-seed minimum PLCC"
FOLD_MIN_CHECK: Final = "fold minimum PLCC"
PROVENANCE_CHECK: Final = "provenance"
#: Checks a verdict writer adds about its inputs and its run.
CORPUS_CHECK: Final = "corpus"
EVIDENCE_CHECK: Final = "evidence"
AUDIT_CHECK: Final = "audit"
ITEMS_CHECK: Final = "gate items"
RUN_CHECK: Final = "run"

#: Ensemble-level checks, as ``(item id, check name)``: the plugin's
#: ``frreg-gate::ensemble[<item id>]`` items, in order.
#: frreg's ensemble evidence (:mod:`frreg.gate.ensemble`): reported always,
#: enforced under strict. Per-source checks are named ``<id>-<source>``.
EVIDENCE_MARGIN: Final = "ols-margin"
EVIDENCE_BIAS: Final = "bias"
EVIDENCE_COVERAGE: Final = "coverage"
EVIDENCE_POOLED: Final = "pooled-plcc"
EVIDENCE_BASELINE: Final = "baseline-relative"
EVIDENCE_COMPUTED: Final = "computed"
PER_SOURCE_EVIDENCE: Final = (EVIDENCE_MARGIN, EVIDENCE_BIAS, EVIDENCE_COVERAGE)


def evidence_check_name(check: str, source: str | None = None) -> str:
    """The name (and the plugin's item id) of one evidence check."""
    return f"evidence {check}" + (f"-{source}" if source is not None else "")


ENSEMBLE_CHECKS: Final = (
    ("size", ENSEMBLE_SIZE_CHECK),
    ("mean-plcc", MEAN_PLCC_CHECK),
    ("plcc-spread", SPREAD_CHECK),
    ("per-seed-min", PER_SEED_MIN_CHECK),
    ("provenance", PROVENANCE_CHECK),
)


def seed_check_name(seed: int) -> str:
    """Name of the check on one seed's mean PLCC."""
    return f"seed {seed} mean PLCC"


def seed_evidence_check_name(seed: int) -> str:
    """Name of the checks that one seed's numbers are what its evidence gives."""
    return f"seed {seed} evidence"


def seed_artifact_check_name(seed: int) -> str:
    """Name of the checks on one seed artifact's consistency."""
    return f"seed {seed} artifact"


#: Fields that must agree across every seed of one ensemble.
PROVENANCE_FIELDS: Final = (
    "corpus_sha256",
    "sources",
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "num_codecs",
    "encoder_vocab_version",
    "schema_version",
)

#: How each seed was run: every one must have been trained the same way.
RUN_FIELDS: Final = ("engine", "device", "versions", "config")


def _provenance_view(record: SeedRecord) -> dict[str, Any]:
    """The fields that must agree across seeds (``config`` without its seed)."""
    doc = record.to_json()
    doc["config"] = {k: v for k, v in record.config.items() if k != "seed"}
    return doc


# A recorded mean may differ from the recomputed one by float rounding only.
_MEAN_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Thresholds:
    """Gate thresholds and the seeds the ensemble must contain.

    ``fold_min`` (off when ``None``) also fails any fold below it.
    """

    mean_plcc_min: float = MEAN_PLCC_MIN
    plcc_spread_max: float = PLCC_SPREAD_MAX
    per_seed_min: float = PER_SEED_PLCC_MIN
    seeds: tuple[int, ...] = ENSEMBLE_SEEDS
    fold_min: float | None = None
    #: frreg's ensemble evidence (:mod:`frreg.gate.ensemble`): always reported,
    #: enforced only when ``strict``.
    strict: bool = False
    margin_min: float = EVIDENCE_MARGIN_MIN
    bias_max: float = EVIDENCE_BIAS_MAX
    coverage_min: float = EVIDENCE_COVERAGE_MIN
    baseline_drop_max: float = EVIDENCE_BASELINE_DROP_MAX


@dataclass(frozen=True)
class SeedArtifact:
    """A structurally valid ``loso_seed{N}.json``: the file and its typed record."""

    path: Path
    file_seed: int
    record: SeedRecord
    sha256: str

    @classmethod
    def read(cls, path: str | Path, file_seed: int) -> SeedArtifact:
        path = Path(path)
        record = SeedRecord.read(path)
        return cls(path=path, file_seed=file_seed, record=record, sha256=sha256_file(path))


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


@dataclass
class GateReport:
    """Every check, the per-seed means and the overall outcome."""

    checks: list[Check] = field(default_factory=list)
    seed_means: dict[int, float | None] = field(default_factory=dict)
    thresholds: Thresholds = field(default_factory=Thresholds)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed or not c.enforced for c in self.checks)

    @property
    def verdict(self) -> str:
        return "PROMOTE" if self.passed else "HOLD"

    def failures(self) -> list[Check]:
        """The checks that decide against promotion."""
        return [c for c in self.checks if not c.passed and c.enforced]

    def warnings(self) -> list[Check]:
        """Failed checks that are reported but not enforced (WARN)."""
        return [c for c in self.checks if not c.passed and not c.enforced]

    def named(self, name: str) -> list[Check]:
        return [c for c in self.checks if c.name == name]

    def lines(self) -> list[str]:
        """Human output: one line per check, then the verdict."""
        out = [f"{c.status}  {c.message}" for c in self.checks]
        out.append(f"verdict: {self.verdict}")
        return out

    def to_dict(self) -> dict[str, Any]:
        """The verdict's ``gate`` block: frreg's checks plus the ADR-0303 fields the
        fork's exporter and registry-flip scripts read (:meth:`adr_fields`)."""
        return {
            "verdict": self.verdict,
            "passed": self.passed,
            **self.adr_fields(),
            "thresholds": asdict(self.thresholds),
            "seed_means": {str(k): v for k, v in self.seed_means.items()},
            "checks": [c.to_json() for c in self.checks],
        }

    def adr_fields(self) -> dict[str, Any]:
        """The ADR-0303 gate as the fork's ``PROMOTE.json`` spells it.

        Same names, same meanings: the mean and spread of the per-seed mean
        PLCCs, each with its threshold and outcome, the per-seed means keyed by
        seed, and the seeds whose own check failed. Undefined numbers are
        ``null`` and their checks fail.
        """
        th = self.thresholds

        def outcome(name: str) -> tuple[float | None, bool]:
            found = self.named(name)
            observed = found[0].observed if found else None
            value = float(observed) if isinstance(observed, int | float) else None
            return value, bool(found) and all(c.passed for c in found)

        mean, mean_pass = outcome(MEAN_PLCC_CHECK)
        spread, spread_pass = outcome(SPREAD_CHECK)
        _, floor_pass = outcome(PER_SEED_MIN_CHECK)
        failing = [s for s in th.seeds if not all(c.passed for c in self.named(seed_check_name(s)))]
        return {
            "mean_plcc": mean,
            "mean_plcc_threshold": th.mean_plcc_min,
            "mean_plcc_pass": mean_pass,
            "plcc_spread": spread,
            "plcc_spread_max": th.plcc_spread_max,
            "plcc_spread_pass": spread_pass,
            "per_seed_min": th.per_seed_min,
            "per_seed_pass": floor_pass and not failing,
            "per_seed_plccs": {str(s): self.seed_means.get(s) for s in th.seeds},
            "failing_seeds": failing,
        }


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------


def load_loso_dir(loso_dir: str | Path, seeds: Sequence[int]) -> dict[int, SeedArtifact]:
    """Load the artifacts of ``seeds`` from ``loso_dir``; absent seeds are simply absent.

    Raises :class:`ArtifactError` when the directory does not exist.
    """
    loso_dir = Path(loso_dir)
    if not loso_dir.is_dir():
        raise ArtifactError(loso_dir, "LOSO directory not found (run frreg-train first)")
    found: dict[int, SeedArtifact] = {}
    for seed in seeds:
        path = loso_dir / seed_artifact_name(seed)
        if path.exists():
            found[seed] = SeedArtifact.read(path, seed)
    return found


# --------------------------------------------------------------------------
# Per-fold and per-seed checks
# --------------------------------------------------------------------------


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def _fmt(x: float | None) -> str:
    return "null" if x is None else f"{x:.4f}"


def fold_problems(seed: int, fold: FoldRecord, thresholds: Thresholds) -> list[str]:
    """What is wrong with one fold: undefined metrics, or PLCC below ``fold_min``."""
    bad = [m.name for m in FOLD_METRICS if not _finite(fold.metrics.get(m.name))]
    if bad:
        return [
            f"seed {seed} fold {fold.held_out}: {', '.join(bad)} undefined "
            "(is the held-out source's vmaf constant?)"
        ]
    floor = thresholds.fold_min
    if floor is not None and fold.plcc is not None and fold.plcc < floor:
        return [f"seed {seed} fold {fold.held_out} PLCC {fold.plcc:.4f} < {floor}"]
    return []


def check_seed(art: SeedArtifact, thresholds: Thresholds) -> tuple[list[Check], float | None]:
    """Checks for one seed and its recomputed mean PLCC (``None`` when undefined)."""
    seed = art.file_seed
    name = f"seed {seed}"
    rec = art.record
    problems: list[str] = []
    if rec.seed != seed:
        problems.append(f"{art.path.name} records seed {rec.seed} (duplicated or mismatched seed)")
    if rec.note == DRY_RUN_NOTE:
        problems.append(f"{art.path.name} is a {DRY_RUN_NOTE} artifact")
    elif rec.note is not None:
        problems.append(f"{art.path.name} carries note {rec.note!r}")
    folds = rec.folds
    held = [f.held_out for f in folds]
    for src in rec.sources:
        if held.count(src) == 0:
            problems.append(f"fold for source '{src}' is missing")
        elif held.count(src) > 1:
            problems.append(f"fold for source '{src}' appears {held.count(src)} times")
    for src in sorted(set(held) - set(rec.sources)):
        problems.append(f"fold '{src}' is not one of the corpus sources")
    if len(rec.sources) < 2:
        problems.append(f"only {len(rec.sources)} source(s); LOSO needs at least two")
    for f in folds:
        if not _finite(f.plcc):
            problems.append(
                f"fold '{f.held_out}' PLCC is {'null (undefined)' if f.plcc is None else f.plcc}"
            )
    plccs = [f.plcc for f in folds if f.plcc is not None and math.isfinite(f.plcc)]
    mean = None
    if folds and len(plccs) == len(folds):
        mean = sum(plccs) / len(plccs)
        recorded = rec.mean_plcc
        if (
            recorded is None
            or not math.isfinite(recorded)
            or abs(recorded - mean) > _MEAN_TOLERANCE
        ):
            problems.append(
                f"recorded mean_plcc {recorded} disagrees with its folds' mean {mean:.6f}"
            )
    checks = [
        Check(seed_artifact_check_name(seed), False, f"{name}: {p}", None, None) for p in problems
    ]
    if mean is None or problems:
        checks.append(
            Check(
                seed_check_name(seed),
                False,
                f"{name} mean PLCC {_fmt(mean)} is not usable",
                mean,
                thresholds.per_seed_min,
            )
        )
        return checks, None
    ok = mean >= thresholds.per_seed_min
    worst = min(folds, key=lambda f: f.plcc if f.plcc is not None else -math.inf)
    rel = ">=" if ok else "<"
    checks.append(
        Check(
            seed_check_name(seed),
            ok,
            f"{name} mean PLCC {mean:.4f} {rel} {thresholds.per_seed_min} "
            f"({len(folds)} folds, worst {worst.held_out} {_fmt(worst.plcc)})",
            mean,
            thresholds.per_seed_min,
        )
    )
    return checks, mean


# --------------------------------------------------------------------------
# Ensemble checks
# --------------------------------------------------------------------------


def _provenance(arts: Sequence[SeedArtifact], expected_sha256: str | None) -> Check:
    problems = []
    docs = [(a.file_seed, _provenance_view(a.record)) for a in arts]
    fork = any(a.record.from_fork for a in arts)
    # Without a corpus digest (the fork's artifacts) the recorded path is all there is.
    for key in (*PROVENANCE_FIELDS, *RUN_FIELDS, *(("corpus",) if fork else ())):
        values = {json.dumps(doc.get(key), sort_keys=True) for _, doc in docs}
        if len(values) > 1:
            per = ", ".join(f"seed {s}={doc.get(key)!r}" for s, doc in docs)
            problems.append(f"seeds disagree on {key}: {per}")
    for a in arts:
        if a.record.encoder_vocab_version != ENCODER_VOCAB_VERSION:
            problems.append(
                f"seed {a.file_seed} used encoder vocabulary v{a.record.encoder_vocab_version}, "
                f"this frreg expects v{ENCODER_VOCAB_VERSION}"
            )
            break
    if expected_sha256 is not None:
        bad = [a.file_seed for a in arts if a.record.corpus_sha256 != expected_sha256]
        if bad:
            problems.append(
                f"corpus sha256 {expected_sha256[:12]}… differs from the digest recorded by seed(s) "
                f"{', '.join(map(str, bad))}"
            )
    if not arts:
        problems.append("no seed artifacts to compare")
    if problems:
        return Check(PROVENANCE_CHECK, False, "provenance: " + "; ".join(problems))
    digest = arts[0].record.corpus_sha256
    if not digest:
        return Check(
            PROVENANCE_CHECK,
            True,
            f"provenance: {len(arts)} seeds share corpus path {arts[0].record.corpus} and "
            "settings (no corpus digest: the fork's artifacts)",
        )
    return Check(
        PROVENANCE_CHECK,
        True,
        f"provenance: {len(arts)} seeds share corpus {digest[:12]}… and settings",
        digest[:12],
    )


def _fold_min(arts: Sequence[SeedArtifact], thresholds: Thresholds) -> Check:
    floor = thresholds.fold_min
    # Undefined folds already fail their seed's checks; this one is about the floor.
    defined = [
        (a.file_seed, f.held_out, f.plcc)
        for a in arts
        for f in a.record.folds
        if f.plcc is not None and math.isfinite(f.plcc)
    ]
    below = [d for d in defined if floor is not None and d[2] < floor]
    worst = min(p for _, _, p in defined) if defined else None
    if below:
        listed = ", ".join(f"seed {s} {src} {p:.4f}" for s, src, p in below[:5])
        more = f" and {len(below) - 5} more" if len(below) > 5 else ""
        message = f"{FOLD_MIN_CHECK}: {len(below)} fold(s) < {floor}: {listed}{more}"
        return Check(FOLD_MIN_CHECK, False, message, worst, floor)
    return Check(FOLD_MIN_CHECK, True, f"{FOLD_MIN_CHECK} {_fmt(worst)} >= {floor}", worst, floor)


_NEGATION = {">=": "<", "<=": ">"}


def _compare(name: str, observed: float, op: str, threshold: float, fmt: str = ".4f") -> Check:
    """A threshold check whose message reads like a verdict, observed value then threshold."""
    passed = observed >= threshold if op == ">=" else observed <= threshold
    shown = format(observed, fmt)
    return Check(
        name,
        passed,
        f"{name} {shown} {op if passed else _NEGATION[op]} {threshold}",
        observed,
        threshold,
    )


def evaluate(
    artifacts: Mapping[int, SeedArtifact],
    thresholds: Thresholds | None = None,
    *,
    corpus_sha256: str | None = None,
    unusable: Mapping[int, str] | None = None,
) -> GateReport:
    """Apply the gate to loaded artifacts (keyed by the seed in their file name).

    ``unusable`` names seeds whose artifact exists but whose numbers must not
    be judged (they could not be recomputed), with the reason: they fail like
    missing seeds.
    """
    th = thresholds or Thresholds()
    report = GateReport(thresholds=th)
    checks = report.checks
    expected = list(th.seeds)
    unusable = unusable or {}
    for seed in expected:
        if seed not in artifacts or seed in unusable:
            why = unusable.get(seed, f"{seed_artifact_name(seed)} is missing")
            checks.append(
                Check(seed_check_name(seed), False, f"seed {seed}: {why}", None, th.per_seed_min)
            )
            report.seed_means[seed] = None
            continue
        seed_checks, mean = check_seed(artifacts[seed], th)
        checks.extend(seed_checks)
        report.seed_means[seed] = mean

    n = len(expected)
    checks.append(_compare(ENSEMBLE_SIZE_CHECK, n, ">=", ENSEMBLE_SIZE, fmt="d"))
    means = [report.seed_means.get(s) for s in expected]
    defined = [m for m in means if m is not None and math.isfinite(m)]
    if expected and len(defined) == len(means):
        checks.append(
            _compare(MEAN_PLCC_CHECK, sum(defined) / len(defined), ">=", th.mean_plcc_min)
        )
        checks.append(_compare(SPREAD_CHECK, max(defined) - min(defined), "<=", th.plcc_spread_max))
        checks.append(_compare(PER_SEED_MIN_CHECK, min(defined), ">=", th.per_seed_min))
    else:
        missing = ", ".join(str(s) for s, m in zip(expected, means, strict=True) if not _finite(m))
        for name, thr in (
            (MEAN_PLCC_CHECK, th.mean_plcc_min),
            (SPREAD_CHECK, th.plcc_spread_max),
            (PER_SEED_MIN_CHECK, th.per_seed_min),
        ):
            message = f"{name} undefined: no usable mean PLCC for seed(s) {missing or '(none)'}"
            checks.append(Check(name, False, message, None, thr))
    present = [artifacts[s] for s in expected if s in artifacts and s not in unusable]
    if th.fold_min is not None:
        checks.append(_fold_min(present, th))
    checks.append(_provenance(present, corpus_sha256))
    return report


# --------------------------------------------------------------------------
# Ensemble evidence (reported always, enforced under strict)
# --------------------------------------------------------------------------


def evidence_checks(
    evidence: EnsembleEvidence | None,
    thresholds: Thresholds,
    *,
    problem: str | None = None,
    baseline: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Check]:
    """One check per evidence criterion (per source where natural).

    ``evidence`` is ``None`` when it could not be computed (``problem`` says
    why): that fails, like any evidence check, enforced only under strict.
    ``baseline`` is a previous verdict's per-source evidence, for the
    baseline-relative check.
    """
    th = thresholds
    strict = th.strict

    def check(
        name: str, ok: bool, message: str, observed: float | None, thr: float | None
    ) -> Check:
        return Check(name, ok, message, observed, thr, enforced=strict)

    if evidence is None:
        return [
            Check(
                evidence_check_name(EVIDENCE_COMPUTED),
                False,
                f"evidence cannot be computed: {problem}",
                enforced=strict,
            )
        ]
    out = []
    for src in evidence.sources:
        margin = src.margin_plcc
        out.append(
            check(
                evidence_check_name(EVIDENCE_MARGIN, src.source),
                margin is not None and margin >= th.margin_min,
                f"{src.source}: ensemble PLCC {_fmt(src.ensemble_plcc)} vs OLS {_fmt(src.baseline_plcc)}, "
                f"margin {_fmt(margin)} {'>=' if margin is not None and margin >= th.margin_min else '<'} "
                f"{th.margin_min}",
                margin,
                th.margin_min,
            )
        )
        ok = abs(src.bias) <= th.bias_max
        out.append(
            check(
                evidence_check_name(EVIDENCE_BIAS, src.source),
                ok,
                f"{src.source}: |mean bias| {abs(src.bias):.2f} VMAF {'<=' if ok else '>'} "
                f"{th.bias_max} (y - mu {src.bias:+.2f})",
                src.bias,
                th.bias_max,
            )
        )
        ok = src.coverage_conformal >= th.coverage_min
        out.append(
            check(
                evidence_check_name(EVIDENCE_COVERAGE, src.source),
                ok,
                f"{src.source}: conformal coverage {src.coverage_conformal:.3f} "
                f"{'>=' if ok else '<'} {th.coverage_min} (q {src.conformal_q:.2f} VMAF; "
                f"gaussian {src.coverage_gaussian:.3f})",
                src.coverage_conformal,
                th.coverage_min,
            )
        )
    seeds = [v for k, v in evidence.pooled_plcc.items() if k != "ensemble"]
    pooled = evidence.pooled_plcc.get("ensemble")
    mean_seed = (
        None
        if any(v is None for v in seeds)
        else sum(v for v in seeds if v is not None) / len(seeds)
    )
    ok = pooled is not None and mean_seed is not None and pooled >= mean_seed
    out.append(
        check(
            evidence_check_name(EVIDENCE_POOLED),
            ok,
            f"pooled PLCC of the ensemble {_fmt(pooled)} {'>=' if ok else '<'} the members' mean "
            f"{_fmt(mean_seed)}",
            pooled,
            mean_seed,
        )
    )
    if baseline is not None:
        out.append(_baseline_check(evidence, baseline, th))
    return out


def _baseline_check(
    evidence: EnsembleEvidence, baseline: Mapping[str, Mapping[str, Any]], th: Thresholds
) -> Check:
    drops = []
    missing = []
    for src in evidence.sources:
        before = baseline.get(src.source, {}).get("ensemble_plcc")
        if not isinstance(before, int | float) or src.ensemble_plcc is None:
            missing.append(src.source)
            continue
        drops.append((float(before) - src.ensemble_plcc, src.source))
    worst = max(drops) if drops else None
    ok = not missing and worst is not None and worst[0] <= th.baseline_drop_max
    if missing:
        message = f"baseline-relative: no baseline ensemble PLCC for {', '.join(missing)}"
    elif worst is None:
        message = "baseline-relative: nothing to compare"
    else:
        message = (
            f"baseline-relative: largest ensemble PLCC drop {worst[0]:+.4f} ({worst[1]}) "
            f"{'<=' if ok else '>'} {th.baseline_drop_max}"
        )
    return Check(
        evidence_check_name(EVIDENCE_BASELINE),
        ok,
        message,
        None if worst is None else worst[0],
        th.baseline_drop_max,
        enforced=th.strict,
    )
