"""Corpus cells on a Dask cluster (``frreg-corpus --scheduler tcp://HOST:PORT``).

Dask's ``distributed`` is the engine (the ``frreg[cluster]`` extra), imported only
when a scheduler is given. The client stays what it is locally: it plans, and it
alone writes part files, the manifest and the corpus, with the same atomic
writes, resume and failure semantics. A cell task is pure: its inputs are the
cell (source, encoder, quality, preset, frame range, device arguments) and the
run's settings; on the worker it resolves that worker's ffmpeg, renders a
built-in source the worker lacks (it must come out byte for byte the client's),
computes the cell in a scratch directory and returns the part's text, libvmaf's log and
which worker ran it with which ffmpeg and libvmaf (:class:`CellResult`).

Hardware cells ask for a worker resource named after their family (``nvenc``,
``qsv``, ``vaapi``, ``videotoolbox``): a worker started with ``--resources
nvenc=1`` receives NVENC cells and software cells, one without it software
cells only. A hardware cell no worker can take fails at once, naming the
resource, rather than waiting for a worker that may never come.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from frreg.errors import InputError, ToolError
from frreg.producer import ffmpeg as ff
from frreg.producer.cells import Cell, CellFailure, CellOutput, compute_cell
from frreg.producer.encoders import encoder_spec

#: Retries of a cell whose task raised (a worker that dies is rescheduled by Dask).
CELL_RETRIES: Final = 1
#: A worker's gzipped libvmaf log is refused past this size once decompressed (bytes):
#: a 1,000-frame cell's log is about 1 MB.
MAX_LOG_BYTES: Final = 256 * 1024 * 1024
#: A recomputed cell must reproduce the worker's features and scores to this (VMAF
#: points / feature units; the same libvmaf build gives identical numbers, builds may
#: differ in the last printed digits).
AUDIT_CELL_ATOL: Final = 1e-3


@dataclass(frozen=True)
class CellResult:
    """A cell computed on a worker, and where and with what it ran."""

    output: CellOutput
    worker: str
    ffmpeg_version: str
    libvmaf_version: str | None


def hardware_resource(cell: Cell) -> str | None:
    """The worker resource a cell needs (its encoder's hardware family), if any."""
    return encoder_spec(cell.encoder).hardware


def worker_resources(client: Any) -> dict[str, set[str]]:
    """Each worker's address and the resource names it offers."""
    info = client.scheduler_info()
    return {
        address: set((worker.get("resources") or {}).keys())
        for address, worker in info.get("workers", {}).items()
    }


def _readable(paths: Sequence[str]) -> list[str]:
    return [p for p in paths if not os.access(p, os.R_OK)]


def check_sources_on_workers(client: Any, cells: Sequence[Cell]) -> None:
    """Every source file must be readable at the same path on every worker (a shared
    filesystem): a one-line :class:`InputError` naming the worker and the file if not."""
    # Generated built-ins are rendered on a worker that lacks them (cell_task).
    paths = sorted({str(c.source.path) for c in cells if c.source.generator is None})
    missing = client.run(_readable, paths)
    for worker, absent in sorted(missing.items()):
        if absent:
            raise InputError(
                f"source {absent[0]} is not readable on worker {worker}; with --scheduler, "
                "sources must be on a filesystem every worker sees at the same path"
            )


def with_local_source(cell: Cell, exe: Path) -> Cell:
    """The cell, its built-in source rendered here first if this worker lacks the file."""
    from frreg.producer.sources.builtins import default_cache_dir, render_here

    source = render_here(cell.source, exe, default_cache_dir() / "sources")
    return cell if source is cell.source else replace(cell, source=source)


@functools.cache
def _worker_ffmpeg() -> tuple[Path, ff.FfmpegInfo]:
    """This worker process's ffmpeg and what it can do, probed once per process."""
    exe = ff.resolve_ffmpeg(None)
    return exe, ff.probe_ffmpeg(exe)


def cell_task(cell: Cell, vmaf_threads: int, timeout: float | None) -> CellResult:
    """Run on a worker: compute one cell with that worker's ffmpeg (``FRREG_FFMPEG``, else
    imageio-ffmpeg's). Whatever goes wrong comes back as a :class:`ToolError` of plain
    strings: an exception the client cannot unpickle would leave it waiting."""
    from distributed import get_worker

    worker = get_worker().address
    try:
        exe, info = _worker_ffmpeg()
        cell = with_local_source(cell, exe)
        with tempfile.TemporaryDirectory(prefix="frreg-cell-") as scratch:
            output = compute_cell(
                cell, exe, Path(scratch), vmaf_threads=vmaf_threads, timeout=timeout
            )
    except ToolError as exc:  # say where it failed: a cluster has many ffmpegs
        raise ToolError(
            f"{exc} (on worker {worker})", list(map(str, exc.argv or [])), str(exc.stderr_tail)
        ) from None
    except Exception as exc:
        raise ToolError(f"{type(exc).__name__}: {exc} (on worker {worker})") from None
    return CellResult(output, worker, info.version, info.libvmaf_version)


def result_problem(cell: Cell, result: Any) -> str | None:
    """What the client can check of a worker's cell without recomputing it (``None``: it
    holds). The part's header is the cell's and the log's; its rows are exactly what
    libvmaf's log (shipped beside it) gives for this cell; and every row's vmaf is
    libvmaf's vmaf_v0.6.1 of that row's own six features (the label oracle), so a worker
    that rewrites scores must also rewrite features consistently with libvmaf's model
    -- which the local recompute of a sample of cells (``--audit-cells``) then catches."""
    import gzip
    import io
    import json
    import zlib

    import numpy as np

    from frreg.corpus.label_oracle import oracle_scores
    from frreg.producer.cells import BITSTREAM_BYTES_COLUMN, ENC_TIME_COLUMN, rows_from_log
    from frreg.schema import CANONICAL_6, DATA_ORACLE_RMSE_MAX, TARGET

    if not isinstance(result, CellResult) or not isinstance(result.output, CellOutput):
        return f"the worker returned a {type(result).__name__}, not a cell result"
    out = result.output
    lines = out.part.splitlines() if isinstance(out.part, str) else []
    try:
        first = json.loads(lines[0]) if lines else None
        rows = [json.loads(line) for line in lines[1:]]
    except ValueError as exc:
        return f"its part is not JSON lines ({exc})"
    header = first.get("cell") if isinstance(first, dict) else None
    if not isinstance(header, dict) or header != out.header:
        return "its part's header is not the header it reported"
    mismatch = [k for k, v in cell.record().items() if header.get(k) != v]
    if mismatch:
        return f"its header names another cell ({', '.join(mismatch)} differ)"
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(out.log_gz)) as fh:
            raw = fh.read(MAX_LOG_BYTES + 1)
        if len(raw) > MAX_LOG_BYTES:
            return f"its libvmaf log is larger than {MAX_LOG_BYTES} bytes"
        log = json.loads(raw)
        expected = rows_from_log(log, cell, header[BITSTREAM_BYTES_COLUMN], header[ENC_TIME_COLUMN])
    except (OSError, EOFError, zlib.error, ValueError, KeyError, TypeError) as exc:
        return f"its libvmaf log is unusable ({type(exc).__name__})"
    except ToolError as exc:
        return f"its libvmaf log does not check out ({exc})"
    if rows != expected:
        return "its rows are not what its libvmaf log gives for this cell"
    if header.get("vmaf_mean") != log["pooled_metrics"][TARGET]["mean"] or header.get(
        "rows"
    ) != len(rows):
        return "its header's vmaf_mean or row count is not its log's"
    features = np.array([[r[c] for c in CANONICAL_6] for r in rows], dtype=np.float64)
    scores = np.array([r[TARGET] for r in rows], dtype=np.float64)
    rmse = float(np.sqrt(np.mean((oracle_scores(features) - scores) ** 2)))
    if not rmse <= DATA_ORACLE_RMSE_MAX:
        return (
            f"its vmaf is not libvmaf's vmaf_v0.6.1 of its own features (RMSE {rmse:.3g} > "
            f"{DATA_ORACLE_RMSE_MAX})"
        )
    return None


def recompute_problem(cell: Cell, result: CellResult, ffmpeg: Path, scratch: Path) -> str | None:
    """The cell recomputed here, with the client's ffmpeg: ``None`` when its features and
    scores agree with the worker's within :data:`AUDIT_CELL_ATOL`."""
    import json

    from frreg.producer.cells import compute_cell as compute
    from frreg.schema import CANONICAL_6, TARGET

    mine = compute(cell, ffmpeg, scratch, vmaf_threads=1)
    theirs = [json.loads(line) for line in result.output.part.splitlines()[1:]]
    ours = [json.loads(line) for line in mine.part.splitlines()[1:]]
    if len(ours) != len(theirs):
        return f"recomputed here it has {len(ours)} rows, the worker sent {len(theirs)}"
    worst = 0.0
    for a, b in zip(ours, theirs, strict=True):
        for column in (*CANONICAL_6, TARGET):
            worst = max(worst, abs(float(a[column]) - float(b[column])))
    if worst > AUDIT_CELL_ATOL:
        return (
            f"recomputed here, its features or scores differ from worker {result.worker}'s "
            f"by up to {worst:.3g} (> {AUDIT_CELL_ATOL})"
        )
    return None


def run_cells(
    client: Any,
    cells: Sequence[Cell],
    *,
    vmaf_threads: int,
    timeout: float | None,
    on_result: Callable[[Cell, CellResult], None],
    on_failure: Callable[[Cell, CellFailure], None],
) -> None:
    """Submit every cell to the cluster and hand each outcome back as it lands.

    ``on_result`` runs in the calling thread (it writes the part file); a cell
    whose task fails on every try goes to ``on_failure`` as a local cell's would.
    """
    from distributed import as_completed

    offered = worker_resources(client)
    futures = {}
    for cell in cells:
        resource = hardware_resource(cell)
        if resource is not None and not any(resource in r for r in offered.values()):
            on_failure(
                cell,
                CellFailure(
                    cell.label,
                    cell.key,
                    f"no worker offers the {resource!r} resource this {cell.encoder} cell "
                    f"needs (start one with: dask worker ... --resources {resource}=1)",
                ),
            )
            continue
        fut = client.submit(
            cell_task,
            cell,
            vmaf_threads,
            timeout,
            key=f"frreg-cell-{cell.key}",
            resources={resource: 1} if resource is not None else None,
            retries=CELL_RETRIES,
            pure=False,
        )
        futures[fut] = cell
    try:
        with client.as_current():  # where as_completed finds its client
            for fut in as_completed(list(futures)):  # type: ignore[no-untyped-call]
                _settle(futures[fut], fut, on_result, on_failure)
    finally:
        client.cancel(list(futures))


def _settle(
    cell: Cell,
    fut: Any,
    on_result: Callable[[Cell, CellResult], None],
    on_failure: Callable[[Cell, CellFailure], None],
) -> None:
    from frreg.producer.cells import cell_failure

    try:
        result = fut.result()
    except ToolError as exc:
        on_failure(cell, cell_failure(cell, exc))
    except Exception as exc:  # a worker lost for good, a task that cannot run
        on_failure(cell, CellFailure(cell.label, cell.key, f"{type(exc).__name__}: {exc}"))
    else:
        on_result(cell, result)
