"""Running the grid: the resumable runner, corpus assembly and the run's manifest.

:func:`produce_corpus` runs every cell not already finished under the
corpus's parts directory, ``jobs`` at a time, then assembles the corpus from
the parts in sorted order. Next to the corpus ``OUT`` it keeps the sidecar
files of :mod:`frreg.corpus.sidecar`: ``OUT.manifest.json`` (settings,
sources, versions, every cell's status, the corpus digest), ``OUT.parts/``
and, while the corpus must not be used, ``OUT.incomplete``.

A run onto an ``OUT`` that already holds cells keeps them beside its own (the
fork's producer appends to ``--out``); :func:`merge_corpora` combines corpora
produced separately. What may be combined is :mod:`frreg.producer.merge`'s to
decide.

Each part is written to a temporary name and renamed, so killing the
producer at any moment leaves only whole parts; a rerun skips them and the
final JSONL — assembled again via a temporary name — is the same as an
uninterrupted run's. A file lock keeps two producers off the same corpus;
correctness does not depend on it.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import stat
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from filelock import FileLock

from frreg._io import atomic_writer, require_creatable, write_json_atomic
from frreg.corpus.sidecar import (
    ALLOW_MIXED_LIBVMAF,
    clear_incomplete,
    incomplete_marker,
    manifest_path,
    mark_incomplete,
    parts_dir,
)
from frreg.errors import InputError, ToolError
from frreg.producer import ffmpeg as ff
from frreg.producer.cells import (
    BITSTREAM_BYTES_COLUMN,
    ENC_TIME_COLUMN,
    PRODUCER_VERSION,
    ROW_COLUMNS,
    WORK_PREFIX,
    Cell,
    CellFailure,
    build_cells,
    cell_failure,
    now_iso,
    part_name,
    read_part_header,
    run_cell,
    write_cell_output,
)
from frreg.producer.encoders import (
    DEFAULT_PRESETS,
    HARDWARE_ENCODERS,
    check_cq,
    check_encoder,
    check_preset,
)
from frreg.producer.merge import (
    CorpusRecord,
    RecordedCell,
    Union,
    combine,
    read_existing,
    read_shards,
    write_carried_parts,
)
from frreg.producer.progress import PlainProgress, ProgressCallback, ProgressEvent
from frreg.producer.settings import ProducerSettings
from frreg.producer.sources import (
    Source,
    check_distinct_files,
    check_unique_ids,
    load_manifest,
)
from frreg.schema import EXIT_FAIL, EXIT_OK, SCHEMA_VERSION

#: A temporary file nobody has written to for this long (seconds) is debris of
#: a killed writer: atomic_writer writes, fsyncs and renames in one go, so a
#: live writer's file is never idle this long. (The names carry no pid, so
#: idleness is the evidence; cleaning also runs only under the producer lock.)
_IDLE_TMP_S: Final = 60.0


# --------------------------------------------------------------------------
# Defaults for jobs and threads
# --------------------------------------------------------------------------


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


def resolve_presets(
    encoders: Sequence[str], presets: Mapping[str, str] | None
) -> dict[str, str | None]:
    """Each encoder's preset: the override if given, else :data:`DEFAULT_PRESETS`."""
    for enc, preset in (presets or {}).items():
        check_encoder(enc)
        check_preset(enc, preset)
    return {enc: (presets or {}).get(enc, DEFAULT_PRESETS[enc]) for enc in encoders}


# --------------------------------------------------------------------------
# Where the corpus goes
# --------------------------------------------------------------------------


def check_out_path(out: str | os.PathLike[str]) -> Path:
    """``out`` made absolute, or :class:`~frreg.errors.InputError` if no corpus can be written there.

    Absolute because every ffmpeg call runs in its cell's own work directory:
    a relative path handed down would name a file inside it. Refused before
    any work starts: an ``out`` (or a sidecar beside it) that exists and is
    not a regular file — a directory, or a device such as ``/dev/null``,
    which the atomic rename would replace — and an ``out`` whose nearest
    existing ancestor is not a writable directory. Missing parent directories
    are fine: the run creates them.
    """
    path = Path(out).absolute()
    for target in (path, manifest_path(path), incomplete_marker(path)):
        mode = _mode(target, out)
        if mode is None or stat.S_ISREG(mode):
            continue
        shown = out if target == path else target
        if stat.S_ISDIR(mode):
            raise InputError(f"{shown}: is a directory; the corpus must be a file path")
        raise InputError(
            f"{shown}: exists and is not a regular file (a device, pipe or socket); "
            "refusing to replace it"
        )
    mode = _mode(parts_dir(path), out)
    if mode is not None and not stat.S_ISDIR(mode):
        raise InputError(
            f"{parts_dir(path)}: exists and is not a directory (the producer keeps "
            "its finished cells there)"
        )
    require_creatable(path.parent, out)
    return path


def _mode(path: Path, out: str | os.PathLike[str]) -> int | None:
    """``path``'s file mode (following links), or ``None`` if nothing is there."""
    try:
        return path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise InputError(f"{out}: cannot inspect {path}: {exc.strerror}") from None


# --------------------------------------------------------------------------
# The result
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
    #: Labels of the cells recorded without rows (failed here, or gaps kept from earlier).
    missing: list[str] = field(default_factory=list)
    #: Cells kept from the corpus already at ``out`` (or from merged shards), not planned.
    cells_carried: int = 0
    #: Cells whose rows the corpus holds: this run's that are done, and the carried ones.
    cells_written: int = 0

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


# --------------------------------------------------------------------------
# produce_corpus
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    """A validated grid: every check passed, nothing has run yet."""

    cells: list[Cell]
    exe: Path
    info: ff.FfmpegInfo
    jobs: int
    vmaf_threads: int
    settings: dict[str, Any]
    vmaf_bin: dict[str, Any] | None


def _plan(sources: Sequence[Source], settings: ProducerSettings) -> _Plan:
    """Check every setting (InputError) and build the cells, before anything runs.

    The grid is ``settings.grid()`` (see :meth:`ProducerSettings.for_run`), every
    source is cut to ``settings.frames``.
    """
    if not sources:
        raise InputError("no sources")
    grid = settings.grid()
    max_frames = settings.frames
    chosen_encoders = list(dict.fromkeys(check_encoder(e) for e in grid.encoders))
    chosen_cqs = sorted(set(grid.cqs))
    for enc in chosen_encoders:
        for cq in chosen_cqs:
            check_cq(enc, cq)
    chosen_presets = resolve_presets(chosen_encoders, grid.presets)
    if max_frames is not None and max_frames < 1:
        raise InputError(f"max_frames must be a positive integer, not {max_frames}")
    check_unique_ids(sources)
    check_distinct_files(sources)
    vmaf_bin = settings.vmaf_bin
    vmaf_bin_path = ff.check_vmaf_bin(vmaf_bin) if vmaf_bin is not None else None
    exe = ff.resolve_ffmpeg(settings.ffmpeg)
    info = ff.probe_ffmpeg(exe)
    ff.require_capabilities(info, chosen_encoders, hardware=HARDWARE_ENCODERS)
    jobs = settings.jobs if settings.jobs is not None else default_jobs()
    if jobs < 1:
        raise InputError(f"jobs must be at least 1, not {jobs}")
    vmaf_threads = (
        settings.vmaf_threads if settings.vmaf_threads is not None else default_vmaf_threads(jobs)
    )
    if vmaf_threads < 1:
        raise InputError(f"vmaf_threads must be at least 1, not {vmaf_threads}")
    cells = build_cells(
        sources, chosen_encoders, chosen_cqs, chosen_presets, max_frames, info, settings.devices
    )
    recorded = {
        "encoders": sorted(chosen_encoders),
        "cqs": chosen_cqs,
        "presets": dict(sorted(chosen_presets.items())),
        "max_frames": max_frames,
        "vmaf_model": ff.VMAF_MODEL,
        "jobs": jobs,
        "vmaf_threads": vmaf_threads,
        "timeout_s": settings.timeout,
        "allow_missing": settings.allow_missing,
        "devices": settings.devices.describe(),
        ALLOW_MIXED_LIBVMAF: settings.allow_mixed_libvmaf,
    }
    return _Plan(
        cells, exe, info, jobs, vmaf_threads, recorded, _vmaf_bin_record(vmaf_bin_path, info)
    )


def _vmaf_bin_record(path: Path | None, info: ff.FfmpegInfo) -> dict[str, Any] | None:
    """What the manifest says of ``--vmaf-bin``: given, never run, and what scored instead.

    One scorer per corpus: features from a second libvmaf build would not be
    comparable with the ffmpeg filter's, whose libvmaf version the manifest records.
    """
    if path is None:
        return None
    return {"path": str(path), "used": False, "scored_by": info.scorer()}


class _Run:
    """One run over a plan's pending cells: their outcomes, the progress, the manifest."""

    def __init__(
        self,
        plan: _Plan,
        record: _ManifestRecord,
        headers: dict[str, dict[str, Any]],
        progress: ProgressCallback | None,
        t0: float,
    ) -> None:
        self.plan = plan
        self.record = record
        self.headers = headers
        self.failures: dict[str, CellFailure] = {}
        self.pending = [c for c in plan.cells if c.key not in headers]
        self.reused = len(plan.cells) - len(self.pending)
        self.progress = progress
        self.clock = ff.ToolClock()
        self.frames_todo = sum(c.frames for c in self.pending)
        self.frames_done = 0
        self.t0 = t0

    def report(self, last: str | None, finished: bool = False) -> None:
        if self.progress is None:
            return
        self.progress(
            ProgressEvent(
                cells_total=len(self.plan.cells),
                cells_done=len(self.headers),
                cells_failed=len(self.failures),
                cells_skipped=self.reused,
                frames_done=self.frames_done,
                frames_todo=self.frames_todo,
                elapsed_s=time.perf_counter() - self.t0,
                last=last,
                finished=finished,
            )
        )

    def run_pending(self, pdir: Path, timeout: float | None) -> None:
        """Run every pending cell, recording each outcome in the manifest as it lands."""
        if not self.pending:
            return
        # A hardware encoder this ffmpeg build lacks fails its cells without a run.
        for cell in [c for c in self.pending if c.encoder not in self.plan.info.encoders]:
            self.failures[cell.key] = cell_failure(
                cell, ff.missing_encoder_error(self.plan.info, cell.encoder)
            )
            self.pending.remove(cell)
            self.frames_todo -= cell.frames
            self.record.save(self.headers, self.failures, complete=False)
            self.report(cell.label)
        executor = ThreadPoolExecutor(max_workers=self.plan.jobs, thread_name_prefix="frreg-cell")
        try:
            running: dict[Future[dict[str, Any]], Cell] = {
                executor.submit(
                    run_cell,
                    cell,
                    self.plan.exe,
                    pdir,
                    vmaf_threads=self.plan.vmaf_threads,
                    timeout=timeout,
                    clock=self.clock,
                ): cell
                for cell in self.pending
            }
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    cell = running.pop(fut)
                    self._settle(cell, fut)
                    self.record.save(self.headers, self.failures, complete=False)
                    self.report(cell.label)
        except BaseException:
            # Ctrl-C, SIGTERM: stop every ffmpeg we started, then let it propagate.
            executor.shutdown(wait=False, cancel_futures=True)
            ff.LIVE_PROCESSES.kill_all()
            raise
        executor.shutdown(wait=True)

    def run_on_cluster(
        self, client: Any, pdir: Path, timeout: float | None, audit_cells: int
    ) -> None:
        """Run every pending cell on the Dask cluster; this process checks each result
        (:func:`~frreg.producer.cluster.result_problem`), writes it, and finally
        recomputes ``audit_cells`` of them itself (:meth:`audit_cells`)."""
        from frreg.producer.cluster import (
            CellResult,
            check_sources_on_workers,
            result_problem,
            run_cells,
        )

        if not self.pending:
            return
        check_sources_on_workers(client, self.pending)
        done: dict[str, tuple[Cell, CellResult]] = {}

        def landed(cell: Cell, result: CellResult) -> None:
            problem = result_problem(cell, result)
            if problem is not None:
                worker = getattr(result, "worker", "an unknown worker")
                failed(cell, CellFailure(cell.label, cell.key, f"from {worker}: {problem}"))
                return
            done[cell.key] = (cell, result)
            header = write_cell_output(pdir, cell, result.output)
            # The manifest says which worker ran the cell, with which ffmpeg and libvmaf.
            self.headers[cell.key] = {
                **header,
                "worker": {
                    "address": result.worker,
                    "ffmpeg_version": result.ffmpeg_version,
                    "libvmaf_version": result.libvmaf_version,
                },
            }
            self.frames_done += cell.frames
            self.record.save(self.headers, self.failures, complete=False)
            self.report(f"{cell.label} on {result.worker}")

        def failed(cell: Cell, failure: CellFailure) -> None:
            self.failures[cell.key] = failure
            self.record.save(self.headers, self.failures, complete=False)
            self.report(cell.label)

        run_cells(
            client,
            self.pending,
            vmaf_threads=self.plan.vmaf_threads,
            timeout=timeout,
            on_result=landed,
            on_failure=failed,
        )
        self.audit_cells(pdir, done, audit_cells)

    def audit_cells(self, pdir: Path, done: Mapping[str, tuple[Cell, Any]], k: int) -> None:
        """Recompute ``k`` randomly chosen cells of ``done`` with this machine's ffmpeg
        (the draw is this process's, from system entropy: no worker can know it); a cell
        whose worker's numbers differ fails, naming the worker, and its part is removed.
        Cells this ffmpeg cannot encode (a hardware encoder it lacks) are not drawn."""
        import random
        import tempfile

        from frreg.producer.cluster import recompute_problem, with_local_source

        local = sorted(
            key for key, (cell, _) in done.items() if cell.encoder in self.plan.info.encoders
        )
        if k <= 0 or not local:
            return
        for key in sorted(random.SystemRandom().sample(local, min(k, len(local)))):
            cell, result = done[key]
            self.report(f"checking {cell.label} from {result.worker} by recomputing it here")
            try:
                here = with_local_source(cell, self.plan.exe)
                with tempfile.TemporaryDirectory(prefix="frreg-audit-cell-") as scratch:
                    problem = recompute_problem(here, result, self.plan.exe, Path(scratch))
            except ToolError as exc:
                problem = f"could not be recomputed here to check it ({exc})"
            if problem is None:
                continue
            self.failures[key] = CellFailure(cell.label, key, f"from {result.worker}: {problem}")
            self.headers.pop(key, None)
            (pdir / part_name(key)).unlink(missing_ok=True)
            self.frames_done -= cell.frames
            self.record.save(self.headers, self.failures, complete=False)

    def _settle(self, cell: Cell, fut: Future[dict[str, Any]]) -> None:
        try:
            self.headers[cell.key] = fut.result()
            self.frames_done += cell.frames
        except ToolError as exc:
            self.failures[cell.key] = cell_failure(cell, exc)
        except OSError as exc:
            self.failures[cell.key] = CellFailure(cell.label, cell.key, f"I/O error: {exc}")


def produce_corpus(
    out: str | os.PathLike[str],
    sources: Sequence[Source],
    settings: ProducerSettings,
    *,
    progress: ProgressCallback | None = None,
    argv: Sequence[str] | None = None,
) -> ProduceResult:
    """Produce (or finish, or confirm) the per-frame corpus ``out`` for ``settings``' grid.

    Every (source, encoder, cq) cell of ``settings.grid()`` not already
    recorded under ``out``'s parts directory is encoded and scored,
    ``settings.jobs`` at a time. When every cell succeeded — or
    ``settings.allow_missing`` is set — the rows are assembled into ``out``
    sorted by (src, encoder, cq, frame_index), and the manifest records
    ``complete``. Otherwise no corpus is written, ``OUT.incomplete`` explains
    why, and the result lists the failures. ``argv`` is recorded in the
    manifest; ``progress`` is called after every cell.

    The cells ``out`` already holds (its manifest's) are kept beside this run's,
    and the manifest lists them all once (``result.cells_carried``), unless
    ``settings.replace_corpus``. A cell of other settings at a (src, encoder, cq)
    the corpus holds, a source id for another clip, another libvmaf build (unless
    ``allow_mixed_libvmaf``), unfinished cells of an earlier run (unless
    ``allow_missing``) and an ``out`` not written by the producer are refused with
    :class:`~frreg.errors.InputError` before any cell runs
    (:func:`~frreg.producer.merge.combine`).

    Of ``settings``, the run reads the grid, ``frames`` (every source is cut
    to its first ``frames``), ``ffmpeg``, ``jobs``, ``vmaf_threads``,
    ``timeout``, ``allow_missing``, ``devices`` (the nodes QSV and VAAPI cells
    open), ``vmaf_bin``, ``scheduler`` and ``allow_mixed_libvmaf``; the source
    selection (``manifest``, ``source``, ``builtin``...) made ``sources``.
    ``vmaf_bin`` (the fork's ``--vmaf-bin``) must be an existing file and is
    never run: every cell is scored through ffmpeg's libvmaf filter, and the
    manifest records that the binary was given and not used.

    Bad settings (unknown encoder, cq out of range, a preset not on the
    encoder's ladder, an ffmpeg without libvmaf or a requested encoder, an
    ``out`` that is not a writable regular file: :func:`check_out_path`)
    raise :class:`~frreg.errors.InputError` before anything runs.
    ``result.corpus`` is ``out`` made absolute.

    With ``settings.scheduler`` (``tcp://HOST:PORT``) the pending cells run as
    tasks on that Dask cluster (:mod:`frreg.producer.cluster`); everything
    else, writing included, happens here as without it.
    """
    t0 = time.perf_counter()
    corpus = check_out_path(out)
    plan = _plan(sources, settings)
    # Refusals (another cell at a taken (src, encoder, cq), ...) come before anything
    # is written; the union is taken again under the lock, gaps included: unfinished
    # cells may be another run's, in progress, that the lock waits for.
    _union(corpus, plan, settings, final=False)
    client = None
    if settings.scheduler is not None:
        from frreg.dask_client import connect

        client = connect(settings.scheduler)
    try:
        return _produce(corpus, plan, sources, settings, argv, progress, client, t0)
    finally:
        if client is not None:
            client.close()


def _union(corpus: Path, plan: _Plan, settings: ProducerSettings, *, final: bool) -> Union:
    """The cells ``corpus`` already holds that this run keeps beside its own (none with
    ``replace_corpus``); :class:`~frreg.errors.InputError` for a union that must not be
    (:func:`~frreg.producer.merge.combine`). Unfinished cells recorded there are
    refused only when ``final`` (under the lock)."""
    existing = None if settings.replace_corpus else read_existing(corpus)
    return combine(
        corpus,
        [] if existing is None else [existing],
        plan.cells,
        ffmpeg_version=plan.info.version,
        libvmaf_version=plan.info.libvmaf_version,
        allow_missing=settings.allow_missing or not final,
        allow_mixed_libvmaf=settings.allow_mixed_libvmaf,
    )


def _produce(
    corpus: Path,
    plan: _Plan,
    sources: Sequence[Source],
    settings: ProducerSettings,
    argv: Sequence[str] | None,
    progress: ProgressCallback | None,
    client: Any,
    t0: float,
) -> ProduceResult:
    pdir = parts_dir(corpus)
    pdir.mkdir(parents=True, exist_ok=True)

    with FileLock(str(_lock_path(corpus))):
        _clean_stale(corpus, pdir)
        union = _union(corpus, plan, settings, final=True)
        # Carried cells whose part was gone get it back before anything else changes:
        # from here on the manifest records them, and a failed run removes the corpus.
        write_carried_parts(corpus, union)
        record = _ManifestRecord(
            corpus,
            plan.cells,
            plan.settings,
            plan.info,
            _sources_of(sources, union),
            argv,
            plan.vmaf_bin,
            union=union,
        )
        run = _Run(plan, record, _finished_parts(pdir, plan.cells), progress, t0)
        # The marker goes down before anything else changes, so a run killed
        # from here on leaves a corpus the trainer refuses.
        mark_incomplete(corpus, "a frreg-corpus run is in progress (or was interrupted); rerun it")
        record.save(run.headers, {}, complete=False)
        run.report(None)
        if client is None:
            run.run_pending(pdir, settings.timeout)
        else:
            run.run_on_cluster(client, pdir, settings.timeout, settings.audit_cells)
        result = _finish(corpus, run, settings.allow_missing, union)
        run.report(None, finished=True)
    return result


def _sources_of(sources: Sequence[Source], union: Union) -> list[dict[str, Any]]:
    """The manifest's sources: this run's and those of the carried cells, by id."""
    described = {**union.sources, **{s.id: s.describe() for s in sources}}
    return [described[src] for src in sorted(described)]


def merge_corpora(
    out: str | os.PathLike[str],
    shards: Sequence[str | os.PathLike[str]],
    settings: ProducerSettings | None = None,
    *,
    argv: Sequence[str] | None = None,
) -> ProduceResult:
    """Merge finished corpora (``shards``, e.g. produced on other machines) into ``out``:
    one corpus and one manifest holding every cell once (``frreg-corpus --merge``).

    Each shard is checked first (:func:`~frreg.producer.merge.read_shard`: its manifest,
    its digest, every row against its cells); the cells already at ``out`` are kept
    unless ``settings.replace_corpus``, and the union is checked
    (:func:`~frreg.producer.merge.combine`). Of ``settings`` only ``replace_corpus``,
    ``allow_missing`` (shards with recorded gaps) and ``allow_mixed_libvmaf`` are read.
    Any problem raises :class:`~frreg.errors.InputError` before anything is written.

    The parts go into ``OUT.parts/``, then the corpus and the manifest are each written
    to a temporary name and renamed, under ``OUT.incomplete``: an interrupted merge
    leaves a corpus the trainer refuses, and rerunning it gives the same corpus.
    Nothing is encoded and ffmpeg is not needed.
    """
    t0 = time.perf_counter()
    settings = settings or ProducerSettings()
    corpus = check_out_path(out)
    if not shards:
        raise InputError("--merge: no corpora to merge")
    records = read_shards(corpus, shards)
    _merged(corpus, records, settings)  # every refusal before anything is written
    pdir = parts_dir(corpus)
    pdir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(_lock_path(corpus))):
        _clean_stale(corpus, pdir)
        union = _merged(corpus, records, settings)
        recorded = {
            "merged": [str(r.path) for r in records],
            "vmaf_model": ff.VMAF_MODEL,
            "allow_missing": settings.allow_missing,
            ALLOW_MIXED_LIBVMAF: settings.allow_mixed_libvmaf,
        }
        record = _ManifestRecord(
            corpus,
            [],
            recorded,
            None,
            [union.sources[src] for src in sorted(union.sources)],
            argv,
            None,
            union=union,
        )
        mark_incomplete(
            corpus, "a frreg-corpus --merge is in progress (or was interrupted); rerun it"
        )
        write_carried_parts(corpus, union)
        rows, digest = _assemble(corpus, union.carried)
        wall = time.perf_counter() - t0
        record.save(
            {},
            {},
            complete=not union.gaps,
            corpus={"path": corpus.name, "rows": rows, "sha256": digest},
            run={
                "cells_run": 0,
                "cells_reused": 0,
                "cells_carried": len(union.carried),
                "encodes": 0,
                "wall_s": round(wall, 3),
            },
        )
        clear_incomplete(corpus)
    return ProduceResult(
        corpus=corpus,
        manifest=manifest_path(corpus),
        complete=not union.gaps,
        written=True,
        rows=rows,
        cells_total=0,
        cells_reused=0,
        cells_run=0,
        failed=[],
        encodes=0,
        frames_scored=0,
        wall_s=wall,
        tool_busy_s=0.0,
        missing=_gap_labels(union.gaps),
        cells_carried=len(union.carried),
        cells_written=len(union.carried),
    )


def _merged(corpus: Path, shards: Sequence[CorpusRecord], settings: ProducerSettings) -> Union:
    """The union of what ``corpus`` holds (unless replaced) and the shards' cells."""
    existing = None if settings.replace_corpus else read_existing(corpus)
    return combine(
        corpus,
        [*([] if existing is None else [existing]), *shards],
        allow_missing=settings.allow_missing,
        allow_mixed_libvmaf=settings.allow_mixed_libvmaf,
    )


def _finished_parts(pdir: Path, cells: Sequence[Cell]) -> dict[str, dict[str, Any]]:
    """Headers of the cells whose part is already on disk, keyed by cell key."""
    headers: dict[str, dict[str, Any]] = {}
    for cell in cells:
        header = read_part_header(pdir / part_name(cell.key), cell.key)
        if header is not None:
            headers[cell.key] = header
    return headers


def _finish(corpus: Path, run: _Run, allow_missing: bool, union: Union) -> ProduceResult:
    """Assemble the corpus (or refuse to), write the final manifest and the marker."""
    cells, headers, failures = run.plan.cells, run.headers, run.failures
    missing = [c.label for c in cells if c.key not in headers] + _gap_labels(union.gaps)
    done: list[Cell | RecordedCell] = [c for c in cells if c.key in headers]
    done += union.carried
    # Never write an empty corpus, even when gaps are allowed.
    write = bool(done) and (not missing or allow_missing)
    rows = 0
    corpus_record = None
    if write:
        rows, digest = _assemble(corpus, done)
        corpus_record = {"path": corpus.name, "rows": rows, "sha256": digest}
    else:
        corpus.unlink(missing_ok=True)
    wall = time.perf_counter() - run.t0
    # Done here, not reused (pending minus failures undercounts: a cell whose encoder
    # this ffmpeg lacks fails without running and leaves the pending list).
    cells_run = len(headers) - run.reused
    encodes = run.clock.launches.get("encode", 0)
    run.record.save(
        headers,
        failures,
        complete=not missing,
        corpus=corpus_record,
        run={
            "cells_run": cells_run,
            "cells_reused": run.reused,
            "cells_carried": len(union.carried),
            "encodes": encodes,
            "wall_s": round(wall, 3),
        },
    )
    if write:
        clear_incomplete(corpus)
    else:
        mark_incomplete(corpus, _incomplete_text(len(failures), len(cells), missing))
    return ProduceResult(
        corpus=corpus,
        manifest=manifest_path(corpus),
        complete=not missing,
        written=write,
        rows=rows,
        cells_total=len(cells),
        cells_reused=run.reused,
        cells_run=cells_run,
        failed=[failures[c.key] for c in cells if c.key in failures],
        encodes=encodes,
        frames_scored=run.frames_done,
        wall_s=wall,
        tool_busy_s=run.clock.busy_s(),
        missing=missing,
        cells_carried=len(union.carried),
        cells_written=len(done) if write else 0,
    )


def _gap_labels(gaps: Sequence[Mapping[str, Any]]) -> list[str]:
    return [f"{g['src']}/{g['encoder']}/cq{g['cq']}" for g in gaps]


def _incomplete_text(n_failed: int, n_cells: int, missing: Sequence[str]) -> str:
    shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
    return (
        f"{n_failed} of {n_cells} cells failed ({shown}); no corpus was written. "
        f"Rerun frreg-corpus to retry them, or pass --allow-missing to write the corpus "
        f"without them (the gaps are then recorded in the manifest)."
    )


# --------------------------------------------------------------------------
# Assembly, locking and stale files
# --------------------------------------------------------------------------


def _assemble(corpus: Path, cells: Sequence[Cell | RecordedCell]) -> tuple[int, str]:
    """Write the final JSONL from the parts in corpus order; return (rows, sha256)."""
    digest = hashlib.sha256()
    rows = 0
    pdir = parts_dir(corpus)
    with atomic_writer(corpus) as out:
        for cell in sorted(cells, key=lambda c: c.sort_key):
            with open(pdir / part_name(cell.key), encoding="utf-8") as fh:
                fh.readline()  # header
                for line in fh:
                    out.write(line)
                    digest.update(line.encode())
                    rows += 1
    return rows, digest.hexdigest()


def _lock_path(corpus: Path) -> Path:
    # Inside the parts dir, not ``OUT.lock``: callers (the gate) may already
    # hold a FileLock on ``OUT.lock`` around this call, and a second flock on
    # the same file from the same process would deadlock.
    return parts_dir(corpus) / ".producer.lock"


def _clean_stale(corpus: Path, pdir: Path) -> None:
    """Remove what killed producers left behind (called under the lock).

    In the parts directory: the ``.work-PID-*`` directories of dead pids and
    idle temporary files (of parts and libvmaf logs). Beside the corpus: the
    idle temporaries of the corpus, its manifest and its ``.incomplete``
    marker, named exactly as :func:`frreg._io.atomic_writer` names them, so
    another corpus in the same directory keeps its own.
    """
    now = time.time()
    for entry in pdir.iterdir():
        name = entry.name
        if name.startswith(WORK_PREFIX) and entry.is_dir():
            pid_text = name[len(WORK_PREFIX) :].split("-", 1)[0]
            if pid_text.isdigit() and not ff.pid_alive(int(pid_text)):
                shutil.rmtree(entry, ignore_errors=True)
        elif name.startswith(".") and name.endswith(".tmp"):
            _remove_if_idle(entry, now)
    for target in (corpus, manifest_path(corpus), incomplete_marker(corpus)):
        # atomic_writer: mkstemp(prefix=".NAME.", suffix=".tmp"), 8 random characters.
        for entry in corpus.parent.glob(f".{glob.escape(target.name)}.{'?' * 8}.tmp"):
            _remove_if_idle(entry, now)


def _remove_if_idle(path: Path, now: float) -> None:
    try:
        if path.is_file() and now - path.stat().st_mtime > _IDLE_TMP_S:
            path.unlink()
    except OSError:
        pass  # gone already, or not ours to remove: it is only debris


# --------------------------------------------------------------------------
# The run's manifest
# --------------------------------------------------------------------------


class _ManifestRecord:
    """Builds and atomically rewrites ``OUT.manifest.json``.

    It lists every cell the corpus holds or was asked for, once, in corpus order:
    this run's (``cells``, run with ``info``'s ffmpeg) and, with ``union``, those
    kept from the corpus already there or from merged shards, and the gaps recorded
    before. ``info`` is ``None`` for a merge, which runs nothing.
    """

    def __init__(
        self,
        corpus: Path,
        cells: Sequence[Cell],
        settings: dict[str, Any],
        info: ff.FfmpegInfo | None,
        sources: Sequence[Mapping[str, Any]],
        argv: Sequence[str] | None,
        vmaf_bin: dict[str, Any] | None,
        *,
        union: Union | None = None,
    ) -> None:
        self.corpus = corpus
        self.vmaf_bin = vmaf_bin
        self.cells = cells
        self.settings = settings
        self.info = info
        self.sources = [dict(s) for s in sources]
        self.argv = list(argv) if argv is not None else None
        self.started = now_iso()
        self.carried = list(union.carried) if union is not None else []
        self.gaps = list(union.gaps) if union is not None else []
        self.carried_from = list(union.carried_from) if union is not None else []

    def _cell_entry(
        self,
        cell: Cell,
        headers: Mapping[str, Mapping[str, Any]],
        failures: Mapping[str, CellFailure],
    ) -> dict[str, Any]:
        entry: dict[str, Any] = cell.record()
        if cell.key in headers:
            header = headers[cell.key]
            entry["status"] = "done"
            for k in (BITSTREAM_BYTES_COLUMN, ENC_TIME_COLUMN, "vmaf_mean", "produced_at"):
                entry[k] = header.get(k)
            entry["part"] = f"{parts_dir(self.corpus).name}/{part_name(cell.key)}"
            # What made it: a corpus may hold cells of several runs (appended, merged).
            made_by = header.get("worker") or {}
            info = self.info
            entry["ffmpeg_version"] = made_by.get("ffmpeg_version", info and info.version)
            entry["libvmaf_version"] = made_by.get("libvmaf_version", info and info.libvmaf_version)
            if "worker" in header:  # run on a Dask worker: which, with which ffmpeg/libvmaf
                entry["worker"] = dict(header["worker"])
        elif cell.key in failures:
            entry["status"] = "failed"
            entry["error"] = failures[cell.key].message
            entry["stderr_tail"] = failures[cell.key].stderr_tail
        else:
            entry["status"] = "pending"
        return entry

    def save(
        self,
        headers: Mapping[str, Mapping[str, Any]],
        failures: Mapping[str, CellFailure],
        *,
        complete: bool,
        corpus: dict[str, Any] | None = None,
        run: dict[str, Any] | None = None,
    ) -> None:
        cells = [self._cell_entry(cell, headers, failures) for cell in self.cells]
        cells += [cell.manifest_entry(self.corpus) for cell in self.carried]
        cells += [dict(gap) for gap in self.gaps]
        cells.sort(key=lambda e: (e["src"], e["encoder"], e["cq"]))
        missing = [e for e in cells if e["status"] != "done"]
        write_json_atomic(
            manifest_path(self.corpus),
            {
                "schema_version": SCHEMA_VERSION,
                "producer": {"name": "frreg-corpus", "version": PRODUCER_VERSION},
                "argv": self.argv,
                "settings": self.settings,
                "columns": list(ROW_COLUMNS),
                "ffmpeg": None if self.info is None else self.info.describe(),
                "vmaf_bin": self.vmaf_bin,
                "sources": self.sources,
                "cells_total": len(cells),
                "cells_done": len(cells) - len(missing),
                "cells_failed": len(failures)
                + sum(1 for e in self.gaps if e.get("status") == "failed"),
                "missing": [f"{e['src']}/{e['encoder']}/cq{e['cq']}" for e in missing],
                "complete": complete,
                "allow_missing": bool(self.settings.get("allow_missing")),
                "corpus": corpus,
                "carried_from": self.carried_from,
                "started_at": self.started,
                "updated_at": now_iso(),
                "run": run,
                "cells": cells,
            },
        )


# --------------------------------------------------------------------------
# The gate's entry point
# --------------------------------------------------------------------------


def produce_for_gate(
    out: str | os.PathLike[str],
    settings: ProducerSettings,
    *,
    log: Callable[[str], None] | None = None,
) -> ProduceResult:
    """Produce ``out`` from ``settings``' sources manifest, or from the built-in set when
    there is none.

    ``settings`` come from :func:`~frreg.producer.settings.producer_settings`
    (the plugin's values) or are built directly; their ``encoders``/``cqs``/
    ``presets`` win over the manifest's own. When ``out`` does not exist the corpus
    is exactly this grid (a manifest an earlier run left there is not carried into
    it); otherwise the cells already there are kept, as :func:`produce_corpus` keeps
    them. Progress goes to ``log`` as occasional plain lines. Raises
    :class:`~frreg.errors.InputError` for bad input and :class:`~frreg.errors.ToolError`
    (naming the first failed cell, with its ffmpeg stderr tail) when the corpus could
    not be written.
    """
    exe = ff.resolve_ffmpeg(settings.ffmpeg)
    if settings.manifest is not None:
        parsed = load_manifest(settings.manifest, ffmpeg=exe)
        sources = list(parsed.sources)
        run = settings.for_run(exe, parsed)
    else:
        sources = settings.builtin_sources(exe)
        # Built-ins are rendered ``frames`` long; only a manifest's files need the cut.
        run = replace(settings.for_run(exe), frames=None)
    if not Path(out).exists():
        # The gate names its items from this grid: a manifest left at ``out`` by an
        # earlier run whose corpus is gone is not carried into it.
        run = replace(run, replace_corpus=True)
    result = produce_corpus(
        out,
        sources,
        run,
        progress=None if log is None else PlainProgress(_LogStream(log), prefix="frreg-corpus"),
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
