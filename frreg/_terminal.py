"""Terminal progress for long library work (training jobs), shared by the CLIs and the export.

A leaf module: it imports nothing from frreg, so any layer may draw with it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


def progress_printer(label: str, stream: TextIO | None = None) -> Callable[[int, int], None] | None:
    """A ``progress(done, total)`` callback drawing one updating line on a terminal.

    Returns ``None`` when the stream is not a terminal, so CI logs stay quiet.
    """
    out = stream or sys.stderr
    if not out.isatty():
        return None
    start = time.perf_counter()

    def update(done: int, total: int) -> None:
        elapsed = time.perf_counter() - start
        eta = elapsed / done * (total - done) if done else 0.0
        width = 30
        filled = int(width * done / max(total, 1))
        bar = "#" * filled + "-" * (width - filled)
        end = "\n" if done >= total else ""
        out.write(
            f"\r{label} [{bar}] {done}/{total}  {elapsed:5.0f}s elapsed, ETA {eta:5.0f}s{end}"
        )
        out.flush()

    return update
