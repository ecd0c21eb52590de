"""Plugin sessions run once per test run and judged by several tests.

A gate session costs seconds whatever it trains (the interpreter, torch, the SVR
baseline, the report's figures), so the tests that only read what one session
wrote (its exit status, terminal, out dir, JUnit file, cache) share it instead of
each running the same one: :func:`gate_run` runs ``pytest ARGS`` in a directory of
its own, as ``pytester.runpytest_subprocess`` would, once per test run
(``build_once``), and every test that names it gets the same result. The
directory is shared, so read-only: a test that changes anything (runs
``frreg-validate`` on the verdict, corrupts the cache, runs a second session over
it) copies it first (:func:`copy_runs`).
"""

from __future__ import annotations

import contextlib
import faulthandler
import importlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import LENIENT_GATE, BuildOnce
from frreg.synthetic import synthetic_rows, write_corpus

#: The plugin tests' training length: a brief run, so each session is seconds.
EPOCHS = "30"
#: Thresholds this briefly trained ensemble meets, as plugin options: the pass path is
#: about plumbing, not quality.
LENIENT = tuple(
    f"--frreg-{flag.removeprefix('--')}={value}"
    for flag, value in zip(LENIENT_GATE[::2], LENIENT_GATE[1::2], strict=True)
)


def gate_corpus(path: Path) -> Path:
    """The plugin tests' corpus: 4 sources x 1 encoder x 4 cq x 8 frames."""
    rows = synthetic_rows(n_sources=4, encoders=("libx264",), cqs=(22, 30, 38, 46), frames=8)
    return write_corpus(path, rows)


@dataclass(frozen=True)
class GateRun:
    """One finished plugin session: where it ran and what it printed."""

    path: Path
    result: pytest.RunResult

    @property
    def corpus(self) -> Path:
        return self.path / "corpus.jsonl"

    @property
    def out(self) -> Path:
        """The default ``--frreg-out-dir``."""
        return self.path / "runs" / "frreg-gate"

    @property
    def cache(self) -> Path:
        """The default ``--frreg-cache-dir``."""
        return self.path / "runs" / "frreg-cache"


def _run(directory: Path, args: tuple[str, ...], timeout: float) -> None:
    """``pytest ARGS`` in ``directory`` with pytester's environment for a subprocess
    run (cwd on PYTHONPATH, HOME there, no colours, no outer PYTEST_ADDOPTS); the exit
    status and output are kept beside it."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "TOX_ENV_DIR")}
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(directory), env.get("PYTHONPATH", "")])),
        HOME=str(directory),
        USERPROFILE=str(directory),
        PY_COLORS="0",
    )
    argv = [sys.executable, "-mpytest", f"--basetemp={directory / 'basetemp'}",
            f"--frreg-corpus={directory / 'corpus.jsonl'}", *args]  # fmt: skip
    start = time.monotonic()
    with (directory / "stdout").open("w") as out, (directory / "stderr").open("w") as err:
        proc = subprocess.run(
            argv, cwd=directory, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
            timeout=timeout, check=False,
        )  # fmt: skip
    record = {"args": list(args), "ret": proc.returncode, "duration": time.monotonic() - start}
    (directory / "run.json").write_text(json.dumps(record), encoding="utf-8")


def gate_run(build_once: BuildOnce, name: str, *args: str, timeout: float = 300) -> GateRun:
    """The plugin session ``pytest --frreg-corpus=CORPUS ARGS`` on :func:`gate_corpus`
    (``CORPUS``: its absolute path), run once per test run under ``name`` (one name,
    one argv)."""

    def build(directory: Path) -> None:
        gate_corpus(directory / "corpus.jsonl")
        _run(directory, args, timeout)

    directory = build_once(f"gate-{name}", build)
    record = json.loads((directory / "run.json").read_text(encoding="utf-8"))
    assert record["args"] == list(args), (
        f"gate run {name!r} was made with other arguments: {record['args']}"
    )
    lines = [
        (directory / stream).read_text(encoding="utf-8").splitlines()
        for stream in ("stdout", "stderr")
    ]
    return GateRun(directory, pytest.RunResult(record["ret"], *lines, record["duration"]))


def copy_runs(run: GateRun, to: Path) -> None:
    """Copy ``run``'s ``runs/`` (its out dir and seed cache) into ``to``, as if that
    session had run there."""
    shutil.copytree(run.path / "runs", to / "runs")


def shared_gate(build_once: BuildOnce, name: str, *args: str) -> GateRun:
    """:func:`gate_run` with the plugin tests' options (``--frreg-epochs``, no cache
    provider) before ``ARGS``."""
    return gate_run(build_once, name, f"--frreg-epochs={EPOCHS}", "-p", "no:cacheprovider", *args)


#: The shared sessions (conftest.py's ``lenient_run``, ``lenient_xdist_run`` and
#: ``floor_run`` fixtures): name and arguments.
SHARED_SESSIONS: dict[str, tuple[str, ...]] = {
    # The lenient gate, serial, verbose, with a JUnit file (gate.xml): a PROMOTE, every
    # seed trained by the session itself.
    "lenient": ("-v", "--junitxml=gate.xml", *LENIENT),
    # The lenient gate on two xdist workers, verbose: a PROMOTE.
    "lenient-xdist": ("-v", *LENIENT, "-n", "2"),
    # The lenient gate with a fold floor no fold reaches, serial, with a JUnit file: a HOLD.
    "floor": (*LENIENT, "--frreg-fold-min=0.99999", "--junitxml=gate.xml"),
}


def shared_session(build_once: BuildOnce, name: str) -> GateRun:
    """One of :data:`SHARED_SESSIONS`, run once per test run."""
    return shared_gate(build_once, name, *SHARED_SESSIONS[name])


#: What a gate session imports that must not be imported a second time into one
#: process (torch refuses: "Only a single TORCH_LIBRARY can be used ...") or is slow
#: to: imported here, when a test module that runs sessions in process is collected.
#: pytester puts ``sys.modules`` back after each in-process session and after each
#: test, as it was when the test started; what was imported before stays. A session
#: that exports cannot run in process: torch's exporter imports more as it runs.
SESSION_IMPORTS: tuple[str, ...] = (
    "torch",
    "sklearn.svm",
    "matplotlib.pyplot",
    "matplotlib.backends.backend_agg",
    "frreg.gate.verdict",
    "frreg.session.gate_session",
    "pytest_frreg.controller",
)
for _name in SESSION_IMPORTS:
    with contextlib.suppress(ImportError):
        importlib.import_module(_name)

#: Packages whose modules must never be imported by a session (see SESSION_IMPORTS).
_ONCE_ONLY = ("torch", "onnxscript")
#: A session that runs longer than this is a hang: a subprocess is stopped, an in-process
#: session ends the process after dumping every thread's stack.
SESSION_TIMEOUT_S = 300


class _NewImports:
    """A plugin for an in-process session: what it imported, noted at its end."""

    def __init__(self) -> None:
        self.before = set(sys.modules)
        self.new: list[str] = []

    def pytest_unconfigure(self) -> None:
        self.new = sorted(set(sys.modules) - self.before)


def run_session(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """``pytest ARGS`` in ``pytester.path``: in this process (``runpytest_inprocess``), the
    console script's ``pytest.main``, its real plugins, under ``-n`` real xdist workers,
    without a new interpreter and its imports (torch, scikit-learn, matplotlib: about
    2.5 s of CPU a session). A session that may export (``--frreg-export``) runs in a
    process of its own: torch's exporter imports more of torch as it runs, which
    pytester would drop after the test and the next export here would import again.

    An in-process session must import nothing of :data:`_ONCE_ONLY` that
    :data:`SESSION_IMPORTS` did not: the test fails naming it (import it there, or run
    the session in a subprocess). One that runs past :data:`SESSION_TIMEOUT_S` ends
    this process with every thread's stack on stderr.
    """
    if any(a.startswith("--frreg-export") for a in args):
        return pytester.runpytest_subprocess(*args, timeout=SESSION_TIMEOUT_S)
    seen = _NewImports()
    with pytest.MonkeyPatch.context() as mp:
        for name in [k for k in os.environ if k.startswith("PYTEST_XDIST_")]:
            mp.delenv(name)  # this process is an xdist worker of the outer run; the session is not
        faulthandler.dump_traceback_later(SESSION_TIMEOUT_S, exit=True)
        try:
            result = pytester.runpytest_inprocess(*args, plugins=[seen])
        finally:
            faulthandler.cancel_dump_traceback_later()
    again = [m for m in seen.new if m.split(".")[0] in _ONCE_ONLY]
    assert not again, (
        f"the session imported {again[:5]}: import them in gate_runs.SESSION_IMPORTS, or run "
        "the session in a subprocess"
    )
    return result
