"""frreg: retrain the fr_regressor_v2 VMAF ensemble and decide whether it may ship.

The public surface, by step of the runbook:

- corpus: :func:`produce_corpus` (``frreg-corpus``), :func:`load_corpus`, :class:`Corpus`
- training: :class:`LeaveOneSourceOut`, :class:`TrainSettings`, :func:`run_loso` (``frreg-train``)
- gate: :class:`Thresholds`, :func:`evaluate`, :func:`load_loso_dir` (``frreg-gate``)
- verdict: :func:`validate` (``frreg-validate``)

Names are imported on first use, so ``import frreg`` (and the pytest plugin
that imports it) stays cheap: torch and pandas load only when needed.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Corpus": "frreg.corpus",
    "load_corpus": "frreg.corpus",
    "LeaveOneSourceOut": "frreg.splits",
    "TrainSettings": "frreg.train",
    "run_loso": "frreg.loso",
    "Thresholds": "frreg.gate",
    "GateReport": "frreg.gate",
    "evaluate": "frreg.gate",
    "load_loso_dir": "frreg.gate",
    "validate": "frreg.verdict",
    "produce_corpus": "frreg.producer",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'frreg' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
