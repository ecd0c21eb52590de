"""frreg-corpus --scheduler: corpus cells on a real Dask scheduler and worker processes on
loopback, started and stopped by the tests."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

distributed = pytest.importorskip("distributed")

from frreg import dask_client as cluster_module  # noqa: E402
from frreg.cli import corpus as corpus_cli  # noqa: E402
from frreg.schema import EXIT_FAIL, EXIT_OK, EXIT_USAGE  # noqa: E402

pytestmark = pytest.mark.slow
pytest_plugins = ["pytester"]

GRID = [
    "--builtin", "testsrc2_30fps", "mandelbrot_24fps", "--frames", "6", "--builtin-size",
    "64x48", "--encoder", "libx264", "--cq", "22", "38", "--progress", "none",
]  # fmt: skip


@pytest.fixture(scope="module")
def cluster() -> Iterator[distributed.LocalCluster]:
    """A scheduler and two worker processes on 127.0.0.1 (no dashboard)."""
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        silence_logs=50,
    ) as lc:
        yield lc


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def manifest(path: Path) -> dict:
    return json.loads(Path(f"{path}.manifest.json").read_text())


def without_timing(table: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "enc_time_ms"} for r in table]


def test_the_cluster_corpus_equals_the_local_one_but_for_timing(cluster, tmp_path):
    local, remote = tmp_path / "local" / "c.jsonl", tmp_path / "remote" / "c.jsonl"
    assert corpus_cli.main([*GRID, "--out", str(local)]) == EXIT_OK
    argv = [*GRID, "--out", str(remote), "--scheduler", cluster.scheduler_address]
    assert corpus_cli.main(argv) == EXIT_OK
    assert len(rows(local)) == 2 * 2 * 6
    assert without_timing(rows(remote)) == without_timing(rows(local))
    workers = set(cluster.scheduler_info["workers"])
    ran = [cell.get("worker") for cell in manifest(remote)["cells"]]
    assert all(w is not None and w["address"] in workers for w in ran), ran
    assert all(w["libvmaf_version"] for w in ran)
    # Resume: a rerun through the cluster runs nothing and changes nothing.
    before = remote.read_bytes()
    assert corpus_cli.main(argv) == EXIT_OK
    assert remote.read_bytes() == before


def test_a_hardware_cell_with_no_worker_for_it_fails_fast_naming_the_resource(
    cluster, tmp_path, capsys
):
    out = tmp_path / "c.jsonl"
    argv = [*GRID[:-2], "--encoder", "h264_nvenc", "--cq", "30", "--out", str(out),
            "--scheduler", cluster.scheduler_address, "--progress", "none"]  # fmt: skip
    start = time.monotonic()
    assert corpus_cli.main(argv) == EXIT_FAIL
    assert time.monotonic() - start < 60
    err = capsys.readouterr().err
    assert "no worker offers the 'nvenc' resource" in err
    assert not out.exists()


def test_an_nvenc_cell_goes_only_to_the_worker_with_the_resource(cluster, tmp_path, capsys):
    """A worker started with --resources nvenc=1 gets the NVENC cell (which fails here,
    with ffmpeg's reason: no NVIDIA GPU) and the other workers do not."""
    worker = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_worker", cluster.scheduler_address,
         "--nthreads", "1", "--resources", "nvenc=1", "--no-dashboard", "--host", "127.0.0.1",
         "--name", "nvenc-worker"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        client = distributed.Client(cluster.scheduler_address, set_as_default=False)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                info = client.scheduler_info()["workers"]
                with_nvenc = [a for a, w in info.items() if "nvenc" in (w.get("resources") or {})]
                if with_nvenc:
                    break
                time.sleep(0.2)
            assert with_nvenc, "the nvenc worker never joined"
        finally:
            client.close()
        out = tmp_path / "c.jsonl"
        argv = [*GRID[:-2], "--encoder", "h264_nvenc", "libx264", "--cq", "30", "--out",
                str(out), "--scheduler", cluster.scheduler_address, "--allow-missing",
                "--progress", "none"]  # fmt: skip
        assert corpus_cli.main(argv) == EXIT_OK
        err = capsys.readouterr().err
        assert f"(on worker {with_nvenc[0]})" in err  # the NVENC cell ran there, and failed
        done = [c for c in manifest(out)["cells"] if c["status"] == "done"]
        assert [c["encoder"] for c in done] == ["libx264"] * len(done)
        assert done
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def test_a_scheduler_that_is_not_there_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    # Dask retries the refused connection until the client's timeout: 10 s of waiting by
    # default; 2 s goes down the same path.
    monkeypatch.setattr(cluster_module, "CONNECT_TIMEOUT_S", 2)
    start = time.monotonic()
    argv = [*GRID, "--out", str(tmp_path / "c.jsonl"), "--scheduler", "tcp://127.0.0.1:9"]
    assert corpus_cli.main(argv) == EXIT_USAGE
    assert time.monotonic() - start < 40
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "--scheduler tcp://127.0.0.1:9: no Dask scheduler answered" in err[0]


def test_a_missing_extra_is_one_line_naming_the_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    argv = [*GRID, "--out", str(tmp_path / "c.jsonl"), "--scheduler", "tcp://127.0.0.1:9"]
    assert corpus_cli.main(argv) == EXIT_USAGE
    assert "pip install 'frreg[cluster]'" in capsys.readouterr().err


def test_a_worker_killed_mid_run_has_its_cell_rescheduled_and_the_corpus_is_identical(
    tmp_path,
):
    import os
    import signal
    import threading

    grid = list(GRID)
    grid[grid.index("--frames") + 1] = "30"  # long enough a cell to kill a worker mid-cell
    local, remote = tmp_path / "local" / "c.jsonl", tmp_path / "remote" / "c.jsonl"
    assert corpus_cli.main([*grid, "--out", str(local)]) == EXIT_OK
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None, silence_logs=50,
    ) as lc:  # fmt: skip
        codes: list[int] = []
        run = threading.Thread(
            target=lambda: codes.append(
                corpus_cli.main([*grid, "--out", str(remote), "--scheduler", lc.scheduler_address])
            )
        )
        run.start()
        # Kill a worker process as soon as a cell is running on it.
        client = distributed.Client(lc.scheduler_address, set_as_default=False)
        try:
            deadline = time.monotonic() + 120
            victim = None
            while victim is None and time.monotonic() < deadline:
                processing = client.processing()
                busy = [w for w, keys in processing.items() if keys]
                if busy:
                    victim = busy[0]
                time.sleep(0.05)
            assert victim is not None, "no cell ever ran"
            pids = client.run(os.getpid, workers=[victim])
            os.kill(pids[victim], signal.SIGKILL)
        finally:
            client.close()
        run.join(timeout=300)
        assert not run.is_alive()
    assert codes == [EXIT_OK]
    assert without_timing(rows(remote)) == without_timing(rows(local))


def test_cells_from_different_libvmaf_builds_refuse_to_load_unless_allowed(cluster, tmp_path):
    from frreg.corpus import load_corpus
    from frreg.errors import CorpusError

    out = tmp_path / "c.jsonl"
    assert (
        corpus_cli.main([*GRID, "--out", str(out), "--scheduler", cluster.scheduler_address]) == 0
    )
    load_corpus(out)  # one build: fine
    mpath = Path(f"{out}.manifest.json")
    doc = json.loads(mpath.read_text())
    doc["cells"][0]["worker"]["libvmaf_version"] = "9.9.9-other"
    mpath.write_text(json.dumps(doc))
    with pytest.raises(CorpusError, match="different libvmaf builds"):
        load_corpus(out)
    doc["settings"]["allow_mixed_libvmaf"] = True
    mpath.write_text(json.dumps(doc))
    assert load_corpus(out).n_rows == 24


def test_a_worker_without_the_built_in_source_renders_the_same_bytes(tmp_path):
    """What a remote worker does for a built-in source its machine lacks."""
    from dataclasses import replace

    from frreg.errors import ToolError
    from frreg.producer import ffmpeg as ff
    from frreg.producer.sources.builtins import builtin_sources, render_here

    exe = ff.resolve_ffmpeg(None)
    [client_side] = builtin_sources(
        tmp_path / "client", ids=["mandelbrot_24fps"], frames=4, size=(64, 48)
    )
    elsewhere = replace(client_side, path=tmp_path / "gone" / client_side.path.name)
    rendered = render_here(elsewhere, exe, tmp_path / "worker")
    assert rendered.path == (tmp_path / "worker" / client_side.path.name).resolve()
    assert rendered.path.read_bytes() == client_side.path.read_bytes()
    assert render_here(client_side, exe, tmp_path / "unused") is client_side
    forged = replace(elsewhere, sha256="0" * 64)
    with pytest.raises(ToolError, match="renders it with sha256"):
        render_here(forged, exe, tmp_path / "worker2")


def test_the_plugin_produces_its_corpus_through_the_cluster(cluster, pytester):
    """--frreg-scheduler: the gate's lazily produced corpus comes from the cluster."""
    corpus = pytester.path / "corpus.jsonl"
    result = pytester.runpytest_subprocess(
        f"--frreg-corpus={corpus}",
        f"--frreg-scheduler={cluster.scheduler_address}",
        "--frreg-encoders=libx264",
        "--frreg-cqs=22,38",
        "--frreg-epochs=2",
        "--frreg-mean-plcc-threshold=0",
        "--frreg-per-seed-min=0",
        "--frreg-plcc-spread-max=1",
        "-p",
        "no:cacheprovider",
        timeout=300,
    )
    assert corpus.exists(), result.stdout.str()
    workers = set(cluster.scheduler_info["workers"])
    cells = manifest(corpus)["cells"]
    assert cells
    assert all(c["worker"]["address"] in workers for c in cells)


# --------------------------------------------------------------------------
# Workers are checked, not trusted
# --------------------------------------------------------------------------


def _failed(out: Path) -> list[str]:
    """The error of every failed cell the run's manifest records."""
    return [c["error"] for c in manifest(out)["cells"] if c["status"] == "failed"]


@contextlib.contextmanager
def _rogue_cluster(patch_name: str) -> Iterator[Any]:
    """A fresh loopback cluster whose two worker processes run ``rogue_worker.<patch>``."""
    import cloudpickle
    import rogue_worker

    cloudpickle.register_pickle_by_value(rogue_worker)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None, silence_logs=50,
    ) as lc:  # fmt: skip
        with distributed.Client(lc.scheduler_address, set_as_default=False) as client:
            client.run(getattr(rogue_worker, patch_name))
        yield lc


@pytest.mark.parametrize(
    ("patch", "needle"),
    [
        ("rewrite_scores", "its rows are not what its libvmaf log gives for this cell"),
        ("rewrite_scores_and_log", "is not libvmaf's vmaf_v0.6.1 of its own features"),
    ],
)
def test_a_worker_that_rewrites_scores_fails_its_cells_naming_it(patch, needle, tmp_path, capsys):
    out = tmp_path / "c.jsonl"
    with _rogue_cluster(patch) as lc:
        argv = [*GRID, "--out", str(out), "--scheduler", lc.scheduler_address]
        assert corpus_cli.main(argv) == EXIT_FAIL
        workers = set(lc.scheduler_info["workers"])
    assert not out.exists()  # never marked complete
    assert Path(f"{out}.incomplete").exists()
    failed = _failed(out)
    assert len(failed) == 4
    for message in failed:
        assert needle in message
        assert any(w in message for w in workers)
    capsys.readouterr()


def test_a_worker_that_scores_another_cell_is_caught_by_recomputing_it(tmp_path, capsys):
    out = tmp_path / "c.jsonl"
    with _rogue_cluster("wrong_quality") as lc:
        base = [*GRID, "--out", str(out), "--scheduler", lc.scheduler_address]
        # Internally consistent: without recomputing, nothing is wrong with these cells.
        assert corpus_cli.main([*base, "--audit-cells", "0"]) == EXIT_OK
        fresh = tmp_path / "audited" / "c.jsonl"
        base[base.index(str(out))] = str(fresh)
        assert corpus_cli.main(base) == EXIT_FAIL  # the default: one cell recomputed here
    assert not fresh.exists()
    [message] = _failed(fresh)
    assert "recomputed here, its features or scores differ from worker" in message
    capsys.readouterr()


def test_a_failure_the_client_cannot_unpickle_ends_the_run_with_one_line(tmp_path, capsys):
    out = tmp_path / "c.jsonl"
    start = time.monotonic()
    with _rogue_cluster("unpicklable_failure") as lc:
        argv = [*GRID, "--out", str(out), "--scheduler", lc.scheduler_address]
        assert corpus_cli.main(argv) == EXIT_FAIL
    assert time.monotonic() - start < 120
    failed = _failed(out)
    assert len(failed) == 4
    assert all("odd failure" in message for message in failed)
    capsys.readouterr()


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate and its key for 127.0.0.1, made with the openssl CLI."""
    import shutil

    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = directory / "node.pem", directory / "node.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_a_tls_cluster_is_reached_through_dasks_security_config(tmp_path, capsys):
    import dask

    cert, key = _self_signed(tmp_path)
    security = distributed.Security(
        tls_ca_file=str(cert),
        tls_scheduler_cert=str(cert), tls_scheduler_key=str(key),
        tls_worker_cert=str(cert), tls_worker_key=str(key),
        tls_client_cert=str(cert), tls_client_key=str(key),
        require_encryption=True,
    )  # fmt: skip
    out = tmp_path / "c.jsonl"
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
        protocol="tls://", security=security, dashboard_address=None, silence_logs=50,
    ) as lc:  # fmt: skip
        assert lc.scheduler_address.startswith("tls://")
        argv = [*GRID, "--out", str(out), "--scheduler", lc.scheduler_address]
        # Without the client's certificate in the Dask config: one line, exit 2.
        assert corpus_cli.main(argv) == EXIT_USAGE
        err = [line for line in capsys.readouterr().err.splitlines() if ": error: " in line]
        assert len(err) == 1
        config = {
            "distributed.comm.require-encryption": True,
            "distributed.comm.tls.ca-file": str(cert),
            "distributed.comm.tls.client.cert": str(cert),
            "distributed.comm.tls.client.key": str(key),
        }
        with dask.config.set(config):
            assert corpus_cli.main(argv) == EXIT_OK
    assert len(rows(out)) == 2 * 2 * 6
