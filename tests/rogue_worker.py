"""Rogue Dask workers for tests/test_cluster.py: functions run on real worker processes
(``client.run``) that replace the worker's ``compute_cell`` with a dishonest one.

Pickled by value (``cloudpickle.register_pickle_by_value``), so the workers need not
import this module.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any


def _patch(make: Any) -> None:
    import frreg.producer.cluster as cluster

    cluster.compute_cell = make(cluster.compute_cell)


def rewrite_scores() -> None:
    """Every row's vmaf lowered by 15; the header and the shipped log left as libvmaf
    wrote them (a worker that edits the part only)."""

    def make(honest: Any) -> Any:
        def rogue(cell: Any, *args: Any, **kwargs: Any) -> Any:
            out = honest(cell, *args, **kwargs)
            lines = out.part.splitlines()
            rows = [json.loads(line) for line in lines[1:]]
            for row in rows:
                row["vmaf"] = max(0.0, row["vmaf"] - 15.0)
            part = "\n".join([lines[0], *(json.dumps(r, separators=(",", ":")) for r in rows)])
            return replace(out, part=part + "\n")

        return rogue

    _patch(make)


def rewrite_scores_and_log() -> None:
    """The same lowered scores, with the log, the header's mean and the part made
    consistent with them: only libvmaf's model of the features can tell."""

    def make(honest: Any) -> Any:
        import gzip

        def rogue(cell: Any, *args: Any, **kwargs: Any) -> Any:
            out = honest(cell, *args, **kwargs)
            log = json.loads(gzip.decompress(out.log_gz))
            for frame in log["frames"]:
                frame["metrics"]["vmaf"] = max(0.0, frame["metrics"]["vmaf"] - 15.0)
            scores = [f["metrics"]["vmaf"] for f in log["frames"]]
            log["pooled_metrics"]["vmaf"]["mean"] = sum(scores) / len(scores)
            header = {**out.header, "vmaf_mean": log["pooled_metrics"]["vmaf"]["mean"]}
            lines = out.part.splitlines()
            rows = [json.loads(line) for line in lines[1:]]
            for row, score in zip(rows, scores, strict=True):
                row["vmaf"] = float(score)
            part = "\n".join(
                [
                    json.dumps({"cell": header}, sort_keys=True),
                    *(json.dumps(r, separators=(",", ":")) for r in rows),
                ]
            )
            return replace(
                out,
                header=header,
                part=part + "\n",
                log_gz=gzip.compress(json.dumps(log, sort_keys=True).encode(), mtime=0),
            )

        return rogue

    _patch(make)


def wrong_quality() -> None:
    """Each cell encoded at another quality (cq + 8) and filed as the cell it was given:
    libvmaf's real numbers, consistent in every part -- but not this cell's. Only
    recomputing the cell can tell."""

    def make(honest: Any) -> Any:
        def rogue(cell: Any, *args: Any, **kwargs: Any) -> Any:
            other = replace(cell, cq=cell.cq + 8)
            out = honest(other, *args, **kwargs)
            header = {**out.header, **cell.record()}
            rows = [json.loads(line) for line in out.part.splitlines()[1:]]
            for row in rows:
                row["cq"] = cell.cq
            part = "\n".join(
                [
                    json.dumps({"cell": header}, sort_keys=True),
                    *(json.dumps(r, separators=(",", ":"), ensure_ascii=False) for r in rows),
                ]
            )
            return replace(out, header=header, part=part + "\n")

        return rogue

    _patch(make)


def unpicklable_failure() -> None:
    """The cell raises an exception the client could not unpickle (it holds a lock)."""

    def make(_honest: Any) -> Any:
        import threading

        class Odd(Exception):
            def __init__(self) -> None:
                super().__init__("odd failure")
                self.lock = threading.Lock()

        def rogue(cell: Any, *args: Any, **kwargs: Any) -> Any:
            raise Odd()

        return rogue

    _patch(make)
