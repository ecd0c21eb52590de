"""Progress of long work, drawn the same way by every frreg front end.

One implementation for the corpus producer (cells), training (epochs or jobs),
the gate's audit (retrained jobs) and the export (production members), used by
every CLI and, through the gate session's log, by the pytest plugin:

- on a terminal, one live line rewritten in place (``\\r``), ending with a
  newline when the work is done;
- anywhere else (a CI log, a file, the gate session's log), plain lines: one at
  the first update, then at most one every :data:`PLAIN_INTERVAL_S` seconds
  (:data:`INTERVAL_ENV` overrides it), and one when the work is done.

Both show done/total, the elapsed time and an ETA. Lines are drawn when the
work reports (``update``), never from a thread of their own, so a quiet
stretch between two reports prints nothing.

Work that runs where nobody watches a terminal (a pytest-xdist worker) draws
plain lines into a log (:class:`LogLines`); :class:`LogFollower` shows such a
log's new lines elsewhere while the work runs (the gate controller's terminal).

A leaf module: it imports nothing from frreg but the errors, so any layer may
draw with it.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final, Literal, Protocol

from frreg.errors import InputError

#: Seconds between plain progress lines off a terminal: often enough that a CI log
#: shows a 1-2 minute training run moving, rare enough that an hour of corpus
#: production is a few hundred lines.
PLAIN_INTERVAL_S: Final = 10.0
#: Environment variable overriding :data:`PLAIN_INTERVAL_S` (seconds, > 0).
INTERVAL_ENV: Final = "FRREG_PROGRESS_INTERVAL"
#: How progress is drawn: ``auto`` picks ``tty`` on a terminal, ``plain`` otherwise.
Mode = Literal["auto", "tty", "plain", "none"]
MODES: Final[tuple[Mode, ...]] = ("auto", "tty", "plain", "none")
#: Seconds between redraws of the live line: a fast loop would spend its time drawing.
_REDRAW_S: Final = 0.1


class TextSink(Protocol):
    """Where progress lines go: a text stream, or anything with ``write`` and ``flush``."""

    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...


def plain_interval() -> float:
    """Seconds between plain lines: :data:`INTERVAL_ENV` when set, else :data:`PLAIN_INTERVAL_S`.

    Raises :class:`~frreg.errors.InputError` for a value that is not a positive number.
    """
    raw = os.environ.get(INTERVAL_ENV, "").strip()
    if not raw:
        return PLAIN_INTERVAL_S
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise InputError(f"{INTERVAL_ENV}={raw!r}: expected a number of seconds > 0")
    return value


def is_terminal(stream: object) -> bool:
    """Whether ``stream`` is an interactive terminal (has ``isatty()`` and it says so)."""
    isatty = getattr(stream, "isatty", None)
    return bool(callable(isatty) and isatty())


def clock(seconds: float) -> str:
    """``0:41``, ``12:05``, ``1:02:03``."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ProgressDisplay:
    """Draws one piece of long work's progress on ``stream`` (default: stderr).

    Call it as ``progress(done, total)`` (the training and audit callback), or
    :meth:`update` with the corpus's own text and ETA. ``unit`` names what is
    counted (``epochs``, ``jobs``); ``clock`` is injectable for tests.
    """

    def __init__(
        self,
        label: str,
        *,
        unit: str = "",
        stream: TextSink | None = None,
        mode: Mode = "auto",
        interval_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.unit = unit
        self.stream: TextSink = stream if stream is not None else sys.stderr
        if mode == "auto":
            mode = "tty" if is_terminal(self.stream) else "plain"
        self.mode = mode
        self.interval_s = plain_interval() if interval_s is None else interval_s
        self._clock = clock
        self._start = clock()
        self._last_drawn: float | None = None
        self._width = 0
        self._open = False  # a live line is drawn without its newline
        self._finished = False

    def __call__(self, done: int, total: int) -> None:
        self.update(done, total)

    def update(
        self,
        done: int,
        total: int,
        *,
        text: str | None = None,
        eta_s: float | None = None,
        estimate: bool = True,
        finished: bool | None = None,
    ) -> None:
        """Report ``done`` of ``total``; ``text`` replaces the ``done/total`` count and
        ``eta_s`` the ETA estimated from the pace so far (``estimate=False``: no ETA
        but ``eta_s``); ``finished`` defaults to ``done >= total``."""
        if self.mode == "none":
            return
        now = self._clock()
        if self._finished:  # the same display reused for a second run: start over
            self._start, self._last_drawn, self._finished = now, None, False
        finished = done >= total if finished is None else finished
        if not finished and self._last_drawn is not None:
            wait = _REDRAW_S if self.mode == "tty" else self.interval_s
            if now - self._last_drawn < wait:
                return
        self._last_drawn = now
        self._finished = finished
        if eta_s is None and estimate and done > 0:
            eta_s = (now - self._start) / done * max(0, total - done)
        line = self.line(done, total, now - self._start, text=text, eta_s=eta_s, finished=finished)
        if self.mode == "tty":
            pad = " " * max(0, self._width - len(line))
            self._width = len(line)
            self._open = not finished
            self.stream.write(f"\r{line}{pad}" + ("\n" if finished else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def line(
        self,
        done: int,
        total: int,
        elapsed_s: float,
        *,
        text: str | None = None,
        eta_s: float | None = None,
        finished: bool = False,
    ) -> str:
        """``label: 120/200 epochs (60%) | 0:12 elapsed | ETA 0:08``, or ``| done in 0:20``."""
        if text is None:
            unit = f" {self.unit}" if self.unit else ""
            text = f"{done}/{total}{unit} ({100 * done // max(total, 1)}%)"
        if finished:
            return f"{self.label}: {text} | done in {clock(elapsed_s)}"
        eta = "--" if eta_s is None else clock(eta_s)
        return f"{self.label}: {text} | {clock(elapsed_s)} elapsed | ETA {eta}"

    def close(self) -> None:
        """End a live line the work left unfinished (an error follows on a line of its own)."""
        if self._open:
            self._open = False
            self.stream.write("\n")
            self.stream.flush()


def progress_printer(
    label: str, stream: TextSink | None = None, *, unit: str = "", mode: Mode = "auto"
) -> ProgressDisplay:
    """A ``progress(done, total)`` callback drawing ``label``'s progress on ``stream``
    (default: stderr): a live line on a terminal, plain lines otherwise (see the module)."""
    return ProgressDisplay(label, unit=unit, stream=stream, mode=mode)


class LogLines:
    """A :class:`TextSink` that hands each whole non-blank line to ``log(line)`` (a
    session log): a display in ``plain`` mode draws into a log through it."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.log = log

    def write(self, text: str, /) -> int:
        for line in text.splitlines():
            if line.strip():
                self.log(line)
        return len(text)

    def flush(self) -> None:
        pass


class LogFollower:
    """Shows the lines other processes append to ``path`` while work runs, as ``tail -f``
    does: a daemon thread reads the new whole lines every ``poll_s`` seconds and hands
    each to ``show``. Lines already in the file when it starts are not shown.

    :meth:`stop` ends the thread (never waiting on it for long) and shows what was
    appended since the last read; a ``show`` that raises stops the showing, never the
    work.
    """

    def __init__(self, path: Path, show: Callable[[str], None], *, poll_s: float = 0.5) -> None:
        self.path = path
        self.show = show
        self.poll_s = poll_s
        self._offset = path.stat().st_size if path.exists() else 0
        self._partial = b""
        self._broken = False
        self._stop = threading.Event()
        self._lock = threading.Lock()  # the thread and stop() never read at once
        self._thread = threading.Thread(target=self._run, name="frreg-log-follower", daemon=True)

    def start(self) -> LogFollower:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=max(5.0, 2 * self.poll_s))
        self.read()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.read()

    def read(self) -> None:
        """Show the whole lines appended since the last read."""
        with self._lock:
            try:
                size = self.path.stat().st_size
                if size < self._offset:  # replaced or truncated: read it from the start
                    self._offset, self._partial = 0, b""
                with self.path.open("rb") as fh:
                    fh.seek(self._offset)
                    chunk = fh.read()
            except OSError:
                return
            self._offset += len(chunk)
            *lines, self._partial = (self._partial + chunk).split(b"\n")
            for raw in lines:
                line = raw.decode("utf-8", "replace").rstrip()
                if not line or self._broken:
                    continue
                try:
                    self.show(line)
                except Exception:  # a closed terminal: stop showing, let the work go on
                    self._broken = True
