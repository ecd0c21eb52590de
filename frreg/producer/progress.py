"""Progress reporting for the corpus producer.

:func:`~frreg.producer.produce_corpus` calls ``progress(event)`` after every
cell; anything callable works. :class:`CorpusProgress` draws the events with
frreg's one progress display (:mod:`frreg._terminal`): a live line on a
terminal, a plain line every :data:`~frreg._terminal.PLAIN_INTERVAL_S` seconds
otherwise. The text of a line is the event's (cells, frames/s), the mechanics
are the display's.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

from frreg._terminal import PLAIN_INTERVAL_S, Mode, ProgressDisplay, TextSink, clock

__all__ = [
    "PLAIN_INTERVAL_S",
    "CorpusProgress",
    "PlainProgress",
    "ProgressCallback",
    "ProgressEvent",
    "TerminalProgress",
    "auto_progress",
]


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

    def counts(self) -> str:
        """``cells 7/12 (2 reused, 1 failed) | 183.4 frames/s``: where the run stands."""
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
        return text

    def summary(self) -> str:
        """``cells 7/12 (2 reused, 1 failed) | 183.4 frames/s | ETA 0:41``."""
        text = self.counts()
        eta = self.eta_s
        if eta is not None and not self.finished:
            text += f" | ETA {clock(eta)}"
        if self.finished:
            text += f" | done in {clock(self.elapsed_s)}"
        return text


ProgressCallback = Callable[[ProgressEvent], None]


class CorpusProgress:
    """Draws producer events with frreg's progress display (``mode``: see
    :data:`~frreg._terminal.MODES`; ``auto`` is live on a terminal, plain otherwise)."""

    def __init__(
        self,
        stream: TextSink | None = None,
        prefix: str = "frreg-corpus",
        *,
        mode: Mode = "auto",
        interval_s: float | None = None,
    ) -> None:
        self.display = ProgressDisplay(
            prefix,
            stream=stream if stream is not None else sys.stderr,
            mode=mode,
            interval_s=interval_s,
        )

    def __call__(self, event: ProgressEvent) -> None:
        self.display.update(
            event.cells_done + event.cells_failed,
            event.cells_total,
            text=event.counts(),
            eta_s=event.eta_s,  # from frames, not cells: cells differ in length
            estimate=False,
            finished=event.finished,
        )


class TerminalProgress(CorpusProgress):
    """The live line, whatever the stream (``--progress tty``)."""

    def __init__(self, stream: TextSink | None = None, prefix: str = "frreg-corpus") -> None:
        super().__init__(stream, prefix, mode="tty")


class PlainProgress(CorpusProgress):
    """Plain lines, whatever the stream (``--progress plain``; the gate session's log)."""

    def __init__(
        self,
        stream: TextSink | None = None,
        prefix: str = "frreg-corpus",
        interval_s: float | None = None,
    ) -> None:
        super().__init__(stream, prefix, mode="plain", interval_s=interval_s)


def auto_progress(stream: TextSink | None = None) -> ProgressCallback:
    """A live line on a terminal, plain lines at a fixed interval otherwise."""
    return CorpusProgress(stream, mode="auto")
