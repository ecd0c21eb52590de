"""The ship gate: running the checks on loaded artifacts.

Every criterion (its name, threshold, option, profile and compute function)
is declared once in :mod:`frreg.gate.criteria`; this module runs them.
:func:`evaluate` turns loaded seed artifacts into a :class:`GateReport`
(each seed's checks, then the ensemble criteria) and :func:`evidence_checks`
judges the ensemble evidence; the CLIs (``frreg-gate``, ``frreg-validate``)
and the pytest plugin all call them, and the plugin's items are views of the
same checks (:func:`fold_problems`, :func:`check_seed`,
:func:`gate_item_criteria`), so a verdict never depends on how it was computed.

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

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from frreg._io import sha256_file
from frreg.errors import ArtifactError
from frreg.gate.criteria import (
    FOLD_MIN,
    MEAN_PLCC,
    PER_SEED_MIN,
    PLCC_SPREAD,
    STAGE_DATA,
    STAGE_ENSEMBLE,
    STAGE_EVIDENCE,
    Check,
    Criterion,
    GateInputs,
    Thresholds,
    by_stage,
    finite,
    fmt_metric,
    item_criteria,
)
from frreg.schema import DRY_RUN_NOTE, seed_artifact_name
from frreg.training.metrics import FOLD_METRICS
from frreg.training.record import FoldRecord, SeedRecord

if TYPE_CHECKING:
    from frreg.corpus import Corpus
    from frreg.gate.ensemble import EnsembleEvidence

__all__ = [
    "CORPUS_CHECK",
    "Check",
    "GateReport",
    "SeedArtifact",
    "Thresholds",
    "check_seed",
    "data_checks",
    "evaluate",
    "evidence_checks",
    "fold_problems",
    "load_loso_dir",
]

# --------------------------------------------------------------------------
# Names of the checks that are not criteria: a verdict writer adds them about
# its inputs and its run. The criteria's names are in frreg.gate.criteria.
# --------------------------------------------------------------------------

CORPUS_CHECK: Final = "corpus"
EVIDENCE_CHECK: Final = "evidence"
AUDIT_CHECK: Final = "audit"
#: Seed files in the directory that were not gated (cherry-picking, unless allowed).
SEED_SELECTION_CHECK: Final = "seed selection"
ITEMS_CHECK: Final = "gate items"
RUN_CHECK: Final = "run"
#: The one evidence check when the ensemble evidence cannot be computed at all; it
#: answers for every evidence item.
EVIDENCE_COMPUTED: Final = "evidence computed"


def seed_check_name(seed: int) -> str:
    """Name of the check on one seed's mean PLCC."""
    return f"seed {seed} mean PLCC"


def seed_evidence_check_name(seed: int) -> str:
    """Name of the checks that one seed's numbers are what its evidence gives."""
    return f"seed {seed} evidence"


def seed_artifact_check_name(seed: int) -> str:
    """Name of the checks on one seed artifact's consistency."""
    return f"seed {seed} artifact"


# A recorded mean may differ from the recomputed one by float rounding only.
_MEAN_TOLERANCE = 1e-9


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


@dataclass
class GateReport:
    """Every check, the per-seed means and the overall outcome."""

    checks: list[Check] = field(default_factory=list)
    seed_means: dict[int, float | None] = field(default_factory=dict)
    thresholds: Thresholds = field(default_factory=Thresholds)
    #: How the judged recipe and thresholds differ from ADR-0303's (filled by the judge:
    #: :func:`frreg.gate.verdict.recipe_deviations`); empty: the ADR recipe.
    deviations: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed or not c.enforced for c in self.checks)

    @property
    def verdict(self) -> str:
        return "PROMOTE" if self.passed else "HOLD"

    @property
    def gate_name(self) -> str:
        """Which profile decided, as the verdict line names it."""
        return "strict profile" if self.thresholds.strict else "ADR-0303 gate"

    @property
    def verdict_line(self) -> str:
        """The verdict as every surface prints it: which profile decided, and whether
        the recipe and thresholds were ADR-0303's -- ``PROMOTE (ADR-0303)``, ``PROMOTE
        (strict profile, ADR-0303 recipe)``, ``PROMOTE (custom, ADR-0303 gate: epochs 30
        (ADR-0303: 200))``, ``HOLD (ADR-0303 gate)``. A PROMOTE of a custom run never
        reads like an ADR PROMOTE."""
        gate = self.gate_name
        if self.deviations:
            return f"{self.verdict} (custom, {gate}: {'; '.join(self.deviations)})"
        if not self.passed:
            return f"HOLD ({gate})"
        return (
            "PROMOTE (strict profile, ADR-0303 recipe)"
            if self.thresholds.strict
            else ("PROMOTE (ADR-0303)")
        )

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
        out.append(f"verdict: {self.verdict_line}")
        return out

    def to_dict(self) -> dict[str, Any]:
        """The verdict's ``gate`` block: frreg's checks plus the ADR-0303 fields the
        fork's exporter and registry-flip scripts read (:meth:`adr_fields`)."""
        return {
            "verdict": self.verdict,
            "passed": self.passed,
            **self.adr_fields(),
            "thresholds": self.thresholds.to_json(),
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

        mean, mean_pass = outcome(MEAN_PLCC.name)
        spread, spread_pass = outcome(PLCC_SPREAD.name)
        _, floor_pass = outcome(PER_SEED_MIN.name)
        failing = [s for s in th.seeds if not all(c.passed for c in self.named(seed_check_name(s)))]
        return {
            "mean_plcc": mean,
            "mean_plcc_threshold": th[MEAN_PLCC],
            "mean_plcc_pass": mean_pass,
            "plcc_spread": spread,
            "plcc_spread_max": th[PLCC_SPREAD],
            "plcc_spread_pass": spread_pass,
            "per_seed_min": th[PER_SEED_MIN],
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
    if loso_dir.is_file():
        raise ArtifactError(
            loso_dir,
            "is a file, not the LOSO directory of seed files (a corpus goes in --corpus)",
        )
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


def fold_problems(seed: int, fold: FoldRecord, thresholds: Thresholds) -> list[str]:
    """What is wrong with one fold: undefined metrics, or PLCC below ``fold_min``."""
    bad = [m.name for m in FOLD_METRICS if not finite(fold.metrics.get(m.name))]
    if bad:
        return [
            f"seed {seed} fold {fold.held_out}: {', '.join(bad)} undefined "
            "(is the held-out source's vmaf constant?)"
        ]
    floor = thresholds.optional(FOLD_MIN)
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
        if not finite(f.plcc):
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
                f"{name} mean PLCC {fmt_metric(mean)} is not usable",
                mean,
                thresholds[PER_SEED_MIN],
            )
        )
        return checks, None
    ok = mean >= thresholds[PER_SEED_MIN]
    worst = min(folds, key=lambda f: f.plcc if f.plcc is not None else -math.inf)
    rel = ">=" if ok else "<"
    checks.append(
        Check(
            seed_check_name(seed),
            ok,
            f"{name} mean PLCC {mean:.4f} {rel} {thresholds[PER_SEED_MIN]} "
            f"({len(folds)} folds, worst {worst.held_out} {fmt_metric(worst.plcc)})",
            mean,
            thresholds[PER_SEED_MIN],
        )
    )
    return checks, mean


# --------------------------------------------------------------------------
# Ensemble checks
# --------------------------------------------------------------------------


def evaluate(
    artifacts: Mapping[int, SeedArtifact],
    thresholds: Thresholds | None = None,
    *,
    corpus_sha256: str | None = None,
    unusable: Mapping[int, str] | None = None,
) -> GateReport:
    """Apply the gate to loaded artifacts (keyed by the seed in their file name): each
    seed's checks, then every criterion of the ensemble stage, in :data:`CRITERIA` order.

    ``unusable`` names seeds whose artifact exists but whose numbers must not
    be judged (they could not be recomputed), with the reason: they fail like
    missing seeds.
    """
    th = thresholds or Thresholds()
    report = GateReport(thresholds=th)
    checks = report.checks
    unusable = unusable or {}
    for seed in th.seeds:
        if seed not in artifacts or seed in unusable:
            why = unusable.get(seed, f"{seed_artifact_name(seed)} is missing")
            checks.append(
                Check(seed_check_name(seed), False, f"seed {seed}: {why}", None, th[PER_SEED_MIN])
            )
            report.seed_means[seed] = None
            continue
        seed_checks, mean = check_seed(artifacts[seed], th)
        checks.extend(seed_checks)
        report.seed_means[seed] = mean
    inputs = GateInputs(
        seeds=th.seeds,
        seed_means=report.seed_means,
        artifacts=[artifacts[s] for s in th.seeds if s in artifacts and s not in unusable],
        corpus_sha256=corpus_sha256,
    )
    for criterion in by_stage(STAGE_ENSEMBLE):
        checks.extend(criterion.compute(criterion, inputs, th))
    return report


def evidence_checks(
    evidence: EnsembleEvidence | None,
    thresholds: Thresholds,
    *,
    problem: str | None = None,
    baseline: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Check]:
    """Every criterion of the evidence stage, per source where natural (the checks of
    one source together, sources in order, then the overall ones).

    ``evidence`` is ``None`` when it could not be computed (``problem`` says
    why): that is one failed check, enforced only under strict.
    ``baseline`` is a previous verdict's per-source evidence, for the
    baseline-relative check.
    """
    if evidence is None:
        message = f"evidence cannot be computed: {problem}"
        return [Check(EVIDENCE_COMPUTED, False, message, enforced=thresholds.strict)]
    inputs = GateInputs(evidence=evidence, baseline=baseline)
    stage = by_stage(STAGE_EVIDENCE)
    per_source = [c for c in stage if c.scope == "per-source"]
    # A source's checks together, sources in the evidence's order.
    order = {
        c.check_name(src.source): (i, j)
        for i, src in enumerate(evidence.sources)
        for j, c in enumerate(per_source)
    }
    found = [check for c in per_source for check in c.compute(c, inputs, thresholds)]
    out = sorted(found, key=lambda check: order[check.name])
    for c in stage:
        if c.scope != "per-source":
            out.extend(c.compute(c, inputs, thresholds))
    return out


def data_checks(corpus: Corpus, thresholds: Thresholds) -> list[Check]:
    """Every criterion of the data stage on ``corpus``: whether its LOSO evidence can be
    valid at all (the same content under two ids, sources too small to score, a producer
    manifest that disagrees with the rows; :mod:`frreg.corpus.validity` measures).

    They are judged wherever a corpus is loaded for a verdict, and all but the reported
    ones decide under every profile: a leaked evaluation is no evidence.
    """
    from frreg.corpus.validity import assess

    inputs = GateInputs(data=assess(corpus))
    return [check for c in by_stage(STAGE_DATA) for check in c.compute(c, inputs, thresholds)]


def gate_item_criteria(*, baseline: bool = False) -> list[Criterion]:
    """The criteria with plugin items of their own: data, ensemble, then evidence stage."""
    return [
        *item_criteria(STAGE_DATA, baseline=baseline),
        *item_criteria(STAGE_ENSEMBLE, baseline=baseline),
        *item_criteria(STAGE_EVIDENCE, baseline=baseline),
    ]
