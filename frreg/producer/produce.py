"""The cell grid, its resumable runner, and corpus assembly.

A *cell* is one (source, encoder, cq) triple at one preset. Running it
encodes the source, decodes the result straight into libvmaf next to the
source, and turns libvmaf's per-frame log into corpus rows. Next to the
corpus ``OUT`` live:

``OUT.parts/<key>.jsonl``
    One finished cell: a header line with the cell's record, then its rows,
    already serialised. ``<key>`` is the sha256 of everything that determines
    the rows (source content, encoder argv, libvmaf model, ffmpeg and libvmaf
    versions, ...), so a changed setting can never reuse a stale cell.
``OUT.parts/<key>.vmaf.json.gz``
    libvmaf's own JSON log for that cell (per-frame and pooled metrics).
``OUT.manifest.json``
    The run's record: settings, sources with sha256, ffmpeg and libvmaf
    versions, every cell's status, ``complete``, and the corpus digest.
``OUT.incomplete``
    Present while a run is in progress or after it failed; the corpus must
    not be used while it exists (:func:`check_corpus_complete`).

Each part is written to a temporary name and renamed, so killing the
producer at any moment leaves only whole parts; a rerun skips them and the
final JSONL — assembled from the parts in sorted order, again via a
temporary name — is the same as an uninterrupted run's. A file lock keeps two
producers off the same corpus; correctness does not depend on it.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from filelock import FileLock

from frreg._io import atomic_writer, sha256_file, sha256_json, write_json_atomic
from frreg.errors import CorpusError, InputError, ToolError
from frreg.producer import ffmpeg as ff
from frreg.producer.encoders import (
    BITSTREAM_FORMATS,
    DEFAULT_PRESETS,
    check_cq,
    check_encoder,
    check_preset,
    hardware_hint,
    quality_args,
)
from frreg.producer.progress import PlainProgress, ProgressCallback, ProgressEvent
from frreg.producer.sources import Source, builtin_sources, check_unique_ids, load_manifest
from frreg.schema import (
    CANONICAL_6,
    DEMO_CQS,
    DEMO_ENCODERS,
    EXIT_FAIL,
    EXIT_OK,
    KEY_COLUMNS,
    PRESET_COLUMN,
    SCHEMA_VERSION,
    TARGET,
)

#: Bump when a code change alters the rows produced for identical inputs;
#: it is part of every cell key, so old parts are then recomputed.
PRODUCER_VERSION: Final = 1

#: Extra per-row columns the producer adds (the trainer ignores them).
#: Both are per cell, repeated on each of its rows: the encoded elementary
#: stream's size and the encode's wall time.
ENC_BYTES_COLUMN: Final = "enc_bytes"
ENC_TIME_COLUMN: Final = "enc_time_ms"
#: Every row's columns, in the order they are written.
ROW_COLUMNS: Final = (
    *KEY_COLUMNS[:3],
    PRESET_COLUMN,
    KEY_COLUMNS[3],
    TARGET,
    *CANONICAL_6,
    ENC_BYTES_COLUMN,
    ENC_TIME_COLUMN,
)
#: Columns that vary between identical runs (wall-clock timing).
NONDETERMINISTIC_COLUMNS: Final = (ENC_TIME_COLUMN,)

#: |mean of per-frame vmaf - libvmaf's pooled mean| allowed: both are printed
#: with 6 decimals, so rounding alone accounts for up to 1e-6.
POOLED_TOLERANCE: Final = 1e-5

#: Per-call timeout floor and per-frame allowance (scaled by pixels / 720p)
#: when the caller does not set one. Generous: a timeout only catches hangs.
TIMEOUT_FLOOR_S: Final = 300.0
TIMEOUT_PER_FRAME_S: Final = 2.0

_PART_SUFFIX: Final = ".jsonl"
_LOG_SUFFIX: Final = ".vmaf.json.gz"
_WORK_PREFIX: Final = ".work-"
_STALE_TMP_S: Final = 3600.0


# --------------------------------------------------------------------------
# Paths next to a corpus
# --------------------------------------------------------------------------


def manifest_path(corpus: str | os.PathLike[str]) -> Path:
    """``OUT.manifest.json``: the run record next to corpus ``OUT``."""
    p = Path(corpus)
    return p.with_name(p.name + ".manifest.json")


def parts_dir(corpus: str | os.PathLike[str]) -> Path:
    """``OUT.parts/``: one file per finished cell."""
    p = Path(corpus)
    return p.with_name(p.name + ".parts")


def incomplete_marker(corpus: str | os.PathLike[str]) -> Path:
    """``OUT.incomplete``: exists while the corpus must not be used."""
    p = Path(corpus)
    return p.with_name(p.name + ".incomplete")


def _lock_path(corpus: Path) -> Path:
    # Inside the parts dir, not ``OUT.lock``: callers (the gate) may already
    # hold a FileLock on ``OUT.lock`` around this call, and a second flock on
    # the same file from the same process would deadlock.
    return parts_dir(corpus) / ".producer.lock"


# --------------------------------------------------------------------------
# Cells
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """One (source, encoder, cq) cell at one preset, over the first ``frames`` frames."""

    source: Source
    encoder: str
    cq: int
    preset: str
    frames: int
    key: str

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
    source: Source, encoder: str, cq: int, preset: str, frames: int, info: ff.FfmpegInfo
) -> dict[str, Any]:
    """Everything that determines a cell's rows; its sha256 is the cell key.

    The argv and filtergraph are built by the same functions that run the
    cell (with placeholder paths), so the key can't drift from what runs.
    """
    muxer, _ = BITSTREAM_FORMATS[encoder]
    return {
        "schema_version": SCHEMA_VERSION,
        "producer_version": PRODUCER_VERSION,
        "source": source.identity(),
        "encoder": encoder,
        "cq": cq,
        "preset": preset,
        "frames": frames,
        "encode_argv": ff.encode_argv(
            "ffmpeg", ["<source>"], frames, quality_args(encoder, cq, preset), muxer, "<out>"
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
    presets: Mapping[str, str],
    max_frames: int | None,
    info: ff.FfmpegInfo,
) -> list[Cell]:
    """The grid, in corpus order (source id, encoder, cq)."""
    cells = []
    for src in sorted(sources, key=lambda s: s.id):
        frames = src.frames if max_frames is None else min(src.frames, max_frames)
        for enc in sorted(encoders):
            for cq in sorted(cqs):
                preset = presets[enc]
                key = sha256_json(cell_spec(src, enc, cq, preset, frames, info))
                cells.append(Cell(src, enc, cq, preset, frames, key))
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
    log: Mapping[str, Any], cell: Cell, enc_bytes: int, enc_time_ms: int
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
        row[ENC_BYTES_COLUMN] = enc_bytes
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
    src = cell.source
    limit = timeout if timeout is not None else _default_timeout(cell)
    work = Path(
        tempfile.mkdtemp(prefix=f"{_WORK_PREFIX}{os.getpid()}-{cell.key[:12]}-", dir=out_dir)
    )
    try:
        muxer, ext = BITSTREAM_FORMATS[cell.encoder]
        encoded = ff.encode(
            ffmpeg,
            src.input_args(),
            cell.frames,
            quality_args(cell.encoder, cell.cq, cell.preset),
            muxer,
            work / f"encoded{ext}",
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
        rows = rows_from_log(scored.log, cell, encoded.enc_bytes, encoded.enc_time_ms)
        if not scored.dist_frames == len(rows) == cell.frames:
            raise ToolError(
                f"score: frame counts disagree: {cell.frames} expected, "
                f"{scored.dist_frames} decoded from the encode, {len(rows)} scored by libvmaf"
            )
        header = {
            **cell.record(),
            "enc_bytes": encoded.enc_bytes,
            "enc_time_ms": encoded.enc_time_ms,
            "vmaf_mean": scored.log["pooled_metrics"][TARGET]["mean"],
            "rows": len(rows),
            "produced_at": _now(),
        }
        with atomic_writer(out_dir / f"{cell.key}{_LOG_SUFFIX}", "wb") as fh:
            # mtime=0 keeps the gzip bytes a function of the log alone.
            fh.write(gzip.compress(json.dumps(scored.log, sort_keys=True).encode(), mtime=0))
        with atomic_writer(out_dir / f"{cell.key}{_PART_SUFFIX}") as fh:
            fh.write(json.dumps({"cell": header}, sort_keys=True) + "\n")
            for row in rows:
                fh.write(_serialise_row(row) + "\n")
        return header
    finally:
        shutil.rmtree(work, ignore_errors=True)


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


# --------------------------------------------------------------------------
# Running the grid
# --------------------------------------------------------------------------


@dataclass
class ProduceResult:
    """What one :func:`produce_corpus` call did."""

    corpus: Path
    manifest: Path
    complete: bool
    written: bool
    rows: int
    cells_total: int
    cells_reused: int
    cells_run: int
    failed: list[CellFailure]
    encodes: int
    frames_scored: int
    wall_s: float
    tool_busy_s: float
    missing: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """``EXIT_OK`` when the corpus was written, ``EXIT_FAIL`` otherwise."""
        return EXIT_OK if self.written else EXIT_FAIL

    @property
    def overhead_fraction(self) -> float:
        """Share of the wall time when no ffmpeg process was running."""
        if self.wall_s <= 0:
            return 0.0
        return max(0.0, self.wall_s - self.tool_busy_s) / self.wall_s


def usable_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_jobs(cores: int | None = None) -> int:
    """Cells run side by side: one per core, so one cell's encode overlaps another's scoring."""
    return max(1, cores if cores is not None else usable_cores())


def default_vmaf_threads(jobs: int, cores: int | None = None) -> int:
    """libvmaf threads per cell: the cores shared out between the jobs (at least 1)."""
    cores = cores if cores is not None else usable_cores()
    return max(1, cores // max(1, jobs))


def resolve_presets(encoders: Sequence[str], presets: Mapping[str, str] | None) -> dict[str, str]:
    """Each encoder's preset: the override if given, else :data:`DEFAULT_PRESETS`."""
    chosen = {}
    for enc, preset in (presets or {}).items():
        check_encoder(enc)
        check_preset(enc, preset)
    for enc in encoders:
        chosen[enc] = (presets or {}).get(enc, DEFAULT_PRESETS[enc])
    return chosen


def produce_corpus(
    out: str | os.PathLike[str],
    sources: Sequence[Source],
    encoders: Sequence[str],
    cqs: Sequence[int],
    *,
    presets: Mapping[str, str] | None = None,
    max_frames: int | None = None,
    ffmpeg: str | os.PathLike[str] | None = None,
    jobs: int | None = None,
    vmaf_threads: int | None = None,
    allow_missing: bool = False,
    timeout: float | None = None,
    progress: ProgressCallback | None = None,
    argv: Sequence[str] | None = None,
) -> ProduceResult:
    """Produce (or finish, or confirm) the per-frame corpus ``out`` for the grid.

    Every (source, encoder, cq) cell not already recorded under ``out``'s
    parts directory is encoded and scored, ``jobs`` at a time. When every
    cell succeeded — or ``allow_missing`` is set — the rows are assembled
    into ``out`` sorted by (src, encoder, cq, frame_index), and the manifest
    records ``complete``. Otherwise no corpus is written, ``OUT.incomplete``
    explains why, and the result lists the failures.

    Bad arguments (unknown encoder, cq out of range, a preset not on the
    encoder's ladder, an ffmpeg without libvmaf or a requested encoder)
    raise :class:`~frreg.errors.InputError` before anything runs.
    """
    t0 = time.perf_counter()
    corpus = Path(out)
    if not sources:
        raise InputError("no sources")
    if not encoders:
        raise InputError("no encoders")
    if not cqs:
        raise InputError("no cq values")
    encoders = list(dict.fromkeys(check_encoder(e) for e in encoders))
    cqs = sorted(set(cqs))
    for enc in encoders:
        for cq in cqs:
            check_cq(enc, cq)
    chosen_presets = resolve_presets(encoders, presets)
    if max_frames is not None and max_frames < 1:
        raise InputError(f"max_frames must be a positive integer, not {max_frames}")
    check_unique_ids(sources)
    exe = ff.resolve_ffmpeg(ffmpeg)
    info = ff.probe_ffmpeg(exe)
    ff.require_capabilities(info, encoders)
    jobs = jobs if jobs is not None else default_jobs()
    if jobs < 1:
        raise InputError(f"jobs must be at least 1, not {jobs}")
    vmaf_threads = vmaf_threads if vmaf_threads is not None else default_vmaf_threads(jobs)
    if vmaf_threads < 1:
        raise InputError(f"vmaf_threads must be at least 1, not {vmaf_threads}")

    cells = build_cells(sources, encoders, cqs, chosen_presets, max_frames, info)
    pdir = parts_dir(corpus)
    pdir.mkdir(parents=True, exist_ok=True)
    settings = {
        "encoders": sorted(encoders),
        "cqs": cqs,
        "presets": dict(sorted(chosen_presets.items())),
        "max_frames": max_frames,
        "vmaf_model": ff.VMAF_MODEL,
        "jobs": jobs,
        "vmaf_threads": vmaf_threads,
        "timeout_s": timeout,
        "allow_missing": allow_missing,
    }
    record = _ManifestRecord(corpus, cells, settings, info, sources, argv)

    with FileLock(str(_lock_path(corpus))):
        _clean_stale(pdir)
        headers: dict[str, dict[str, Any]] = {}
        for cell in cells:
            header = read_part_header(pdir / f"{cell.key}{_PART_SUFFIX}", cell.key)
            if header is not None:
                headers[cell.key] = header
        pending = [c for c in cells if c.key not in headers]
        reused = len(cells) - len(pending)
        # The marker goes down before anything else changes, so a run killed
        # from here on leaves a corpus the trainer refuses.
        _write_marker(corpus, "a frreg-corpus run is in progress (or was interrupted); rerun it")
        record.save(headers, {}, complete=False)

        clock = ff.ToolClock()
        failures: dict[str, CellFailure] = {}
        frames_todo = sum(c.frames for c in pending)
        frames_done = 0

        def report(last: str | None, finished: bool = False) -> None:
            if progress is not None:
                progress(
                    ProgressEvent(
                        cells_total=len(cells),
                        cells_done=len(headers),
                        cells_failed=len(failures),
                        cells_skipped=reused,
                        frames_done=frames_done,
                        frames_todo=frames_todo,
                        elapsed_s=time.perf_counter() - t0,
                        last=last,
                        finished=finished,
                    )
                )

        report(None)
        if pending:
            executor = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="frreg-cell")
            try:
                running: dict[Future[dict[str, Any]], Cell] = {
                    executor.submit(
                        run_cell,
                        cell,
                        exe,
                        pdir,
                        vmaf_threads=vmaf_threads,
                        timeout=timeout,
                        clock=clock,
                    ): cell
                    for cell in pending
                }
                while running:
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for fut in done:
                        cell = running.pop(fut)
                        try:
                            headers[cell.key] = fut.result()
                            frames_done += cell.frames
                        except ToolError as exc:
                            failures[cell.key] = _failure(cell, exc)
                        except OSError as exc:
                            failures[cell.key] = CellFailure(
                                cell.label, cell.key, f"I/O error: {exc}"
                            )
                        record.save(headers, failures, complete=False)
                        report(cell.label)
            except BaseException:
                # Ctrl-C, SIGTERM: stop every ffmpeg we started, then let it propagate.
                executor.shutdown(wait=False, cancel_futures=True)
                ff.LIVE_PROCESSES.kill_all()
                raise
            executor.shutdown(wait=True)

        missing = [c.label for c in cells if c.key not in headers]
        # Never write an empty corpus, even when gaps are allowed.
        write = bool(headers) and (not failures or allow_missing)
        rows = 0
        corpus_record = None
        if write:
            rows, digest = _assemble(corpus, [c for c in cells if c.key in headers])
            corpus_record = {"path": corpus.name, "rows": rows, "sha256": digest}
        else:
            corpus.unlink(missing_ok=True)
        complete = not missing
        wall = time.perf_counter() - t0
        record.save(
            headers,
            failures,
            complete=complete,
            corpus=corpus_record,
            run={
                "cells_run": len(pending) - len(failures),
                "cells_reused": reused,
                "encodes": clock.launches.get("encode", 0),
                "wall_s": round(wall, 3),
            },
        )
        if write:
            incomplete_marker(corpus).unlink(missing_ok=True)
        else:
            _write_marker(corpus, _incomplete_text(len(failures), len(cells), missing))
        report(None, finished=True)

    return ProduceResult(
        corpus=corpus,
        manifest=manifest_path(corpus),
        complete=complete,
        written=write,
        rows=rows,
        cells_total=len(cells),
        cells_reused=reused,
        cells_run=len(pending) - len(failures),
        failed=[failures[c.key] for c in cells if c.key in failures],
        encodes=clock.launches.get("encode", 0),
        frames_scored=frames_done,
        wall_s=wall,
        tool_busy_s=clock.busy_s(),
        missing=missing,
    )


def _failure(cell: Cell, exc: ToolError) -> CellFailure:
    message = str(exc)
    first = _first_error_line(exc.stderr_tail)
    if first and first not in message:
        message += f": {first}"
    hint = hardware_hint(cell.encoder)
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


def _incomplete_text(n_failed: int, n_cells: int, missing: Sequence[str]) -> str:
    shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
    return (
        f"{n_failed} of {n_cells} cells failed ({shown}); no corpus was written. "
        f"Rerun frreg-corpus to retry them, or pass --allow-missing to write the corpus "
        f"without them (the gaps are then recorded in the manifest)."
    )


def _write_marker(corpus: Path, text: str) -> None:
    with atomic_writer(incomplete_marker(corpus)) as fh:
        fh.write(text + "\n")


def _assemble(corpus: Path, cells: Sequence[Cell]) -> tuple[int, str]:
    """Write the final JSONL from the parts in corpus order; return (rows, sha256)."""
    digest = hashlib.sha256()
    rows = 0
    pdir = parts_dir(corpus)
    with atomic_writer(corpus) as out:
        for cell in sorted(cells, key=lambda c: c.sort_key):
            with open(pdir / f"{cell.key}{_PART_SUFFIX}", encoding="utf-8") as fh:
                fh.readline()  # header
                for line in fh:
                    out.write(line)
                    digest.update(line.encode())
                    rows += 1
    return rows, digest.hexdigest()


def _clean_stale(pdir: Path) -> None:
    """Remove work dirs of dead producers and old temporary files (held under the lock)."""
    now = time.time()
    for entry in pdir.iterdir():
        name = entry.name
        if name.startswith(_WORK_PREFIX) and entry.is_dir():
            pid_text = name[len(_WORK_PREFIX) :].split("-", 1)[0]
            if pid_text.isdigit() and not _pid_alive(int(pid_text)):
                shutil.rmtree(entry, ignore_errors=True)
        elif name.startswith(".") and name.endswith(".tmp"):
            try:
                if now - entry.stat().st_mtime > _STALE_TMP_S:
                    entry.unlink()
            except OSError:
                pass


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class _ManifestRecord:
    """Builds and atomically rewrites ``OUT.manifest.json``."""

    def __init__(
        self,
        corpus: Path,
        cells: Sequence[Cell],
        settings: dict[str, Any],
        info: ff.FfmpegInfo,
        sources: Sequence[Source],
        argv: Sequence[str] | None,
    ) -> None:
        self.corpus = corpus
        self.cells = cells
        self.settings = settings
        self.info = info
        self.sources = sorted(sources, key=lambda s: s.id)
        self.argv = list(argv) if argv is not None else None
        self.started = _now()

    def save(
        self,
        headers: Mapping[str, Mapping[str, Any]],
        failures: Mapping[str, CellFailure],
        *,
        complete: bool,
        corpus: dict[str, Any] | None = None,
        run: dict[str, Any] | None = None,
    ) -> None:
        cells = []
        for cell in self.cells:
            entry: dict[str, Any] = cell.record()
            if cell.key in headers:
                header = headers[cell.key]
                entry["status"] = "done"
                for k in ("enc_bytes", "enc_time_ms", "vmaf_mean", "produced_at"):
                    entry[k] = header.get(k)
                entry["part"] = f"{parts_dir(self.corpus).name}/{cell.key}{_PART_SUFFIX}"
            elif cell.key in failures:
                entry["status"] = "failed"
                entry["error"] = failures[cell.key].message
                entry["stderr_tail"] = failures[cell.key].stderr_tail
            else:
                entry["status"] = "pending"
            cells.append(entry)
        missing = [e for e in cells if e["status"] != "done"]
        write_json_atomic(
            manifest_path(self.corpus),
            {
                "schema_version": SCHEMA_VERSION,
                "producer": {"name": "frreg-corpus", "version": PRODUCER_VERSION},
                "argv": self.argv,
                "settings": self.settings,
                "columns": list(ROW_COLUMNS),
                "ffmpeg": self.info.describe(),
                "sources": [s.describe() for s in self.sources],
                "cells_total": len(cells),
                "cells_done": len(cells) - len(missing),
                "cells_failed": len(failures),
                "missing": [f"{e['src']}/{e['encoder']}/cq{e['cq']}" for e in missing],
                "complete": complete,
                "allow_missing": bool(self.settings.get("allow_missing")),
                "corpus": corpus,
                "started_at": self.started,
                "updated_at": _now(),
                "run": run,
                "cells": cells,
            },
        )


def check_corpus_complete(path: str | os.PathLike[str], *, sha256: str | None = None) -> None:
    """Raise :class:`CorpusError` if the producer's records say ``path`` is not usable.

    Refused: an ``OUT.incomplete`` marker (a run failed or is in progress); a
    manifest with ``complete: false`` that was not written with
    ``allow_missing``; a corpus whose sha256 differs from the one its
    manifest recorded. A corpus with no manifest (not made by frreg-corpus)
    passes: there is nothing to check it against. Pass ``sha256`` when the
    caller already hashed the corpus bytes, to skip hashing them again.
    """
    corpus = Path(path)
    marker = incomplete_marker(corpus)
    if marker.exists():
        try:
            why = marker.read_text(encoding="utf-8").strip().splitlines()[0]
        except (OSError, IndexError):
            why = "a producer run did not finish"
        raise CorpusError(corpus, None, f"corpus is incomplete: {why} (see {marker.name})")
    mpath = manifest_path(corpus)
    if not mpath.exists():
        return
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CorpusError(mpath, None, f"unreadable producer manifest: {exc}") from None
    if not manifest.get("complete") and not manifest.get("allow_missing"):
        missing = manifest.get("missing") or []
        raise CorpusError(
            corpus,
            None,
            f"corpus is incomplete: {len(missing)} cells missing "
            f"({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}); "
            f"rerun frreg-corpus, or pass --allow-missing to accept the gaps",
        )
    recorded = (manifest.get("corpus") or {}).get("sha256")
    if recorded is None:
        raise CorpusError(corpus, None, f"{mpath.name} records no corpus; rerun frreg-corpus")
    if not corpus.exists():
        raise CorpusError(corpus, None, "no such file (its manifest exists; rerun frreg-corpus)")
    if (sha256 or sha256_file(corpus)) != recorded:
        raise CorpusError(
            corpus,
            None,
            f"contents differ from what {mpath.name} recorded "
            f"(edited, or written by another run); rerun frreg-corpus",
        )


def produce_for_gate(
    out: str | os.PathLike[str],
    *,
    manifest: str | os.PathLike[str] | None = None,
    encoders: Sequence[str] | None = None,
    cqs: Sequence[int] | None = None,
    presets: Mapping[str, str] | None = None,
    frames: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    ffmpeg: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] | None = None,
) -> ProduceResult:
    """Produce ``out`` from a sources manifest, or from the built-in set when there is none.

    ``encoders``/``cqs``/``presets`` win over the manifest's own. Progress
    goes to ``log`` as occasional plain lines. Raises
    :class:`~frreg.errors.InputError` for bad input and
    :class:`~frreg.errors.ToolError` (naming the first failed cell, with its
    ffmpeg stderr tail) when the corpus could not be written.
    """
    exe = ff.resolve_ffmpeg(ffmpeg)
    chosen_presets = dict(presets or {})
    if manifest is not None:
        parsed = load_manifest(manifest, ffmpeg=exe)
        sources: Sequence[Source] = parsed.sources
        encoders = encoders or parsed.encoders
        cqs = cqs or parsed.cqs
        chosen_presets = {**(parsed.presets or {}), **chosen_presets}
    else:
        sources = builtin_sources(cache_dir, frames=frames, ffmpeg=exe)
    encoders = encoders or DEMO_ENCODERS
    cqs = cqs or DEMO_CQS

    progress = None
    if log is not None:
        progress = PlainProgress(_LogStream(log), prefix="frreg-corpus")
    result = produce_corpus(
        out,
        sources,
        encoders,
        cqs,
        presets=chosen_presets,
        max_frames=frames if manifest is not None else None,
        ffmpeg=exe,
        progress=progress,
    )
    if not result.written:
        first = result.failed[0]
        raise ToolError(
            f"{out}: {len(result.failed)} of {result.cells_total} corpus cells failed, "
            f"first {first.label}: {first.message}",
            first.argv,
            first.stderr_tail,
        )
    return result


class _LogStream:
    """A write()-able that forwards whole lines to a ``log(str)`` callable."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.log = log

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if line.strip():
                self.log(line)
        return len(text)

    def flush(self) -> None:
        pass
