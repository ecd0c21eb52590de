"""The ship gate: checks (:mod:`~frreg.gate.checks`), the verdict file
(:mod:`~frreg.gate.verdict`) and its human renderings (:mod:`~frreg.gate.report`).

Every front end (``frreg-gate``, ``frreg-validate``, the pytest plugin) runs
the same checks through :func:`~frreg.gate.checks.evaluate` and writes
verdicts through :func:`~frreg.gate.verdict.judge_and_write`.

Names load on first use, so importing a light submodule (the gate's option
table, :mod:`.options`, which ``pytest --help`` reads) does not import numpy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from frreg._lazy import lazy_getattr

if TYPE_CHECKING:
    from frreg.gate.checks import (
        Check,
        GateReport,
        SeedArtifact,
        Thresholds,
        evaluate,
        load_loso_dir,
    )

_EXPORTS = dict.fromkeys(
    ("Check", "GateReport", "SeedArtifact", "Thresholds", "evaluate", "load_loso_dir"),
    "frreg.gate.checks",
)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
__all__ = ["Check", "GateReport", "SeedArtifact", "Thresholds", "evaluate", "load_loso_dir"]
