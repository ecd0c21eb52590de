"""From a PROMOTE verdict to the files the fork's libvmaf loader and registry consume.

:func:`export_ensemble` refuses (one-line :class:`~frreg.errors.InputError`,
exit 2) before any work when the verdict is not frreg's PROMOTE, the corpus
is not the one it judged, a seed file no longer hashes to what it recorded,
or existing files would be overwritten without ``force``. It then re-derives
the decision from the evidence (a forged or hand-edited PROMOTE does not
export), trains one production member per ensemble seed on the whole corpus
with the recorded recipe (all members in one batched run), exports each with
torch's ONNX exporter and verifies it (onnx's checker, the op allowlist, the
I/O contract, onnxruntime against torch on every corpus row), and only then
renames the staged files into place: members, then the manifest, then the
registry. An interrupted export leaves the previous set as it was.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from frreg._io import atomic_writer, check_output_dir, read_json, sha256_file
from frreg.errors import FrregError, InputError
from frreg.export import documents as docs
from frreg.export import graph
from frreg.schema import (
    DEFAULT_AUDIT,
    DEFAULT_ENSEMBLE_ID,
    EXIT_FAIL,
    EXPORT_ATOL,
    EXPORT_SCHEMA,
    HOLD_FILE,
    PROBE_ROWS,
    PROMOTE_FILE,
    PROMOTE_UNVERIFIED_FILE,
    REGISTRY_ID_MAX,
    REGISTRY_ID_PATTERN,
    REGISTRY_ONNX_PATTERN,
    RESERVED_ENSEMBLE_ID,
    VERDICT_SCHEMA,
    manifest_name,
    member_id,
)

if TYPE_CHECKING:
    from frreg._terminal import TextSink
    from frreg.corpus import Corpus
    from frreg.gate.criteria import Thresholds
    from frreg.gate.evidence import RecordedRun
    from frreg.gate.options import AuditRequest
    from frreg.gate.verdict import Decision
    from frreg.training.loso import TrainedFold
    from frreg.training.settings import Scaler

#: The held-out label of a production member's job: it holds nothing out.
#: It names the job's random stream (:func:`~frreg.training.settings.fold_seed`).
FULL_FIT: Final = docs.FIT_SET
_STAGING_PREFIX: Final = ".frreg-export-"

Log = Callable[[str], None]


class ExportError(FrregError):
    """The exported graph does not meet the contract; nothing was written. Exit 1."""

    exit_code = EXIT_FAIL


@dataclass(frozen=True)
class ExportRequest:
    """What to export, from which verdict and corpus, to where."""

    verdict: Path
    corpus: Path
    out_dir: Path
    ensemble_id: str = DEFAULT_ENSEMBLE_ID
    registry: Path | None = None
    force: bool = False
    device: str | None = None  # None: the device the verdict's seeds recorded
    license_id: str | None = None
    license_url: str | None = None
    written_by: str = "frreg-export"
    #: The audit run before the verdict is trusted (as frreg-validate's ``--audit``).
    audit: AuditRequest = DEFAULT_AUDIT
    #: Export a verdict whose thresholds or seeds are not frreg's defaults.
    accept_deviations: bool = False
    #: Seeds the audit skips: only a gate session passes these, for the seeds its own
    #: processes trained and published unchanged (the verdict binds their digests).
    audit_exempt: tuple[int, ...] = ()


@dataclass(frozen=True)
class ExportResult:
    """What was written, and the figures a user wants to see."""

    manifest: Path
    members: tuple[Path, ...]
    registry: Path | None
    max_ort_diff: float
    #: frreg's absolute half-width (VMAF points: ``mu +- q``), the manifest's
    #: ``confidence.absolute.conformal_half_width``
    conformal_q: float | None
    notes: tuple[str, ...] = field(default_factory=tuple)
    #: the fork's ``confidence.conformal_q_residual`` (a multiple of the members' sigma:
    #: ``mu +- q sigma``)
    conformal_q_residual: float | None = None


def member_onnx_name(ensemble_id: str, seed: int) -> str:
    return f"{member_id(ensemble_id, seed)}.onnx"


def member_sidecar_name(ensemble_id: str, seed: int) -> str:
    return f"{member_id(ensemble_id, seed)}.json"


def planned_files(ensemble_id: str, seeds: Sequence[int]) -> list[str]:
    """Every file an export of ``seeds`` writes into the out dir (the registry aside)."""
    names = []
    for seed in seeds:
        names += [member_onnx_name(ensemble_id, seed), member_sidecar_name(ensemble_id, seed)]
    return [*names, manifest_name(ensemble_id)]


# --------------------------------------------------------------------------
# Refusals: everything checked before any work
# --------------------------------------------------------------------------


def read_verdict(path: Path) -> tuple[dict[str, Any], Path]:
    """A frreg PROMOTE verdict and its file (``path``, or the PROMOTE.json in a directory),
    or a one-line :class:`InputError` saying why not."""
    if path.is_dir():
        if (path / PROMOTE_FILE).is_file():
            path = path / PROMOTE_FILE
        elif (path / HOLD_FILE).is_file():
            raise InputError(f"{path / HOLD_FILE}: the verdict is HOLD; only PROMOTE is exported")
        elif (path / PROMOTE_UNVERIFIED_FILE).is_file():
            raise InputError(
                f"{path / PROMOTE_UNVERIFIED_FILE}: the verdict rests on self-reported numbers; "
                "only a verdict built from recomputed evidence is exported"
            )
        else:
            raise InputError(f"{path}: no {PROMOTE_FILE} here (run frreg-validate first)")
    doc = read_json(path, "verdict")
    if not isinstance(doc, dict) or doc.get("schema") != VERDICT_SCHEMA:
        raise InputError(
            f"{path}: not a frreg verdict (no schema {VERDICT_SCHEMA!r}); gate the run with "
            "frreg-validate, which recomputes it, and export that verdict"
        )
    verification = doc.get("verification")
    recomputed = isinstance(verification, dict) and verification.get("recomputed") is True
    if doc.get("unverified") or not recomputed:
        raise InputError(
            f"{path}: the verdict is unverified ({doc.get('unverified', 'nothing recomputed')}); "
            "only a verdict built from recomputed evidence is exported"
        )
    if doc.get("verdict") != "PROMOTE" or path.name != PROMOTE_FILE:
        why = doc.get("recommendation", "")
        raise InputError(
            f"{path}: the verdict is {doc.get('verdict')!r}, not PROMOTE; only a PROMOTE is "
            f"exported" + (f" ({why})" if why else "")
        )
    return doc, path


def _validate_cwds(verdict: Path, loso_dir: object) -> list[Path]:
    """Where the recorded relative paths may start: the directory the verdict was written
    from (the verdict's directory less the recorded relative ``loso_dir``), then the
    verdict's directory and its parent."""
    here = verdict.parent
    bases = []
    if isinstance(loso_dir, str) and loso_dir and not Path(loso_dir).is_absolute():
        parts = Path(loso_dir).parts
        resolved = here.resolve()
        if parts and resolved.parts[-len(parts) :] == parts:
            bases.append(resolved.parents[len(parts) - 1])
    return list(dict.fromkeys([*bases, here, here.parent]))


def judged_corpus(verdict: Path) -> Path:
    """The corpus ``verdict`` judged, found from the path it recorded: as recorded (from
    the working directory), else from the directory the verdict was written from (its
    recorded ``loso_dir`` says which), else from the verdict's directory and its parent.
    Its digest is checked against the verdict's later, as for an explicit ``--corpus``;
    not found is a one-line :class:`InputError`."""
    from frreg.gate.verdict import recorded_corpus

    doc, path = read_verdict(verdict)
    recorded = recorded_corpus(doc)
    if recorded is None:
        raise InputError(f"{path}: the verdict records no corpus path; give --corpus PATH")
    found = Path(recorded)
    tried = [found]
    if not found.is_absolute():
        tried += [base / found for base in _validate_cwds(path, doc.get("loso_dir"))]
    for candidate in tried:
        if candidate.is_file():
            return candidate
    raise InputError(
        f"{path}: the corpus it judged ({recorded}) is not at "
        f"{' or '.join(str(t) for t in dict.fromkeys(tried))}; give --corpus PATH"
    )


def _thresholds(doc: Mapping[str, Any], where: Path) -> Thresholds:
    """The thresholds the verdict applied (its ``gate.thresholds``), validated."""
    from frreg.gate.criteria import Thresholds

    raw = doc.get("gate", {}).get("thresholds") if isinstance(doc.get("gate"), dict) else None
    fields = Thresholds.json_keys()
    if not isinstance(raw, dict) or set(raw) != set(fields):
        raise InputError(f"{where}: gate.thresholds must have the fields {sorted(fields)}")
    try:
        return Thresholds.from_json(raw)
    except ValueError as exc:
        raise InputError(f"{where}: gate.thresholds is malformed: {exc}") from None


def _check_deviations(thresholds: Thresholds, where: Path, accepted: bool, say: Log) -> None:
    """The verdict file says which thresholds and seeds were gated, and whoever can write
    the file can say anything: the export re-derives with frreg's defaults for the
    verdict's profile unless told (``--accept-deviations``) to take what the file says."""
    from frreg.gate.criteria import changed_from_defaults

    changed = changed_from_defaults(thresholds)
    if not changed:
        return
    if not accepted:
        raise InputError(
            f"{where}: gated with thresholds or seeds other than frreg's defaults for the "
            f"{thresholds.profile} profile ({'; '.join(changed)}); re-validate with the "
            "defaults, or pass --accept-deviations to export it with them recorded"
        )
    for line in changed:
        say(f"accepted deviation: {line}")


def _check_seed_files(doc: Mapping[str, Any], loso_dir: Path, where: Path) -> list[int]:
    files = doc.get("seed_files")
    if not isinstance(files, dict) or not files:
        raise InputError(f"{where}: the verdict lists no seed_files")
    seeds = []
    for key, entry in sorted(files.items()):
        if not (key.isascii() and key.isdigit() and str(int(key)) == key and len(key) <= 9):
            raise InputError(f"{where}: seed_files key {key!r} is not a seed number")
        if not isinstance(entry, dict) or not {"file", "sha256"} <= set(entry):
            raise InputError(f"{where}: seed_files[{key!r}] must name a file and its sha256")
        path = loso_dir / str(entry["file"])
        if Path(str(entry["file"])).name != str(entry["file"]):
            raise InputError(f"{where}: seed_files[{key!r}] is not a plain file name")
        if not path.is_file():
            raise InputError(f"{path}: a seed file of the verdict is missing")
        digest = sha256_file(path)
        if digest != entry["sha256"]:
            raise InputError(
                f"{path}: sha256 {digest[:12]}… is not the {str(entry['sha256'])[:12]}… the "
                "verdict recorded; the seed files changed since it was written"
            )
        seeds.append(int(key))
    return seeds


def _check_ensemble_id(ensemble_id: str, seeds: Sequence[int]) -> None:
    if ensemble_id == RESERVED_ENSEMBLE_ID:
        raise InputError(
            f"--ensemble-id {ensemble_id!r}: its sidecars would be named "
            f"{ensemble_id}_seed<N>.json, the name of frreg-train's seed files"
        )
    longest = max((member_id(ensemble_id, s) for s in seeds), key=len)
    if not re.fullmatch(REGISTRY_ID_PATTERN, ensemble_id) or len(longest) > REGISTRY_ID_MAX:
        raise InputError(
            f"--ensemble-id {ensemble_id!r}: member ids like {longest!r} must match "
            f"{REGISTRY_ID_PATTERN} and be at most {REGISTRY_ID_MAX} characters (the fork's "
            "registry schema)"
        )


def _read_registry(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"schema_version": 1, "models": []}
    doc = read_json(path, "registry")
    if not isinstance(doc, dict) or not isinstance(doc.get("models"), list):
        raise InputError(f"{path}: not a model registry (an object with a 'models' list)")
    if not all(isinstance(m, dict) for m in doc["models"]):
        raise InputError(f"{path}: every registry entry must be an object")
    seen: set[str] = set()
    for i, m in enumerate(doc["models"]):
        mid = m.get("id")
        if not isinstance(mid, str) or not mid:
            raise InputError(f"{path}: models[{i}].id must be a non-empty string")
        if mid in seen:
            raise InputError(f"{path}: models[{i}]: id {mid!r} is listed twice")
        seen.add(mid)
        for key in ("kind", "onnx", "sha256", "license", "license_url", "sigstore_bundle"):
            if key in m and m[key] is not None and not isinstance(m[key], str):
                raise InputError(f"{path}: models[{i}].{key} must be a string")
    return doc


def _registry_onnx_path(registry: Path, member: Path) -> str:
    rel = os.path.relpath(member.resolve(), registry.resolve().parent).replace(os.sep, "/")
    if not re.fullmatch(REGISTRY_ONNX_PATTERN, rel):
        raise InputError(
            f"--registry {registry}: member {member.name} would be {rel!r} relative to the "
            f"registry, which the registry schema refuses ({REGISTRY_ONNX_PATTERN}); export "
            "into the registry's directory or below it"
        )
    return rel


# --------------------------------------------------------------------------
# The export
# --------------------------------------------------------------------------


def export_ensemble(
    request: ExportRequest, log: Log | None = None, *, progress_to: TextSink | None = None
) -> ExportResult:
    """Export the promoted ensemble described by ``request``; see the module docstring.

    ``progress_to``: where the audit's and the members' training progress is drawn
    (default stderr: live on a terminal, plain lines otherwise; a gate session passes
    its log).
    """
    from frreg.dirlock import flocked

    say: Log = log or (lambda _line: None)
    graph.require_export_extra()
    verdict, verdict_path = read_verdict(request.verdict)
    thresholds = _thresholds(verdict, verdict_path)
    _check_deviations(thresholds, verdict_path, request.accept_deviations, say)
    loso_dir = verdict_path.parent
    seeds = _check_seed_files(verdict, loso_dir, verdict_path)
    if sorted(seeds) != sorted(thresholds.seeds):
        raise InputError(
            f"{verdict_path}: seed_files {seeds} are not the gated seeds {list(thresholds.seeds)}"
        )
    _check_ensemble_id(request.ensemble_id, seeds)
    if not request.corpus.is_file():
        raise InputError(f"{request.corpus}: corpus not found")
    corpus_sha = sha256_file(request.corpus)
    if corpus_sha != verdict.get("corpus_sha256"):
        raise InputError(
            f"{request.corpus}: sha256 {corpus_sha[:12]}… is not the corpus the verdict judged "
            f"({str(verdict.get('corpus_sha256'))[:12]}…)"
        )
    out_dir = check_output_dir(request.out_dir)
    existing = [n for n in planned_files(request.ensemble_id, seeds) if (out_dir / n).exists()]
    if existing and not request.force:
        shown = ", ".join(existing[:3]) + (
            f" and {len(existing) - 3} more" if len(existing) > 3 else ""
        )
        raise InputError(
            f"{out_dir}: already holds {shown}; pass --force to replace that model set"
        )
    registry = None
    if request.registry is not None:
        registry = _read_registry(request.registry)
        for seed in seeds:
            _registry_onnx_path(
                request.registry, out_dir / member_onnx_name(request.ensemble_id, seed)
            )
    device = _device(request.device)

    out_dir.mkdir(parents=True, exist_ok=True)
    busy = (
        f"{out_dir}: another frreg-export of {request.ensemble_id} is writing here "
        f"({_lock_path(out_dir, request.ensemble_id).name} is held); run it again when that "
        "finished"
    )
    lock = _lock_path(out_dir, request.ensemble_id)
    with flocked(lock, exclusive=True, busy=busy, remove=True):
        _remove_stale_staging(out_dir, request.ensemble_id)
        stage = Path(
            tempfile.mkdtemp(prefix=f"{_STAGING_PREFIX}{request.ensemble_id}-", dir=out_dir)
        )
        try:
            return _export(
                request, verdict_path, thresholds, seeds, device, registry, stage, say, progress_to
            )
        finally:
            shutil.rmtree(stage, ignore_errors=True)


def _lock_path(out_dir: Path, ensemble_id: str) -> Path:
    """One export of an ensemble id into a directory at a time. The lock lives in the out
    dir (a name in a shared /tmp could be squatted), hidden, and is removed when the
    export ends (model/tiny/ is usually committed)."""
    return out_dir / f".frreg-export-{ensemble_id}.lock"


def _device(requested: str | None) -> str | None:
    """``--device`` as given (``None``: the recorded one), refused where it is not there."""
    from frreg.settings import device

    return None if requested is None else device({"device": requested})


def _remove_stale_staging(out_dir: Path, ensemble_id: str) -> None:
    """Staging directories of killed exports (the lock says none is running)."""
    for stale in out_dir.glob(f"{_STAGING_PREFIX}{ensemble_id}-*"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)


def _export(
    request: ExportRequest,
    verdict_path: Path,
    thresholds: Thresholds,
    seeds: Sequence[int],
    device_choice: str | None,
    registry: dict[str, Any] | None,
    stage: Path,
    say: Log,
    progress_to: TextSink | None = None,
) -> ExportResult:
    """The export proper, once every refusal passed: each step below, in order."""
    from frreg.corpus import load_corpus

    decision = _rederive_promote(request, verdict_path, thresholds, say, progress_to)
    run = _recorded_recipe(decision, seeds, verdict_path)
    device, kernel = _training_device(device_choice, run, verdict_path)
    corpus = decision.loaded if decision.loaded is not None else load_corpus(request.corpus)
    scaler, trained = _train_members(corpus, seeds, run, device, kernel, say, progress_to)
    provenance = _provenance(request, corpus, scaler, run, device, kernel, verdict_path, decision)
    staged = _verify_and_stage_members(
        stage, request, trained, run, corpus, scaler, provenance, decision, say
    )
    confidence = _confidence(corpus, decision, staged)
    man_name = _stage_manifest(stage, request, corpus, staged, provenance, confidence)
    absolute = confidence["absolute"]["conformal_half_width"]
    notes: list[str] = [
        f"intervals: conformal_q_residual {_shown(confidence['conformal_q_residual'])} (the "
        f"fork's mu ± q·sigma) covers {confidence['coverage_in_sample']:.3f} of the LOSO "
        f"rows, {confidence['pooled_coverage_loso_conformal']:.3f} nested; absolute "
        f"half-width {_shown(absolute)} VMAF (frreg's mu ± q, confidence.absolute) covers "
        f"{confidence['absolute']['coverage_in_sample']:.3f}, "
        f"{confidence['absolute']['pooled_coverage_loso_conformal']:.3f} nested"
    ]
    new_registry = None
    if registry is not None and request.registry is not None:
        new_registry, flipped = _flipped_registry(
            registry, request, staged.files, provenance, request.out_dir
        )
        notes += flipped
    _move_into_place(stage, request, staged.files, man_name, new_registry)
    out = request.out_dir
    return ExportResult(
        manifest=out / man_name,
        members=tuple(out / m.onnx for m in staged.files),
        registry=request.registry if new_registry is not None else None,
        max_ort_diff=staged.max_ort_diff,
        conformal_q=absolute,
        notes=tuple(notes),
        conformal_q_residual=confidence["conformal_q_residual"],
    )


def _shown(q: float | None) -> str:
    return "n/a" if q is None else f"{q:.3f}"


def _rederive_promote(
    request: ExportRequest,
    verdict_path: Path,
    thresholds: Any,
    say: Log,
    progress_to: TextSink | None = None,
) -> Decision:
    """The gate's decision re-derived from the evidence beside the verdict; it must
    still be a recomputed PROMOTE (a forged or stale PROMOTE.json does not export)."""
    from frreg._terminal import progress_printer
    from frreg.gate.verdict import judge

    say(
        f"re-deriving the verdict from the evidence in {verdict_path.parent} "
        f"(audit: {request.audit})"
    )
    decision = judge(
        verdict_path.parent,
        thresholds,
        corpus=request.corpus,
        audit_jobs=request.audit,
        audit_exempt=request.audit_exempt,
        allow_seed_subset=request.accept_deviations,
        progress=progress_printer(
            "frreg-export: audit, retraining (seed, fold) jobs", progress_to, unit="jobs"
        ),
    )
    say(f"the evidence re-derives: {decision.report.verdict_line}")
    if not (decision.report.passed and decision.recomputed):
        failures = "; ".join(c.message for c in decision.report.failures()) or "not recomputed"
        raise InputError(
            f"{verdict_path}: says PROMOTE, but the evidence now gives HOLD ({failures})"
        )
    return decision


def _recorded_recipe(decision: Decision, seeds: Sequence[int], verdict_path: Path) -> RecordedRun:
    """The recipe the gated seeds recorded (the first seed's: the gate checked they agree)."""
    runs = {ev.seed: ev.run for ev in decision.evidence}
    if any(runs.get(s) is None for s in seeds):
        raise InputError(f"{verdict_path}: a seed's recorded recipe cannot be read")
    run = runs[seeds[0]]
    assert run is not None
    return run


def _training_device(
    device_choice: str | None, run: RecordedRun, verdict_path: Path
) -> tuple[str, str]:
    """``(device, kernel)`` the production members train with: the requested device, else
    the recorded one; the recorded kernel on the CPU (refused when not built), else torch."""
    from frreg.settings import device as checked_device

    device = checked_device({"device": device_choice or run.device})
    kernel = run.kernel if device == "cpu" else "torch"
    if kernel == "native":
        from frreg.training.batched import native_module

        if native_module() is None:
            raise InputError(
                f"{verdict_path}: its seeds were trained by the native kernel, which is not "
                "built in this install (reinstall frreg with a C compiler)"
            )
    return device, kernel


def _train_members(
    corpus: Corpus,
    seeds: Sequence[int],
    run: RecordedRun,
    device: str,
    kernel: str,
    say: Log,
    progress_to: TextSink | None = None,
) -> tuple[Scaler, list[TrainedFold]]:
    """One production member per seed, fit on every corpus row with the recorded recipe
    (all in one batched run), and the scaler fit on the same rows."""
    from frreg._terminal import progress_printer
    from frreg.training.loso import train_jobs
    from frreg.training.settings import FoldJob, Scaler

    n = corpus.n_rows
    scaler = Scaler.fit(corpus.features)
    everything = np.arange(n)
    jobs = [FoldJob(seed, FULL_FIT, everything, everything) for seed in seeds]
    say(
        f"training {len(jobs)} production members on all {n} rows "
        f"({run.settings.epochs} epochs, {run.engine} engine, {kernel} kernel, {device})"
    )
    trained = train_jobs(
        corpus,
        jobs,
        run.settings,
        engine=run.engine,
        device=device,
        progress=progress_printer("frreg-export: production members", progress_to, unit="epochs"),
        kernel=kernel,
    )
    return scaler, trained


def _provenance(
    request: ExportRequest,
    corpus: Corpus,
    scaler: Scaler,
    run: RecordedRun,
    device: str,
    kernel: str,
    verdict_path: Path,
    decision: Decision,
) -> docs.Provenance:
    """What every document says about where the members come from."""
    from frreg.gate.criteria import changed_from_defaults
    from frreg.gate.verdict import recipe_deviations
    from frreg.training.loso import versions

    cqs = corpus.columns["cq"].astype(np.float64)
    return docs.Provenance(
        corpus=docs.CorpusFacts(
            path=str(request.corpus),
            sha256=corpus.sha256,
            n_rows=corpus.n_rows,
            cq_min=float(cqs.min()),
            cq_max=float(cqs.max()),
            sources=tuple(corpus.sources),
        ),
        feature_mean=tuple(float(v) for v in scaler.mean),
        feature_std=tuple(float(v) for v in scaler.scale),
        settings=run.settings,
        engine=run.engine,
        engine_version=run.engine_version,
        kernel=kernel,
        device=device,
        verdict_file=verdict_path.name,
        verdict_sha256=sha256_file(verdict_path),
        gate=decision.report.adr_fields(),
        checks={c.name: c.status for c in decision.report.checks},
        deviations=tuple(recipe_deviations(decision)),
        versions=versions(),
        audit={
            "requested": decision.audit_requested,
            "candidates": decision.audit_candidates,
            "retrained": len(decision.audit),
            "passed": all(r.passed for r in decision.audit),
        },
        accepted_deviations=tuple(changed_from_defaults(decision.report.thresholds)),
    )


@dataclass
class _StagedMembers:
    """The members verified and written into the staging directory."""

    files: list[docs.MemberFiles]
    #: Each member's torch scores on every corpus row, in ``files`` order.
    full_fit_scores: list[np.ndarray]
    #: The probe rows and each member's scores on them, keyed by ``str(seed)``.
    probe_idx: np.ndarray
    probe_scores: dict[str, list[float]]
    #: The largest onnxruntime-vs-torch difference over every member and row.
    max_ort_diff: float


def _verify_and_stage_members(
    stage: Path,
    request: ExportRequest,
    trained: Sequence[TrainedFold],
    run: RecordedRun,
    corpus: Corpus,
    scaler: Scaler,
    provenance: docs.Provenance,
    decision: Decision,
    say: Log,
) -> _StagedMembers:
    """Export each trained member to ONNX, verify it (:func:`_verified_member`) and
    write it and its sidecar into ``stage``."""
    x = scaler.transform(corpus.features)
    staged = _StagedMembers([], [], docs.probe_rows(corpus.n_rows, PROBE_ROWS), {}, 0.0)
    for tf in trained:
        seed = tf.job.seed
        data, expected, diff = _verified_member(tf, run, x, corpus)
        staged.max_ort_diff = max(staged.max_ort_diff, diff)
        staged.full_fit_scores.append(expected.astype(np.float64))
        onnx_name = member_onnx_name(request.ensemble_id, seed)
        (stage / onnx_name).write_bytes(data)
        onnx_sha = sha256_file(stage / onnx_name)
        record = docs.sidecar(
            request.ensemble_id,
            seed,
            onnx_name,
            onnx_sha,
            provenance,
            loso_plcc=decision.report.seed_means.get(seed),
            in_sample={k: tf.record.metrics[k] for k in ("plcc", "rmse")},
        )
        side_name = member_sidecar_name(request.ensemble_id, seed)
        (stage / side_name).write_text(docs.dumps(record), encoding="utf-8")
        staged.files.append(
            docs.MemberFiles(seed, onnx_name, onnx_sha, side_name, sha256_file(stage / side_name))
        )
        staged.probe_scores[str(seed)] = [float(v) for v in expected[staged.probe_idx]]
        say(
            f"member seed {seed}: {onnx_name} verified (onnxruntime within {diff:.2g} of torch "
            f"on {corpus.n_rows} rows)"
        )
    return staged


def _verified_member(
    tf: TrainedFold, run: RecordedRun, x: np.ndarray, corpus: Corpus
) -> tuple[bytes, np.ndarray, float]:
    """One member as ONNX bytes, its torch scores on the scaled rows ``x`` and
    onnxruntime's largest difference from them; :class:`ExportError` unless the rebuilt
    torch module is the trained one, the graph meets the contract and onnxruntime agrees."""
    seed = tf.job.seed
    module = graph.member_module(tf.fit.layers, run.settings.model)
    codec = corpus.codec_for(run.settings.preset_norm)  # what the member was fit on
    expected = graph.torch_scores(module, x, codec)
    drift = float(np.max(np.abs(expected - tf.fit.predictions), initial=0.0))
    if drift > EXPORT_ATOL:
        raise ExportError(
            f"seed {seed}: the rebuilt torch member differs from the trained one by "
            f"{drift:.3g} (> {EXPORT_ATOL}); nothing was written"
        )
    data = graph.export_member(module)
    problems = graph.contract_problems(data)
    if problems:
        raise ExportError(
            f"seed {seed}: the exported graph breaks the contract: {'; '.join(problems)}; "
            "nothing was written"
        )
    got = graph.ort_scores(graph.session(data), x, codec)
    diff = float(np.max(np.abs(got.astype(np.float64) - expected), initial=0.0))
    if got.shape != expected.shape or diff > EXPORT_ATOL:
        raise ExportError(
            f"seed {seed}: onnxruntime differs from torch by {diff:.3g} on the corpus "
            f"(> {EXPORT_ATOL}); nothing was written"
        )
    return data, expected, diff


def _confidence(corpus: Corpus, decision: Decision, staged: _StagedMembers) -> dict[str, Any]:
    """The manifest's confidence block: both conformal intervals calibrated on the LOSO
    predictions, plus the production members' spread beside the fold models' it was
    calibrated on, and what the fork's rule gives with the production members on the
    corpus (in-sample: they were fit on it)."""
    from frreg.gate.ensemble import conformal_calibration, inside_normalised, members_sigma

    loso_preds = {ev.seed: ev.predictions for ev in decision.evidence if ev.predictions is not None}
    try:
        calibration = conformal_calibration(corpus, loso_preds)
    except ValueError as exc:
        raise ExportError(
            f"the conformal interval cannot be calibrated: {exc}; nothing was written"
        ) from None
    confidence = calibration.to_json()
    stack = np.vstack(staged.full_fit_scores)
    sigma = members_sigma(stack)
    spread = confidence["members_spread"]
    spread["full_fit_sigma_mean"] = float(sigma.mean()) if len(stack) > 1 else None
    spread["full_fit_to_loso_sigma_ratio"] = (
        float(sigma.mean()) / calibration.sigma_mean
        if len(stack) > 1 and calibration.sigma_mean > 0
        else None
    )
    q = calibration.q_normalised
    spread["full_fit_coverage_in_sample"] = (
        float(inside_normalised(corpus.target, stack.mean(axis=0), sigma, q).mean())
        if np.isfinite(q)
        else None
    )
    spread["full_fit_fields"] = (
        "the production members on the corpus they were fit on: their mean sigma, its ratio "
        "to the fold models' sigma that conformal_q_residual was calibrated on (below 1: "
        "narrower intervals than calibrated), and the share of corpus rows inside "
        "mu ± conformal_q_residual · sigma with them (in-sample, not a held-out figure)"
    )
    return confidence


def _stage_manifest(
    stage: Path,
    request: ExportRequest,
    corpus: Corpus,
    staged: _StagedMembers,
    provenance: docs.Provenance,
    confidence: dict[str, Any],
) -> str:
    """Write the ensemble manifest (with its probe rows) into ``stage``; its file name."""
    stack = np.vstack(staged.full_fit_scores)
    probe_idx = staged.probe_idx
    probe = {
        "rows": [int(i) for i in probe_idx],
        "features_raw": corpus.features[probe_idx].tolist(),
        "codec_onehot": corpus.codec_for(provenance.settings.preset_norm)[probe_idx].tolist(),
        "scores": staged.probe_scores,
        "ensemble_mean": stack[:, probe_idx].mean(axis=0).tolist(),
    }
    created = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    doc = docs.manifest(
        request.ensemble_id,
        staged.files,
        provenance,
        confidence,
        probe,
        created_at=created,
        written_by=request.written_by,
    )
    man_name = manifest_name(request.ensemble_id)
    (stage / man_name).write_text(docs.dumps(doc), encoding="utf-8")
    return man_name


def _move_into_place(
    stage: Path,
    request: ExportRequest,
    members: Sequence[docs.MemberFiles],
    man_name: str,
    new_registry: dict[str, Any] | None,
) -> None:
    """Everything is verified and staged: rename it into place, members first, then the
    manifest, then the registry (an interrupted export leaves the previous set readable)."""
    out = request.out_dir
    for m in members:
        os.replace(stage / m.onnx, out / m.onnx)
        os.replace(stage / m.sidecar, out / m.sidecar)
    os.replace(stage / man_name, out / man_name)
    if new_registry is not None and request.registry is not None:
        with atomic_writer(request.registry) as fh:
            fh.write(json.dumps(new_registry, indent=2, allow_nan=False) + "\n")


def _flipped_registry(
    registry: Mapping[str, Any],
    request: ExportRequest,
    members: Sequence[docs.MemberFiles],
    provenance: docs.Provenance,
    out_dir: Path,
) -> tuple[dict[str, Any], list[str]]:
    """The registry with one non-smoke entry per member (replaced in place, else appended)."""
    from frreg.export.signing import sign_command, signature_state

    assert request.registry is not None
    models = [dict(m) for m in registry["models"]]
    index = {m.get("id"): i for i, m in enumerate(models)}
    notes: list[str] = []
    for m in members:
        rel = _registry_onnx_path(request.registry, out_dir / m.onnx)
        mid = member_id(request.ensemble_id, m.seed)
        previous = models[index[mid]] if mid in index else None
        entry, said = docs.registry_entry(
            request.ensemble_id,
            m.seed,
            rel,
            m.sha256,
            provenance,
            previous=previous,
            license_id=request.license_id,
            license_url=request.license_url,
        )
        notes += said
        bundle = request.registry.parent / entry["sigstore_bundle"]
        state = signature_state(bundle, m.sha256)
        if state.status != "signs-this":
            notes.append(
                f"{mid}: {state.describe(m.onnx, m.sha256)}; sign: {sign_command(out_dir / m.onnx)}"
            )
        if mid in index:
            models[index[mid]] = entry
        else:
            index[mid] = len(models)
            models.append(entry)
    return {**registry, "models": models}, notes


__all__ = [
    "EXPORT_SCHEMA",
    "ExportError",
    "ExportRequest",
    "ExportResult",
    "export_ensemble",
    "planned_files",
    "read_verdict",
]
