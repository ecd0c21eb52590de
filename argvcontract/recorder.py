"""Run a caller with stand-ins for the CLIs it calls, and record each argv.

The caller (a shell script, a documented command, a Python program) runs for
real, with real environment variables and its own control flow, but every
CLI it would run is replaced by a stand-in on ``PATH`` that appends its argv
to a JSON-lines log and exits 0. Nothing runs for real; what the caller
*would* have asked of the CLI is left for :mod:`argvcontract.verify` to check
against the CLI's real parser.

Stand-ins exist for each watched CLI's console script and for ``python``,
``python3`` and ``python3.X``: those record ``-m <watched module>`` and hand
anything else to the real interpreter. A caller that runs a CLI by absolute
path, or that clears ``PATH``, escapes the recorder; so does a caller that
honours an override variable pointing at a real executable,
which is why :meth:`ArgvRecorder.run` lets you unset variables (``None``).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from argvcontract.cli import Cli
from argvcontract.parsing import is_placeholder
from argvcontract.recording import Call, Recording
from argvcontract.verify import ContractReport, verify

#: Environment variable naming the log the stand-ins append to.
LOG_ENV = "ARGVCONTRACT_LOG"

_RECORD_PY = f"""\
# Written by argvcontract: append one call to the log, run nothing.
import json, os, sys

log, callee, via, code = sys.argv[1:5]
entry = {{"callee": callee, "via": via, "argv": sys.argv[5:], "cwd": os.getcwd()}}
fd = os.open(os.environ.get("{LOG_ENV}") or log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
try:
    # One write per line with O_APPEND: concurrent callers never interleave.
    os.write(fd, (json.dumps(entry) + "\\n").encode())
finally:
    os.close(fd)
sys.exit(int(code))
"""


class CallerTimeout(RuntimeError):
    """The caller did not finish in time (its process group was killed)."""


def _default_caller_label(cmd: Sequence[str]) -> str:
    first = Path(cmd[0]).name
    if len(cmd) > 1 and (first in ("bash", "sh", "zsh", "dash") or first.startswith("python")):
        return Path(cmd[1]).name
    return first


class ArgvRecorder:
    """Stand-ins for CLIs, installed in ``workdir/bin``, and the calls they record.

    It stands in for ``clis`` (none by default); :meth:`watch` adds more.
    """

    def __init__(
        self, workdir: str | Path, clis: Sequence[Cli] = (), *, timeout: float = 60.0
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.bin_dir = self.workdir / "bin"
        self.bin_dir.mkdir(parents=True, exist_ok=True)
        self.timeout = timeout
        self._clis: dict[str, Cli] = {}
        self._exit_codes: dict[str, int] = {}
        self._runs = 0
        # The interpreters that stand-in pythons hand non-CLI work to, found
        # on PATH as it is now (without our bin dir).
        search = os.pathsep.join(
            p for p in os.environ.get("PATH", "").split(os.pathsep) if Path(p) != self.bin_dir
        )
        minor = f"python{sys.version_info[0]}.{sys.version_info[1]}"
        self._pythons = {
            name: shutil.which(name, path=search) or sys.executable
            for name in ("python", "python3", minor)
        }
        (self.bin_dir / "_record.py").write_text(_RECORD_PY, encoding="utf-8")
        for cli in clis:
            self._clis[cli.name] = cli
        self._install()

    # ------------------------------------------------------------------ setup

    @property
    def clis(self) -> tuple[Cli, ...]:
        """The CLIs this recorder stands in for."""
        return tuple(self._clis.values())

    @property
    def python(self) -> Path:
        """A stand-in for ``sys.executable``: records ``-m <cli module>``, runs the rest."""
        return self.bin_dir / "python-argvcontract"

    def watch(self, cli: Cli, *, exit_code: int = 0) -> None:
        """Stand in for ``cli`` too (its stand-in exits ``exit_code``)."""
        self._clis[cli.name] = cli
        self._exit_codes[cli.name] = exit_code
        self._install()

    def set_exit_code(self, name: str, exit_code: int) -> None:
        """Make the stand-in for ``name`` exit ``exit_code`` (to test a caller's error path)."""
        self._exit_codes[name] = exit_code
        self._install()

    def _record_cmd(self, callee: str, via: str) -> str:
        code = str(self._exit_codes.get(callee, 0))
        parts = [
            sys.executable,
            "-I",  # isolated: the caller's PYTHONPATH or site must not change the stand-in
            "-S",
            str(self.bin_dir / "_record.py"),
            str(self.workdir / "calls.jsonl"),
            callee,
            via,
            code,
        ]
        return "exec " + " ".join(shlex.quote(p) for p in parts) + ' "$@"'

    def _write(self, name: str, body: str) -> None:
        path = self.bin_dir / name
        path.write_text(f"#!/bin/sh\n# argvcontract stand-in for {name}\n{body}\n")
        path.chmod(0o755)

    def _install(self) -> None:
        for cli in self._clis.values():
            self._write(cli.name, self._record_cmd(cli.name, cli.name))
        pythons = {**self._pythons, self.python.name: sys.executable}
        for name, real in pythons.items():
            cases = [
                f"    {shlex.quote(cli.module)}) shift 2; "
                + self._record_cmd(cli.name, f"{name} -m {cli.module}")
                + " ;;"
                for cli in self._clis.values()
                if cli.module
            ]
            lines = []
            if cases:
                lines += ['if [ "$1" = "-m" ]; then', '  case "$2" in', *cases, "  esac", "fi"]
            lines.append(f'exec {shlex.quote(real)} "$@"')
            self._write(name, "\n".join(lines))

    # ------------------------------------------------------------------ running

    def _new_log(self) -> Path:
        self._runs += 1
        log = self.workdir / f"calls-{self._runs}.jsonl"
        log.write_text("")
        return log

    def environment(self, log: Path, env: Mapping[str, str | None] | None = None) -> dict[str, str]:
        """``os.environ`` with ``env`` applied (``None`` unsets), our bin dir first on PATH."""
        result = dict(os.environ)
        for key, value in (env or {}).items():
            if value is None:
                result.pop(key, None)
            else:
                result[key] = str(value)
        result["PATH"] = os.pathsep.join([str(self.bin_dir), result.get("PATH", os.defpath)])
        result[LOG_ENV] = str(log)
        return result

    def _read(self, log: Path) -> list[Call]:
        calls = []
        for line in log.read_text(encoding="utf-8").splitlines():
            if line.strip():
                entry = json.loads(line)
                calls.append(
                    Call(entry["callee"], tuple(entry["argv"]), entry["via"], entry["cwd"])
                )
        return calls

    def run(
        self,
        cmd: Sequence[str | os.PathLike[str]],
        *,
        env: Mapping[str, str | None] | None = None,
        cwd: str | Path | None = None,
        caller: str | None = None,
        timeout: float | None = None,
        input: str | None = None,
    ) -> Recording:
        """Run ``cmd`` (no shell) with the stand-ins first on PATH; return what it called.

        ``env`` is applied over ``os.environ``; a ``None`` value unsets a
        variable (unset overrides that could point the caller at a real CLI). Raises :class:`CallerTimeout` after ``timeout``
        seconds (default: the recorder's), killing the caller's process group.
        """
        argv = [os.fspath(c) for c in cmd]
        label = caller or _default_caller_label(argv)
        log = self._new_log()
        limit = self.timeout if timeout is None else timeout
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=self.environment(log, env),
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # Its own process group, so a timeout kills the caller's children too.
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(input, timeout=limit)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            calls = self._read(log)
            raise CallerTimeout(
                f"{label} did not finish within {limit:g} s (killed after {len(calls)} "
                f"recorded calls); stderr tail: {err[-500:]!r}"
            ) from None
        return Recording(label, self._read(log), proc.returncode, out, err, self.clis)

    def run_script(
        self,
        script: str | Path,
        *args: str,
        env: Mapping[str, str | None] | None = None,
        cwd: str | Path | None = None,
        caller: str | None = None,
        timeout: float | None = None,
        interpreter: str | None = "bash",
    ) -> Recording:
        """Run a script (through ``interpreter``, or directly when ``None``) and record its calls."""
        script = Path(script)
        cmd = [str(script), *args] if interpreter is None else [interpreter, str(script), *args]
        return self.run(cmd, env=env, cwd=cwd, caller=caller or script.name, timeout=timeout)

    @contextmanager
    def activated(self, caller: str = "python caller") -> Iterator[Recording]:
        """Record the calls in-process Python code makes through ``subprocess``.

        Inside the block ``PATH`` starts with the stand-ins and
        ``sys.executable`` is :attr:`python`, so both ``subprocess.run(["mytool",
        ...])`` and ``subprocess.run([sys.executable, "-m", "mytool.cli", ...])``
        are recorded. The yielded :class:`Recording` is filled when the block
        ends. Not thread-safe: it changes process-wide state.
        """
        log = self._new_log()
        saved = {k: os.environ.get(k) for k in ("PATH", LOG_ENV)}
        saved_exe = sys.executable
        recording = Recording(caller, clis=self.clis)
        os.environ["PATH"] = os.pathsep.join([str(self.bin_dir), saved["PATH"] or os.defpath])
        os.environ[LOG_ENV] = str(log)
        sys.executable = str(self.python)
        try:
            yield recording
        finally:
            sys.executable = saved_exe
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            recording.calls.extend(self._read(log))


@dataclass(frozen=True)
class ScriptContract:
    """What a wrapper script promises about the CLI it calls.

    ``must_pass`` are the flags every call must carry; ``input_files`` maps an
    environment variable to the content of the file it must name (a wrapper
    that checks its input file exists needs one, even though nothing reads it).
    ``reads_env`` lists the variables the script reads: they are unset unless
    a run sets them, so the developer's shell cannot leak into a check (an
    exported override pointing at the real CLI would run it). ``install_as``
    (a path relative to the run's directory, e.g. ``scripts/train.sh``) runs a
    copy of the script there instead of the script in place: a script that finds
    its repository from its own path and works from there (``cd "$(dirname
    "$0")/.."``) then takes that directory for its repository, so its relative
    paths and outputs stay in the check's directory, never the real checkout.
    """

    script: Path
    callee: str
    must_pass: tuple[str, ...] = ()
    input_files: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str | None] = field(default_factory=dict)
    reads_env: tuple[str, ...] = ()
    interpreter: str | None = "bash"
    install_as: str | None = None

    @property
    def name(self) -> str:
        return Path(self.script).name

    def record(
        self,
        recorder: ArgvRecorder,
        *args: str,
        env: Mapping[str, str | None] | None = None,
        cwd: str | Path | None = None,
        caller: str | None = None,
    ) -> Recording:
        """Run the script through ``recorder`` with its input files in place."""
        workdir = Path(cwd) if cwd is not None else recorder.workdir / f"{self.name}-cwd"
        workdir.mkdir(parents=True, exist_ok=True)
        run_env: dict[str, str | None] = dict.fromkeys(self.reads_env)
        run_env.update(self.env)
        run_env.update(env or {})
        for var, content in self.input_files.items():
            value = run_env.get(var)
            missing_abs = (
                value is not None and Path(value).is_absolute() and not Path(value).exists()
            )
            if value is None or is_placeholder(value) or missing_abs:
                path = workdir / f"{var.lower()}.input"
                path.write_text(content, encoding="utf-8")
                run_env[var] = str(path)
            elif not Path(value).is_absolute() and not (workdir / value).exists():
                (workdir / value).parent.mkdir(parents=True, exist_ok=True)
                (workdir / value).write_text(content, encoding="utf-8")
        script = Path(self.script)
        if self.install_as is not None:
            installed = workdir / self.install_as
            installed.parent.mkdir(parents=True, exist_ok=True)
            installed.write_bytes(script.read_bytes())
            installed.chmod(script.stat().st_mode)
            script = installed
        return recorder.run_script(
            script,
            *args,
            env=run_env,
            cwd=workdir,
            caller=caller or self.name,
            interpreter=self.interpreter,
        )

    def check(
        self,
        recorder: ArgvRecorder,
        *args: str,
        env: Mapping[str, str | None] | None = None,
        cwd: str | Path | None = None,
        caller: str | None = None,
        placeholders: bool = False,
        clis: Sequence[Cli] | None = None,
    ) -> ContractReport:
        """Record the script and verify its calls against the callee's real parser."""
        recording = self.record(recorder, *args, env=env, cwd=cwd, caller=caller)
        return verify(
            recording,
            clis=clis,
            must_pass={self.callee: self.must_pass},
            placeholders=placeholders,
        )


__all__ = [
    "LOG_ENV",
    "ArgvRecorder",
    "Call",
    "CallerTimeout",
    "Recording",
    "ScriptContract",
]
