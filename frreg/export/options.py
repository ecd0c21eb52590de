"""The export's options: ``frreg-export``'s (the plugin's ``--frreg-export*`` are made
from them in :mod:`frreg.session_options`).

Declared once here (see :mod:`frreg.options` for how). It imports neither
onnx nor torch: ``frreg-export --help`` and ``pytest --help`` work without the
export extra.
"""

from __future__ import annotations

import argparse
import re

from frreg.gate.options import audit_request
from frreg.options import Option
from frreg.schema import (
    DEFAULT_AUDIT,
    DEFAULT_ENSEMBLE_ID,
    DEFAULT_MODEL_LICENSE,
    REGISTRY_ID_MAX,
    REGISTRY_ID_PATTERN,
)


def ensemble_id(text: str) -> str:
    """An ensemble id its member ids (``<id>_seed<N>``) can carry in the fork's registry."""
    value = str(text)
    if (
        not re.fullmatch(REGISTRY_ID_PATTERN, value)
        or len(value) + len("_seed99") > REGISTRY_ID_MAX
    ):
        raise argparse.ArgumentTypeError(
            f"invalid ensemble id {text!r}: expected lowercase letters, digits, '_' and '-' "
            f"({REGISTRY_ID_PATTERN}), short enough for '<id>_seed<N>' to fit "
            f"{REGISTRY_ID_MAX} characters"
        )
    return value


EXPORT_VERDICT = Option(
    "verdict",
    "verdict",
    "the PROMOTE.json to export (a LOSO directory holding one also works)",
    None,
    metavar="PATH",
    shown_default="required unless --check",
)
EXPORT_CORPUS = Option(
    "corpus",
    "corpus",
    "the corpus the verdict judged; its sha256 must be the verdict's",
    None,
    metavar="PATH",
    shown_default="the path the verdict recorded (also tried from the verdict's "
    "directory and its parent)",
)
EXPORT_OUT_DIR = Option(
    "out-dir",
    "out_dir",
    "where the members, their sidecars and the ensemble manifest are written",
    "model/tiny",
    metavar="DIR",
)
ENSEMBLE_ID = Option(
    "ensemble-id",
    "ensemble_id",
    "ensemble id; members are <id>_seed<N>",
    DEFAULT_ENSEMBLE_ID,
    ensemble_id,
    "ID",
)
EXPORT_REGISTRY = Option(
    "registry",
    "registry",
    "model registry (registry.json) to flip: one non-smoke entry per member, written last",
    None,
    metavar="PATH",
    shown_default="none",
)
EXPORT_FORCE = Option(
    "force",
    "force",
    "replace an existing model set of this ensemble id",
    False,
    action="store_true",
)
EXPORT_LICENSE = Option(
    "license",
    "license_id",
    "SPDX license of the registry entries",
    None,
    metavar="SPDX",
    shown_default=f"the replaced entry's, else {DEFAULT_MODEL_LICENSE}",
)
EXPORT_LICENSE_URL = Option(
    "license-url",
    "license_url",
    "license URL of the registry entries",
    None,
    metavar="URL",
    shown_default="the replaced entry's, else none",
)
EXPORT_DEVICE = Option(
    "device",
    "device",
    "torch device for the production fit",
    None,
    choices=("cpu", "cuda"),
    shown_default="the device the verdict's seeds were trained on",
)
EXPORT_AUDIT = Option(
    "audit",
    "audit",
    "the audit the export runs before it trusts the verdict, as frreg-validate's: all (every "
    "(seed, fold) job retrained), K (partial) or 0 (none; recorded as such)",
    DEFAULT_AUDIT,
    audit_request,
    "all|K",
)
EXPORT_ACCEPT_DEVIATIONS = Option(
    "accept-deviations",
    "accept_deviations",
    "export a verdict gated with thresholds or seeds other than frreg's defaults for its "
    "profile (each is printed and recorded in the manifest); without it such a verdict "
    "is refused",
    False,
    action="store_true",
)
EXPORT_CHECK = Option(
    "check",
    "check",
    "re-verify the exported set(s) in DIR instead of exporting (digests, manifest, "
    "graph contract, onnxruntime on the stored probe rows, the registry if any); with "
    "--verdict (and --corpus, default the verdict's) also against the evidence: the "
    "verdict is re-derived and "
    "exported again, and every member must be byte for byte that export's",
    None,
    metavar="DIR",
    shown_default="off",
)
EXPORT_OPTIONS = (
    EXPORT_VERDICT,
    EXPORT_CORPUS,
    EXPORT_OUT_DIR,
    ENSEMBLE_ID,
    EXPORT_REGISTRY,
    EXPORT_FORCE,
    EXPORT_LICENSE,
    EXPORT_LICENSE_URL,
    EXPORT_DEVICE,
    EXPORT_AUDIT,
    EXPORT_ACCEPT_DEVIATIONS,
    EXPORT_CHECK,
)
