"""Failed audits are remembered until the artifacts change.

A partial audit (``--audit K``) retrains the jobs a permutation seeded by the
artifacts' content picks (:func:`frreg.gate.evidence.audit_selection`), so a
re-run retrains the same jobs; a smaller or larger ``K`` draws a prefix of the
same permutation. What this module adds: a job that once failed its audit fails
every later verdict on the same content without being retrained, whatever ``K``
is asked for, so lowering ``K`` after a HOLD does not reach a PROMOTE.

The record is :data:`AUDIT_FAILURES_FILE` beside the seed files, keyed by a
digest of the job's content (:func:`job_key`). It is a guard against re-rolling,
not a secret: whoever may write the seed files may delete it, which is why the
default audit retrains every job (``--audit all``), where nothing is left to
chance or to remember.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Final

from frreg._io import write_json_atomic

#: Beside the seed files: the content keys of jobs that failed an audit.
AUDIT_FAILURES_FILE: Final = "frreg-audit-failures.json"
#: The record's ``schema`` field.
AUDIT_FAILURES_SCHEMA: Final = "frreg-audit-failures/1"
#: No more entries are kept (the oldest go first): the file stays small.
MAX_ENTRIES: Final = 10_000


def job_key(
    corpus_sha256: str,
    seed: int,
    held_out: str,
    predictions_content: str | None,
    weights_content: str | None,
    recipe: str,
) -> str:
    """A (seed, fold) job by what it is: the corpus, the seed's predictions and weights
    as numbers, the recipe, and which fold."""
    text = repr((corpus_sha256, seed, held_out, predictions_content, weights_content, recipe))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _path(loso_dir: str | Path) -> Path:
    return Path(loso_dir) / AUDIT_FAILURES_FILE


def remembered(loso_dir: str | Path) -> dict[str, str]:
    """The failed jobs on record: key -> the message of the audit that failed it. An
    unreadable record counts as empty (it only ever adds failures)."""
    path = _path(loso_dir)
    if path.is_symlink() or not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    failed = doc.get("failed") if isinstance(doc, dict) else None
    if not isinstance(failed, dict):
        return {}
    return {str(k): str(v) for k, v in failed.items()}


def remember(loso_dir: str | Path, failures: Mapping[str, str]) -> None:
    """Add ``failures`` (key -> message) to the record, atomically. A directory that
    cannot be written is left alone: the verdict already HOLDs on the failure."""
    if not failures:
        return
    merged = {**remembered(loso_dir), **failures}
    keep = dict(list(merged.items())[-MAX_ENTRIES:])
    with contextlib.suppress(OSError):
        write_json_atomic(_path(loso_dir), {"schema": AUDIT_FAILURES_SCHEMA, "failed": keep})


def known_failures(loso_dir: str | Path, keys: Iterable[str]) -> dict[str, str]:
    """Which of ``keys`` failed an audit before: key -> its message."""
    record = remembered(loso_dir)
    return {k: record[k] for k in keys if k in record}
