"""Load and validate a Phase A per-frame corpus (JSONL) into model inputs.

Each line is one frame: ``src``, ``encoder``, ``cq``, ``frame_index``,
``vmaf`` and the six canonical features; extra columns are kept in
:attr:`Corpus.columns` but ignored by the model. Anything the trainer could not
use is rejected with a :class:`~frreg.errors.CorpusError` that reads
``PATH:LINE: problem``; no row is ever silently dropped. That includes files
that are not UTF-8 JSONL at all (compressed, UTF-16, a device), values JSON
allows but no corpus holds (duplicate keys, 400-digit integers, lone
surrogates, deep nesting), ``vmaf`` outside [0, 100], source ids outside
:mod:`frreg.corpus.ids`'s rule and sources LOSO cannot score (one row).
``docs/corpus.md`` lists every refusal.
"""

from __future__ import annotations

import hashlib
import json
import math
import stat
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

from frreg.corpus.ids import SRC_ID_RULE, src_id_key, src_id_problem
from frreg.corpus.sidecar import check_corpus_complete
from frreg.errors import CorpusError
from frreg.schema import (
    CANONICAL_6,
    CRF_NORM_SLOT,
    ENCODER_VOCAB,
    KEY_COLUMNS,
    NEUTRAL_NORM,
    NUM_CODECS,
    PRESET_COLUMN,
    PRESET_LADDERS,
    PRESET_NORM_FIXED,
    PRESET_NORM_LADDER,
    PRESET_NORM_SLOT,
    REQUIRED_COLUMNS,
    TARGET,
    UNKNOWN_ENCODER,
)

_NUMERIC_COLUMNS = (TARGET, *CANONICAL_6)
_SLOT = {name: i for i, name in enumerate(ENCODER_VOCAB)}
#: Text columns with few distinct values, stored once per value.
_SHARED_COLUMNS = ("src", "encoder", PRESET_COLUMN)


@dataclass(frozen=True)
class Corpus:
    """A validated corpus and the arrays the trainer consumes.

    Row order is file order. ``features`` holds the raw (unscaled) canonical
    six; ``codec`` holds the 14-wide codec block as the ADR-0303 recipe fills it
    (``preset_norm`` 0.5 on every row, as the fork's trainer does; another
    convention: :meth:`codec_for`); ``preset_position`` each row's preset on its
    encoder's ladder in [0, 1] (0.5 without one); ``groups`` the source id of every
    row; ``columns`` every column of the file, extra ones included, as one array
    each (:func:`_column` says which dtype).
    """

    path: Path
    sha256: str
    columns: Mapping[str, np.ndarray]
    features: np.ndarray
    codec: np.ndarray
    target: np.ndarray
    groups: np.ndarray
    sources: tuple[str, ...]
    preset_position: np.ndarray
    unknown_encoders: dict[str, int] = field(default_factory=dict)
    constant_target_sources: tuple[str, ...] = ()

    @property
    def n_rows(self) -> int:
        return len(self.target)

    def codec_for(self, preset_norm: str) -> np.ndarray:
        """The codec block under a ``preset_norm`` convention
        (:data:`~frreg.schema.PRESET_NORM_MODES`): ``fixed`` is :attr:`codec`; ``ladder``
        puts each row's :attr:`preset_position` in the ``preset_norm`` column."""
        if preset_norm == PRESET_NORM_FIXED:
            return self.codec
        if preset_norm != PRESET_NORM_LADDER:
            raise ValueError(f"unknown preset_norm convention {preset_norm!r}")
        codec = self.codec.copy()
        codec[:, PRESET_NORM_SLOT] = self.preset_position
        return codec

    def row_keys(self, rows: np.ndarray | None = None) -> list[tuple[Any, ...]]:
        """The key (``src``, ``encoder``, ``cq``, ``frame_index``) of every row, or of
        ``rows``, in file order, as plain Python values: ``cq`` is an ``int`` when every
        cq in the file is one (so it prints as the file spells it)."""
        cols = (self.columns[c] if rows is None else self.columns[c][rows] for c in KEY_COLUMNS)
        return list(zip(*(c.tolist() for c in cols), strict=True))

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


#: A row is a few hundred bytes; a longer line is not a row, and refusing it
#: keeps a damaged file from turning into one unbounded parse.
MAX_LINE_BYTES: Final = 1 << 20
#: 64-bit integers have at most 19 digits. A longer integer literal cannot be a
#: cq, a frame index or a metric (and Python refuses to parse 4300+ digits).
MAX_INT_DIGITS: Final = 19
#: libvmaf clips ``vmaf_v0.6.1`` scores to [0, 100] and prints 6 decimals; a
#: ``vmaf`` further outside than this is not a VMAF score (another scale,
#: another column, corruption) and would skew every fold it lands in.
VMAF_RANGE: Final = (0.0, 100.0)
VMAF_TOLERANCE: Final = 1e-3
#: PLCC and SROCC of a held-out source are undefined below this many rows.
MIN_ROWS_PER_SOURCE: Final = 2

#: Leading bytes of files that are not UTF-8 JSONL, and what they are.
_MAGIC: Final = (
    (b"\x1f\x8b", "gzip-compressed; decompress it first (gunzip -k)"),
    (b"BZh", "bzip2-compressed; decompress it first (bunzip2 -k)"),
    (b"\xfd7zXZ\x00", "xz-compressed; decompress it first (unxz -k)"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed; decompress it first (unzstd)"),
    (b"PK\x03\x04", "a zip archive; extract the JSONL first"),
    (b"\xff\xfe\x00\x00", "UTF-32 text (byte-order mark); convert it to UTF-8"),
    (b"\x00\x00\xfe\xff", "UTF-32 text (byte-order mark); convert it to UTF-8"),
    (b"\xff\xfe", "UTF-16 text (byte-order mark); convert it to UTF-8"),
    (b"\xfe\xff", "UTF-16 text (byte-order mark); convert it to UTF-8"),
    (b"\xef\xbb\xbf", "UTF-8 with a byte-order mark; write it without one"),
)


class _LineProblem(Exception):
    """Raised from inside the JSON parser's hooks; becomes ``CorpusError(path, line, ...)``."""


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        dup = next(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)
        raise _LineProblem(f"duplicate key {dup!a} in one object (JSON would keep only the last)")
    return obj


def _integer(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise _LineProblem(
            f"integer literal with {digits} digits (at most {MAX_INT_DIGITS}; no corpus value "
            "is that large)"
        )
    return int(text)


_decode = json.JSONDecoder(object_pairs_hook=_object, parse_int=_integer).decode


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return any("\ud800" <= ch <= "\udfff" for ch in value)
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


def _row_key(row: dict[str, Any]) -> str:
    return ascii(
        f"{row.get('src')}/{row.get('encoder')}/cq{row.get('cq')}/frame {row.get('frame_index')}"
    )[1:-1]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_row(path: Path, lineno: int, row: Any, checked_ids: set[str]) -> None:
    if not isinstance(row, dict):
        raise CorpusError(path, lineno, f"expected a JSON object, got {type(row).__name__}")
    for col in REQUIRED_COLUMNS:
        if col not in row:
            raise CorpusError(path, lineno, f"missing column '{col}'")
    for col in ("src", "encoder"):
        if not isinstance(row[col], str) or not row[col]:
            raise CorpusError(
                path, lineno, f"column '{col}' must be a non-empty string, got {row[col]!a}"
            )
    src = row["src"]
    if src not in checked_ids:  # each id once: the rule walks every character
        problem = src_id_problem(src)
        if problem is not None:
            raise CorpusError(path, lineno, f"column 'src' {src!a} {problem}; {SRC_ID_RULE}")
        checked_ids.add(src)
    cq = row["cq"]
    if not _is_number(cq) or not math.isfinite(cq) or cq < 0:
        raise CorpusError(
            path, lineno, f"column 'cq' must be a finite non-negative number, got {cq!a}"
        )
    fi = row["frame_index"]
    if not isinstance(fi, int) or isinstance(fi, bool) or fi < 0:
        raise CorpusError(
            path, lineno, f"column 'frame_index' must be a non-negative integer, got {fi!a}"
        )
    for col in _NUMERIC_COLUMNS:
        value = row[col]
        if value is None:
            problem = "is null"
        elif not _is_number(value):
            problem = f"is not a number ({value!a})"
        elif math.isnan(value):
            problem = "is NaN"
        elif math.isinf(value):
            problem = "is infinite"
        else:
            continue
        raise CorpusError(path, lineno, f"column '{col}' {problem} (row key {_row_key(row)})")
    lo, hi = VMAF_RANGE
    if not lo - VMAF_TOLERANCE <= row[TARGET] <= hi + VMAF_TOLERANCE:
        raise CorpusError(
            path,
            lineno,
            f"column '{TARGET}' is {row[TARGET]!r}, outside [{lo:g}, {hi:g}] "
            f"(tolerance {VMAF_TOLERANCE:g}; row key {_row_key(row)})",
        )


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
            f"preset {preset!a} is not a {row['encoder']} preset (allowed: {', '.join(ladder)})",
        )
    return ladder.index(name) / (len(ladder) - 1)


def _check_bytes(path: Path, data: bytes) -> None:
    """Refuse, before parsing, bytes that are not UTF-8 JSONL at all."""
    if not data.strip():
        raise CorpusError(path, None, "corpus is empty (no rows)")
    for magic, what in _MAGIC:
        if data.startswith(magic):
            raise CorpusError(path, None, f"not a JSONL corpus: the file is {what}")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise CorpusError(
            path,
            data.count(b"\n", 0, nul) + 1,
            "NUL byte: not UTF-8 text (UTF-16/UTF-32 without a byte-order mark, or binary?)",
        )


def _parse_line(path: Path, lineno: int, raw: bytes, last: bool) -> Any:
    if len(raw) > MAX_LINE_BYTES:
        raise CorpusError(
            path,
            lineno,
            f"line is {len(raw)} bytes, longer than any row (limit {MAX_LINE_BYTES}); "
            "is this a JSONL corpus?",
        )
    try:
        text = raw.decode("utf-8")
        row = _decode(text)
    except _LineProblem as exc:
        raise CorpusError(path, lineno, str(exc)) from None
    except RecursionError:
        raise CorpusError(path, lineno, "JSON nested too deeply to be a corpus row") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        if last:
            raise CorpusError(
                path,
                lineno,
                "torn last line (no newline, not valid JSON): was the writer interrupted?",
            ) from None
        if isinstance(exc, UnicodeDecodeError):
            raise CorpusError(
                path, lineno, f"not UTF-8 text (byte {exc.start + 1} of the line)"
            ) from None
        raise CorpusError(path, lineno, f"invalid JSON: {exc.msg} at column {exc.colno}") from None
    if "\\u" in text and _has_lone_surrogate(row):  # only an escape can make one
        raise CorpusError(
            path, lineno, "a string holds a lone surrogate escape (such as \\ud800): not text"
        )
    return row


def parse_corpus_lines(path: Path, data: bytes) -> list[dict[str, Any]]:
    """Parse and validate JSONL bytes; return the rows in file order."""
    _check_bytes(path, data)
    torn_tail = not data.endswith(b"\n")
    n_lines = data.count(b"\n") + 1
    rows: list[dict[str, Any]] = []
    # Memory is what limits a corpus: keys are kept in a set (the first line
    # of a duplicate is looked up only when there is one), and each distinct
    # src/encoder/preset text is one shared object instead of one per row.
    seen: set[tuple[Any, ...]] = set()
    shared: dict[str, str] = {}
    checked_ids: set[str] = set()
    start = 0
    for lineno in range(1, n_lines + 1):
        end = data.find(b"\n", start)
        raw = data[start:] if end < 0 else data[start:end]
        start = end + 1
        if not raw.strip():
            continue
        row = _parse_line(path, lineno, raw, torn_tail and lineno == n_lines)
        _check_row(path, lineno, row, checked_ids)
        for col in _SHARED_COLUMNS:
            value = row.get(col)
            if isinstance(value, str):
                row[col] = shared.setdefault(value, value)
        key = tuple(row[c] for c in KEY_COLUMNS)
        if key in seen:
            first = next(r["_line"] for r in rows if tuple(r[c] for c in KEY_COLUMNS) == key)
            raise CorpusError(
                path, lineno, f"duplicate row key {_row_key(row)} (first at line {first})"
            )
        seen.add(key)
        row["_line"] = lineno
        rows.append(row)
    return rows


def _check_sources(path: Path, rows: list[dict[str, Any]], sources: tuple[str, ...]) -> None:
    """Refuse sources LOSO cannot score, and ids that differ only in Unicode form."""
    if len(sources) < 2:
        raise CorpusError(
            path,
            None,
            f"leave-one-source-out needs at least two sources, found {len(sources)}: "
            f"{', '.join(ascii(s)[1:-1] for s in sources)}",
        )
    first_line: dict[str, int] = {}
    counts: Counter[str] = Counter()
    for r in rows:
        counts[r["src"]] += 1
        first_line.setdefault(r["src"], r["_line"])
    by_key: dict[str, str] = {}
    for src in sorted(sources, key=first_line.__getitem__):
        other = by_key.setdefault(src_id_key(src), src)
        if other != src:
            raise CorpusError(
                path,
                first_line[src],
                f"source ids {src!a} and {other!a} (line {first_line[other]}) are the same "
                "name in different Unicode forms (NFC/NFD); write them identically",
            )
    for src in sorted(sources, key=first_line.__getitem__):
        if counts[src] < MIN_ROWS_PER_SOURCE:
            raise CorpusError(
                path,
                first_line[src],
                f"source {src!a} has {counts[src]} row; a held-out source's PLCC/SROCC "
                f"need at least {MIN_ROWS_PER_SOURCE} rows (LOSO scores every source)",
            )


def load_corpus(path: str | Path) -> Corpus:
    """Read, validate and encode a corpus file.

    Raises :class:`~frreg.errors.CorpusError` (exit code 2) for a missing,
    unreadable or non-regular file, any bad row, fewer than two sources, a
    source with fewer than :data:`MIN_ROWS_PER_SOURCE` rows, or source ids
    that differ only in Unicode normal form. Time and memory are linear in
    the number of rows.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):
            what = "a directory" if stat.S_ISDIR(mode) else "not a regular file (a device or pipe)"
            raise CorpusError(path, None, f"corpus is {what}; a corpus is a JSONL file")
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
    del data  # the rows hold what is needed; the bytes are as large again

    sources = tuple(sorted({r["src"] for r in rows}))
    _check_sources(path, rows, sources)

    n = len(rows)
    features = np.array([[r[c] for c in CANONICAL_6] for r in rows], dtype=np.float64)
    target = np.array([r[TARGET] for r in rows], dtype=np.float64)
    groups = np.array([r["src"] for r in rows], dtype=object)

    codec = np.zeros((n, NUM_CODECS), dtype=np.float64)
    codec[:, PRESET_NORM_SLOT] = NEUTRAL_NORM  # the fork trainer's preset_norm
    presets = np.empty(n, dtype=np.float64)
    unknown: Counter[str] = Counter()
    cqs = np.array([float(r["cq"]) for r in rows])
    cq_min, cq_max = cqs.min(), cqs.max()
    for i, r in enumerate(rows):
        slot = _SLOT.get(r["encoder"])
        if slot is None or r["encoder"] == UNKNOWN_ENCODER:
            unknown[r["encoder"]] += 1
            slot = _SLOT[UNKNOWN_ENCODER]
        codec[i, slot] = 1.0
        presets[i] = _preset_norm(path, r["_line"], r)
    codec[:, CRF_NORM_SLOT] = (
        (cqs - cq_min) / (cq_max - cq_min) if cq_max > cq_min else NEUTRAL_NORM
    )

    columns = _columns(rows)
    del rows
    return Corpus(
        path=path,
        sha256=sha256,
        columns=columns,
        features=features,
        codec=codec,
        preset_position=presets,
        target=target,
        groups=groups,
        sources=sources,
        unknown_encoders=dict(unknown),
        constant_target_sources=_constant_sources(sources, groups, target),
    )


def _constant_sources(
    sources: tuple[str, ...], groups: np.ndarray, target: np.ndarray
) -> tuple[str, ...]:
    """Sources whose every ``vmaf`` is the same, in one pass (not one pass per source)."""
    index = {s: i for i, s in enumerate(sources)}
    which = np.fromiter((index[g] for g in groups), dtype=np.intp, count=len(groups))
    lo = np.full(len(sources), np.inf)
    hi = np.full(len(sources), -np.inf)
    np.minimum.at(lo, which, target)
    np.maximum.at(hi, which, target)
    return tuple(s for s, a, b in zip(sources, lo, hi, strict=True) if a == b)


def _columns(rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Every column of ``rows`` (first-seen order) as one array; a row without an extra
    column holds ``None`` there."""
    names = dict.fromkeys(k for r in rows for k in r if k != "_line")
    return {name: _column([r.get(name) for r in rows]) for name in names}


def _column(values: list[Any]) -> np.ndarray:
    """int64 when every value is an integer that fits, float64 when every value is a
    number, else an object array of the values as parsed (strings, ``None``, lists)."""
    if all(_is_number(v) for v in values):
        if all(isinstance(v, int) for v in values):
            try:
                return np.array(values, dtype=np.int64)
            except OverflowError:  # 19 digits can exceed int64: keep the exact integers
                return np.fromiter(values, dtype=object, count=len(values))
        return np.array(values, dtype=np.float64)
    return np.fromiter(values, dtype=object, count=len(values))
