"""Load and validate a Phase A per-frame corpus (JSONL) into model inputs.

Each line is one frame: ``src``, ``encoder``, ``cq``, ``frame_index``,
``vmaf`` and the six canonical features; extra columns are kept in
:attr:`Corpus.frame` but ignored by the model. Anything the trainer could not
use is rejected with a :class:`~frreg.errors.CorpusError` that reads
``PATH:LINE: problem``; no row is ever silently dropped.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from frreg.corpus.sidecar import check_corpus_complete
from frreg.errors import CorpusError
from frreg.schema import (
    CANONICAL_6,
    ENCODER_VOCAB,
    KEY_COLUMNS,
    NEUTRAL_NORM,
    NUM_CODECS,
    PRESET_COLUMN,
    PRESET_LADDERS,
    REQUIRED_COLUMNS,
    TARGET,
    UNKNOWN_ENCODER,
)

_NUMERIC_COLUMNS = (TARGET, *CANONICAL_6)
_SLOT = {name: i for i, name in enumerate(ENCODER_VOCAB)}


@dataclass(frozen=True)
class Corpus:
    """A validated corpus and the arrays the trainer consumes.

    Row order is file order. ``features`` holds the raw (unscaled) canonical
    six; ``codec`` holds the 14-wide codec block; ``groups`` the source id of
    every row.
    """

    path: Path
    sha256: str
    frame: pd.DataFrame
    features: np.ndarray
    codec: np.ndarray
    target: np.ndarray
    groups: np.ndarray
    sources: tuple[str, ...]
    unknown_encoders: dict[str, int] = field(default_factory=dict)
    constant_target_sources: tuple[str, ...] = ()

    @property
    def n_rows(self) -> int:
        return len(self.target)

    def warnings(self) -> list[str]:
        """Human-readable notes about rows the loader accepted but a user should know of."""
        notes = []
        if self.unknown_encoders:
            listed = ", ".join(f"{k} ({v} rows)" for k, v in sorted(self.unknown_encoders.items()))
            notes.append(
                f"{self.path}: encoders outside vocabulary v2 mapped to the "
                f"'{UNKNOWN_ENCODER}' slot: {listed}"
            )
        for src in self.constant_target_sources:
            notes.append(
                f"{self.path}: source '{src}' has a constant '{TARGET}'; "
                "its held-out PLCC/SROCC are undefined and the gate will HOLD"
            )
        return notes


def _row_key(row: dict[str, Any]) -> str:
    return f"{row.get('src')}/{row.get('encoder')}/cq{row.get('cq')}/frame {row.get('frame_index')}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_row(path: Path, lineno: int, row: Any) -> None:
    if not isinstance(row, dict):
        raise CorpusError(path, lineno, f"expected a JSON object, got {type(row).__name__}")
    for col in REQUIRED_COLUMNS:
        if col not in row:
            raise CorpusError(path, lineno, f"missing column '{col}'")
    for col in ("src", "encoder"):
        if not isinstance(row[col], str) or not row[col]:
            raise CorpusError(
                path, lineno, f"column '{col}' must be a non-empty string, got {row[col]!r}"
            )
    cq = row["cq"]
    if not _is_number(cq) or not math.isfinite(cq):
        raise CorpusError(path, lineno, f"column 'cq' must be a finite number, got {cq!r}")
    fi = row["frame_index"]
    if not isinstance(fi, int) or isinstance(fi, bool) or fi < 0:
        raise CorpusError(
            path, lineno, f"column 'frame_index' must be a non-negative integer, got {fi!r}"
        )
    for col in _NUMERIC_COLUMNS:
        value = row[col]
        if value is None:
            problem = "is null"
        elif not _is_number(value):
            problem = f"is not a number ({value!r})"
        elif math.isnan(value):
            problem = "is NaN"
        elif math.isinf(value):
            problem = "is infinite"
        else:
            continue
        raise CorpusError(path, lineno, f"column '{col}' {problem} (row key {_row_key(row)})")


def _preset_norm(path: Path, lineno: int, row: dict[str, Any]) -> float:
    preset = row.get(PRESET_COLUMN)
    if preset is None:
        return NEUTRAL_NORM
    ladder = PRESET_LADDERS.get(row["encoder"])
    if ladder is None:  # unknown encoder: nothing to place the preset on
        return NEUTRAL_NORM
    name = str(preset)
    if name not in ladder:
        raise CorpusError(
            path,
            lineno,
            f"preset {preset!r} is not a {row['encoder']} preset (allowed: {', '.join(ladder)})",
        )
    return ladder.index(name) / (len(ladder) - 1)


def parse_corpus_lines(path: Path, data: bytes) -> list[dict[str, Any]]:
    """Parse and validate JSONL bytes; return the rows in file order."""
    if not data.strip():
        raise CorpusError(path, None, "corpus is empty (no rows)")
    lines = data.split(b"\n")
    torn_tail = not data.endswith(b"\n")
    rows: list[dict[str, Any]] = []
    seen: dict[tuple[Any, ...], int] = {}
    for lineno, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            if torn_tail and lineno == len(lines):
                raise CorpusError(
                    path,
                    lineno,
                    "torn last line (no newline, not valid JSON): was the writer interrupted?",
                ) from None
            if isinstance(exc, UnicodeDecodeError):
                raise CorpusError(
                    path, lineno, f"not UTF-8 text (byte {exc.start + 1} of the line)"
                ) from None
            raise CorpusError(
                path, lineno, f"invalid JSON: {exc.msg} at column {exc.colno}"
            ) from None
        _check_row(path, lineno, row)
        key = tuple(row[c] for c in KEY_COLUMNS)
        if key in seen:
            raise CorpusError(
                path, lineno, f"duplicate row key {_row_key(row)} (first at line {seen[key]})"
            )
        seen[key] = lineno
        row["_line"] = lineno
        rows.append(row)
    return rows


def load_corpus(path: str | Path) -> Corpus:
    """Read, validate and encode a corpus file.

    Raises :class:`~frreg.errors.CorpusError` (exit code 2) for a missing or
    unreadable file, any bad row, or fewer than two sources.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CorpusError(path, None, "corpus not found") from None
    except OSError as exc:
        raise CorpusError(path, None, f"cannot read corpus: {exc.strerror}") from None
    # Hash the exact bytes we parse, so the digest always describes the rows used.
    sha256 = hashlib.sha256(data).hexdigest()
    # A corpus whose producer run failed or was cut short is refused before parsing.
    check_corpus_complete(path, sha256=sha256)
    rows = parse_corpus_lines(path, data)

    sources = tuple(sorted({r["src"] for r in rows}))
    if len(sources) < 2:
        raise CorpusError(
            path,
            None,
            f"leave-one-source-out needs at least two sources, found {len(sources)}: "
            f"{', '.join(sources)}",
        )

    n = len(rows)
    features = np.array([[r[c] for c in CANONICAL_6] for r in rows], dtype=np.float64)
    target = np.array([r[TARGET] for r in rows], dtype=np.float64)
    groups = np.array([r["src"] for r in rows], dtype=object)

    codec = np.zeros((n, NUM_CODECS), dtype=np.float64)
    unknown: Counter[str] = Counter()
    cqs = np.array([float(r["cq"]) for r in rows])
    cq_min, cq_max = cqs.min(), cqs.max()
    for i, r in enumerate(rows):
        slot = _SLOT.get(r["encoder"])
        if slot is None or r["encoder"] == UNKNOWN_ENCODER:
            unknown[r["encoder"]] += 1
            slot = _SLOT[UNKNOWN_ENCODER]
        codec[i, slot] = 1.0
        codec[i, len(ENCODER_VOCAB)] = _preset_norm(path, r["_line"], r)
    codec[:, len(ENCODER_VOCAB) + 1] = (
        (cqs - cq_min) / (cq_max - cq_min) if cq_max > cq_min else NEUTRAL_NORM
    )

    frame = pd.DataFrame.from_records(rows)
    constant = tuple(s for s in sources if np.ptp(target[groups == s]) == 0.0)
    return Corpus(
        path=path,
        sha256=sha256,
        frame=frame,
        features=features,
        codec=codec,
        target=target,
        groups=groups,
        sources=sources,
        unknown_encoders=dict(unknown),
        constant_target_sources=constant,
    )
