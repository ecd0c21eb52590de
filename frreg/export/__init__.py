"""Ship what was promoted: the ensemble as the fork's ONNX members, sidecars, manifest
and registry entries (``frreg-export``), and their re-verification (``--check``).

- :mod:`frreg.export.graph`: one member as an ONNX graph, exported, checked, run.
- :mod:`frreg.export.documents`: sidecars, the manifest, registry entries.
- :mod:`frreg.export.ship`: the export, from a PROMOTE verdict.
- :mod:`frreg.export.check`: re-verifying an exported set.

Needs the ``frreg[export]`` extra (onnx, onnxscript, onnxruntime).
"""

from __future__ import annotations

from frreg._lazy import lazy_getattr

_EXPORTS = {
    "ExportRequest": "frreg.export.ship",
    "ExportResult": "frreg.export.ship",
    "ExportError": "frreg.export.ship",
    "export_ensemble": "frreg.export.ship",
    "judged_corpus": "frreg.export.ship",
    "check_export": "frreg.export.check",
    "CheckResult": "frreg.export.check",
}

__getattr__ = lazy_getattr(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
