"""The verdict file: ``PROMOTE.json`` or ``HOLD.json``, never both.

One schema for every writer (``frreg-validate`` and the pytest plugin): the
gate report, the digest of the corpus file and of every seed artifact, and a
recommendation a reviewer can act on.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from frreg import __version__
from frreg._io import sha256_file, write_json_atomic
from frreg.errors import ArtifactError
from frreg.gate import Check, GateReport, SeedArtifact, Thresholds, evaluate, load_loso_dir
from frreg.schema import HOLD_FILE, PROMOTE_FILE, SCHEMA_VERSION


def corpus_check(
    corpus: str | Path | None, artifacts: Mapping[int, SeedArtifact]
) -> tuple[str | None, str | None]:
    """Locate and hash the corpus the artifacts claim; ``(sha256, problem)``.

    With no explicit path, the path every artifact recorded is used (it must be
    one path). A missing corpus means the digest cannot be verified: HOLD.
    """
    if corpus is None:
        recorded = {a.record.get("corpus") for a in artifacts.values()}
        if len(recorded) != 1 or None in recorded:
            return None, "corpus path not given and the seed artifacts do not agree on one"
        corpus = str(next(iter(recorded)))
    path = Path(corpus)
    if not path.is_file():
        return None, f"corpus {path} not found, so its digest cannot be verified"
    return sha256_file(path), None


def build_verdict(
    report: GateReport,
    artifacts: Mapping[int, SeedArtifact],
    *,
    corpus: str | Path | None,
    corpus_sha256: str | None,
    source: str,
) -> dict[str, Any]:
    """The verdict document (same schema for every writer)."""
    passed = report.passed
    if passed:
        recommendation = (
            f"promote the {len(artifacts)}-seed ensemble trained on corpus {corpus_sha256}"
        )
    else:
        recommendation = "hold: " + "; ".join(c.message for c in report.failures())
    return {
        "schema_version": SCHEMA_VERSION,
        "verdict": report.verdict,
        "recommendation": recommendation,
        "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "written_by": source,
        "frreg_version": __version__,
        "corpus": None if corpus is None else str(corpus),
        "corpus_sha256": corpus_sha256,
        "seed_files": {
            str(seed): {"file": art.path.name, "sha256": art.sha256}
            for seed, art in sorted(artifacts.items())
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
    source: str = "frreg-validate",
) -> tuple[GateReport, Path]:
    """Gate ``loso_dir``, check the corpus digest, write the verdict there.

    Unreadable artifacts raise :class:`~frreg.errors.ArtifactError` after any
    earlier verdict is removed: a stale PROMOTE must not outlive bad inputs.
    """
    try:
        artifacts = load_loso_dir(loso_dir, thresholds.seeds)
    except ArtifactError:
        if Path(loso_dir).is_dir():
            clear_verdict(loso_dir)
        raise
    digest, problem = corpus_check(corpus, artifacts)
    report = evaluate(artifacts, thresholds, corpus_sha256=digest)
    if problem is not None:
        report.checks.append(Check("corpus", False, f"corpus: {problem}"))
    else:
        report.checks.append(
            Check("corpus", True, f"corpus: sha256 {digest[:12]}… verified", digest)
        )
    if corpus is None and problem is None:
        corpus = next(iter(artifacts.values())).record.get("corpus")
    verdict = build_verdict(report, artifacts, corpus=corpus, corpus_sha256=digest, source=source)
    return report, write_verdict(loso_dir, verdict)
