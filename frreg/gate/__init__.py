"""The ship gate: checks (:mod:`~frreg.gate.checks`), the verdict file
(:mod:`~frreg.gate.verdict`) and its human renderings (:mod:`~frreg.gate.report`).

Every front end (``frreg-gate``, ``frreg-validate``, the pytest plugin) runs
the same checks through :func:`~frreg.gate.checks.evaluate` and writes
verdicts through :func:`~frreg.gate.verdict.validate`.
"""

from frreg.gate.checks import (
    Check,
    GateReport,
    SeedArtifact,
    Thresholds,
    evaluate,
    load_loso_dir,
)

__all__ = ["Check", "GateReport", "SeedArtifact", "Thresholds", "evaluate", "load_loso_dir"]
