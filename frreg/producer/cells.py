"""One cell of the grid: what determines it, running it, and the rows it yields.

A *cell* is one (source, encoder, cq) triple at one preset. Running it
encodes the source, decodes the result straight into libvmaf next to the
source, and turns libvmaf's per-frame log into corpus rows. A finished cell
is one part file in the corpus's parts directory
(:func:`frreg.corpus.sidecar.parts_dir`):

``<key>.jsonl``
    A header line with the cell's record, then its rows, already serialised.
    ``<key>`` is the sha256 of everything that determines the rows (source
    content, encoder argv, libvmaf model, ffmpeg and libvmaf versions, ...),
    so a changed setting can never reuse a stale cell.
``<key>.vmaf.json.gz``
    libvmaf's own JSON log for that cell (per-frame and pooled metrics).

Both are written to a temporary name and renamed, so a killed cell leaves
nothing a rerun could mistake for finished work.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from frreg._io import atomic_writer, sha256_json
from frreg.corpus.sidecar import parts_dir
from frreg.errors import ToolError
from frreg.producer import ffmpeg as ff
from frreg.producer.encoders import HardwareDevices, encoder_spec
from frreg.producer.sources import Source
from frreg.schema import (
    CANONICAL_6,
    CELL_VMAF_MEAN_ATOL,
    KEY_COLUMNS,
    PRESET_COLUMN,
    SCHEMA_VERSION,
    TARGET,
)

#: Bump when a code change alters the rows produced for identical inputs;
#: it is part of every cell key, so old parts are then recomputed.
#: 2: ``enc_bytes`` became ``bitstream_bytes`` (the row columns are in the key
#: too; the bump also tells a manifest's reader which row layout it holds).
PRODUCER_VERSION: Final = 2

#: Extra per-row columns the producer adds (the trainer ignores them).
#: Both are per cell, repeated on each of its rows: the encoded elementary
#: stream's size and the encode's wall time. The size is not called
#: ``enc_bytes``: the fork's producer writes that name for the size of the MP4
#: it encodes into, and one name must not mean two measurements. (A corpus
#: carrying the fork's ``enc_bytes`` still loads: extra columns are ignored.)
BITSTREAM_BYTES_COLUMN: Final = "bitstream_bytes"
ENC_TIME_COLUMN: Final = "enc_time_ms"
#: Every row's columns, in the order they are written.
ROW_COLUMNS: Final = (
    *KEY_COLUMNS[:3],
    PRESET_COLUMN,
    KEY_COLUMNS[3],
    TARGET,
    *CANONICAL_6,
    BITSTREAM_BYTES_COLUMN,
    ENC_TIME_COLUMN,
)
#: Columns that vary between identical runs (wall-clock timing).
NONDETERMINISTIC_COLUMNS: Final = (ENC_TIME_COLUMN,)

#: |mean of per-frame vmaf - libvmaf's pooled mean| allowed (see the schema's).
POOLED_TOLERANCE: Final = CELL_VMAF_MEAN_ATOL

#: Per-call timeout floor and per-frame allowance (scaled by pixels / 720p)
#: when the caller does not set one. Generous: a timeout only catches hangs.
TIMEOUT_FLOOR_S: Final = 300.0
TIMEOUT_PER_FRAME_S: Final = 2.0

_PART_SUFFIX: Final = ".jsonl"
_LOG_SUFFIX: Final = ".vmaf.json.gz"
#: Prefix of a running cell's scratch directory: ``.work-<pid>-<key12>-*``.
WORK_PREFIX: Final = ".work-"


@dataclass(frozen=True)
class Cell:
    """One (source, encoder, cq) cell at one preset, over the first ``frames`` frames.

    ``preset`` is ``None`` for an encoder without speed presets; ``device_args``
    open the device a QSV or VAAPI cell encodes on (empty otherwise).
    """

    source: Source
    encoder: str
    cq: int
    preset: str | None
    frames: int
    key: str
    device_args: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """``testsrc2_30fps/libx264/cq30``."""
        return f"{self.source.id}/{self.encoder}/cq{self.cq}"

    @property
    def sort_key(self) -> tuple[str, str, int]:
        """The order cells appear in the assembled corpus."""
        return (self.source.id, self.encoder, self.cq)

    def record(self) -> dict[str, Any]:
        """The cell's identity as stored in part headers and the manifest."""
        return {
            "key": self.key,
            "src": self.source.id,
            "encoder": self.encoder,
            "cq": self.cq,
            "preset": self.preset,
            "frames": self.frames,
        }


def cell_spec(
    source: Source,
    encoder: str,
    cq: int,
    preset: str | None,
    frames: int,
    info: ff.FfmpegInfo,
    devices: HardwareDevices | None = None,
) -> dict[str, Any]:
    """Everything that determines a cell's rows; its sha256 is the cell key.

    The argv and filtergraph are built by the same functions that run the
    cell (with placeholder paths), so the key can't drift from what runs.
    """
    spec = encoder_spec(encoder)
    # A QSV or VAAPI cell's device node is in its encode argv, so in its key:
    # another node may be another GPU, whose encoder writes other bitstreams,
    # and a part made on one must not stand in for the other. Cells of other
    # encoders open no device, and their keys do not depend on the flags.
    device_args = spec.device_args(devices or HardwareDevices())
    return {
        "schema_version": SCHEMA_VERSION,
        "producer_version": PRODUCER_VERSION,
        "source": source.identity(),
        "encoder": encoder,
        "cq": cq,
        "preset": preset,
        "frames": frames,
        "encode_argv": ff.encode_argv(
            "ffmpeg",
            [*device_args, "<source>"],
            frames,
            spec.quality_args(cq, preset),
            spec.muxer,
            "<out>",
        )[1:],
        # n_threads does not change libvmaf's scores, so it is left out of the key.
        "score_graph": ff.score_graph(
            ff.score_pix_fmt(source.pix_fmt), frames, frames < source.frames, 0, "vmaf.json"
        ),
        "columns": list(ROW_COLUMNS),
        "ffmpeg_version": info.version,
        "libvmaf_version": info.libvmaf_version,
    }


def build_cells(
    sources: Sequence[Source],
    encoders: Sequence[str],
    cqs: Sequence[int],
    presets: Mapping[str, str | None],
    max_frames: int | None,
    info: ff.FfmpegInfo,
    devices: HardwareDevices | None = None,
) -> list[Cell]:
    """The grid, in corpus order (source id, encoder, cq)."""
    devices = devices or HardwareDevices()
    cells = []
    for src in sorted(sources, key=lambda s: s.id):
        frames = src.frames if max_frames is None else min(src.frames, max_frames)
        for enc in sorted(encoders):
            device_args = tuple(encoder_spec(enc).device_args(devices))
            for cq in sorted(cqs):
                preset = presets[enc]
                key = sha256_json(cell_spec(src, enc, cq, preset, frames, info, devices))
                cells.append(Cell(src, enc, cq, preset, frames, key, device_args))
    return cells


@dataclass(frozen=True)
class CellFailure:
    """A cell that did not produce rows, with what ffmpeg said."""

    label: str
    key: str
    message: str
    stderr_tail: str = ""
    argv: tuple[str, ...] = ()

    def format(self, tail_lines: int = 8) -> str:
        """``FAILED src/enc/cqN: message`` plus the indented stderr tail."""
        lines = [f"FAILED {self.label}: {self.message}"]
        tail = self.stderr_tail.splitlines()[-tail_lines:]
        lines += [f"    | {line}" for line in tail]
        return "\n".join(lines)


def _serialise_row(row: Mapping[str, Any]) -> str:
    return json.dumps(row, separators=(",", ":"), allow_nan=False, ensure_ascii=False)


def rows_from_log(
    log: Mapping[str, Any], cell: Cell, bitstream_bytes: int, enc_time_ms: int
) -> list[dict[str, Any]]:
    """Corpus rows from libvmaf's JSON log, checked frame by frame.

    Raises ToolError if frames are missing, duplicated or out of order, a
    metric is absent or not finite, or the rows' mean vmaf differs from
    libvmaf's own pooled mean.
    """
    frames = log.get("frames")
    if not isinstance(frames, list):
        raise ToolError("score: libvmaf log has no 'frames' list")
    rows = []
    for expected, frame in enumerate(frames):
        num = frame.get("frameNum")
        if num != expected:
            raise ToolError(
                f"score: libvmaf frame {expected} is numbered {num!r} (dropped or duplicated)"
            )
        metrics = frame.get("metrics", {})
        row: dict[str, Any] = {
            "src": cell.source.id,
            "encoder": cell.encoder,
            "cq": cell.cq,
            PRESET_COLUMN: cell.preset,
            "frame_index": expected,
        }
        for column, names in ff.LIBVMAF_METRICS.items():
            value = next((metrics[n] for n in names if n in metrics), None)
            if value is None:
                raise ToolError(
                    f"score: libvmaf log lacks {names[0]!r} at frame {expected} "
                    f"(is the model {ff.VMAF_MODEL}?)"
                )
            if not isinstance(value, int | float) or not math.isfinite(value):
                raise ToolError(f"score: libvmaf {names[0]} at frame {expected} is {value!r}")
            row[column] = float(value)
        row[BITSTREAM_BYTES_COLUMN] = bitstream_bytes
        row[ENC_TIME_COLUMN] = enc_time_ms
        rows.append({c: row[c] for c in ROW_COLUMNS})
    if not rows:
        raise ToolError("score: libvmaf scored 0 frames")
    pooled = log.get("pooled_metrics", {}).get(TARGET, {}).get("mean")
    mean = math.fsum(r[TARGET] for r in rows) / len(rows)
    if not isinstance(pooled, int | float) or abs(mean - pooled) > POOLED_TOLERANCE:
        raise ToolError(f"score: mean per-frame vmaf {mean:.6f} != libvmaf pooled mean {pooled!r}")
    return rows


def _default_timeout(cell: Cell) -> float:
    scale = max(1.0, cell.source.width * cell.source.height / (1280 * 720))
    return max(TIMEOUT_FLOOR_S, cell.frames * TIMEOUT_PER_FRAME_S * scale)


@dataclass(frozen=True)
class CellOutput:
    """What a cell computed, before anything is written: its part header, the part
    file's text and libvmaf's gzipped log. A plain value, so that a cell can run
    on another machine (a Dask worker) and only the caller writes files."""

    header: dict[str, Any]
    part: str
    log_gz: bytes


def run_cell(
    cell: Cell,
    ffmpeg: str | os.PathLike[str],
    out_dir: Path,
    *,
    vmaf_threads: int,
    timeout: float | None = None,
    clock: ff.ToolClock | None = None,
) -> dict[str, Any]:
    """Encode, score and record one cell in ``out_dir``; return its part header.

    The cell's part file appears (atomically) only if every check passed.
    """
    output = compute_cell(
        cell, ffmpeg, out_dir, vmaf_threads=vmaf_threads, timeout=timeout, clock=clock
    )
    return write_cell_output(out_dir, cell, output)


def write_cell_output(out_dir: Path, cell: Cell, output: CellOutput) -> dict[str, Any]:
    """Write a computed cell's log and part file atomically (the part last); its header."""
    with atomic_writer(out_dir / f"{cell.key}{_LOG_SUFFIX}", "wb") as fh:
        fh.write(output.log_gz)
    with atomic_writer(out_dir / part_name(cell.key)) as fh:
        fh.write(output.part)
    return output.header


def compute_cell(
    cell: Cell,
    ffmpeg: str | os.PathLike[str],
    scratch: Path,
    *,
    vmaf_threads: int,
    timeout: float | None = None,
    clock: ff.ToolClock | None = None,
) -> CellOutput:
    """Encode and score one cell in a scratch directory under ``scratch``; write nothing."""
    src = cell.source
    limit = timeout if timeout is not None else _default_timeout(cell)
    work = Path(
        tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{os.getpid()}-{cell.key[:12]}-", dir=scratch)
    )
    try:
        spec = encoder_spec(cell.encoder)
        encoded = ff.encode(
            ffmpeg,
            [*cell.device_args, *src.input_args()],
            cell.frames,
            spec.quality_args(cell.cq, cell.preset),
            spec.muxer,
            work / f"encoded{spec.extension}",
            timeout=limit,
            clock=clock,
        )
        if encoded.frames != cell.frames:
            raise ToolError(
                f"encode: ffmpeg encoded {encoded.frames} frames, expected {cell.frames}"
            )
        scored = ff.score(
            ffmpeg,
            encoded.path,
            src.input_args(),
            src.pix_fmt,
            cell.frames,
            cell.frames < src.frames,
            work,
            n_threads=vmaf_threads,
            timeout=limit,
            clock=clock,
        )
        rows = rows_from_log(scored.log, cell, encoded.bitstream_bytes, encoded.enc_time_ms)
        if not scored.dist_frames == len(rows) == cell.frames:
            raise ToolError(
                f"score: frame counts disagree: {cell.frames} expected, "
                f"{scored.dist_frames} decoded from the encode, {len(rows)} scored by libvmaf"
            )
        header = {
            **cell.record(),
            BITSTREAM_BYTES_COLUMN: encoded.bitstream_bytes,
            ENC_TIME_COLUMN: encoded.enc_time_ms,
            "vmaf_mean": scored.log["pooled_metrics"][TARGET]["mean"],
            "rows": len(rows),
            "produced_at": now_iso(),
        }
        lines = [json.dumps({"cell": header}, sort_keys=True), *map(_serialise_row, rows)]
        return CellOutput(
            header=header,
            part="\n".join(lines) + "\n",
            # mtime=0 keeps the gzip bytes a function of the log alone.
            log_gz=gzip.compress(json.dumps(scored.log, sort_keys=True).encode(), mtime=0),
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def part_name(key: str) -> str:
    """File name of cell ``key``'s part inside the parts directory."""
    return f"{key}{_PART_SUFFIX}"


def read_part_header(path: Path, key: str) -> dict[str, Any] | None:
    """A finished part's header, or ``None`` if ``path`` is not a usable part for ``key``."""
    try:
        with open(path, encoding="utf-8") as fh:
            header = json.loads(fh.readline()).get("cell")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(header, dict) or header.get("key") != key:
        return None
    return header


def vmaf_log_path(corpus: str | os.PathLike[str], key: str) -> Path:
    """Where libvmaf's gzipped JSON log of cell ``key`` is kept."""
    return parts_dir(corpus) / f"{key}{_LOG_SUFFIX}"


def cell_failure(cell: Cell, exc: ToolError) -> CellFailure:
    """The :class:`CellFailure` for ``cell`` failing with ``exc``: first error line, hardware hint."""
    message = str(exc)
    first = _first_error_line(exc.stderr_tail)
    if first and first not in message:
        message += f": {first}"
    hint = encoder_spec(cell.encoder).hardware_hint()
    if hint:
        message += f" ({hint})"
    return CellFailure(cell.label, cell.key, message, exc.stderr_tail, tuple(exc.argv))


def _first_error_line(tail: str) -> str:
    """The root cause is usually the first line ffmpeg printed about the failing component."""
    for line in tail.splitlines():
        text = line.strip()
        if text and not text.startswith(("frame=", "Svt[info]")):
            return text
    return ""


def now_iso() -> str:
    """The current UTC time, to the second, as stored in part headers and manifests."""
    return datetime.now(UTC).isoformat(timespec="seconds")
