"""The JSON an exported set consists of: member sidecars, the ensemble manifest, the
registry entries.

Field names and meanings are the fork's (``model/tiny/`` in the fork: the
``fr_regressor_v2_ensemble_v1_seed{N}.json`` sidecars, the ensemble manifest
and ``registry.json``); frreg adds fields, never renames one. libvmaf's
sidecar reader is a substring search for the first ``"kind"``, ``"name"``
and ``"onnx_opset"`` in the file, so a sidecar carries each of those keys at
most once, at its top level (:func:`dumps` sorts keys, as the fork does).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from frreg import __version__
from frreg.export.signing import bundle_path
from frreg.schema import (
    CANONICAL_6,
    CODEC_BLOCK_LAYOUT,
    DEFAULT_MODEL_LICENSE,
    ENCODER_VOCAB,
    ENCODER_VOCAB_VERSION,
    EXPORT_ATOL,
    EXPORT_SCHEMA,
    NEUTRAL_NORM,
    NOMINAL_COVERAGE,
    ONNX_INPUT_NAMES,
    ONNX_OPSET,
    ONNX_OUTPUT_NAMES,
    PRESET_LADDERS,
    PRESET_NORM_FIXED,
    REGISTRY_NOTES_MAX,
    SCHEMA_VERSION,
    UNKNOWN_ENCODER,
    VERDICT_SCHEMA,
    member_id,
)
from frreg.training.settings import TrainSettings

#: The fork's sidecar ``kind`` of a full-reference scoring model, and its manifest's.
MEMBER_KIND = "fr"
ENSEMBLE_KIND = "fr_ensemble"
#: How production members are fit (the fork's words, recorded in every sidecar).
FIT_SET = "full_corpus"
SCALER = "fit_on_full_corpus"
#: The manifest's ``confidence.method``: the fork's, with the fork's meaning (the interval
#: is ``mu +- conformal_q_residual * sigma``). frreg's absolute interval has its own key and
#: method under ``confidence.absolute`` (:data:`frreg.gate.ensemble.ABSOLUTE_METHOD`).
CONFIDENCE_METHOD = "ensemble+conformal"
#: The fork's ``confidence.gaussian_z`` (its trainer writes it into every manifest: the
#: multiplier of sigma under method ``ensemble``; its model doc falls back to it when
#: ``conformal_q_residual`` is unset).
FORK_GAUSSIAN_Z = 1.959963984540054


def dumps(doc: Mapping[str, Any]) -> str:
    """Strict JSON with sorted keys (the fork's layout), two-space indent, final newline."""
    return json.dumps(doc, indent=2, sort_keys=True, allow_nan=False) + "\n"


@dataclass(frozen=True)
class CorpusFacts:
    """What the documents say about the corpus the members were fit on."""

    path: str
    sha256: str
    n_rows: int
    cq_min: float
    cq_max: float
    sources: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "sha256": self.sha256,
            "n_rows": self.n_rows,
            "cq_min": self.cq_min,
            "cq_max": self.cq_max,
            "sources": list(self.sources),
        }


@dataclass(frozen=True)
class Provenance:
    """Where the members come from: the verdict, its recipe, the scaler, the corpus."""

    corpus: CorpusFacts
    feature_mean: tuple[float, ...]
    feature_std: tuple[float, ...]
    settings: TrainSettings
    engine: str
    engine_version: int
    kernel: str
    device: str
    verdict_file: str
    verdict_sha256: str
    gate: Mapping[str, Any]  # the verdict's ADR-0303 fields (re-derived)
    checks: Mapping[str, str]  # every re-derived check name -> PASS / FAIL / WARN
    deviations: tuple[str, ...]  # how recipe and thresholds differ from ADR-0303
    versions: Mapping[str, str]
    #: The audit the export ran before trusting the verdict: requested, candidates,
    #: retrained, passed.
    audit: Mapping[str, Any] = field(default_factory=dict)
    #: Thresholds or seeds other than frreg's defaults, exported under --accept-deviations.
    accepted_deviations: tuple[str, ...] = ()


def input_conventions(p: Provenance) -> dict[str, Any]:
    """Everything a consumer must do to a row before a member scores it: the scaling of
    the six features, and how each codec-block column is filled (``preset_norm`` as the
    members were trained: the fork trainer's 0.5, or the preset ladder)."""
    preset: dict[str, Any]
    if p.settings.preset_norm == PRESET_NORM_FIXED:
        preset = {
            "convention": PRESET_NORM_FIXED,
            "value": NEUTRAL_NORM,
            "rule": f"{NEUTRAL_NORM} on every row, whatever the encoder preset (the fork's "
            "trainer; its corpus records no preset)",
        }
    else:
        preset = {
            "convention": p.settings.preset_norm,
            "rule": "index of the row's preset on its encoder's ladder / (ladder length - 1), "
            f"fastest first; {NEUTRAL_NORM} for a row without a preset or an encoder "
            "without a ladder. A deviation from the ADR-0303 recipe: a consumer feeding "
            f"{NEUTRAL_NORM} gets other scores",
            "ladders": {enc: list(ladder) for enc, ladder in PRESET_LADDERS.items()},
        }
    return {
        "features": {
            "order": list(CANONICAL_6),
            "rule": "(x - feature_mean) / feature_std per feature, raw libvmaf values in; "
            "feature_std is the population std (ddof=0), 1 for a constant column",
        },
        "encoder_onehot": {
            "rule": "1 in the slot of the row's encoder in encoder_vocab order, 0 elsewhere; "
            f"an encoder outside the vocabulary takes the {UNKNOWN_ENCODER!r} slot",
            "vocab_version": ENCODER_VOCAB_VERSION,
        },
        "preset_norm": preset,
        "crf_norm": {
            "rule": "(cq - cq_min) / (cq_max - cq_min) with the training corpus's range, "
            f"{NEUTRAL_NORM} when cq_min == cq_max; not clipped outside the range",
            "cq_min": p.corpus.cq_min,
            "cq_max": p.corpus.cq_max,
        },
        "score": "the VMAF the member predicts for the row (libvmaf vmaf_v0.6.1's 0-100 scale)",
    }


def training_recipe(p: Provenance, seed: int) -> dict[str, Any]:
    """Every setting of one production member's fit (the fork's keys, then frreg's)."""
    s, m = p.settings, p.settings.model
    return {
        "in_features": m.n_features,
        "hidden": m.hidden,
        "depth": m.depth,
        "dropout": m.dropout,
        "activation": m.activation,
        "num_codecs": m.num_codecs,
        "preset_norm": s.preset_norm,
        "epochs": s.epochs,
        "batch_size": s.batch_size,
        "lr": s.lr,
        "weight_decay": s.weight_decay,
        # frreg's: the sweep record the recipe was chosen from (None: no search).
        "sweep": s.sweep,
        "optimizer": "Adam",
        "loss": "MSE",
        "fit_set": FIT_SET,
        "scaler": SCALER,
        "scaler_std": "population (ddof=0); a constant column keeps std 1",
        "seed": seed,
        "engine": p.engine,
        "engine_version": p.engine_version,
        "kernel": p.kernel,
        "device": p.device,
        "versions": dict(p.versions),
    }


def _notes(ensemble_id: str, seed: int, p: Provenance, *, short: bool) -> str:
    mean = p.gate.get("mean_plcc")
    shown = "n/a" if not isinstance(mean, int | float) else f"{mean:.4f}"
    text = (
        f"Production member of {ensemble_id} (seed={seed}), fit by frreg {__version__} on the "
        f"full corpus ({p.corpus.n_rows} rows, sha256 {p.corpus.sha256[:12]}) after the "
        f"{len(p.corpus.sources)}-fold LOSO gate passed ({p.verdict_file}: PROMOTE, "
        f"mean PLCC {shown}, re-derived before export)."
    )
    if p.deviations:
        text += " Custom: " + "; ".join(p.deviations) + "."
    if not short:
        text += (
            " 6 canonical libvmaf features (adm2, vif_scale0..3, motion2), standardised with "
            "feature_mean/feature_std, + 14-D codec block (12-slot encoder one-hot v2 + "
            "preset_norm + crf_norm) -> VMAF teacher score."
        )
    if short and len(text) > REGISTRY_NOTES_MAX:  # the registry schema's limit
        text = text[: REGISTRY_NOTES_MAX - 1] + "…"
    return text


def sidecar(
    ensemble_id: str,
    seed: int,
    onnx_name: str,
    onnx_sha256: str,
    p: Provenance,
    *,
    loso_plcc: float | None,
    in_sample: Mapping[str, float | None],
) -> dict[str, Any]:
    """The ``<member>.json`` next to one member's ``.onnx``."""
    gate = p.gate
    return {
        "id": member_id(ensemble_id, seed),
        "kind": MEMBER_KIND,
        "ensemble_id": ensemble_id,
        "seed": seed,
        "onnx": onnx_name,
        "sha256": onnx_sha256,
        "opset": ONNX_OPSET,
        "onnx_opset": ONNX_OPSET,  # the key libvmaf's sidecar reader looks for
        "input_names": list(ONNX_INPUT_NAMES),
        "output_names": list(ONNX_OUTPUT_NAMES),
        "feature_order": list(CANONICAL_6),
        "feature_mean": list(p.feature_mean),
        "feature_std": list(p.feature_std),
        "codec_aware": True,
        "codec_block_layout": list(CODEC_BLOCK_LAYOUT),
        "input_conventions": input_conventions(p),
        "encoder_vocab": list(ENCODER_VOCAB),
        "encoder_vocab_version": ENCODER_VOCAB_VERSION,
        "corpus": {k: v for k, v in p.corpus.to_json().items() if k != "sources"},
        "training_recipe": training_recipe(p, seed),
        "gate": {
            "verdict": "PROMOTE",
            "passed": True,
            "mean_plcc": gate.get("mean_plcc"),
            "mean_plcc_threshold": gate.get("mean_plcc_threshold"),
            "plcc_spread": gate.get("plcc_spread"),
            "plcc_spread_max": gate.get("plcc_spread_max"),
            "per_seed_min_threshold": gate.get("per_seed_min"),
            "this_seed_loso_plcc": loso_plcc,
            "schema": VERDICT_SCHEMA,
            "verdict_file": p.verdict_file,
            "verdict_sha256": p.verdict_sha256,
            "checks": dict(p.checks),
            "deviations": list(p.deviations),
        },
        "loso_mean_plcc": gate.get("mean_plcc"),
        "full_fit_in_sample": dict(in_sample),
        "smoke": False,
        "parent_adrs": ["ADR-0303"],
        "notes": _notes(ensemble_id, seed, p, short=False),
    }


@dataclass(frozen=True)
class MemberFiles:
    """One written member: its seed, file names and digests."""

    seed: int
    onnx: str
    sha256: str
    sidecar: str
    sidecar_sha256: str


def probe_rows(n_rows: int, k: int) -> np.ndarray:
    """``k`` row indices spread evenly over the corpus (every row when it has fewer)."""
    return np.unique(np.linspace(0, n_rows - 1, num=min(k, n_rows)).round().astype(np.int64))


def manifest(
    ensemble_id: str,
    members: Sequence[MemberFiles],
    p: Provenance,
    confidence: Mapping[str, Any],
    probe: Mapping[str, Any],
    *,
    created_at: str,
    written_by: str,
) -> dict[str, Any]:
    """The ensemble manifest ``<ensemble_id>.json``: members, scaling, confidence, probe."""
    return {
        "schema": EXPORT_SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "id": ensemble_id,
        "kind": ENSEMBLE_KIND,
        "ensemble_size": len(members),
        "members": [
            {
                "id": member_id(ensemble_id, m.seed),
                "seed": m.seed,
                "onnx": m.onnx,
                "sha256": m.sha256,
                "sidecar": m.sidecar,
                "sidecar_sha256": m.sidecar_sha256,
            }
            for m in members
        ],
        "codec_vocab": list(ENCODER_VOCAB),
        "codec_vocab_version": ENCODER_VOCAB_VERSION,
        "codec_block_layout": list(CODEC_BLOCK_LAYOUT),
        "input_conventions": input_conventions(p),
        "feature_order": list(CANONICAL_6),
        "feature_mean": list(p.feature_mean),
        "feature_std": list(p.feature_std),
        "input_names": list(ONNX_INPUT_NAMES),
        "output_names": list(ONNX_OUTPUT_NAMES),
        "opset": ONNX_OPSET,
        "confidence": {
            "method": CONFIDENCE_METHOD,
            "nominal_coverage": NOMINAL_COVERAGE,
            "gaussian_z": FORK_GAUSSIAN_Z,
            **confidence,
            "feature_mean": list(p.feature_mean),
            "feature_std": list(p.feature_std),
        },
        "corpus": p.corpus.to_json(),
        "training_recipe": {k: v for k, v in training_recipe(p, 0).items() if k != "seed"},
        "verdict": {
            "file": p.verdict_file,
            "sha256": p.verdict_sha256,
            "verdict": "PROMOTE",
            "gate": dict(p.gate),
            "checks": dict(p.checks),
            "deviations": list(p.deviations),
            "accepted_deviations": list(p.accepted_deviations),
            "audit": dict(p.audit),
        },
        "probe": {**probe, "atol": EXPORT_ATOL},
        "smoke": False,
        "created_at": created_at,
        "frreg_version": __version__,
        "written_by": written_by,
    }


def registry_entry(
    ensemble_id: str,
    seed: int,
    onnx_path: str,
    sha256: str,
    p: Provenance,
    *,
    previous: Mapping[str, Any] | None,
    license_id: str | None,
    license_url: str | None,
) -> tuple[dict[str, Any], list[str]]:
    """The registry entry of one member, and notes for the user.

    License fields come from the options, else from the entry being replaced, and its
    ``description`` is kept. ``sigstore_bundle`` names where the member's bundle goes,
    ``<onnx>.sigstore.json`` beside it (the fork's naming; its registry tests require the
    field on every entry): whether a bundle is there, and what it signs, is for the caller
    to say (:mod:`frreg.export.signing`).
    """
    previous = previous or {}
    entry: dict[str, Any] = {
        "id": member_id(ensemble_id, seed),
        "kind": MEMBER_KIND,
        "onnx": onnx_path,
        "opset": ONNX_OPSET,
        "sha256": sha256,
        "smoke": False,
        "notes": _notes(ensemble_id, seed, p, short=True),
    }
    lic = license_id or previous.get("license") or DEFAULT_MODEL_LICENSE
    url = license_url if license_url is not None else previous.get("license_url")
    entry["license"] = lic
    if url is not None:
        entry["license_url"] = url
    entry["sigstore_bundle"] = bundle_path(onnx_path)
    if isinstance(previous.get("description"), str):
        entry["description"] = previous["description"]
    notes = []
    old_bundle = previous.get("sigstore_bundle")
    if old_bundle is not None and old_bundle != entry["sigstore_bundle"]:
        notes.append(
            f"{entry['id']}: sigstore_bundle {old_bundle!r} became "
            f"{entry['sigstore_bundle']!r} (beside the member, as the fork names bundles)"
        )
    return entry, notes
