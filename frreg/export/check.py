"""``frreg-export --check DIR``: re-verify an exported model set from its files alone.

Usable in CI on committed model files: every member's digest against the
manifest and its sidecar, the manifest against the sidecars and frreg's
constants (vocabulary, codec layout, feature order, I/O names, opset), every
graph against the contract (:func:`frreg.export.graph.contract_problems`),
onnxruntime against the scores recorded for the manifest's probe rows (after
the manifest's own scaling), the two intervals each under its own key and method,
and, when there is a registry, its entries: digests, the fields the fork's
registry tests require, and each member's Sigstore bundle as far as it can be
checked without Sigstore's tooling (:mod:`frreg.export.signing`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from frreg._io import read_json, sha256_file
from frreg.errors import InputError
from frreg.export import graph
from frreg.export.documents import CONFIDENCE_METHOD, ENSEMBLE_KIND, MEMBER_KIND
from frreg.export.signing import (
    BUNDLE_MAX,
    BUNDLE_PATTERN,
    SignatureState,
    bundle_path,
    signature_state,
)
from frreg.gate.ensemble import ABSOLUTE_METHOD
from frreg.schema import (
    CANONICAL_6,
    CODEC_BLOCK_LAYOUT,
    ENCODER_VOCAB,
    ENCODER_VOCAB_VERSION,
    ENSEMBLE_SIZE,
    EXPORT_ATOL,
    EXPORT_SCHEMA,
    NOMINAL_COVERAGE,
    NUM_CODECS,
    ONNX_INPUT_NAMES,
    ONNX_OPSET,
    ONNX_OUTPUT_NAMES,
    REGISTRY_ID_PATTERN,
    manifest_name,
    member_id,
)

if TYPE_CHECKING:
    from frreg.export.ship import ExportRequest

#: Keys libvmaf's sidecar reader finds by substring search: at most once each.
_READER_KEYS = ('"kind"', '"name"', '"onnx_opset"')


@dataclass
class CheckResult:
    """Every problem found (empty: the set verifies) and what was verified."""

    manifests: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    verified: list[str] = field(default_factory=list)
    #: The registry the members' digests were checked against (``None``: none, so the
    #: set was checked against its own manifest, which whoever replaced a member could
    #: have rewritten too).
    registry: Path | None = None
    #: Per member file, the state of its Sigstore bundle (:mod:`frreg.export.signing`):
    #: ``missing``, ``signs-this``, ``stale`` or ``unreadable``; only with a registry.
    signatures: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(self.manifests) and not self.problems


def _load(path: Path) -> Any:
    return read_json(path, "file")


def find_manifests(directory: Path, ensemble_id: str | None = None) -> list[Path]:
    """frreg ensemble manifests in ``directory`` (the one of ``ensemble_id`` if given)."""
    if not directory.is_dir():
        raise InputError(f"{directory}: not a directory")
    if ensemble_id is not None:
        path = directory / manifest_name(ensemble_id)
        doc = _load(path)
        if not isinstance(doc, dict) or doc.get("schema") != EXPORT_SCHEMA:
            raise InputError(f"{path}: not a frreg ensemble manifest (no schema {EXPORT_SCHEMA!r})")
        return [path]
    found = []
    for path in sorted(directory.glob("*.json")):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError):
            continue
        if isinstance(doc, dict) and doc.get("schema") == EXPORT_SCHEMA:
            found.append(path)
    if not found:
        raise InputError(f"{directory}: no frreg ensemble manifest (schema {EXPORT_SCHEMA!r}) here")
    return found


def check_export(
    directory: str | Path,
    *,
    ensemble_id: str | None = None,
    registry: str | Path | None = None,
    reexport: ExportRequest | None = None,
) -> CheckResult:
    """Re-verify every exported set in ``directory``; see the module docstring.

    ``registry`` defaults to ``directory/registry.json`` when that exists.
    ``reexport`` (an :class:`~frreg.export.ship.ExportRequest` whose ``out_dir`` is
    ignored): also re-derive the verdict (with its audit) and export it again into a
    temporary directory, and require every member to be byte for byte the one there
    (CPU exports are reproducible): the set checked against the evidence, not itself.
    """
    graph.require_export_extra(check=reexport is None)
    directory = Path(directory)
    result = CheckResult(manifests=find_manifests(directory, ensemble_id))
    reg_path = Path(registry) if registry is not None else directory / "registry.json"
    reg = _load(reg_path) if registry is not None or reg_path.is_file() else None
    if reg is not None and not (isinstance(reg, dict) and isinstance(reg.get("models"), list)):
        raise InputError(f"{reg_path}: not a model registry (an object with a 'models' list)")
    result.registry = reg_path if reg is not None else None
    for path in result.manifests:
        _check_manifest(path, result, reg, reg_path)
    if reexport is not None:
        _check_against_reexport(directory, result, reexport)
    return result


def _check_against_reexport(directory: Path, result: CheckResult, request: ExportRequest) -> None:
    """Export ``request`` again into a temporary directory and compare the members."""
    import dataclasses
    import tempfile

    from frreg.export.ship import export_ensemble

    with tempfile.TemporaryDirectory(prefix="frreg-check-") as tmp:
        fresh = export_ensemble(
            dataclasses.replace(request, out_dir=Path(tmp), registry=None, force=True)
        )
        fresh_doc = _load(fresh.manifest)
        ens = fresh_doc.get("id")
        path = directory / manifest_name(str(ens))
        if not path.is_file():
            result.problems.append(f"{path.name}: the verdict exports {ens}, which is not here")
            return
        doc = _load(path)
        mine = {m.get("seed"): m for m in doc.get("members", []) if isinstance(m, dict)}
        for m in fresh_doc["members"]:
            have = mine.get(m["seed"])
            if have is None:
                result.problems.append(f"{path.name}: member seed {m['seed']} is missing")
            elif (
                not (directory / str(have.get("onnx"))).is_file()
                or sha256_file(directory / str(have.get("onnx"))) != m["sha256"]
            ):
                result.problems.append(
                    f"{path.name}: member seed {m['seed']} is not what the verdict exports "
                    f"({m['onnx']} re-exported has sha256 {m['sha256'][:12]}…)"
                )
            else:
                result.verified.append(
                    f"{m['onnx']}: byte for byte the member the verdict exports again"
                )
        extra = sorted(set(mine) - {m["seed"] for m in fresh_doc["members"]}, key=str)
        for seed in extra:
            result.problems.append(f"{path.name}: member seed {seed} is not in the verdict")


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _check_manifest(
    path: Path, result: CheckResult, registry: Mapping[str, Any] | None, reg_path: Path
) -> None:
    problems = result.problems
    doc = _load(path)
    where = path.name

    def need(cond: bool, problem: str) -> bool:
        if not cond:
            problems.append(f"{where}: {problem}")
        return cond

    members = doc.get("members")
    if not need(isinstance(members, list) and bool(members), "no members listed"):
        return
    ens = doc.get("id")
    need(isinstance(ens, str) and re.fullmatch(REGISTRY_ID_PATTERN, ens) is not None, f"id {ens!r}")
    need(doc.get("kind") == ENSEMBLE_KIND, f"kind {doc.get('kind')!r}, expected {ENSEMBLE_KIND!r}")
    need(doc.get("ensemble_size") == len(members), "ensemble_size is not the number of members")
    need(
        len(members) >= ENSEMBLE_SIZE,
        f"{len(members)} member(s); a deployed ensemble has at least {ENSEMBLE_SIZE}",
    )
    seeds = [m.get("seed") for m in members if isinstance(m, dict)]
    need(len(set(map(str, seeds))) == len(members), f"member seeds {seeds} are not distinct")
    for key, expected in (
        ("codec_vocab", list(ENCODER_VOCAB)),
        ("codec_vocab_version", ENCODER_VOCAB_VERSION),
        ("codec_block_layout", list(CODEC_BLOCK_LAYOUT)),
        ("feature_order", list(CANONICAL_6)),
        ("input_names", list(ONNX_INPUT_NAMES)),
        ("output_names", list(ONNX_OUTPUT_NAMES)),
        ("opset", ONNX_OPSET),
    ):
        need(_same(doc.get(key), expected), f"{key} is {doc.get(key)!r}, expected {expected!r}")
    mean, std = doc.get("feature_mean"), doc.get("feature_std")
    scaling_ok = need(
        _vector(mean, len(CANONICAL_6)) and _vector(std, len(CANONICAL_6), positive=True),
        "feature_mean/feature_std must be six finite numbers (std > 0)",
    )
    conf = doc.get("confidence") if isinstance(doc.get("confidence"), dict) else {}
    _check_confidence(conf, need)
    need(
        _same(conf.get("feature_mean"), mean) and _same(conf.get("feature_std"), std),
        "confidence.feature_mean/feature_std differ from the manifest's",
    )
    need(doc.get("smoke") is False, "smoke must be false for a production set")

    probe = doc.get("probe") if isinstance(doc.get("probe"), dict) else {}
    x_raw = _array(probe.get("features_raw"))
    codec = _array(probe.get("codec_onehot"))
    probe_ok = need(
        x_raw.ndim == 2
        and x_raw.shape[1:] == (len(CANONICAL_6),)
        and codec.shape == (len(x_raw), NUM_CODECS)
        and len(x_raw) > 0,
        "probe rows missing or malformed",
    )
    # The tolerance is frreg's, not the manifest's: a manifest that set its own (1e9,
    # NaN) would pass any member.
    recorded_atol = probe.get("atol", EXPORT_ATOL)
    need(
        recorded_atol == EXPORT_ATOL,
        f"probe.atol is {recorded_atol!r}; the check applies frreg's fixed {EXPORT_ATOL}",
    )
    scores_by_member = []
    entries = {}
    if registry is not None:
        entries = {m.get("id"): m for m in registry["models"] if isinstance(m, dict)}
    for m in members:
        if not isinstance(m, dict):
            problems.append(f"{where}: a member entry is not an object")
            continue
        seed = m.get("seed")
        mid = member_id(str(ens), seed) if isinstance(seed, int) else None
        label = f"{where}: member seed {seed}"
        need(m.get("id") == mid, f"member id {m.get('id')!r}, expected {mid!r}")
        outside = [
            str(m.get(k)) for k in ("onnx", "sidecar") if not _inside(path.parent, str(m.get(k)))
        ]
        if outside:
            problems.append(
                f"{label}: {', '.join(outside)} is not a file in {path.parent} (members live "
                "beside their manifest)"
            )
            continue
        onnx_path = path.parent / str(m.get("onnx"))
        side_path = path.parent / str(m.get("sidecar"))
        if not onnx_path.is_file():
            problems.append(f"{label}: {onnx_path.name} is missing")
            continue
        digest = sha256_file(onnx_path)
        if digest != m.get("sha256"):
            problems.append(
                f"{label}: {onnx_path.name} has sha256 {digest[:12]}…, the manifest records "
                f"{str(m.get('sha256'))[:12]}… (stale manifest or changed file)"
            )
        if not side_path.is_file():
            problems.append(f"{label}: sidecar {side_path.name} is missing")
        else:
            if sha256_file(side_path) != m.get("sidecar_sha256"):
                problems.append(f"{label}: sidecar {side_path.name} changed since export")
            _check_sidecar(side_path, label, digest, str(ens), seed, mean, std, problems)
        data = onnx_path.read_bytes()
        for p in graph.contract_problems(data):
            problems.append(f"{label}: {onnx_path.name}: {p}")
        signature = None
        if registry is not None:
            signature = _check_registry_entry(
                entries.get(mid), mid, digest, onnx_path, reg_path, problems
            )
            if signature is not None:
                result.signatures[onnx_path.name] = signature.status
        if not (probe_ok and scaling_ok):
            continue
        raw_scores = probe.get("scores")
        scores: dict[str, Any] = raw_scores if isinstance(raw_scores, dict) else {}
        recorded = _array(scores.get(str(seed)))
        try:
            x = (x_raw - np.asarray(mean)) / np.asarray(std)
            got = graph.ort_scores(graph.session(data), x, codec).astype(np.float64)
        except Exception as exc:  # onnxruntime refuses a corrupt graph in many ways
            problems.append(f"{label}: onnxruntime cannot run it ({type(exc).__name__})")
            continue
        if recorded.shape != got.shape:
            problems.append(
                f"{label}: the probe records {recorded.shape[0]} scores, not {len(got)}"
            )
            continue
        diff = float(np.max(np.abs(got - recorded), initial=0.0))
        if diff > EXPORT_ATOL:
            problems.append(
                f"{label}: onnxruntime differs from the recorded probe scores by {diff:.3g} "
                f"(> {EXPORT_ATOL})"
            )
        scores_by_member.append(got)
        # a stale or unreadable bundle is a problem line of its own
        signed = (
            "; " + signature.describe(onnx_path.name, digest)
            if signature is not None and signature.ok
            else ""
        )
        result.verified.append(
            f"{onnx_path.name}: sha256 {digest[:12]}…, contract holds, onnxruntime within "
            f"{diff:.2g} of the recorded scores on {len(got)} probe rows{signed}"
        )
    if scores_by_member and len(scores_by_member) == len(members) and probe_ok:
        ens_mean = _array(probe.get("ensemble_mean"))
        got_mean = np.mean(scores_by_member, axis=0)
        if ens_mean.shape != got_mean.shape or np.max(np.abs(ens_mean - got_mean)) > EXPORT_ATOL:
            problems.append(f"{where}: the probe's ensemble_mean is not the members' mean")


def _check_confidence(conf: Mapping[str, Any], need: Callable[[bool, str], bool]) -> None:
    """The two intervals, each under its own key and method: the fork's
    ``conformal_q_residual`` (``mu +- q sigma``, method ``ensemble+conformal``) and frreg's
    absolute half-width (``confidence.absolute``)."""
    need(conf.get("method") == CONFIDENCE_METHOD, f"confidence.method {conf.get('method')!r}")
    need(conf.get("nominal_coverage") == NOMINAL_COVERAGE, "confidence.nominal_coverage")
    absolute = conf.get("absolute")
    if not isinstance(absolute, dict):
        need(
            False,
            "confidence.absolute is missing: this manifest predates it, and its "
            "conformal_q_residual is an absolute half-width (mu ± q), not the fork's multiple "
            "of the members' sigma (mu ± q·sigma); export the set again",
        )
        return
    q = conf.get("conformal_q_residual")
    need(_finite_q(q), f"conformal_q_residual {q!r} (the fork's mu ± q·sigma)")
    need(
        absolute.get("method") == ABSOLUTE_METHOD,
        f"confidence.absolute.method {absolute.get('method')!r}, expected {ABSOLUTE_METHOD!r}",
    )
    half = absolute.get("conformal_half_width")
    need(_finite_q(half), f"confidence.absolute.conformal_half_width {half!r}")


def _finite_q(q: Any) -> bool:
    return isinstance(q, int | float) and not isinstance(q, bool) and math.isfinite(q) and q >= 0


def _array(value: Any) -> np.ndarray:
    """``value`` as a float64 array; an empty one when it is not a regular array of finite
    numbers (a malformed probe is a problem the caller names, never a crash)."""
    if not isinstance(value, list):
        return np.empty(0)
    try:
        out = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        return np.empty(0)
    return out if np.all(np.isfinite(out)) else np.empty(0)


def _inside(directory: Path, name: str) -> bool:
    """``name`` is a plain file name in ``directory``: no separator, no ``..``, and not a
    symlink out of it."""
    if not name or Path(name).name != name or name in (".", ".."):
        return False
    target = directory / name
    return not target.is_symlink() or target.resolve().parent == directory.resolve()


def _vector(value: Any, n: int, *, positive: bool = False) -> bool:
    return (
        isinstance(value, list)
        and len(value) == n
        and all(
            isinstance(v, int | float) and math.isfinite(v) and (v > 0 or not positive)
            for v in value
        )
    )


def _check_sidecar(
    path: Path,
    label: str,
    digest: str,
    ensemble_id: str,
    seed: Any,
    mean: Any,
    std: Any,
    problems: list[str],
) -> None:
    text = path.read_text(encoding="utf-8")
    doc = _load(path)
    if not isinstance(doc, dict):
        problems.append(f"{label}: sidecar {path.name} is not an object")
        return
    for key, expected in (
        ("sha256", digest),
        ("id", member_id(ensemble_id, seed)),
        ("ensemble_id", ensemble_id),
        ("seed", seed),
        ("kind", MEMBER_KIND),
        ("opset", ONNX_OPSET),
        ("input_names", list(ONNX_INPUT_NAMES)),
        ("output_names", list(ONNX_OUTPUT_NAMES)),
        ("feature_order", list(CANONICAL_6)),
        ("feature_mean", mean),
        ("feature_std", std),
        ("codec_block_layout", list(CODEC_BLOCK_LAYOUT)),
        ("encoder_vocab", list(ENCODER_VOCAB)),
        ("encoder_vocab_version", ENCODER_VOCAB_VERSION),
    ):
        if not _same(doc.get(key), expected):
            problems.append(f"{label}: sidecar {key} is {doc.get(key)!r}, expected {expected!r}")
    for key in _READER_KEYS:
        if text.count(key) > 1:
            problems.append(f"{label}: sidecar has {key} more than once (libvmaf reads the first)")


def _check_registry_entry(
    entry: Mapping[str, Any] | None,
    mid: str | None,
    digest: str,
    onnx_path: Path,
    reg_path: Path,
    problems: list[str],
) -> SignatureState | None:
    """The member's registry entry against the member, and the state of its Sigstore
    bundle (``None`` when the entry names none). A missing bundle file is not a problem
    (the fork's validator does not require it before release; ``--tiny-model-verify``
    does, which the verified line says); a bundle that signs other bytes, or records no
    digest, is."""
    where = reg_path.name
    if entry is None:
        problems.append(f"{where}: no entry for {mid}")
        return None
    if entry.get("sha256") != digest:
        problems.append(f"{where}: {mid} sha256 does not match {onnx_path.name}")
    if entry.get("smoke") is not False:
        problems.append(f"{where}: {mid} is still smoke: {entry.get('smoke')!r}")
    target = reg_path.parent / str(entry.get("onnx"))
    if not target.is_file() or target.resolve() != onnx_path.resolve():
        problems.append(f"{where}: {mid} onnx {entry.get('onnx')!r} is not {onnx_path}")
    if not isinstance(entry.get("license"), str) or not entry["license"]:
        problems.append(f"{where}: {mid} has no license (the fork's registry requires one)")
    bundle = entry.get("sigstore_bundle")
    if bundle is None:
        problems.append(
            f"{where}: {mid} has no sigstore_bundle (the fork's registry requires one on every "
            f"entry; --tiny-model-verify rejects the member): expected "
            f"{bundle_path(str(entry.get('onnx')))!r}"
        )
        return None
    if not (
        isinstance(bundle, str)
        and len(bundle) <= BUNDLE_MAX
        and re.fullmatch(BUNDLE_PATTERN, bundle) is not None
    ):
        problems.append(
            f"{where}: {mid} sigstore_bundle {bundle!r} does not match the registry schema's "
            f"{BUNDLE_PATTERN}"
        )
        return None
    state = signature_state(reg_path.parent / bundle, digest)
    if not state.ok:
        problems.append(f"{where}: {mid}: {state.describe(onnx_path.name, digest)}")
    return state
