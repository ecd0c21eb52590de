"""One ship-gate session, for the pytest plugin: its single entry point into frreg.

``pytest_frreg`` imports nothing else from frreg but this package, the
plugin's option table and the leaf modules (errors, schema, the option
machinery), so what the plugin may do is listed here:

- :mod:`.config`: :class:`GateConfig`, built once from the resolved options
  by :func:`gate_config`.
- :mod:`.gate_session`: :class:`GateSession` (the lazy corpus, cached seeds,
  the checks, the verdict and the export), its :class:`ItemSpec` items and
  :class:`GateFailure`.
- :mod:`.outcomes`: :class:`ItemOutcome`, what the items reported.
- :mod:`.output`: the log, the reports and the terminal summary.

:func:`.config.clear_outputs` removes a session's verdict-bearing files.
:func:`clear_verdict` and :class:`GateReport` are the gate's, named here so
the plugin reaches the gate only through the session. Names load on first
use, as in the other packages: the session imports the gate and torch, and
``import frreg.session`` alone must not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from frreg._lazy import lazy_getattr

if TYPE_CHECKING:
    from frreg.gate.checks import GateReport
    from frreg.gate.verdict import clear_verdict
    from frreg.session.config import (
        PRODUCER_KEYS,
        GateConfig,
        clear_outputs,
        gate_config,
        keep_baseline,
    )
    from frreg.session.gate_session import GateFailure, GateSession, ItemSpec, item_specs
    from frreg.session.outcomes import ItemOutcome, items_line, session_checks
    from frreg.session.output import (
        EVIDENCE_PNG,
        HEATMAP_PNG,
        LOG_FILE,
        REPORT_MD,
        file_log,
        summary_lines,
    )

_EXPORTS: dict[str, str] = {
    "GateReport": "frreg.gate.checks",
    "clear_verdict": "frreg.gate.verdict",
    **dict.fromkeys(
        ("PRODUCER_KEYS", "GateConfig", "clear_outputs", "gate_config", "keep_baseline"),
        "frreg.session.config",
    ),
    **dict.fromkeys(
        ("GateFailure", "GateSession", "ItemSpec", "item_specs"), "frreg.session.gate_session"
    ),
    **dict.fromkeys(("ItemOutcome", "items_line", "session_checks"), "frreg.session.outcomes"),
    **dict.fromkeys(
        ("EVIDENCE_PNG", "HEATMAP_PNG", "LOG_FILE", "REPORT_MD", "file_log", "summary_lines"),
        "frreg.session.output",
    ),
}

__all__ = [
    "EVIDENCE_PNG",
    "HEATMAP_PNG",
    "LOG_FILE",
    "PRODUCER_KEYS",
    "REPORT_MD",
    "GateConfig",
    "GateFailure",
    "GateReport",
    "GateSession",
    "ItemOutcome",
    "ItemSpec",
    "clear_outputs",
    "clear_verdict",
    "file_log",
    "gate_config",
    "item_specs",
    "items_line",
    "keep_baseline",
    "session_checks",
    "summary_lines",
]

__getattr__ = lazy_getattr(__name__, _EXPORTS)


def __dir__() -> list[str]:
    return sorted(__all__)
