"""The ship gate: read ``loso_seed{N}.json`` artifacts and decide PROMOTE or HOLD.

The gate fails closed. A seed passes only when its artifact is present, its
folds cover every source exactly once with finite PLCC, its recorded mean
matches its folds, and it is not a dry run; the ensemble passes only when
every expected seed passed, there are at least :data:`~frreg.schema.ENSEMBLE_SIZE`
of them, the mean and spread of the per-seed means are within thresholds and
every artifact was trained on the same corpus digest with the same settings.

Malformed artifacts (bad JSON, wrong types) are input errors
(:class:`~frreg.errors.ArtifactError`), not gate failures.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from frreg._io import sha256_file
from frreg.errors import ArtifactError
from frreg.schema import (
    DRY_RUN_NOTE,
    ENCODER_VOCAB_VERSION,
    ENSEMBLE_SEEDS,
    ENSEMBLE_SIZE,
    MEAN_PLCC_MIN,
    PER_SEED_PLCC_MIN,
    PLCC_SPREAD_MAX,
    SEED_ARTIFACT_GLOB,
    seed_artifact_name,
)

#: Fields that must agree across every seed of one ensemble.
PROVENANCE_FIELDS = (
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

# A recorded mean may differ from the recomputed one by float rounding only.
_MEAN_TOLERANCE = 1e-9
_SEED_FILE = re.compile(r"^loso_seed(\d+)\.json$")


@dataclass(frozen=True)
class Thresholds:
    """Gate thresholds and the seeds the ensemble must contain."""

    mean_plcc_min: float = MEAN_PLCC_MIN
    plcc_spread_max: float = PLCC_SPREAD_MAX
    per_seed_min: float = PER_SEED_PLCC_MIN
    seeds: tuple[int, ...] = ENSEMBLE_SEEDS


@dataclass(frozen=True)
class Fold:
    held_out: str
    plcc: float | None
    srocc: float | None
    rmse: float | None


@dataclass(frozen=True)
class SeedArtifact:
    """A structurally valid ``loso_seed{N}.json``."""

    path: Path
    file_seed: int
    record: dict[str, Any]
    sha256: str

    @property
    def seed(self) -> int:
        return int(self.record["seed"])

    @property
    def folds(self) -> list[Fold]:
        return [
            Fold(f["held_out"], f.get("plcc"), f.get("srocc"), f.get("rmse"))
            for f in self.record["folds"]
        ]


@dataclass(frozen=True)
class Check:
    """One part of the verdict. ``message`` is the line a reviewer reads."""

    name: str
    passed: bool
    message: str
    observed: float | str | None = None
    threshold: float | str | None = None


@dataclass
class GateReport:
    """Every check, the per-seed means and the overall outcome."""

    checks: list[Check] = field(default_factory=list)
    seed_means: dict[int, float | None] = field(default_factory=dict)
    thresholds: Thresholds = field(default_factory=Thresholds)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def verdict(self) -> str:
        return "PROMOTE" if self.passed else "HOLD"

    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def lines(self) -> list[str]:
        """Human output: one line per check, then the verdict."""
        out = [f"{'PASS' if c.passed else 'FAIL'}  {c.message}" for c in self.checks]
        out.append(f"verdict: {self.verdict}")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "passed": self.passed,
            "thresholds": asdict(self.thresholds),
            "seed_means": {str(k): v for k, v in self.seed_means.items()},
            "checks": [asdict(c) for c in self.checks],
        }


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------


def _require(
    path: Path, rec: Mapping[str, Any], key: str, kinds: tuple[type, ...], what: str
) -> Any:
    if key not in rec:
        raise ArtifactError(path, f"missing field '{key}'")
    value = rec[key]
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise ArtifactError(path, f"field '{key}' must be {what}, got {value!r}")
    return value


def _metric(path: Path, where: str, value: Any) -> None:
    if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)):
        raise ArtifactError(path, f"{where} must be a number or null, got {value!r}")


def load_seed_artifact(path: str | Path, file_seed: int | None = None) -> SeedArtifact:
    """Read and structurally validate one seed artifact."""
    path = Path(path)
    if file_seed is None:
        m = _SEED_FILE.match(path.name)
        file_seed = int(m.group(1)) if m else -1
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ArtifactError(path, f"cannot read: {exc.strerror}") from None
    try:
        rec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ArtifactError(path, f"invalid JSON at line {exc.lineno}: {exc.msg}") from None
    if not isinstance(rec, dict):
        raise ArtifactError(path, f"expected a JSON object, got {type(rec).__name__}")
    _require(path, rec, "seed", (int,), "an integer")
    _require(path, rec, "corpus_sha256", (str,), "a string")
    sources = _require(path, rec, "sources", (list,), "a list of source ids")
    if not all(isinstance(s, str) for s in sources):
        raise ArtifactError(path, "field 'sources' must be a list of strings")
    folds = _require(path, rec, "folds", (list,), "a list")
    for i, fold in enumerate(folds):
        if not isinstance(fold, dict):
            raise ArtifactError(path, f"folds[{i}] must be an object")
        if not isinstance(fold.get("held_out"), str):
            raise ArtifactError(path, f"folds[{i}].held_out must be a string")
        for key in ("plcc", "srocc", "rmse"):
            if key not in fold:
                raise ArtifactError(path, f"folds[{i}] is missing '{key}'")
            _metric(path, f"folds[{i}].{key}", fold[key])
    _metric(path, "field 'mean_plcc'", rec.get("mean_plcc"))
    for key in ("epochs", "batch_size", "num_codecs", "encoder_vocab_version"):
        _require(path, rec, key, (int,), "an integer")
    for key in ("lr", "weight_decay"):
        _require(path, rec, key, (int, float), "a number")
    note = rec.get("note")
    if note is not None and not isinstance(note, str):
        raise ArtifactError(path, f"field 'note' must be a string or null, got {note!r}")
    return SeedArtifact(path=path, file_seed=file_seed, record=rec, sha256=sha256_file(path))


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
            found[seed] = load_seed_artifact(path, seed)
    return found


def seeds_in_dir(loso_dir: str | Path) -> list[int]:
    """Seeds that have an artifact in ``loso_dir``, sorted."""
    return sorted(
        int(m.group(1))
        for p in Path(loso_dir).glob(SEED_ARTIFACT_GLOB)
        if (m := _SEED_FILE.match(p.name))
    )


# --------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def _fmt(x: float | None) -> str:
    return "null" if x is None else f"{x:.4f}"


def check_seed(art: SeedArtifact, thresholds: Thresholds) -> tuple[list[Check], float | None]:
    """Checks for one seed and its recomputed mean PLCC (``None`` when undefined)."""
    seed = art.file_seed
    name = f"seed {seed}"
    rec = art.record
    problems: list[str] = []
    if art.seed != seed:
        problems.append(f"{art.path.name} records seed {art.seed} (duplicated or mismatched seed)")
    if rec.get("note") == DRY_RUN_NOTE:
        problems.append(f"{art.path.name} is a {DRY_RUN_NOTE} artifact")
    elif rec.get("note") is not None:
        problems.append(f"{art.path.name} carries note {rec['note']!r}")
    folds = art.folds
    held = [f.held_out for f in folds]
    sources = rec["sources"]
    for src in sources:
        if held.count(src) == 0:
            problems.append(f"fold for source '{src}' is missing")
        elif held.count(src) > 1:
            problems.append(f"fold for source '{src}' appears {held.count(src)} times")
    for src in sorted(set(held) - set(sources)):
        problems.append(f"fold '{src}' is not one of the corpus sources")
    if len(sources) < 2:
        problems.append(f"only {len(sources)} source(s); LOSO needs at least two")
    for f in folds:
        if not _finite(f.plcc):
            problems.append(
                f"fold '{f.held_out}' PLCC is {'null (undefined)' if f.plcc is None else f.plcc}"
            )
    mean = None
    if folds and all(_finite(f.plcc) for f in folds):
        mean = sum(f.plcc for f in folds) / len(folds)  # type: ignore[misc]
        recorded = rec.get("mean_plcc")
        if not _finite(recorded) or abs(recorded - mean) > _MEAN_TOLERANCE:
            problems.append(
                f"recorded mean_plcc {recorded} disagrees with its folds' mean {mean:.6f}"
            )
    checks = [Check(f"{name} artifact", False, f"{name}: {p}", None, None) for p in problems]
    if mean is None or problems:
        checks.append(
            Check(
                f"{name} mean PLCC",
                False,
                f"{name} mean PLCC {_fmt(mean)} is not usable",
                mean,
                thresholds.per_seed_min,
            )
        )
        return checks, None
    ok = mean >= thresholds.per_seed_min
    worst = min(folds, key=lambda f: f.plcc)  # type: ignore[arg-type, return-value]
    rel = ">=" if ok else "<"
    checks.append(
        Check(
            f"{name} mean PLCC",
            ok,
            f"{name} mean PLCC {mean:.4f} {rel} {thresholds.per_seed_min} "
            f"({len(folds)} folds, worst {worst.held_out} {_fmt(worst.plcc)})",
            mean,
            thresholds.per_seed_min,
        )
    )
    return checks, mean


def _provenance(arts: Sequence[SeedArtifact], expected_sha256: str | None) -> Check:
    problems = []
    for key in PROVENANCE_FIELDS:
        values = {json.dumps(a.record.get(key), sort_keys=True) for a in arts}
        if len(values) > 1:
            per = ", ".join(f"seed {a.file_seed}={a.record.get(key)!r}" for a in arts)
            problems.append(f"seeds disagree on {key}: {per}")
    for a in arts:
        if a.record.get("encoder_vocab_version") != ENCODER_VOCAB_VERSION:
            problems.append(
                f"seed {a.file_seed} used encoder vocabulary v{a.record.get('encoder_vocab_version')}, "
                f"this frreg expects v{ENCODER_VOCAB_VERSION}"
            )
            break
    if expected_sha256 is not None:
        bad = [a.file_seed for a in arts if a.record.get("corpus_sha256") != expected_sha256]
        if bad:
            problems.append(
                f"corpus sha256 {expected_sha256[:12]}… differs from the digest recorded by seed(s) "
                f"{', '.join(map(str, bad))}"
            )
    if not arts:
        problems.append("no seed artifacts to compare")
    if problems:
        return Check("provenance", False, "provenance: " + "; ".join(problems))
    digest = arts[0].record["corpus_sha256"]
    return Check(
        "provenance",
        True,
        f"provenance: {len(arts)} seeds share corpus {digest[:12]}… and settings",
        digest[:12],
    )


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
) -> GateReport:
    """Apply the gate to loaded artifacts (keyed by the seed in their file name)."""
    th = thresholds or Thresholds()
    report = GateReport(thresholds=th)
    checks = report.checks
    expected = list(th.seeds)
    for seed in expected:
        if seed not in artifacts:
            checks.append(
                Check(
                    f"seed {seed} mean PLCC",
                    False,
                    f"seed {seed}: {seed_artifact_name(seed)} is missing",
                    None,
                    th.per_seed_min,
                )
            )
            report.seed_means[seed] = None
            continue
        seed_checks, mean = check_seed(artifacts[seed], th)
        checks.extend(seed_checks)
        report.seed_means[seed] = mean

    n = len(expected)
    checks.append(_compare("ensemble size", n, ">=", ENSEMBLE_SIZE, fmt="d"))
    means = [report.seed_means.get(s) for s in expected]
    if expected and all(_finite(m) for m in means):
        defined: list[float] = [m for m in means if m is not None]
        checks.append(_compare("mean PLCC", sum(defined) / len(defined), ">=", th.mean_plcc_min))
        checks.append(
            _compare("PLCC spread", max(defined) - min(defined), "<=", th.plcc_spread_max)
        )
        checks.append(_compare("per-seed minimum PLCC", min(defined), ">=", th.per_seed_min))
    else:
        missing = ", ".join(str(s) for s, m in zip(expected, means, strict=True) if not _finite(m))
        for name, thr in (
            ("mean PLCC", th.mean_plcc_min),
            ("PLCC spread", th.plcc_spread_max),
            ("per-seed minimum PLCC", th.per_seed_min),
        ):
            message = f"{name} undefined: no usable mean PLCC for seed(s) {missing or '(none)'}"
            checks.append(Check(name, False, message, None, thr))
    present = [artifacts[s] for s in expected if s in artifacts]
    checks.append(_provenance(present, corpus_sha256))
    return report
