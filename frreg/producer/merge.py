"""Cells carried from one corpus into another: appending to ``--out``, merging shards.

A producer manifest records every cell its corpus holds (key, (src, encoder, cq),
preset, frames, the ffmpeg and libvmaf that made it) and the sources they were made
from. That record is what lets a corpus take another's cells without running them again:

* a producer run onto an existing ``OUT`` keeps the cells already there and adds its
  own (the fork's producer appends to ``--out``; frreg carries whole cells, so a rerun
  adds nothing and no row is there twice);
* ``frreg-corpus --merge SHARD... --out OUT`` combines corpora produced separately
  (one per machine, as the fork's training kit does) into one.

:func:`read_existing` reads ``OUT``'s record, :func:`read_shard` a shard's (every row
checked against its manifest), and :func:`combine` checks the union before anything
is written: one cell per (src, encoder, cq) — the same cell (one key) twice is kept
once, another cell there is refused —, one clip per source id and one id per clip,
one libvmaf build unless allowed, and no recorded gap dropped without
``--allow-missing``. Every refusal is one :class:`~frreg.errors.InputError` line
naming the file and the option that would do it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeGuard

from frreg._io import atomic_writer, sha256_file
from frreg.corpus.ids import src_id_key
from frreg.corpus.sidecar import (
    check_corpus_complete,
    manifest_path,
    parts_dir,
    read_producer_manifest,
)
from frreg.errors import CorpusError, InputError
from frreg.producer.cells import (
    BITSTREAM_BYTES_COLUMN,
    ENC_TIME_COLUMN,
    NONDETERMINISTIC_COLUMNS,
    POOLED_TOLERANCE,
    PRODUCER_VERSION,
    ROW_COLUMNS,
    Cell,
    part_name,
    read_part_header,
    vmaf_log_path,
)
from frreg.schema import SCHEMA_VERSION, TARGET

#: The manifest entry fields a done cell carries into the corpus it is merged into.
_DONE_FIELDS: Final = (
    BITSTREAM_BYTES_COLUMN,
    ENC_TIME_COLUMN,
    "vmaf_mean",
    "produced_at",
    "ffmpeg_version",
    "libvmaf_version",
    "worker",
)
#: What a corpus's rows are keyed by; a cell is one (src, encoder, cq) of them.
Slot = tuple[str, str, int]

#: How refusals about ``OUT``'s own record end: what the user can do instead.
REPLACE_HINT: Final = (
    "pass --replace to replace the corpus with this run's cells, or write to another --out"
)


# --------------------------------------------------------------------------
# What a corpus records
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedCell:
    """A finished cell as a producer manifest records it, carried into another corpus.

    Quacks like a :class:`~frreg.producer.cells.Cell` where assembly and the manifest
    need it (``key``, ``label``, ``sort_key``, ``frames``, ``record()``); ``entry`` is
    its manifest entry (sizes, times, libvmaf's mean, the versions that made it).
    """

    key: str
    src: str
    encoder: str
    cq: int
    preset: str | None
    frames: int
    entry: Mapping[str, Any]
    #: The corpus it was read from.
    origin: Path

    @property
    def label(self) -> str:
        """``testsrc2_30fps/libx264/cq30``."""
        return f"{self.src}/{self.encoder}/cq{self.cq}"

    @property
    def sort_key(self) -> Slot:
        """Its (src, encoder, cq): the order cells appear in, and what no two cells share."""
        return (self.src, self.encoder, self.cq)

    def record(self) -> dict[str, Any]:
        """The cell's identity, as :meth:`Cell.record` gives it."""
        return {
            "key": self.key,
            "src": self.src,
            "encoder": self.encoder,
            "cq": self.cq,
            "preset": self.preset,
            "frames": self.frames,
        }

    def manifest_entry(self, corpus: Path) -> dict[str, Any]:
        """Its entry in ``corpus``'s manifest: done, its part in ``corpus``'s parts."""
        entry: dict[str, Any] = {**self.record(), "status": "done"}
        for name in _DONE_FIELDS:
            if name in self.entry:
                entry[name] = self.entry[name]
        entry["part"] = f"{parts_dir(corpus).name}/{part_name(self.key)}"
        return entry

    def part_header(self) -> dict[str, Any]:
        """The header line of its part file, as the cell's own run wrote it."""
        header = {**self.record(), "rows": self.frames}
        for name in (BITSTREAM_BYTES_COLUMN, ENC_TIME_COLUMN, "vmaf_mean", "produced_at"):
            header[name] = self.entry.get(name)
        if "worker" in self.entry:
            header["worker"] = self.entry["worker"]
        return header


@dataclass
class CorpusRecord:
    """What one corpus (``OUT`` or a shard) holds, as its manifest records it."""

    path: Path
    #: Done cells by key, in manifest order.
    cells: dict[str, RecordedCell]
    #: Entries of cells asked for and not done (failed or pending).
    gaps: list[dict[str, Any]]
    #: Each source's manifest description, by id.
    sources: dict[str, dict[str, Any]]
    #: Rows (line texts, frame order) of the cells whose rows were read.
    lines: dict[str, list[str]] = field(default_factory=dict)
    #: The corpus's recorded sha256 (``None``: no corpus was written).
    sha256: str | None = None
    #: ``OUT`` itself: its parts are the destination's already.
    is_out: bool = False

    def name(self) -> str:
        """How messages name it beside another corpus."""
        return "the corpus" if self.is_out else str(self.path)


def _mname(corpus: Path) -> str:
    return manifest_path(corpus).name


def _int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _record(corpus: Path, doc: Mapping[str, Any], fix: str, *, is_out: bool) -> CorpusRecord:
    """``doc`` (``corpus``'s manifest) read into a :class:`CorpusRecord`; InputError ending
    in ``fix`` when it is not a manifest of this producer's version and row layout."""
    mpath = manifest_path(corpus)

    def refuse(problem: str) -> InputError:
        return InputError(f"{mpath}: {problem}; {fix}")

    producer = doc.get("producer")
    version = producer.get("version") if isinstance(producer, dict) else None
    if not isinstance(producer, dict) or producer.get("name") != "frreg-corpus":
        raise refuse("not a frreg-corpus manifest (its 'producer' is not frreg-corpus)")
    if version != PRODUCER_VERSION or doc.get("columns") != list(ROW_COLUMNS):
        raise refuse(
            f"written by producer version {version!r}, whose rows are not this version's "
            f"({PRODUCER_VERSION}: columns {', '.join(ROW_COLUMNS)})"
        )
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise refuse(f"schema version {doc.get('schema_version')!r}, not {SCHEMA_VERSION}")
    top = doc.get("ffmpeg")
    top = top if isinstance(top, dict) else {}
    sources: dict[str, dict[str, Any]] = {}
    listed = doc.get("sources")
    for i, src in enumerate(listed if isinstance(listed, list) else []):
        if not (isinstance(src, dict) and isinstance(src.get("id"), str)):
            raise refuse(f"sources[{i}] is not a source record")
        if not isinstance(src.get("sha256"), str):
            raise refuse(f"sources[{i}] ({src['id']!a}) records no sha256")
        if src["id"] in sources:
            raise refuse(f"source {src['id']!a} is recorded twice")
        sources[src["id"]] = src
    cells: dict[str, RecordedCell] = {}
    slots: dict[Slot, str] = {}
    gaps: list[dict[str, Any]] = []
    entries = doc.get("cells")
    if not isinstance(entries, list):
        raise refuse("records no cells")
    for i, entry in enumerate(entries):
        cell = _cell(entry, top, corpus)
        if cell is None:
            raise refuse(f"cells[{i}] is not a cell record (key, src, encoder, cq, preset, frames)")
        if cell.key in cells or cell.sort_key in slots:
            raise refuse(f"cell {cell.label} is recorded twice")
        if entry.get("status") != "done":
            gaps.append(dict(entry))
            continue
        if cell.src not in sources:
            raise refuse(f"cell {cell.label}: source {cell.src!a} is not recorded")
        cells[cell.key] = cell
        slots[cell.sort_key] = cell.key
    corpus_doc = doc.get("corpus")
    digest = corpus_doc.get("sha256") if isinstance(corpus_doc, dict) else None
    return CorpusRecord(
        corpus,
        cells,
        gaps,
        sources,
        sha256=digest if isinstance(digest, str) else None,
        is_out=is_out,
    )


def _cell(entry: Any, top: Mapping[str, Any], corpus: Path) -> RecordedCell | None:
    """One manifest cell entry as a :class:`RecordedCell`, or ``None`` if it is not one.

    Entries written before cells recorded their own versions take the manifest's
    (a Dask worker's, when a worker made it).
    """
    if not isinstance(entry, dict):
        return None
    key, src, enc, cq = entry.get("key"), entry.get("src"), entry.get("encoder"), entry.get("cq")
    preset, frames = entry.get("preset"), entry.get("frames")
    if not (isinstance(key, str) and len(key) == 64 and isinstance(src, str)):
        return None
    if not (isinstance(enc, str) and _int(cq) and (preset is None or isinstance(preset, str))):
        return None
    if not (_int(frames) and frames > 0):
        return None
    made = dict(entry)
    worker = entry.get("worker")
    by = worker if isinstance(worker, dict) else top
    made.setdefault("ffmpeg_version", by.get("ffmpeg_version", by.get("version")))
    made.setdefault("libvmaf_version", by.get("libvmaf_version"))
    return RecordedCell(key, src, enc, cq, preset, frames, made, corpus)


# --------------------------------------------------------------------------
# Reading OUT and shards
# --------------------------------------------------------------------------


def read_existing(corpus: Path) -> CorpusRecord | None:
    """What ``corpus`` (a producer's ``--out``) already holds, or ``None`` when nothing.

    Every cell its manifest records as done must still have its rows: its part in
    ``OUT.parts/``, else in ``OUT`` itself (whose sha256 must be the recorded one; the
    rows are then read, to be written back as parts). A non-empty ``OUT`` without a
    manifest (not written by frreg-corpus) is refused rather than replaced.
    """
    try:
        doc = read_producer_manifest(corpus)
    except CorpusError as exc:
        raise InputError(f"{exc}; {REPLACE_HINT}") from None
    if doc is None:
        if corpus.is_file() and corpus.stat().st_size > 0:
            raise InputError(
                f"{corpus}: exists and has no producer manifest ({_mname(corpus)}): it was not "
                f"written by frreg-corpus, whose cells a run would add to; {REPLACE_HINT}"
            )
        return None
    record = _record(corpus, doc, REPLACE_HINT, is_out=True)
    pdir = parts_dir(corpus)
    lost = [
        c for c in record.cells.values() if read_part_header(pdir / part_name(c.key), c.key) is None
    ]
    if lost:
        if not corpus.is_file() or record.sha256 is None or sha256_file(corpus) != record.sha256:
            raise InputError(
                f"{corpus}: cell {lost[0].label} is recorded as done, but its part "
                f"({pdir.name}/{part_name(lost[0].key)}) is gone and {corpus.name} is not the "
                f"corpus {_mname(corpus)} recorded, so its rows are lost; {REPLACE_HINT}"
            )
        record.lines = _read_rows(corpus, record)
    return record


def read_shard(path: Path) -> CorpusRecord:
    """A finished corpus to merge, checked: it and its manifest agree (the producer's
    own check: not incomplete, the recorded sha256, one libvmaf), and every row is one
    of the frames of a cell its manifest records as done, once."""
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():
        raise InputError(f"{path}: not a regular file")
    doc = read_producer_manifest(path)
    if doc is None:
        raise InputError(
            f"{path}: no producer manifest beside it ({_mname(path)}): only corpora written by "
            "frreg-corpus can be merged (their manifests say which settings made each cell); "
            "copy the manifest along with the corpus"
        )
    check_corpus_complete(path)
    record = _record(path, doc, "reproduce it with this frreg-corpus", is_out=False)
    record.lines = _read_rows(path, record)
    return record


def _read_rows(path: Path, record: CorpusRecord) -> dict[str, list[str]]:
    """Every row of ``path`` by cell key, checked against ``record`` (``PATH:LINE``)."""
    mname = _mname(path)
    by_slot = {c.sort_key: c for c in record.cells.values()}
    lines: dict[str, list[tuple[int, str]]] = {key: [] for key in record.cells}
    sums: dict[str, list[float]] = {key: [] for key in record.cells}
    seen: dict[tuple[str, str, int, int], int] = {}
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            row, text = _row(path, number, raw)
            rk = (row["src"], row["encoder"], row["cq"], row["frame_index"])
            if rk in seen:
                raise CorpusError(
                    path,
                    number,
                    f"row (src, encoder, cq, frame_index) {rk!a} is also on line {seen[rk]}",
                )
            seen[rk] = number
            cell = by_slot.get(rk[:3])
            label = f"{rk[0]}/{rk[1]}/cq{rk[2]}"
            if cell is None:
                raise CorpusError(
                    path, number, f"a row of cell {label!a}, which {mname} does not record as done"
                )
            if row.get("preset") != cell.preset:
                raise CorpusError(
                    path,
                    number,
                    f"preset {row.get('preset')!a}; {mname} records {cell.preset!a} for {label!a}",
                )
            if rk[3] >= cell.frames:
                raise CorpusError(
                    path,
                    number,
                    f"frame_index {rk[3]}; {mname} records {cell.frames} frames for {label!a}",
                )
            lines[cell.key].append((rk[3], text))
            sums[cell.key].append(row[TARGET])
    for cell in record.cells.values():
        got = len(lines[cell.key])
        if got != cell.frames:
            raise CorpusError(
                path, None, f"cell {cell.label!a} has {got} rows; {mname} records {cell.frames}"
            )
        mean, pooled = math.fsum(sums[cell.key]) / got, cell.entry.get("vmaf_mean")
        if not isinstance(pooled, int | float) or abs(mean - pooled) > POOLED_TOLERANCE:
            raise CorpusError(
                path,
                None,
                f"cell {cell.label!a}: its rows' mean vmaf is {mean:.6f}; {mname} records "
                f"libvmaf's pooled mean {pooled!r}",
            )
    return {key: [text for _, text in sorted(rows)] for key, rows in lines.items()}


def _row(path: Path, number: int, raw: bytes) -> tuple[dict[str, Any], str]:
    """One corpus line: its row (key columns and vmaf checked) and its text."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CorpusError(path, number, "not UTF-8 text") from None
    if not text.endswith("\n"):
        raise CorpusError(path, number, "torn last line (no newline at its end)")
    try:
        row = json.loads(text)
    except (ValueError, RecursionError):
        raise CorpusError(path, number, "invalid JSON") from None
    if not isinstance(row, dict):
        raise CorpusError(path, number, "not a JSON object")
    for column, ok in (
        ("src", isinstance(row.get("src"), str)),
        ("encoder", isinstance(row.get("encoder"), str)),
        ("cq", _int(row.get("cq"))),
        ("frame_index", _int(row.get("frame_index")) and row.get("frame_index", -1) >= 0),
    ):
        if not ok:
            raise CorpusError(path, number, f"column {column!r} is {row.get(column)!r}")
    vmaf = row.get(TARGET)
    if not (isinstance(vmaf, int | float) and not isinstance(vmaf, bool) and math.isfinite(vmaf)):
        raise CorpusError(path, number, f"column {TARGET!r} is {vmaf!r}")
    return row, text


# --------------------------------------------------------------------------
# The union
# --------------------------------------------------------------------------


@dataclass
class Union:
    """The cells a corpus will hold beside a run's own, and what they need written."""

    #: Cells kept from the inputs (none of them planned by this run), in corpus order.
    carried: list[RecordedCell]
    #: Recorded gaps kept (only with ``allow_missing``), in corpus order.
    gaps: list[dict[str, Any]]
    #: Every source a kept or planned cell was made from: its description, by id.
    sources: dict[str, dict[str, Any]]
    #: Rows of carried cells whose part must be written into the destination's parts.
    lines: dict[str, list[str]]
    #: Where carried cells came from: one record per input corpus that gave any.
    carried_from: list[dict[str, Any]]


@dataclass(frozen=True)
class _Facts:
    """What a conflict message compares between two cells at one (src, encoder, cq)."""

    where: str
    preset: str | None
    frames: int
    source: Mapping[str, Any]
    ffmpeg: str | None
    libvmaf: str | None

    @classmethod
    def of(
        cls,
        cell: Cell | RecordedCell,
        where: str,
        sources: Mapping[str, Any],
        versions: tuple[str | None, str | None] = (None, None),
    ) -> _Facts:
        if isinstance(cell, Cell):
            return cls(where, cell.preset, cell.frames, cell.source.describe(), *versions)
        return cls(
            where,
            cell.preset,
            cell.frames,
            sources.get(cell.src, {}),
            cell.entry.get("ffmpeg_version"),
            cell.entry.get("libvmaf_version"),
        )


def _differences(a: Mapping[str, Any], b: Mapping[str, Any], names: Iterable[str]) -> list[str]:
    """``name A vs B`` for each of ``names`` whose values differ."""

    def shown(value: Any) -> str:
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        return text[:12] + "…" if len(text) > 16 else text

    return [f"{n} {shown(a.get(n))} vs {shown(b.get(n))}" for n in names if a.get(n) != b.get(n)]


def _source_identity(description: Mapping[str, Any]) -> dict[str, Any]:
    """What makes a source's pixels: its description without where the file lives."""
    return {k: v for k, v in description.items() if k != "path"}


def combine(
    out: Path,
    inputs: Sequence[CorpusRecord],
    planned: Sequence[Cell] = (),
    *,
    ffmpeg_version: str | None = None,
    libvmaf_version: str | None = None,
    allow_missing: bool = False,
    allow_mixed_libvmaf: bool = False,
) -> Union:
    """Check the union of ``inputs``' cells and this run's ``planned`` ones (made with
    ``ffmpeg_version`` and ``libvmaf_version``); :class:`~frreg.errors.InputError` names
    the first problem, the file it is in and the option that would do it.

    Inputs are taken in order (``OUT`` first): a cell key already taken is the same
    cell, kept once (rows read from two shards must agree but for the columns that vary
    between identical runs); another key at a taken (src, encoder, cq) is refused. A
    planned cell of a carried key is this run's to resume or confirm.
    """
    names = {id(r): r.name() for r in inputs}
    held: dict[str, tuple[RecordedCell, CorpusRecord]] = {}
    slots: dict[Slot, str] = {}
    for record in inputs:
        for cell in record.cells.values():
            first = held.get(cell.key)
            if first is not None:
                _same_rows(first[1], record, cell)
                continue
            other = slots.get(cell.sort_key)
            if other is not None:
                first_cell, first_record = held[other]
                raise _conflict(
                    cell.label,
                    _Facts.of(first_cell, names[id(first_record)], first_record.sources),
                    _Facts.of(cell, names[id(record)], record.sources),
                    record,
                    first_record,
                )
            held[cell.key] = (cell, record)
            slots[cell.sort_key] = cell.key
    planned_keys = {c.key for c in planned}
    for new in planned:
        other = slots.get(new.sort_key)
        if other is None or other == new.key:
            continue
        first_cell, first_record = held[other]
        raise _conflict(
            new.label,
            _Facts.of(first_cell, names[id(first_record)], first_record.sources),
            _Facts.of(new, "this run", {}, (ffmpeg_version, libvmaf_version)),
            None,
            first_record,
            out=out,
        )
    carried = sorted(
        (pair for key, pair in held.items() if key not in planned_keys),
        key=lambda pair: pair[0].sort_key,
    )
    sources = _sources(out, carried, planned, names)
    _one_libvmaf(out, carried, planned, libvmaf_version, names, allow_mixed_libvmaf)
    gaps = _gaps(inputs, {c.sort_key for c, _ in carried} | {c.sort_key for c in planned})
    if gaps and not allow_missing:
        raise _gap_refusal(out, gaps)
    lines = {
        cell.key: record.lines[cell.key]
        for cell, record in carried
        if cell.key in record.lines and not (record.is_out and _has_part(out, cell.key))
    }
    carried_from = [
        {
            "corpus": str(record.path),
            "sha256": record.sha256,
            "cells": n,
        }
        for record in inputs
        if (n := sum(1 for _, r in carried if r is record))
    ]
    return Union([c for c, _ in carried], gaps, sources, lines, carried_from)


def _has_part(out: Path, key: str) -> bool:
    return read_part_header(parts_dir(out) / part_name(key), key) is not None


def _same_rows(first: CorpusRecord, record: CorpusRecord, cell: RecordedCell) -> None:
    """One key in two corpora is one cell; refuse it when their rows say otherwise."""
    a, b = _cell_lines(first, cell.key), record.lines.get(cell.key)
    if a is None or b is None or len(a) != len(b):
        return  # one key, one cell: its frame count is in the key, both were checked
    for left, right in zip(a, b, strict=True):
        x, y = json.loads(left), json.loads(right)
        for column in NONDETERMINISTIC_COLUMNS:
            x.pop(column, None)
            y.pop(column, None)
        if x != y:
            changed = next(k for k in sorted(set(x) | set(y)) if x.get(k) != y.get(k))
            raise InputError(
                f"{record.path}: cell {cell.label!a} is also in {first.name()}, made with the "
                f"same settings, but its rows differ (frame {x.get('frame_index')}, "
                f"{changed!r}: {x.get(changed)!r} there, {y.get(changed)!r} here); a cell "
                f"comes from one run: merge only one of them"
            )


def _cell_lines(record: CorpusRecord, key: str) -> list[str] | None:
    """The rows of cell ``key`` as ``record`` holds them (``OUT``'s from its part)."""
    if key in record.lines:
        return record.lines[key]
    if not record.is_out:
        return None
    try:
        with open(parts_dir(record.path) / part_name(key), encoding="utf-8") as fh:
            fh.readline()
            return fh.readlines()
    except OSError:
        return None


def _conflict(
    label: str,
    held: _Facts,
    new: _Facts,
    new_record: CorpusRecord | None,
    held_record: CorpusRecord,
    *,
    out: Path | None = None,
) -> InputError:
    """Two cells of different settings at one (src, encoder, cq); ``new_record`` is
    ``None`` for this run's cell (``out`` is then where it would go)."""

    def facts(f: _Facts) -> dict[str, Any]:
        return {
            "preset": f.preset,
            "frames": f.frames,
            "source sha256": f.source.get("sha256"),
            "ffmpeg": f.ffmpeg,
            "libvmaf": f.libvmaf,
        }

    theirs, ours = facts(held), facts(new)
    comparable = [n for n in theirs if theirs[n] is not None and ours[n] is not None]
    diff = _differences(theirs, ours, comparable) or ["other encode settings (another cell key)"]
    what = f"{'; '.join(diff)} ({held.where} vs {new.where})"
    rule = "a corpus holds one cell per (src, encoder, cq)"
    if new_record is None:  # this run's cell, against OUT's
        return InputError(
            f"{out}: cell {label!a} is already in this corpus from other settings: {what}; "
            f"{rule}: {REPLACE_HINT}"
        )
    if held_record.is_out:
        return InputError(
            f"{new_record.path}: cell {label!a} is already in {held_record.path} from other "
            f"settings: {what}; {rule}: pass --replace to merge the shards alone into --out, "
            "or write to another --out"
        )
    return InputError(
        f"{new_record.path}: cell {label!a} is also in {held_record.path} from other settings: "
        f"{what}; {rule}: merge only one of them"
    )


#: Source fields a message names first when two descriptions of one id differ.
_SOURCE_FIELDS: Final = ("frames", "width", "height", "pix_fmt", "framerate", "raw", "sha256")


def _sources(
    out: Path,
    carried: Sequence[tuple[RecordedCell, CorpusRecord]],
    planned: Sequence[Cell],
    names: Mapping[int, str],
) -> dict[str, dict[str, Any]]:
    """Every source of the union, one description per id; refuse an id naming two clips,
    one clip under two ids (LOSO would hold out only one of them) or two ids that are one
    name in different Unicode forms."""
    found: dict[str, tuple[dict[str, Any], str, Path]] = {}

    def add(description: Mapping[str, Any], where: str, path: Path, fix: str) -> None:
        src = str(description.get("id"))
        first = found.get(src)
        if first is None:
            found[src] = (dict(description), where, path)
            return
        a, b = _source_identity(first[0]), _source_identity(description)
        if a != b:
            diff = _differences(a, b, _SOURCE_FIELDS) or _differences(a, b, sorted({*a, *b}))
            raise InputError(
                f"{path}: source {src!a} is another clip than the one {first[1]} has under "
                f"that id ({'; '.join(diff)}; {first[1]} vs {where}); one id names one clip: "
                f"give it another id, or {fix}"
            )

    merge_fix = "merge only one of them"
    for kept, record in carried:
        fix = REPLACE_HINT if record.is_out else merge_fix
        add(record.sources[kept.src], names[id(record)], record.path, fix)
    for new in planned:
        add(new.source.describe(), "this run", out, REPLACE_HINT)
    # This run's description wins (its path is where the file is now).
    for new in planned:
        found[new.source.id] = (new.source.describe(), "this run", out)
    by_digest: dict[str, str] = {}
    by_name: dict[str, str] = {}
    for src, (description, _, path) in sorted(found.items()):
        digest = str(description.get("sha256"))
        other = by_digest.setdefault(digest, src)
        if other != src:
            raise InputError(
                f"{path}: sources {other!a} and {src!a} are one file (sha256 {digest[:12]}…): "
                "LOSO would score each on a model that trained on the other; give the clip "
                "one id"
            )
        twin = by_name.setdefault(src_id_key(src), src)
        if twin != src:
            raise InputError(
                f"{path}: source ids {twin!a} and {src!a} are the same name in different "
                "Unicode forms; give the clip one id"
            )
    return {src: found[src][0] for src in sorted(found)}


def _one_libvmaf(
    out: Path,
    carried: Sequence[tuple[RecordedCell, CorpusRecord]],
    planned: Sequence[Cell],
    libvmaf_version: str | None,
    names: Mapping[int, str],
    allowed: bool,
) -> None:
    """Features from two libvmaf builds are not comparable: refuse a union scored by two
    unless ``--allow-mixed-libvmaf``."""
    if allowed:
        return
    scored = [
        (str(c.entry.get("libvmaf_version")), names[id(r)], out if r.is_out else r.path)
        for c, r in carried
    ]
    if planned:
        scored.append((str(libvmaf_version), "this run", out))
    if not scored:
        return
    first, first_where, _ = scored[0]
    for version, where, path in scored[1:]:
        if version == first:
            continue
        restart = ", or --replace to start the corpus over" if first_where == "the corpus" else ""
        raise InputError(
            f"{path}: the cells of {where} are scored by libvmaf {version}, those of "
            f"{first_where} by libvmaf {first}: features from two libvmaf builds are not "
            f"comparable; pass --allow-mixed-libvmaf to keep both{restart}"
        )


def _gaps(inputs: Sequence[CorpusRecord], filled: set[Slot]) -> list[dict[str, Any]]:
    """Recorded gaps no kept or planned cell fills, once per (src, encoder, cq)."""
    kept: dict[Slot, dict[str, Any]] = {}
    for record in inputs:
        for entry in record.gaps:
            slot = (entry["src"], entry["encoder"], entry["cq"])
            if slot in filled or slot in kept:
                continue
            kept[slot] = {**entry, "gap_from": str(record.path)}
    return [kept[slot] for slot in sorted(kept)]


def _gap_refusal(out: Path, gaps: Sequence[Mapping[str, Any]]) -> InputError:
    first = Path(str(gaps[0].get("gap_from")))
    of_first = [g for g in gaps if g.get("gap_from") == str(first)]
    shown = ", ".join(f"{g['src']}/{g['encoder']}/cq{g['cq']}" for g in of_first[:3])
    shown += ", ..." if len(of_first) > 3 else ""
    if first == out:
        return InputError(
            f"{out}: {len(of_first)} cells an earlier run asked for are not done ({shown}): "
            "rerun that run's command to finish them, pass --allow-missing to keep them "
            "recorded as gaps, or --replace to drop them"
        )
    return InputError(
        f"{first}: {len(of_first)} cells are recorded as missing ({shown}; it was written with "
        "--allow-missing): pass --allow-missing to merge it with the gaps recorded"
    )


# --------------------------------------------------------------------------
# Writing carried cells
# --------------------------------------------------------------------------


def write_carried_parts(out: Path, union: Union) -> None:
    """Write the part of every carried cell whose rows came from another file (a shard,
    or ``OUT`` itself when its part was gone), and copy a shard's libvmaf log when it
    has one; a part already holding exactly those bytes is left alone."""
    pdir = parts_dir(out)
    for cell in union.carried:
        rows = union.lines.get(cell.key)
        if rows is None:
            continue
        text = json.dumps({"cell": cell.part_header()}, sort_keys=True) + "\n" + "".join(rows)
        target = pdir / part_name(cell.key)
        if _read_text(target) != text:
            with atomic_writer(target) as fh:
                fh.write(text)
        log, there = vmaf_log_path(cell.origin, cell.key), vmaf_log_path(out, cell.key)
        if log != there and log.is_file() and not there.exists():
            with atomic_writer(there, "wb") as fh:
                fh.write(log.read_bytes())


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def check_shard_paths(out: Path, shards: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The shards as paths; refuse ``--out`` itself and a shard named twice."""
    seen: dict[Path, Path] = {}
    target = out.resolve()
    paths = []
    for shard in shards:
        path = Path(shard)
        resolved = path.resolve()
        if resolved == target:
            raise InputError(
                f"{shard}: is --out itself; its cells are kept anyway (a run onto --out adds "
                "to what is there)"
            )
        if resolved in seen:
            twice = "given twice" if Path(seen[resolved]) == path else f"is {seen[resolved]} too"
            raise InputError(f"{shard}: {twice} (merge each corpus once)")
        seen[resolved] = path
        paths.append(path)
    return paths


def read_shards(out: Path, shards: Sequence[str | os.PathLike[str]]) -> list[CorpusRecord]:
    """Every shard read and checked (:func:`read_shard`), in the order given."""
    records = []
    for path in check_shard_paths(out, shards):
        try:
            records.append(read_shard(path))
        except OSError as exc:
            raise InputError(f"{path}: cannot read it: {exc.strerror}") from None
    return records
