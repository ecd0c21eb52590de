"""The plugin's options, ``pytest --frreg-*``: every stage's option the gate session
offers, and the few only the plugin has.

A stage's option is offered as it is declared in that stage's table (with the
``frreg-`` prefix, and ini key ``frreg_<dest>``); the plugin-only ones are
declared here. :data:`PLUGIN_OPTIONS` is what ``pytest_frreg.plugin`` adds
and what :func:`frreg.session.gate_config` receives, keyed by dest.

Light, like every option table: ``pytest --help`` reads it.
"""

from __future__ import annotations

from dataclasses import replace

from frreg.export.options import ENSEMBLE_ID, EXPORT_FORCE, EXPORT_REGISTRY

# BASELINE is re-exported: the plugin names it, and reaches the gate only through here.
from frreg.gate.options import BASELINE as BASELINE
from frreg.gate.options import THRESHOLD_OPTIONS, audit_request
from frreg.options import Option, boolean
from frreg.producer.options import CQS, ENCODERS, SCHEDULER, SOURCES
from frreg.schema import DEFAULT_AUDIT
from frreg.training.options import DEVICE, ENGINE, SEEDS, TRAINING_OPTIONS

GATE_CORPUS = Option(
    "corpus",
    "corpus",
    "Phase A corpus (JSONL); turns the gate on; produced from --frreg-sources if missing",
    None,
    metavar="PATH",
    shown_default="off",
)
#: frreg-corpus's ``--sources``, with what it means to the gate.
GATE_SOURCES = replace(
    SOURCES,
    help="source manifest (TOML or JSON) used to produce a missing corpus",
    show_default=True,
    shown_default="the built-in source set",
)
GATE_OUT_DIR = Option(
    "out-dir",
    "out_dir",
    "where loso_seed{N}.json, the verdict and the report land",
    "runs/frreg-gate",
    metavar="DIR",
)
GATE_CACHE_DIR = Option(
    "cache-dir",
    "cache_dir",
    "trained-seed cache shared by xdist workers and concurrent sessions",
    "runs/frreg-cache",
    metavar="DIR",
)
PLUGIN_AUDIT = Option(
    "audit",
    "audit",
    "retrain these (seed, fold) jobs before writing the verdict: all, K (a partial audit) "
    "or 0; the seeds this session trained itself, unchanged since, are exempt",
    None,
    audit_request,
    "all|K",
    shown_default=f"{DEFAULT_AUDIT}, less the seeds this session trained itself",
)
#: The plugin's export options: --frreg-export=DIR turns the export on.
PLUGIN_EXPORT = Option(
    "export",
    "export_dir",
    "after the controller wrote PROMOTE, export the ensemble into DIR (as frreg-export does)",
    None,
    metavar="DIR",
    shown_default="off",
)
PLUGIN_EXPORT_REGISTRY = replace(EXPORT_REGISTRY, name="export-registry", dest="export_registry")
PLUGIN_EXPORT_FORCE = replace(EXPORT_FORCE, name="export-force", dest="export_force", type=boolean)

#: The plugin's options that say how to produce a missing corpus (the producer's).
PRODUCER_OPTIONS = (GATE_SOURCES, ENCODERS, CQS, SCHEDULER)

#: The options whose value is a path (by dest): a relative one is taken from the
#: invocation directory on the command line, from the ini file's directory in an
#: ini key, and from pytest's rootdir as a built-in default.
PATH_DESTS = frozenset(
    opt.dest
    for opt in (
        GATE_CORPUS,
        GATE_SOURCES,
        GATE_OUT_DIR,
        GATE_CACHE_DIR,
        BASELINE,
        PLUGIN_EXPORT,
        PLUGIN_EXPORT_REGISTRY,
    )
)

#: Every ``--frreg-*`` option, in help order.
PLUGIN_OPTIONS = (
    GATE_CORPUS,
    *PRODUCER_OPTIONS,
    SEEDS,
    *TRAINING_OPTIONS,
    ENGINE,
    DEVICE,
    GATE_OUT_DIR,
    GATE_CACHE_DIR,
    *THRESHOLD_OPTIONS,
    PLUGIN_AUDIT,
    PLUGIN_EXPORT,
    ENSEMBLE_ID,
    PLUGIN_EXPORT_REGISTRY,
    PLUGIN_EXPORT_FORCE,
)
