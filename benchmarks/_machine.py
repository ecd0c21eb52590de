"""What every benchmark prints beside its figures, and how it ends: the machine and its load.

The benchmarks are scripts (``python benchmarks/bench_train.py``) and are also loaded by
path (the tests, ``gate_power.py``), so each puts this directory on ``sys.path`` before
importing this module.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: The vector extensions the training kernels can use, in the order printed.
VECTOR_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512vl")


def machine() -> tuple[str, list[str]]:
    """The CPU model (``model name``, as ``lscpu`` shows it) and the vector extensions of
    :data:`VECTOR_FLAGS` it has, from Linux's /proc/cpuinfo (``unknown CPU`` elsewhere)."""
    model, flags = "unknown CPU", list[str]()
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return model, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and model == "unknown CPU":
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            have = set(value.split())
            flags = [f for f in VECTOR_FLAGS if f in have]
    return model, flags


def cpu_model() -> str:
    """The CPU model alone."""
    return machine()[0]


def load_line() -> str:
    """``load average 1.00 0.80 0.50`` (1, 5 and 15 minutes)."""
    try:
        return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:
        return "load average unknown"


def run_guarded(prog: str, run: Callable[[Any], int], args: Any) -> int:
    """``run(args)``'s status; Ctrl-C is 130 and any other failure one line and 1, never a
    traceback (a benchmark that cannot run says why)."""
    try:
        return run(args)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        print(f"{prog}: cannot run: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
