"""frreg: retrain the fr_regressor_v2 VMAF ensemble and decide whether it may ship.

The public surface, by step of the runbook:

- corpus: :func:`produce_corpus` (``frreg-corpus``), :func:`load_corpus`, :class:`Corpus`
- training: :class:`LeaveOneSourceOut`, :class:`TrainSettings`, :class:`MLPConfig`,
  :func:`run_loso` (``frreg-train``), :class:`SeedRecord` (``loso_seed{N}.json``)
- gate: :data:`CRITERIA`, :class:`Thresholds`, :func:`evaluate`, :func:`load_loso_dir`
  (``frreg-gate``)
- verdict: :func:`judge` (writes nothing), :func:`judge_and_write` (``frreg-validate``)
- export: :func:`export_ensemble` (``frreg-export``), :func:`check_export` (``--check``)
- the pytest session behind the plugin: :class:`GateSession`

See ``docs/architecture.md`` for which module owns what.

Names are imported on first use, so ``import frreg`` (and the pytest plugin
that imports it) stays cheap: torch and numpy load only when needed.
"""

from __future__ import annotations

from frreg._lazy import lazy_getattr

__version__ = "0.1.0"

_EXPORTS = {
    "Corpus": "frreg.corpus",
    "load_corpus": "frreg.corpus",
    "LeaveOneSourceOut": "frreg.training.splits",
    "MLPConfig": "frreg.training.network",
    "TrainSettings": "frreg.training.settings",
    "SeedRecord": "frreg.training.record",
    "FoldRecord": "frreg.training.record",
    "run_loso": "frreg.training.loso",
    "CRITERIA": "frreg.gate.criteria",
    "Thresholds": "frreg.gate.criteria",
    "GateReport": "frreg.gate.checks",
    "evaluate": "frreg.gate.checks",
    "load_loso_dir": "frreg.gate.checks",
    "judge": "frreg.gate.verdict",
    "judge_and_write": "frreg.gate.verdict",
    "export_ensemble": "frreg.export.ship",
    "ExportRequest": "frreg.export.ship",
    "check_export": "frreg.export.check",
    "GateSession": "frreg.session",
    "produce_corpus": "frreg.producer",
}

__all__ = ["__version__", *_EXPORTS]


__getattr__ = lazy_getattr(__name__, _EXPORTS)


def __dir__() -> list[str]:
    return sorted(__all__)
