"""The verdict file: ``PROMOTE.json`` or ``HOLD.json``, never both.

One function judges (:func:`judge`, which writes nothing) and one builds the
document (:func:`build_verdict`); ``frreg-validate`` and the pytest plugin's
controller both go through :func:`judge_and_write`, so the same artifacts, corpus and thresholds
give the same verdict content whoever wrote it (only ``created_at``, its
fork-named twin ``generated_at_utc``, and ``written_by`` differ).

The document is a superset of the fork's ``PROMOTE.json``: ``verdict``,
``seeds``, ``loso_dir``, ``parent_adr`` and the ``gate`` fields its exporter
and registry-flip scripts read (``per_seed_plccs``, ``mean_plcc_pass``,
``failing_seeds`` and the rest, :meth:`~frreg.gate.checks.GateReport.adr_fields`)
keep the fork's names and meanings, and ``schema`` (:data:`~frreg.schema.VERDICT_SCHEMA`)
says it is frreg's layout.
"""

from __future__ import annotations

import datetime as _dt
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from frreg import __version__
from frreg._io import write_json_atomic
from frreg.corpus import Corpus
from frreg.errors import ArtifactError, InputError
from frreg.gate.checks import (
    AUDIT_CHECK,
    CORPUS_CHECK,
    EVIDENCE_CHECK,
    SEED_SELECTION_CHECK,
    GateReport,
    SeedArtifact,
    data_checks,
    evaluate,
    evidence_checks,
    load_loso_dir,
    seed_artifact_check_name,
    seed_check_name,
    seed_evidence_check_name,
)
from frreg.gate.criteria import (
    MEAN_PLCC,
    PER_SEED_MIN,
    PLCC_SPREAD,
    Check,
    Thresholds,
    deviations,
)
from frreg.gate.diff import DIFF_FILES, read_verdict
from frreg.gate.ensemble import EnsembleEvidence, ensemble_evidence
from frreg.gate.evidence import (
    AuditResult,
    SeedEvidence,
    audit_candidates,
    audit_selection,
    corpus_folds,
    detection_probability,
    duplicate_problems,
    recompute,
    retrain,
)
from frreg.gate.options import AuditRequest
from frreg.schema import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_EPOCHS,
    DEFAULT_LR,
    DEFAULT_PRESET_NORM,
    DEFAULT_WEIGHT_DECAY,
    FORK_CORPUS_ROOT,
    HOLD,
    PROMOTE,
    PROMOTE_UNVERIFIED,
    SCHEMA_VERSION,
    SWEEP_DIGEST_SHOWN,
    VERDICT_ADR,
    VERDICT_FILES,
    VERDICT_SCHEMA,
    seed_artifact_name,
    seeds_in,
    verdict_file,
)
from frreg.training.code_digest import CodeDigest, difference, same_code, this_code
from frreg.training.loso import Progress
from frreg.training.network import MLPConfig


@dataclass(frozen=True)
class Decision:
    """A gate report and the inputs it judged.

    ``artifacts`` hold the recomputed records where the evidence allowed it;
    ``recomputed`` says whether the numbers were recomputed at all (they are
    self-reported when the corpus could not be found, and such a decision
    never promotes).
    """

    report: GateReport
    artifacts: Mapping[int, SeedArtifact]
    corpus: str | None
    corpus_sha256: str | None
    recomputed: bool = False
    evidence: Sequence[SeedEvidence] = ()
    audit: Sequence[AuditResult] = ()
    audit_requested: AuditRequest = 0
    #: The (seed, fold) jobs the audit could have retrained (the seeds a gate session
    #: trained itself, unchanged, are exempt) and the seeds exempted.
    audit_candidates: int = 0
    audit_exempt: tuple[int, ...] = ()
    ensemble: EnsembleEvidence | None = None
    ensemble_problem: str | None = None
    loso_dir: str | None = None
    #: Why nothing could be recomputed (``None`` when it was).
    unverified: str | None = None
    #: ``--accept-unverified``: judge self-reported numbers rather than HOLD on them.
    accept_unverified: bool = False
    #: The corpus as loaded for the recomputation (``None`` when it was not).
    loaded: Corpus | None = None
    #: Seed files in the directory that were not gated (see :func:`seed_selection_check`).
    excluded_seeds: tuple[int, ...] = ()


@dataclass(frozen=True)
class Policy:
    """How a front end treats what it cannot judge; one of the named policies below."""

    #: Numbers that cannot be recomputed are a failed check (every verdict writer),
    #: or only said (``frreg-gate``, which writes nothing).
    require_evidence: bool = True
    #: A missing seed file is an input error (exit 2, as in the fork), or a failed
    #: gate (the plugin, where a seed that did not train is a HOLD).
    missing_seeds_are_errors: bool = True
    #: ``--accept-unverified``: judge self-reported numbers instead of HOLDing on them.
    accept_unverified: bool = False


#: ``frreg-validate`` and ``frreg-export``: a verdict on recomputed numbers only.
VERDICT_WRITER: Final = Policy()
#: ``frreg-validate --accept-unverified``: self-reported numbers judged, and the verdict says so.
UNVERIFIED_ACCEPTED: Final = Policy(accept_unverified=True)
#: ``frreg-gate``: read-only; what could not be recomputed is said, not failed.
READ_ONLY: Final = Policy(require_evidence=False)
#: The pytest plugin's controller: a seed that did not train is a failed gate.
GATE_SESSION: Final = Policy(missing_seeds_are_errors=False)


def corpus_check(
    corpus: str | Path | None, artifacts: Mapping[int, SeedArtifact]
) -> tuple[str | None, str | None]:
    """Locate the corpus the artifacts claim: ``(path, problem)``.

    With no explicit path, the path every artifact recorded is used (it must be
    one path): as recorded (relative to where frreg-train ran), else the absolute
    path frreg-train recorded beside it (``corpus_abs``), else, when relative, from
    the seed files' directory and then its parent (frreg-train run from the
    directory above its ``--out-dir``, the usual layout). The digest decides
    whether what is found is the corpus. A missing corpus means nothing can be
    recomputed: HOLD.
    """
    if corpus is None:
        recorded = {a.record.corpus for a in artifacts.values()}
        if len(recorded) != 1:
            return None, "corpus path not given and the seed artifacts do not agree on one"
        corpus = next(iter(recorded))
        found = Path(corpus)
        seed_dirs = {a.path.parent for a in artifacts.values()}
        absolute = {a.record.corpus_abs for a in artifacts.values()}
        candidates: list[Path] = []
        if len(absolute) == 1 and None not in absolute:
            candidates.append(Path(str(next(iter(absolute)))))
        if not found.is_absolute() and len(seed_dirs) == 1:
            seed_dir = next(iter(seed_dirs))
            candidates += [seed_dir / found, seed_dir.parent / found]
        if not found.is_file():
            corpus = str(next((c for c in candidates if c.is_file()), found))
    path = Path(corpus)
    if not path.is_file():
        return str(corpus), f"corpus {path} not found, so nothing can be recomputed"
    return str(corpus), None


def judge(
    loso_dir: str | Path,
    thresholds: Thresholds,
    *,
    policy: Policy = VERDICT_WRITER,
    corpus: str | Path | None = None,
    audit_jobs: AuditRequest = 0,
    audit_exempt: Sequence[int] = (),
    extra_checks: Sequence[Check] = (),
    rng: random.Random | None = None,
    baseline: str | Path | None = None,
    strong_baseline: bool = True,
    progress: Progress | None = None,
    allow_seed_subset: bool = False,
) -> Decision:
    """Gate ``loso_dir`` on numbers recomputed from the corpus and each seed's files;
    write nothing (:func:`judge_and_write` writes the verdict). ``strong_baseline``:
    also compute the SVR baseline the report shows (no criterion reads it).

    ``audit_jobs`` (seed, fold) jobs (``"all"``: every one) are retrained to check
    that the recorded recipe really gives the recorded predictions; the seeds in
    ``audit_exempt`` are not (a gate session's own, unchanged since it trained them). When nothing can be
    recomputed (no corpus; the fork's artifacts, which carry no predictions),
    the self-reported numbers are judged and the decision says so; what else
    follows is the ``policy``'s (:class:`Policy`).
    """
    artifacts = _read_seed_files(loso_dir, thresholds.seeds, policy.missing_seeds_are_errors)
    excluded = tuple(s for s in seeds_in(loso_dir) if s not in thresholds.seeds)
    extra_checks = [*extra_checks, *seed_selection_check(excluded, allow_seed_subset)]
    path, problem = corpus_check(corpus, artifacts)
    fork = sorted(s for s, a in artifacts.items() if a.record.from_fork)
    if fork:
        problem = (
            f"seed file(s) {', '.join(map(str, fork))} are the fork trainer's: no predictions, "
            "weights or corpus digest, so nothing can be recomputed"
        )
    if problem is not None or path is None:
        report = _judge_self_reported(artifacts, thresholds, path, fork=bool(fork))
        if policy.require_evidence and not policy.accept_unverified:
            report.checks.append(Check(CORPUS_CHECK, False, f"corpus: {problem}"))
        report.checks.extend(extra_checks)
        unverified = Decision(
            report,
            artifacts,
            path,
            None,
            audit_requested=audit_jobs,
            loso_dir=str(loso_dir),
            unverified=problem,
            accept_unverified=policy.accept_unverified,
            excluded_seeds=excluded,
        )
        report.deviations[:] = recipe_deviations(unverified)
        return unverified
    decision = _judge_recomputed(
        loso_dir,
        artifacts,
        thresholds,
        path,
        baseline=baseline,
        audit_jobs=audit_jobs,
        audit_exempt=tuple(audit_exempt),
        rng=rng,
        strong_baseline=strong_baseline,
        progress=progress,
    )
    decision.report.checks.extend(extra_checks)
    decision.report.deviations[:] = recipe_deviations(decision)
    return replace(decision, excluded_seeds=excluded)


def verdict_line(decision: Decision, promote: bool) -> str:
    """The one line every surface prints for this verdict (:attr:`GateReport.verdict_line`),
    saying also when a PROMOTE rests on self-reported numbers."""
    report = decision.report
    line = report.verdict_line
    if promote != report.passed:  # an unverified run the writer's policy HOLDs
        line = f"HOLD ({report.gate_name}: nothing recomputed)"
    elif promote and not decision.recomputed:
        line += " [unverified: self-reported numbers]"
    return line


def corpus_mismatch(
    loso_dir: str | Path, seeds: Sequence[int], corpus: str | Path | None
) -> str | None:
    """Why an explicit ``corpus`` is not the one the seed files were trained on, when
    every frreg seed file that names a digest names the same other one (``None``: it
    is, or there is nothing to compare with). A wrong ``--corpus`` is an input
    error, not a model-quality failure: the caller refuses before any verdict is
    touched. Seeds that disagree among themselves are the gate's to judge."""
    if corpus is None or not Path(corpus).is_file():
        return None
    try:
        artifacts = load_loso_dir(loso_dir, seeds)
    except ArtifactError:
        return None  # the gate reports the seed file itself
    recorded = {a.record.corpus_sha256 for a in artifacts.values() if not a.record.from_fork}
    if len(recorded) != 1:
        return None
    expected = next(iter(recorded))
    from frreg._io import sha256_file

    actual = sha256_file(corpus)
    if actual == expected:
        return None
    return (
        f"{corpus}: sha256 {actual[:12]}… is not the corpus the seed files were trained on "
        f"({expected[:12]}…); give that corpus (or none: the path the seeds recorded)"
    )


def seed_selection_check(excluded: Sequence[int], allowed: bool) -> list[Check]:
    """Seed files in the directory that ``--seeds`` leaves out: training twelve seeds and
    gating the five that agree is cherry-picking, so it fails unless allowed
    (``--allow-seed-subset``), and is named either way. Nothing to say: no check."""
    if not excluded:
        return []
    named = ", ".join(map(str, excluded))
    if allowed:
        return [
            Check(
                SEED_SELECTION_CHECK,
                True,
                f"seed selection: seed file(s) {named} in the directory were not gated "
                "(--allow-seed-subset)",
            )
        ]
    return [
        Check(
            SEED_SELECTION_CHECK,
            False,
            f"seed selection: seed file(s) {named} are in the directory but not gated; a "
            "verdict on a subset of the seeds a run trained needs --allow-seed-subset",
        )
    ]


def _read_seed_files(
    loso_dir: str | Path, seeds: Sequence[int], missing_are_errors: bool
) -> dict[int, SeedArtifact]:
    """The expected seeds' artifacts; a missing one is an input error unless told otherwise."""
    artifacts = load_loso_dir(loso_dir, seeds)
    missing = [s for s in seeds if s not in artifacts]
    if missing and missing_are_errors:
        expected = ",".join(map(str, seeds))
        raise ArtifactError(
            Path(loso_dir) / seed_artifact_name(missing[0]),
            f"seed file not found ({len(missing)} of seeds {expected} missing: "
            f"{', '.join(map(str, missing))}); run frreg-train first",
        )
    return artifacts


def _judge_self_reported(
    artifacts: Mapping[int, SeedArtifact], thresholds: Thresholds, path: str | None, *, fork: bool
) -> GateReport:
    """The gate on the numbers the seed files state (nothing could be recomputed); the
    fork's folds are still checked against the corpus's split, and the corpus's data
    checks run, when it is there."""
    from frreg.corpus import load_corpus

    report = evaluate(artifacts, thresholds)
    if fork and path is not None and Path(path).is_file():
        corpus = load_corpus(path)
        report.checks.extend(fork_fold_checks(artifacts, corpus))
        report.checks.extend(data_checks(corpus, thresholds))
    return report


def _judge_recomputed(
    loso_dir: str | Path,
    artifacts: Mapping[int, SeedArtifact],
    thresholds: Thresholds,
    path: str,
    *,
    baseline: str | Path | None,
    audit_jobs: AuditRequest,
    audit_exempt: tuple[int, ...],
    rng: random.Random | None,
    strong_baseline: bool,
    progress: Progress | None,
) -> Decision:
    """The gate on numbers recomputed from the corpus, each seed's predictions and its
    stored models, then the ensemble evidence and the audit."""
    from frreg.corpus import load_corpus

    loaded = load_corpus(path)
    shared = corpus_folds(loaded)  # what every seed derives from the corpus, derived once
    evidence = [recompute(a, loaded, shared=shared) for _, a in sorted(artifacts.items())]
    judged = {
        ev.seed: replace(ev.artifact, record=ev.recomputed)
        for ev in evidence
        if ev.recomputed is not None
    }
    unusable = {
        ev.seed: "numbers cannot be recomputed: " + "; ".join(ev.problems)
        for ev in evidence
        if ev.recomputed is None
    }
    report = evaluate(
        {**artifacts, **judged}, thresholds, corpus_sha256=loaded.sha256, unusable=unusable
    )
    report.checks.append(
        Check(CORPUS_CHECK, True, f"corpus: sha256 {loaded.sha256[:12]}… verified", loaded.sha256)
    )
    report.checks.extend(data_checks(loaded, thresholds))
    for ev in evidence:
        if ev.recomputed is not None:
            report.checks.extend(
                Check(seed_evidence_check_name(ev.seed), False, f"seed {ev.seed} {p}")
                for p in ev.problems
            )
    report.checks.append(_evidence_check(evidence))
    ensemble, ensemble_problem = ensemble_of(
        evidence, loaded, thresholds, strong_baseline=strong_baseline
    )
    report.checks.extend(
        evidence_checks(
            ensemble,
            thresholds,
            problem=ensemble_problem,
            baseline=None if baseline is None else read_baseline(baseline),
        )
    )
    candidates = len(audit_candidates(evidence, loaded, audit_exempt))
    results: list[AuditResult] = []
    if audit_jobs != 0:
        results = _audit(loso_dir, evidence, loaded, audit_jobs, audit_exempt, rng, progress)
        report.checks.append(_audit_check(results, audit_jobs, candidates, audit_exempt))
    return Decision(
        report,
        {**artifacts, **judged},
        path,
        loaded.sha256,
        recomputed=True,
        evidence=evidence,
        audit=results,
        audit_requested=audit_jobs,
        audit_candidates=candidates,
        audit_exempt=audit_exempt,
        ensemble=ensemble,
        ensemble_problem=ensemble_problem,
        loso_dir=str(loso_dir),
        loaded=loaded,
    )


def fork_fold_checks(artifacts: Mapping[int, SeedArtifact], corpus: Corpus) -> list[Check]:
    """The one thing a fork artifact can be checked against: its folds against the
    corpus's LOSO split (sources and sizes). Its metrics stay self-reported."""
    from frreg.gate.evidence import fold_structure_problems

    out = []
    for seed, art in sorted(artifacts.items()):
        if not art.record.from_fork:
            continue
        problems = fold_structure_problems(art.record, corpus)
        out.append(
            Check(
                seed_artifact_check_name(seed),
                not problems,
                f"seed {seed}: "
                + (
                    "; ".join(problems)
                    if problems
                    else f"folds match the corpus's {len(corpus.sources)} sources and sizes "
                    "(metrics self-reported)"
                ),
            )
        )
    return out


def ensemble_of(
    evidence: Sequence[SeedEvidence],
    corpus: Corpus,
    thresholds: Thresholds,
    *,
    strong_baseline: bool = True,
) -> tuple[EnsembleEvidence | None, str | None]:
    """The ensemble evidence of the expected seeds, or why it cannot be computed
    (``strong_baseline``: also the SVR baseline, which no criterion reads)."""
    by_seed = {ev.seed: ev.predictions for ev in evidence}
    missing = [s for s in thresholds.seeds if by_seed.get(s) is None]
    if missing:
        return None, f"no usable predictions for seed(s) {', '.join(map(str, missing))}"
    try:
        preds = {s: p for s, p in by_seed.items() if s in thresholds.seeds and p is not None}
        return ensemble_evidence(corpus, preds, strong_baseline=strong_baseline), None
    except ValueError as exc:
        return None, str(exc)


def read_baseline(path: str | Path) -> dict[str, Any]:
    """A previous verdict's per-source ensemble evidence (``evidence.sources``)."""
    path = Path(path)
    doc = read_verdict(path)
    sources = (doc.get("evidence") or {}).get("sources")
    if not isinstance(sources, dict):
        raise InputError(f"{path}: not a frreg verdict with per-source evidence")
    return sources


def _evidence_check(evidence: Sequence[SeedEvidence]) -> Check:
    problems = duplicate_problems(evidence)
    verified = [ev.seed for ev in evidence if ev.verified]
    if problems or len(verified) != len(evidence) or not evidence:
        bad = [str(ev.seed) for ev in evidence if not ev.verified]
        if bad:
            problems.append(f"seed(s) {', '.join(bad)} disagree with their evidence")
        if not evidence:
            problems.append("no seed artifacts to recompute")
        return Check(EVIDENCE_CHECK, False, "evidence: " + "; ".join(problems))
    return Check(
        EVIDENCE_CHECK,
        True,
        f"evidence: {len(verified)} seeds recomputed from the corpus, their predictions and "
        "their stored models",
    )


def _audit(
    loso_dir: str | Path,
    evidence: Sequence[SeedEvidence],
    corpus: Corpus,
    jobs: AuditRequest,
    exempt: tuple[int, ...],
    rng: random.Random | None,
    progress: Progress | None,
) -> list[AuditResult]:
    """The audit, with failures remembered (:mod:`frreg.gate.audit_log`): a job of these
    artifacts that failed before fails again without retraining, selected or not, and a
    new failure is recorded."""
    from frreg.gate import audit_log

    def key(ev: SeedEvidence, src: str) -> str:
        return audit_log.job_key(
            corpus.sha256, ev.seed, src, ev.predictions_content, ev.weights_content, repr(ev.run)
        )

    everyone = audit_candidates(evidence, corpus, exempt)
    keys = {(ev.seed, src): key(ev, src) for ev, src in everyone}
    known = audit_log.known_failures(loso_dir, keys.values())
    earlier = [
        AuditResult(
            ev.seed,
            src,
            False,
            None,
            0.0,
            f"{known[keys[ev.seed, src]]} (failed before on "
            "these same artifacts; remembered in " + audit_log.AUDIT_FAILURES_FILE + ")",
        )
        for ev, src in everyone
        if keys[ev.seed, src] in known
    ]
    chosen = {
        (ev.seed, src)
        for ev, src in audit_selection(evidence, corpus, jobs, exempt=exempt, rng=rng)
    }
    todo = [
        (ev, src)
        for ev, src in everyone
        if (ev.seed, src) in chosen and keys[ev.seed, src] not in known
    ]
    fresh = retrain(todo, corpus, progress=progress)
    audit_log.remember(
        loso_dir, {keys[r.seed, r.held_out]: r.message for r in fresh if not r.passed}
    )
    return sorted([*earlier, *fresh], key=lambda r: (r.seed, r.held_out))


def _audit_check(
    results: Sequence[AuditResult],
    requested: AuditRequest,
    candidates: int,
    exempt: Sequence[int],
) -> Check:
    """The audit's check: passes when every retrained job reproduced. Its message says
    how much was audited and, for a partial audit, how likely one forged job is found."""
    scope = ""
    if exempt:
        scope = f"; seeds {', '.join(map(str, exempt))} exempt (trained by this session)"
    failed = [r for r in results if not r.passed]
    if failed:
        return Check(AUDIT_CHECK, False, "; ".join(r.message for r in failed))
    if not results:
        if candidates == 0 and exempt:
            return Check(AUDIT_CHECK, True, f"audit: nothing to retrain{scope}")
        return Check(AUDIT_CHECK, False, f"audit: {requested} job(s) requested, none auditable")
    n = len(results)
    if n >= candidates:
        return Check(
            AUDIT_CHECK, True, f"audit: all {n} (seed, fold) jobs retrained, each reproduces{scope}"
        )
    p = detection_probability(candidates, n)
    return Check(
        AUDIT_CHECK,
        True,
        f"audit (partial): {n} of {candidates} (seed, fold) jobs retrained, each reproduces; "
        f"one forged job would have been found with probability {p:.1%}{scope}",
    )


def recipe_deviations(decision: Decision) -> list[str]:
    """How the judged run and thresholds differ from ADR-0303's (empty: the ADR recipe).

    The thresholds' deviations come from the criteria
    (:func:`frreg.gate.criteria.deviations`); the recipe's from the seeds'
    recorded recipe and network shape. Custom recipes and thresholds are
    allowed; they are written prominently in the verdict and the report.
    """
    out = deviations(decision.report.thresholds)
    records = [a.record for a in decision.artifacts.values()]
    if records and not all(r.recipe_recorded for r in records):
        out.append(
            "recipe not recorded (the fork's minimal seed files state only seed, mean_plcc "
            "and per_fold)"
        )
    elif records:
        recipe = records[0]
        for key, default in ADR_RECIPE.items():
            value = getattr(recipe, key)
            if value != default:
                out.append(f"{key} {value} (ADR-0303: {default})")
        model = recipe.config.get("model")
        adr_model = MLPConfig().as_dict()
        if isinstance(model, dict) and model != adr_model:
            changed = ", ".join(
                f"{k} {model.get(k)!r}" for k in adr_model if model.get(k) != adr_model[k]
            )
            shape = ", ".join(f"{k} {v!r}" for k, v in adr_model.items())
            out.append(f"network {changed} (ADR-0303: {shape})")
        if recipe.sweep is not None:
            # Even the ADR's own numbers, found by a search, are not the ADR's claim.
            out.append(
                f"recipe chosen by sweep {recipe.sweep[:SWEEP_DIGEST_SHOWN]} (ADR-0303: the "
                "trainer's defaults, chosen by no search)"
            )
    return out


#: The ADR-0303 training recipe (the trainer's defaults).
ADR_RECIPE: Final = {
    "epochs": DEFAULT_EPOCHS,
    "batch_size": DEFAULT_BATCH_SIZE,
    "lr": DEFAULT_LR,
    "weight_decay": DEFAULT_WEIGHT_DECAY,
    # The fork's trainer fills preset_norm with 0.5 on every row.
    "preset_norm": DEFAULT_PRESET_NORM,
}


def _recorded_code(art: SeedArtifact) -> CodeDigest | None:
    """The code a seed file says trained it (``None``: not recorded, or unreadable; the
    recomputation refuses a malformed ``config.code`` before a verdict is built)."""
    try:
        return CodeDigest.from_json(art.record.config["code"])
    except (KeyError, ValueError):
        return None


def code_block(decision: Decision) -> dict[str, Any]:
    """Which code trained the judged seeds (their ``config.code``) and which verified them
    (this process): ``trainer``, ``verifier``, ``same_code``, ``same_sources`` and a
    one-line ``message``.

    ``same_code`` also needs the native kernel's binary to be the one that trained
    (where it trained); ``same_sources`` compares the Python sources alone (two
    installs of one checkout compile different binaries). Both are ``None`` when it
    cannot be said: the seeds record no code, or different code (which the provenance
    criterion fails). Different code is not a failure: it is what gating with pinned
    code intends (docs/verdict.md).
    """
    verifier = this_code()
    recorded = {seed: _recorded_code(art) for seed, art in sorted(decision.artifacts.items())}
    distinct = set(recorded.values())
    block: dict[str, Any] = {
        "trainer": None,
        "verifier": verifier.to_json(),
        "same_code": None,
        "same_sources": None,
    }
    trainer = next(iter(distinct)) if len(distinct) == 1 else None
    if trainer is None and len(distinct) > 1:
        block["trainer_by_seed"] = {
            str(seed): None if code is None else code.to_json() for seed, code in recorded.items()
        }
        listed = ", ".join(
            f"seed {seed} {'unrecorded' if code is None else code.short()}"
            for seed, code in recorded.items()
        )
        message = f"the seeds were trained by different code: {listed}"
    elif trainer is None:
        message = "the seed files do not record the code that trained them"
    elif same_code(trainer, verifier):
        block.update(trainer=trainer.to_json(), same_code=True, same_sources=True)
        message = (
            f"verified by the code that trained it ({trainer.short()}): a fault in that code "
            "would pass its own recomputation and audit; gate with pinned code to catch one"
        )
    else:
        same_sources = trainer.sources == verifier.sources
        block.update(trainer=trainer.to_json(), same_code=False, same_sources=same_sources)
        message = f"verified by other code than trained it: {difference(trainer, verifier)}"
    return {**block, "message": message}


def verification(decision: Decision, code: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The verdict's account of what was recomputed and audited, and by which code
    (``code``: :func:`code_block`, computed here when not given)."""
    return {
        "recomputed": decision.recomputed,
        "seeds": {
            str(ev.seed): {
                "verified": ev.verified,
                "predictions_sha256": ev.predictions_sha256,
                "weights_sha256": ev.weights_sha256,
                "problems": list(ev.problems),
            }
            for ev in decision.evidence
        },
        "audit": {
            "requested": decision.audit_requested,
            "candidates": decision.audit_candidates,
            "exempt_seeds": list(decision.audit_exempt),
            "retrained": len(decision.audit),
            "jobs": [r.to_json() for r in decision.audit],
        },
        "code": dict(code_block(decision) if code is None else code),
    }


def evidence_block(decision: Decision) -> dict[str, Any]:
    """The verdict's ensemble evidence: per source, pooled, and every check's status."""
    checks = [c.to_json() for c in decision.report.checks if c.name.startswith("evidence ")]
    block: dict[str, Any] = {"strict": decision.report.thresholds.strict, "checks": checks}
    if decision.ensemble is None:
        return {**block, "computed": False, "problem": decision.ensemble_problem}
    return {**block, "computed": True, **decision.ensemble.to_json()}


#: What the verdict asks of the registry, in the fork's words (its validator's
#: recommendation; consumers and the fork's tests look for these phrases).
FLIP_ACTION: Final = (
    "flip seeds smoke->false in model/tiny/registry.json (frreg-export --registry does "
    "it; ADR-0309 keeps the flip a separate PR)"
)
KEEP_ACTION: Final = "keep smoke=true"
#: The fork's advice when the ADR-0303 gate itself fails (mean, spread or a seed's floor).
ADR_GATE_ADVICE: Final = "investigate diversity / hyperparameters"


def _adr_gate_check(name: str, seeds: Sequence[int]) -> bool:
    """Whether a check is one of the ADR-0303 gate's own (mean, spread, a seed's floor)."""
    own = {MEAN_PLCC.name, PLCC_SPREAD.name, PER_SEED_MIN.name}
    return name in own | {seed_check_name(s) for s in seeds}


def corpus_snapshot(corpus_root: str | Path | None) -> dict[str, Any]:
    """The fork verdict's ``corpus`` object, with the fork's meaning: ``sha256`` over
    the sorted ``relpath<TAB>size`` lines of every ``*.yuv`` under ``corpus_root`` (the
    source videos, not their bytes), with counts of the reference (``ref``) and
    distorted (``dis``) files by path; ``present: false`` and a null ``sha256`` when
    there is no such directory (frreg's built-in sources have none)."""
    root = Path(corpus_root) if corpus_root is not None else None
    if root is None or not root.is_dir():
        return {
            "present": False,
            "corpus_root": None if root is None else str(root),
            "sha256": None,
            "ref_count": 0,
            "dis_count": 0,
        }
    import hashlib

    digest = hashlib.sha256()
    yuvs = sorted(root.rglob("*.yuv"))
    refs = dis = 0
    for path in yuvs:
        rel = path.relative_to(root).as_posix()
        digest.update(f"{rel}\t{path.stat().st_size}\n".encode())
        # A file counts as a reference / a distorted clip by its directory or its name.
        refs += "/ref/" in f"/{rel}/" or "ref" in path.stem.lower()
        dis += "/dis/" in f"/{rel}/" or "dis" in path.stem.lower()
    return {
        "present": True,
        "corpus_root": str(root),
        "sha256": digest.hexdigest(),
        "ref_count": refs,
        "dis_count": dis,
        "yuv_count": len(yuvs),
    }


def corpus_block(decision: Decision, corpus_root: str | Path | None) -> dict[str, Any]:
    """The verdict's ``corpus``: the fork's object (:func:`corpus_snapshot`) plus what
    frreg judged, the corpus JSONL (``jsonl``) and its digest (``jsonl_sha256``, the
    same as the top-level ``corpus_sha256``)."""
    return {
        **corpus_snapshot(corpus_root),
        "jsonl": decision.corpus,
        "jsonl_sha256": decision.corpus_sha256,
    }


def recorded_corpus(verdict: Mapping[str, Any]) -> str | None:
    """The corpus JSONL path a verdict recorded (``corpus.jsonl``; a plain string in
    verdicts written before the fork's ``corpus`` object)."""
    corpus = verdict.get("corpus")
    if isinstance(corpus, Mapping):
        corpus = corpus.get("jsonl")
    return corpus if isinstance(corpus, str) and corpus else None


def build_verdict(
    decision: Decision, *, written_by: str, corpus_root: str | Path | None = FORK_CORPUS_ROOT
) -> dict[str, Any]:
    """The verdict document (one schema for every writer): a superset of the fork's
    ``PROMOTE.json``/``HOLD.json`` (its ``corpus`` object, ``adr``, ``gate`` fields).

    PROMOTE needs every check to pass and the numbers to have been recomputed.
    """
    report = decision.report
    deviations = recipe_deviations(decision)
    code = code_block(decision)
    promote = report.passed and (decision.recomputed or decision.accept_unverified)
    unverified = None
    if not decision.recomputed:
        unverified = (
            f"{'PROMOTE' if promote else 'HOLD'} on self-reported numbers, nothing "
            f"recomputed: {decision.unverified or 'no evidence'}"
        )
    if promote and not decision.recomputed:
        recommendation = (
            f"promote (unverified, --accept-unverified) the {len(decision.artifacts)}-seed "
            "ensemble on the numbers its seed files report"
        )
    elif promote:
        recommendation = (
            f"promote the {len(decision.artifacts)}-seed ensemble trained on corpus "
            f"{decision.corpus_sha256}"
        )
        if deviations:
            recommendation += " (custom: " + "; ".join(deviations) + ")"
        recommendation += f"; {FLIP_ACTION}"
    else:
        failures = report.failures() or [Check(EVIDENCE_CHECK, False, "nothing was recomputed")]
        recommendation = "hold: " + "; ".join(c.message for c in failures) + f"; {KEEP_ACTION}"
        if any(_adr_gate_check(c.name, report.thresholds.seeds) for c in failures):
            recommendation += f"; {ADR_GATE_ADVICE}"
    if code["same_code"] is False:
        # Pinned code verifying a branch's run: say so, and (on HOLD) where to look.
        recommendation += f"; {code['message']}"
    created = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    # A verdict on unrecomputed numbers says so before anything else.
    head = {} if unverified is None else {"unverified": unverified}
    return {
        **head,
        # ``schema`` names frreg's layout; the fork's verdict has none (only
        # ``schema_version``), so no consumer can take one layout for the other.
        "schema": VERDICT_SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "verdict": (PROMOTE if decision.recomputed else PROMOTE_UNVERIFIED) if promote else HOLD,
        "verdict_line": verdict_line(decision, promote),
        "recommendation": recommendation,
        "adr_0303": {"recipe_and_thresholds": not deviations, "deviations": deviations},
        "adr": VERDICT_ADR,
        "parent_adr": "ADR-0303",
        "seeds": list(report.thresholds.seeds),
        "loso_dir": decision.loso_dir,
        "created_at": created,
        "generated_at_utc": created,
        "written_by": written_by,
        "frreg_version": __version__,
        "corpus": corpus_block(decision, corpus_root),
        "corpus_sha256": decision.corpus_sha256,
        "seed_files": {
            str(seed): {"file": art.path.name, "sha256": art.sha256}
            for seed, art in sorted(decision.artifacts.items())
        },
        "excluded_seeds": list(decision.excluded_seeds),
        "gate": report.to_dict(),
        "verification": verification(decision, code),
        "evidence": evidence_block(decision),
    }


def write_verdict(out_dir: str | Path, verdict: Mapping[str, Any]) -> Path:
    """Write the verdict atomically (to the file named after it) and remove any verdict
    of another kind.

    The stale files go first: an interruption between the two steps leaves no
    verdict at all, never a PROMOTE beside a newer HOLD.
    """
    out = Path(out_dir)
    target = out / verdict_file(verdict["verdict"])
    try:
        for stale in VERDICT_FILES:
            if stale != target.name:
                (out / stale).unlink(missing_ok=True)
        write_json_atomic(target, verdict)
    except OSError as exc:
        raise InputError(f"{target}: cannot write the verdict: {exc.strerror or exc}") from None
    return target


def clear_verdict(out_dir: str | Path, also: Sequence[str] = ()) -> None:
    """Remove any verdict in ``out_dir`` (before a run whose outcome is not yet known),
    with its diff against a baseline (:data:`~frreg.gate.diff.DIFF_FILES`) and the
    files named in ``also`` (a session's report and figures).

    A verdict path that cannot be removed (a directory of that name, an
    unwritable directory) is an input error: a stale PROMOTE must not survive.
    """
    for name in (*VERDICT_FILES, *DIFF_FILES, *also):
        path = Path(out_dir) / name
        try:
            path.unlink(missing_ok=True)
        except IsADirectoryError:
            raise InputError(f"{path}: is a directory, not a verdict file; remove it") from None
        except OSError as exc:
            raise InputError(f"{path}: cannot remove the earlier verdict: {exc.strerror}") from None


def judge_and_write(
    loso_dir: str | Path,
    thresholds: Thresholds,
    *,
    policy: Policy = VERDICT_WRITER,
    corpus: str | Path | None = None,
    audit_jobs: AuditRequest = 0,
    audit_exempt: Sequence[int] = (),
    written_by: str = "frreg-validate",
    extra_checks: Sequence[Check] = (),
    baseline: str | Path | None = None,
    progress: Progress | None = None,
    allow_seed_subset: bool = False,
    corpus_root: str | Path | None = FORK_CORPUS_ROOT,
) -> tuple[Decision, Path]:
    """:func:`judge` ``loso_dir`` and write the verdict there.

    Any earlier verdict is removed first, so neither bad input (which raises
    :class:`~frreg.errors.FrregError`) nor a crash leaves a stale PROMOTE behind.
    """
    if Path(loso_dir).is_dir():
        clear_verdict(loso_dir)
    decision = judge(
        loso_dir,
        thresholds,
        policy=policy,
        corpus=corpus,
        audit_jobs=audit_jobs,
        audit_exempt=audit_exempt,
        extra_checks=extra_checks,
        baseline=baseline,
        progress=progress,
        allow_seed_subset=allow_seed_subset,
    )
    verdict = build_verdict(decision, written_by=written_by, corpus_root=corpus_root)
    return decision, write_verdict(loso_dir, verdict)
