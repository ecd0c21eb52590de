"""The verdict file: ``PROMOTE.json`` or ``HOLD.json``, never both.

One function decides (:func:`decide`) and one builds the document
(:func:`build_verdict`); ``frreg-validate`` and the pytest plugin's controller
both go through :func:`validate`, so the same artifacts, corpus and thresholds
give the same verdict content whoever wrote it (only ``created_at`` and
``written_by`` differ).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from frreg import __version__
from frreg._io import sha256_file, write_json_atomic
from frreg.gate.checks import (
    CORPUS_CHECK,
    Check,
    GateReport,
    SeedArtifact,
    Thresholds,
    evaluate,
    load_loso_dir,
)
from frreg.schema import HOLD_FILE, PROMOTE_FILE, SCHEMA_VERSION


@dataclass(frozen=True)
class Decision:
    """A gate report and the inputs it judged."""

    report: GateReport
    artifacts: Mapping[int, SeedArtifact]
    corpus: str | None
    corpus_sha256: str | None


def corpus_check(
    corpus: str | Path | None, artifacts: Mapping[int, SeedArtifact]
) -> tuple[str | None, str | None, str | None]:
    """Locate and hash the corpus the artifacts claim: ``(path, sha256, problem)``.

    With no explicit path, the path every artifact recorded is used (it must be
    one path). A missing corpus means the digest cannot be verified: HOLD.
    """
    if corpus is None:
        recorded = {a.record.corpus for a in artifacts.values()}
        if len(recorded) != 1:
            return None, None, "corpus path not given and the seed artifacts do not agree on one"
        corpus = next(iter(recorded))
    path = Path(corpus)
    if not path.is_file():
        return str(corpus), None, f"corpus {path} not found, so its digest cannot be verified"
    return str(corpus), sha256_file(path), None


def decide(
    loso_dir: str | Path,
    thresholds: Thresholds,
    *,
    corpus: str | Path | None = None,
    extra_checks: Sequence[Check] = (),
) -> Decision:
    """Gate ``loso_dir`` against the corpus, plus any checks the caller adds about its run."""
    artifacts = load_loso_dir(loso_dir, thresholds.seeds)
    path, digest, problem = corpus_check(corpus, artifacts)
    report = evaluate(artifacts, thresholds, corpus_sha256=digest)
    if problem is not None or digest is None:
        report.checks.append(Check(CORPUS_CHECK, False, f"corpus: {problem}"))
    else:
        report.checks.append(
            Check(CORPUS_CHECK, True, f"corpus: sha256 {digest[:12]}… verified", digest)
        )
    report.checks.extend(extra_checks)
    return Decision(report, artifacts, path, digest)


def build_verdict(decision: Decision, *, written_by: str) -> dict[str, Any]:
    """The verdict document (one schema for every writer)."""
    report = decision.report
    if report.passed:
        recommendation = (
            f"promote the {len(decision.artifacts)}-seed ensemble trained on corpus "
            f"{decision.corpus_sha256}"
        )
    else:
        recommendation = "hold: " + "; ".join(c.message for c in report.failures())
    return {
        "schema_version": SCHEMA_VERSION,
        "verdict": report.verdict,
        "recommendation": recommendation,
        "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "written_by": written_by,
        "frreg_version": __version__,
        "corpus": decision.corpus,
        "corpus_sha256": decision.corpus_sha256,
        "seed_files": {
            str(seed): {"file": art.path.name, "sha256": art.sha256}
            for seed, art in sorted(decision.artifacts.items())
        },
        "gate": report.to_dict(),
    }


def write_verdict(out_dir: str | Path, verdict: Mapping[str, Any]) -> Path:
    """Write the verdict atomically and remove a stale verdict of the other kind.

    The stale file goes first: an interruption between the two steps leaves no
    verdict at all, never a PROMOTE beside a newer HOLD.
    """
    out = Path(out_dir)
    promote = verdict["verdict"] == "PROMOTE"
    target = out / (PROMOTE_FILE if promote else HOLD_FILE)
    stale = out / (HOLD_FILE if promote else PROMOTE_FILE)
    stale.unlink(missing_ok=True)
    write_json_atomic(target, verdict)
    return target


def clear_verdict(out_dir: str | Path) -> None:
    """Remove any verdict in ``out_dir`` (before a run whose outcome is not yet known)."""
    for name in (PROMOTE_FILE, HOLD_FILE):
        (Path(out_dir) / name).unlink(missing_ok=True)


def validate(
    loso_dir: str | Path,
    thresholds: Thresholds,
    *,
    corpus: str | Path | None = None,
    written_by: str = "frreg-validate",
    extra_checks: Sequence[Check] = (),
) -> tuple[Decision, Path]:
    """Gate ``loso_dir``, check the corpus digest, write the verdict there.

    Any earlier verdict is removed first, so unreadable artifacts (which raise
    :class:`~frreg.errors.ArtifactError`) never leave a stale PROMOTE behind.
    """
    if Path(loso_dir).is_dir():
        clear_verdict(loso_dir)
    decision = decide(loso_dir, thresholds, corpus=corpus, extra_checks=extra_checks)
    return decision, write_verdict(loso_dir, build_verdict(decision, written_by=written_by))
