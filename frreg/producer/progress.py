"""Progress reporting for the corpus producer.

:func:`~frreg.producer.produce_corpus` calls ``progress(event)`` after every
cell; anything callable works (the pytest plugin can pass its own). The two
reporters here write to a stream: a one-line live display for terminals and
occasional plain lines for CI logs, where carriage returns make a mess.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol


class TextSink(Protocol):
    """Where progress lines go: a text stream, or anything with ``write`` and ``flush``."""

    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...


#: Seconds between plain progress lines in non-interactive logs.
PLAIN_INTERVAL_S: Final = 30.0


@dataclass(frozen=True)
class ProgressEvent:
    """Where a producer run stands.

    Frame counts cover only the cells this run scores (skipped cells were
    scored earlier), so frames/s and the ETA describe this run's own pace.
    """

    cells_total: int
    cells_done: int
    cells_failed: int
    cells_skipped: int
    frames_done: int
    frames_todo: int
    elapsed_s: float
    last: str | None = None
    finished: bool = False

    @property
    def fps(self) -> float | None:
        """Frames scored per second of wall time so far, once there is something to measure."""
        if self.frames_done == 0 or self.elapsed_s <= 0:
            return None
        return self.frames_done / self.elapsed_s

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the current pace, or ``None`` before the first cell ends."""
        fps = self.fps
        if fps is None:
            return None
        return max(0.0, (self.frames_todo - self.frames_done) / fps)

    def summary(self) -> str:
        """``cells 7/12 (2 reused, 1 failed) | 183.4 frames/s | ETA 0:41``."""
        notes = []
        if self.cells_skipped:
            notes.append(f"{self.cells_skipped} reused")
        if self.cells_failed:
            notes.append(f"{self.cells_failed} failed")
        text = f"cells {self.cells_done + self.cells_failed}/{self.cells_total}"
        if notes:
            text += f" ({', '.join(notes)})"
        fps = self.fps
        if fps is not None:
            text += f" | {fps:.1f} frames/s"
        eta = self.eta_s
        if eta is not None and not self.finished:
            text += f" | ETA {_clock(eta)}"
        if self.finished:
            text += f" | done in {_clock(self.elapsed_s)}"
        return text


ProgressCallback = Callable[[ProgressEvent], None]


def _clock(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class TerminalProgress:
    """A single status line, rewritten in place (for a TTY)."""

    def __init__(self, stream: TextSink | None = None, prefix: str = "frreg-corpus") -> None:
        self.stream: TextSink = stream if stream is not None else sys.stderr
        self.prefix = prefix
        self._width = 0

    def __call__(self, event: ProgressEvent) -> None:
        line = f"{self.prefix}: {event.summary()}"
        pad = " " * max(0, self._width - len(line))
        self._width = len(line)
        end = "\n" if event.finished else ""
        self.stream.write(f"\r{line}{pad}{end}")
        self.stream.flush()


class PlainProgress:
    """A plain line now and then (every ``interval_s``), and one at the end."""

    def __init__(
        self,
        stream: TextSink | None = None,
        prefix: str = "frreg-corpus",
        interval_s: float = PLAIN_INTERVAL_S,
    ) -> None:
        self.stream: TextSink = stream if stream is not None else sys.stderr
        self.prefix = prefix
        self.interval_s = interval_s
        self._last = time.monotonic()

    def __call__(self, event: ProgressEvent) -> None:
        now = time.monotonic()
        if event.finished or now - self._last >= self.interval_s:
            self._last = now
            self.stream.write(f"{self.prefix}: {event.summary()}\n")
            self.stream.flush()


def auto_progress(stream: TextSink | None = None) -> ProgressCallback:
    """A live line on a terminal, occasional plain lines otherwise."""
    stream = stream if stream is not None else sys.stderr
    isatty = getattr(stream, "isatty", None)
    if callable(isatty) and isatty():
        return TerminalProgress(stream)
    return PlainProgress(stream)
