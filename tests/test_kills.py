"""kill -9 the trainer, a cache builder and an xdist worker of the plugin gate, for real.

Each kill must leave no PROMOTE, no hang and nothing the next run trusts
without checking; the next run removes what the killed process left (the
trainer's idle temporaries, the cache's dead build directories) and completes.
The producer's kill tests live in ``test_producer_cli.py``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
from execnet.gateway_io import popen_bootstrapline
from filelock import FileLock
from gate_runs import LENIENT

from conftest import LENIENT_GATE
from frreg.cache import SeedCache
from frreg.cli import train as train_cli
from frreg.cli import validate as validate_cli
from frreg.schema import (
    ENSEMBLE_SEEDS,
    EXIT_OK,
    HOLD_FILE,
    PROMOTE_FILE,
    SEED_ARTIFACT_GLOB,
    seed_files,
)
from frreg.synthetic import synthetic_rows, write_corpus
from frreg.training.record import SeedRecord

REPO = Path(__file__).resolve().parents[1]
LONG_AGO = time.time() - 600  # well past every idle threshold


def wait_for(what: str, ready: Callable[[], Any], timeout: float, alive: Callable[[], bool]) -> Any:
    """Poll ``ready()`` every 20 ms until it is truthy; fail if ``alive()`` stops or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := ready():
            return value
        if not alive():
            pytest.fail(f"the process exited before {what}")
        time.sleep(0.02)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def children(pid: int) -> set[int]:
    """Direct children of ``pid`` (Linux /proc; psutil is not a dependency)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with suppress(OSError):  # the thread ended meanwhile
            found.update(int(c) for c in (task / "children").read_text().split())
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def clean_env() -> dict[str, str]:
    """This environment without the outer pytest/xdist's variables."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start processes in their own session; whatever is still running at teardown is killed
    (by its process group id: only what this test started)."""
    started: list[subprocess.Popen[bytes]] = []

    def start(argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(argv, start_new_session=True, env=clean_env(), **kwargs)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def medium_corpus(path: Path) -> Path:
    """3,200 rows: one seed's 4 folds train for a second or more, long enough to be hit mid-way."""
    rows = synthetic_rows(n_sources=4, encoders=("libx264",), cqs=(22, 30, 38, 46), frames=200)
    return write_corpus(path, rows)


# --------------------------------------------------------------------------
# The trainer
# --------------------------------------------------------------------------


def seed_temporaries(out: Path) -> list[str]:
    return sorted(p.name for p in out.glob(".loso_seed*.tmp"))


def test_trainer_removes_idle_seed_temporaries_and_keeps_live_ones(
    tiny_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    stale = [
        ".loso_seed0.json.abcdefgh.tmp",
        ".loso_seed3.predictions.csv.a_b1c2d3.tmp",
        ".loso_seed12.weights.npz.zzzzzzzz.tmp",
    ]
    kept = [
        ".loso_seed0.json.justnow1.tmp",  # ours, but just written: a live writer may own it
        ".other.json.abcdefgh.tmp",  # not a seed file's
        ".loso_seed0.json.short.tmp",  # not atomic_writer's name
        "notes.txt",
    ]
    for name in stale + kept:
        (out / name).write_text("torn")
        if "justnow" not in name:
            os.utime(out / name, (LONG_AGO, LONG_AGO))
    old_dir = out / ".loso_seed1.json.dirdirdi.tmp"  # a directory is never ours to remove
    old_dir.mkdir()
    os.utime(old_dir, (LONG_AGO, LONG_AGO))

    argv = ["--corpus", str(tiny_corpus), "--out-dir", str(out), "--epochs", "1", "--seeds", "0"]
    assert train_cli.main(argv) == EXIT_OK
    assert [n for n in stale if (out / n).exists()] == []
    assert [n for n in kept if not (out / n).exists()] == []
    assert old_dir.is_dir()
    err = capsys.readouterr().err
    for name in stale:
        assert f"frreg-train: removed {name}, left by a killed trainer" in err
    SeedRecord.read(out / "loso_seed0.json")


@pytest.mark.slow
def test_killed_trainer_leaves_nothing_trusted_and_the_next_run_cleans_up(
    tmp_path: Path, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    corpus = medium_corpus(tmp_path / "corpus.jsonl")
    out = tmp_path / "loso"
    out.mkdir()  # so that the gate below judges a directory, not a missing one
    stderr = tmp_path / "train.stderr"
    argv = [sys.executable, "-m", "frreg.cli.train", "--corpus", str(corpus)]
    argv += ["--out-dir", str(out), "--epochs", "200"]  # ~20 s of training on 2 cores
    with open(stderr, "wb") as err:
        proc = spawn(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err)

    def alive() -> bool:
        return proc.poll() is None

    # The trainer prints its plan right before training starts; let it train a moment.
    wait_for("the training plan", lambda: b"models x" in stderr.read_bytes(), 60, alive)
    started = time.monotonic()
    wait_for("a second of training", lambda: time.monotonic() - started > 1.0, 5, alive)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL

    written = sorted(out.glob(SEED_ARTIFACT_GLOB))
    assert len(written) < len(ENSEMBLE_SEEDS), "the kill came after training; lengthen it"
    # Whatever it left, the gate does not promote it (no seed file at all here:
    # the trainer writes them after training).
    assert validate_cli.main([str(out), *LENIENT_GATE]) != EXIT_OK
    assert not (out / PROMOTE_FILE).exists()

    # The debris a kill during the writes leaves (too brief a window to hit on
    # purpose): an idle temporary of every kind of seed file.
    left = [".loso_seed0.json.k1lled00.tmp", ".loso_seed1.predictions.csv.k1lled00.tmp"]
    left.append(".loso_seed2.weights.npz.k1lled00.tmp")
    for name in left:
        (out / name).write_text("half")
        os.utime(out / name, (LONG_AGO, LONG_AGO))

    rerun = ["--corpus", str(corpus), "--out-dir", str(out), "--epochs", "2"]
    assert train_cli.main(rerun) == EXIT_OK
    assert seed_temporaries(out) == []
    assert not (out / HOLD_FILE).exists()  # the validate run's verdict went before training
    records = [SeedRecord.read(p) for p in sorted(out.glob(SEED_ARTIFACT_GLOB))]
    assert sorted(r.seed for r in records) == sorted(ENSEMBLE_SEEDS)
    assert {r.epochs for r in records} == {2}


# --------------------------------------------------------------------------
# The trained-seed cache
# --------------------------------------------------------------------------


def fake_build(seed: int) -> Callable[[Path], None]:
    """A build that writes the seed's files (the cache checks names and digests, not content)."""

    def build(directory: Path) -> None:
        for name in seed_files(seed):
            (directory / name).write_text(f"{name}\n")

    return build


def build_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("??/.*") if p.is_dir())


def test_cache_removes_dead_build_dirs_and_keeps_live_ones(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    dead_key, live_key = "ab" + "1" * 62, "cd" + "2" * 62
    dead = root / "ab" / f".{dead_key[:12]}.qwertyui"  # its builder died: lock free
    orphan = root / "ab" / f".{'ab' + '3' * 10}.qwertyui"  # no lock file at all
    live = root / "cd" / f".{live_key[:12]}.asdfghjk"  # its builder holds the lock
    for build in (dead, orphan, live):
        build.mkdir(parents=True)
        (build / "partial").write_text("half")
        os.utime(build, (LONG_AGO, LONG_AGO))
    (root / f"{dead_key}.lock").touch()
    other = root / "ab" / "not-a-build-dir"
    other.mkdir()

    events: list[str] = []
    cache = SeedCache(root, on_event=events.append)
    with FileLock(str(root / f"{live_key}.lock")):
        entry = cache.get_or_build({"seed": 0}, 0, fake_build(0))
        assert build_dirs(root) == [live]  # kept, however old: the lock says it is alive
    assert not dead.exists()
    assert not orphan.exists()
    assert other.is_dir()
    assert entry.trained_now
    assert any(f"removed {dead}" in e for e in events)
    # The sweep ran once for this instance; a new one (the next run) removes the rest.
    assert SeedCache(root).remove_dead_builds() == [live]
    assert build_dirs(root) == []


HANGING_BUILDER = """
import sys, time
from pathlib import Path
from frreg.cache import SeedCache

def build(directory: Path) -> None:
    (directory / "partial").write_text("half")
    print(directory, flush=True)
    time.sleep(600)

SeedCache(sys.argv[1]).get_or_build({"seed": 0}, 0, build)
"""


def test_cache_entry_of_a_killed_builder_is_rebuilt_and_its_temp_removed(
    tmp_path: Path, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    root = tmp_path / "cache"
    proc = spawn([sys.executable, "-c", HANGING_BUILDER, str(root)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    build = Path(proc.stdout.readline().decode().strip())
    assert build.parent.parent == root, build
    assert build_dirs(root) == [build]

    # While the builder lives, its directory stays and a second builder waits for it.
    assert SeedCache(root).remove_dead_builds() == []
    assert build.is_dir()

    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL
    cache = SeedCache(root)
    assert cache.lookup({"seed": 0}, 0) is None  # nothing half-built is served
    entry = cache.get_or_build({"seed": 0}, 0, fake_build(0))
    assert entry.trained_now
    assert build_dirs(root) == []
    assert cache.lookup({"seed": 0}, 0) is not None


# --------------------------------------------------------------------------
# The plugin: a killed xdist worker
# --------------------------------------------------------------------------

GATE_EPOCHS = 60  # one seed's 4 folds: ~2 s per worker on 2 cores
TRAINING = re.compile(r"pid (\d+): training seed (\d+)")


def verdict_checks(out: Path, name: str) -> dict[str, dict[str, Any]]:
    doc = json.loads((out / name).read_text(encoding="utf-8"))
    assert doc["verdict"] == name.removesuffix(".json")
    return {c["name"]: c for c in doc["gate"]["checks"]}


@pytest.mark.slow
def test_killed_xdist_worker_stops_the_gate_with_hold_and_the_rerun_completes(
    tmp_path: Path, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    corpus = medium_corpus(tmp_path / "corpus.jsonl")
    out = tmp_path / "runs" / "frreg-gate"
    cache = tmp_path / "runs" / "frreg-cache"
    log = out / "frreg-gate.log"
    # LENIENT: an uninterrupted run of this command PROMOTEs, so its absence means something.
    argv = [sys.executable, "-m", "pytest", f"--frreg-corpus={corpus}"]
    argv += [f"--frreg-epochs={GATE_EPOCHS}", "-n", "2", "-p", "no:cacheprovider", *LENIENT]
    with open(tmp_path / "first.out", "wb") as output:
        proc = spawn(argv, cwd=tmp_path, stdout=output, stderr=subprocess.STDOUT)

    def training() -> tuple[int, int] | None:
        text = log.read_text(encoding="utf-8") if log.exists() else ""
        match = TRAINING.search(text)
        return (int(match[1]), int(match[2])) if match else None

    pid, seed = wait_for("a worker to start training", training, 120, lambda: proc.poll() is None)
    # The log names the worker; it must be an xdist worker of this session.
    assert pid in children(proc.pid), (pid, children(proc.pid))
    assert popen_bootstrapline in cmdline(pid)
    os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    try:
        ret = proc.wait(timeout=180)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the gate hung after its worker died:\n{(tmp_path / 'first.out').read_text()}")
    stopped_after = time.monotonic() - killed_at
    report = (tmp_path / "first.out").read_text()
    assert ret != 0, report
    assert not (out / PROMOTE_FILE).exists(), report
    if (out / HOLD_FILE).exists():
        runs = [
            c for c in verdict_checks(out, HOLD_FILE).values() if c["message"].startswith("run:")
        ]
        assert runs, "the HOLD does not say the run was cut short"
        assert not any(c["passed"] for c in runs)
    assert stopped_after < 60, f"took {stopped_after:.0f} s to stop"
    # The killed worker's half-built entry is still there under no entry name,
    # unless the other worker's first cache call came after the kill and removed it.
    swept = "a killed cache builder's temporary"
    assert build_dirs(cache) or swept in log.read_text(), "the kill came after the build"

    with open(tmp_path / "second.out", "wb") as output:
        rerun = spawn(argv, cwd=tmp_path, stdout=output, stderr=subprocess.STDOUT)
        second = rerun.wait(timeout=300)
    report = (tmp_path / "second.out").read_text()
    assert second == 0, report
    verdict_checks(out, PROMOTE_FILE)
    assert build_dirs(cache) == []  # the dead builds were removed, not read
    assert swept in log.read_text()
    trained = (cache / "trained.log").read_text().splitlines()
    # Every seed was built once across both runs: the finished ones were reused.
    assert len(trained) == len(ENSEMBLE_SEEDS), trained
    assert f"seed={seed} " in "\n".join(trained)
