"""The gate session: the lazy corpus, cached training per seed, the checks and the verdict.

The pytest plugin is a thin shell over :class:`GateSession`: collection asks
it for its :meth:`~GateSession.item_specs`, each gate item runs one spec (a
``check_*`` method and its arguments), and the controller asks it to
:meth:`~GateSession.finalize` the verdict from the items' reports. Every
method is safe to call from several processes at once (pytest-xdist
workers): the corpus and every seed are produced once, under a file lock, and
written atomically. The checks themselves are the gate's
(:mod:`frreg.gate.checks`); this module only decides when to run them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock

from frreg._terminal import LogLines, ProgressDisplay
from frreg.cache import CacheEntry, SeedCache
from frreg.corpus import Corpus, load_corpus
from frreg.errors import EvidenceWarning
from frreg.gate.checks import (
    EVIDENCE_COMPUTED,
    Check,
    GateReport,
    SeedArtifact,
    check_seed,
    evaluate,
    fold_problems,
    gate_item_criteria,
)
from frreg.gate.criteria import STAGE_DATA, STAGE_ENSEMBLE
from frreg.schema import DEFAULT_AUDIT, FORK_CORPUS_ROOT
from frreg.session.config import GateConfig
from frreg.session.outcomes import (
    ItemOutcome,
    built_digests,
    published_digests,
    reported_cache_keys,
    session_checks,
)
from frreg.session.output import (
    LOG_FILE,
    file_log,
    publish_seed,
    remove_foreign_seeds,
    write_reports,
)

if TYPE_CHECKING:
    from frreg.export import ExportResult
    from frreg.gate.diff import VerdictDiff
    from frreg.gate.ensemble import EnsembleEvidence
    from frreg.gate.options import AuditRequest


def _epoch_logger(
    log: Callable[[str], None], label: str, unit: str = "epochs"
) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback drawing into the session log: frreg's progress
    display in plain mode (a line at the start, one every
    :data:`~frreg._terminal.PLAIN_INTERVAL_S` seconds and one at the end). The workers
    cannot reach the terminal; the controller shows the log's lines there."""
    return ProgressDisplay(label, unit=unit, stream=LogLines(log), mode="plain")


def _under_root(root: Path | None, relative: str) -> Path:
    """``relative`` under pytest's rootdir, written relative when the session runs there."""
    if root is None or root.resolve() == Path.cwd().resolve():
        return Path(relative)
    return root / relative


class GateFailure(AssertionError):
    """A gate check failed; ``str()`` is the one-line verdict.

    ``properties`` carries what the check measured before failing, so a
    failing fold still reports its metrics (and JUnit XML records them).
    """

    def __init__(self, message: str, properties: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.properties = dict(properties or {})


class GateSession:
    """Lazily produce the corpus, train seeds through the cache, answer checks."""

    def __init__(self, config: GateConfig, log: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.log = log or file_log(config.out_dir / LOG_FILE)
        self.cache = SeedCache(config.cache_dir, on_event=self.log)
        self._corpus: Corpus | None = None
        self._entries: dict[int, CacheEntry] = {}
        self._report: GateReport | None = None
        #: What finalize audited (request, exempt seeds); the export runs the same.
        self._audit_plan: tuple[AuditRequest, list[int]] = (DEFAULT_AUDIT, [])
        self._evidence: list[Check] | None = None
        self._data: list[Check] | None = None
        self._ensemble: EnsembleEvidence | None = None
        #: The verdict's ensemble evidence, once :meth:`finalize` ran.
        self.final_ensemble: EnsembleEvidence | None = None
        #: The verdict against ``--frreg-baseline``, once :meth:`finalize` ran.
        self.verdict_diff: VerdictDiff | None = None

    def also_log_to(self, show: Callable[[str], None]) -> None:
        """Hand every later log line (progress, cache events) to ``show`` as well as to
        the log: the controller shows on its terminal the work it runs itself."""
        written = self.log

        def both(message: str) -> None:
            written(message)
            show(message)

        self.log = self.cache.on_event = both

    # ------------------------------------------------------------------ collection

    def declared_sources(self) -> list[str]:
        """Sorted source ids, known without producing anything.

        From the corpus when it exists (validated), else from the source
        manifest or the built-in set the producer would use.
        """
        if self.config.corpus.exists():
            return list(self.corpus().sources)
        from frreg.producer import declared_source_ids

        return sorted(declared_source_ids(self.config.producer.manifest))

    def item_specs(self) -> list[ItemSpec]:
        """This session's gate items, in collection order (see :func:`item_specs`)."""
        cfg = self.config
        return item_specs(cfg.seeds, self.declared_sources(), baseline=cfg.baseline is not None)

    # ------------------------------------------------------------------ corpus

    def corpus(self) -> Corpus:
        """The validated corpus, produced first (once, under a lock) if missing."""
        if self._corpus is None:
            path = self.config.corpus
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                with FileLock(str(path) + ".lock"):
                    if not path.exists():
                        self.log(f"corpus {path} not found: producing it")
                        from frreg.producer import produce_for_gate

                        produce_for_gate(path, self.config.producer, log=self.log)
            self._corpus = load_corpus(path)
        return self._corpus

    def check_corpus(self) -> dict[str, Any]:
        """The corpus item: produce if missing, then load and validate."""
        corpus = self.corpus()
        return {
            "corpus_sha256": corpus.sha256,
            "n_rows": corpus.n_rows,
            "sources": ",".join(corpus.sources),
            "notes": " | ".join(corpus.warnings()),
        }

    def data_checks(self) -> list[Check]:
        """The data criteria on the corpus (:func:`frreg.gate.checks.data_checks`), once."""
        if self._data is None:
            from frreg.gate.checks import data_checks

            self._data = data_checks(self.corpus(), self.config.thresholds)
        return self._data

    def check_data(self, name: str) -> dict[str, Any]:
        """One data check by name: passes, warns (a check that does not decide: no
        producer manifest, narrow sources) or fails (under every profile)."""
        matches = [c for c in self.data_checks() if c.name == name]
        if not matches:
            raise GateFailure(f"no data check named {name!r}")
        props = {
            "check": name,
            "status": "FAIL" if any(c.status == "FAIL" for c in matches) else matches[0].status,
            "observed": matches[0].observed,
            "threshold": matches[0].threshold,
        }
        return _outcome(matches, props)

    # ------------------------------------------------------------------ training

    def seed_entry(self, seed: int) -> CacheEntry:
        """The cached training result of one seed (all its folds), training it if needed."""
        if seed not in self._entries:
            from frreg.training.loso import run_config, run_loso

            corpus = self.corpus()
            cfg = self.config
            config = run_config(
                corpus.sha256, seed, cfg.settings, engine=cfg.engine, device=cfg.device
            )

            def build(directory: Path) -> None:
                self.log(
                    f"training seed {seed}: {len(corpus.sources)} folds x {cfg.settings.epochs} epochs"
                )
                run_loso(
                    corpus,
                    [seed],
                    cfg.settings,
                    directory,
                    argv=["pytest-frreg", f"--frreg-seeds={seed}"],
                    engine=cfg.engine,
                    device=cfg.device,
                    progress=_epoch_logger(
                        self.log,
                        f"seed {seed} training",
                        "epochs" if cfg.engine == "batched" else "jobs",
                    ),
                )

            self._entries[seed] = self.cache.get_or_build(config, seed, build)
        return self._entries[seed]

    def seed_artifact(self, seed: int) -> SeedArtifact:
        return SeedArtifact.read(self.seed_entry(seed).artifact, seed)

    # ------------------------------------------------------------------ checks

    def check_fold(self, seed: int, source: str) -> dict[str, Any]:
        """Metrics of one fold; raises :class:`GateFailure` when unusable or below the floor."""
        entry = self.seed_entry(seed)
        record = entry.record()
        folds = {f.held_out: f for f in record.folds}
        if source not in folds:
            raise GateFailure(
                f"seed {seed}: corpus {self.config.corpus} has no source '{source}' "
                f"(it has {', '.join(record.sources)})"
            )
        fold = folds[source]
        props = {
            "seed": seed,
            "held_out": source,
            "n_val": fold.n_val,
            **fold.metrics,
            **_cache_props(entry),
        }
        problems = fold_problems(seed, fold, self.config.thresholds)
        if problems:
            raise GateFailure("; ".join(problems), props)
        return props

    def check_seed(self, seed: int) -> dict[str, Any]:
        """The seed's mean PLCC against the per-seed minimum."""
        entry = self.seed_entry(seed)
        checks, mean = check_seed(self.seed_artifact(seed), self.config.thresholds)
        props = {
            "seed": seed,
            "mean_plcc": mean,
            **_cache_props(entry),
        }
        failures = [c.message for c in checks if not c.passed]
        if failures:
            raise GateFailure("; ".join(failures), props)
        return props

    def ensemble_report(self) -> GateReport:
        """The gate over every declared seed's cached artifact, built once per session."""
        if self._report is None:
            arts = {s: self.seed_artifact(s) for s in self.config.seeds}
            self._report = evaluate(
                arts, self.config.thresholds, corpus_sha256=self.corpus().sha256
            )
        return self._report

    def check_ensemble(self, name: str) -> dict[str, Any]:
        """One ensemble-level check by name (a criterion of the ensemble stage,
        :mod:`frreg.gate.criteria`)."""
        matches = self.ensemble_report().named(name)
        if not matches:
            raise GateFailure(f"no ensemble check named {name!r}")
        check = matches[0]
        props = {
            "check": name,
            "status": check.status,
            "observed": check.observed,
            "threshold": check.threshold,
        }
        return _outcome(matches, props)

    def evidence_checks(self) -> list[Check]:
        """frreg's ensemble evidence over the cached seeds, computed once per session."""
        if self._evidence is None:
            from frreg.gate.checks import evidence_checks
            from frreg.gate.evidence import corpus_keys, recompute
            from frreg.gate.verdict import ensemble_of, read_baseline

            corpus = self.corpus()
            keys = corpus_keys(corpus)
            evidence = [
                recompute(self.seed_artifact(s), corpus, keys=keys, rerun=False)
                for s in self.config.seeds
            ]
            # The items judge; the verdict (finalize) computes the report's SVR baseline once.
            ensemble, problem = ensemble_of(
                evidence, corpus, self.config.thresholds, strong_baseline=False
            )
            baseline = None if self.config.baseline is None else read_baseline(self.config.baseline)
            self._evidence = evidence_checks(
                ensemble, self.config.thresholds, problem=problem, baseline=baseline
            )
            self._ensemble = ensemble
        return self._evidence

    def check_evidence(self, name: str, source: str | None = None) -> dict[str, Any]:
        """One evidence check by name (``source``: the held-out source it judges, whose
        evidence the item reports): passes, warns (not strict) or fails (strict)."""
        matches = [c for c in self.evidence_checks() if c.name == name]
        if not matches:
            # Evidence that could not be computed answers for every evidence item.
            matches = [c for c in self.evidence_checks() if c.name == EVIDENCE_COMPUTED]
        if not matches:
            raise GateFailure(f"no evidence check named {name!r}")
        check = matches[0]
        props: dict[str, Any] = {
            "check": name,
            "status": check.status,
            "observed": check.observed,
            "threshold": check.threshold,
        }
        if self._ensemble is not None and source is not None:
            for src in self._ensemble.sources:
                if src.source == source:
                    props.update({k: v for k, v in src.to_json().items() if k != "source"})
        return _outcome([check], props)

    # ------------------------------------------------------------------ verdict

    def finalize(
        self,
        outcomes: Mapping[str, ItemOutcome],
        expected: Sequence[str],
        *,
        interrupted: str | None,
    ) -> tuple[GateReport, Path]:
        """Write seed artifacts, the verdict and the reports into the out dir.

        Runs once, on the controller, after every item reported. PROMOTE needs
        every expected item to have passed, an uninterrupted run, and the
        gate (:func:`frreg.gate.verdict.judge_and_write`, exactly what
        ``frreg-validate`` runs) to pass on the artifacts the items produced.
        """
        from frreg.dirlock import holding
        from frreg.gate.verdict import GATE_SESSION, judge_and_write
        from frreg.session.config import clear_outputs

        cfg = self.config
        out = cfg.out_dir
        out.mkdir(parents=True, exist_ok=True)
        # No frreg-train may rewrite the seed files while they are published and judged.
        with holding(out, exclusive=True, who="pytest-frreg"):
            clear_outputs(out)
            # Publish the seed artifacts the items reported, from the shared cache.
            keys = reported_cache_keys(outcomes)
            remove_foreign_seeds(out, cfg.seeds, self.log)
            for seed in cfg.seeds:
                publish_seed(self.cache, out, seed, keys.get(seed))

            audit, exempt = self._audit_plan = self.audit_plan(outcomes)
            decision, path = judge_and_write(
                out,
                cfg.thresholds,
                # A seed that did not train is a failed gate here, not an input error.
                policy=GATE_SESSION,
                corpus=cfg.corpus,
                audit_jobs=audit,
                audit_exempt=exempt,
                baseline=cfg.baseline,
                written_by="pytest-frreg",
                # The fork's source-YUV snapshot, from the default place under rootdir
                # (named as frreg-validate names it when run from there).
                corpus_root=_under_root(cfg.root, FORK_CORPUS_ROOT),
                extra_checks=session_checks(outcomes, expected, interrupted),
                progress=_epoch_logger(self.log, "audit, retraining (seed, fold) jobs", "jobs"),
            )
            self.verdict_diff = self._diff(path)
        notes = [o.properties["notes"] for o in outcomes.values() if o.properties.get("notes")]
        records = {s: a.record for s, a in decision.artifacts.items()}
        self.final_ensemble = decision.ensemble
        sections = [] if self.verdict_diff is None else [self.verdict_diff.markdown()]
        write_reports(
            cfg, decision.report, records, path, notes, decision.ensemble, sections=sections
        )
        return decision.report, path

    def _diff(self, verdict_path: Path) -> VerdictDiff | None:
        """With ``--frreg-baseline``: the verdict against the baseline, written beside it."""
        if self.config.baseline is None:
            return None
        from frreg._io import read_json
        from frreg.gate.diff import diff_verdicts, read_verdict, write_diff

        diff = diff_verdicts(
            read_json(verdict_path, "verdict"),
            read_verdict(self.config.baseline),
            baseline=self.config.baseline_name or self.config.shown(self.config.baseline),
        )
        write_diff(self.config.out_dir, diff)
        return diff

    def check_baseline(self) -> None:
        """Raise :class:`~frreg.errors.InputError` when ``--frreg-baseline`` names a file
        that is not a verdict with per-source evidence: checked before any training."""
        if self.config.baseline is not None:
            from frreg.gate.verdict import read_baseline

            read_baseline(self.config.baseline)

    def check_kernel(self, *, prefix: str = "--frreg-") -> None:
        """Raise :class:`~frreg.errors.InputError` when the engine's kernel does not
        train the configured network (``{prefix}hidden``): checked before any training."""
        from frreg import settings

        cfg = self.config
        settings.kernel(cfg.engine, cfg.device, cfg.settings.model, prefix=prefix)

    def require_export_extra(self) -> None:
        """Raise :class:`~frreg.errors.InputError` when ``--frreg-export`` could not run
        (the ``[export]`` extra is missing): checked before any training."""
        from frreg.export.graph import require_export_extra

        require_export_extra()

    def export(self, verdict_path: Path) -> ExportResult:
        """Export the promoted ensemble (``--frreg-export``), exactly as ``frreg-export``
        does: the verdict is re-derived from the evidence first."""
        from frreg.export import ExportRequest, export_ensemble

        cfg = self.config
        assert cfg.export_dir is not None
        request = ExportRequest(
            verdict=verdict_path,
            corpus=cfg.corpus,
            out_dir=cfg.export_dir,
            ensemble_id=cfg.ensemble_id,
            registry=cfg.export_registry,
            force=cfg.export_force,
            written_by="pytest-frreg",
            # The thresholds are this session's own options, not read from a file a
            # forger could edit; they are recorded in the manifest all the same.
            accept_deviations=True,
            audit=self._audit_plan[0],
            audit_exempt=tuple(self._audit_plan[1]),
        )
        return export_ensemble(request, log=self.log, progress_to=LogLines(self.log))

    def audit_plan(self, outcomes: Mapping[str, ItemOutcome]) -> tuple[AuditRequest, list[int]]:
        """What the verdict retrains: ``--frreg-audit`` (default: every job) and the
        seeds exempt from it -- those this session trained in its own processes and
        whose published files are byte for byte what that process wrote. Whatever came
        from the cache, or changed after it was trained, is audited."""
        audit = DEFAULT_AUDIT if self.config.audit is None else self.config.audit
        built = built_digests(outcomes)
        exempt = [
            seed
            for seed in self.config.seeds
            if seed in built and published_digests(self.config.out_dir, seed) == built[seed]
        ]
        return audit, exempt


# ---------------------------------------------------------------------- the items


@dataclass(frozen=True)
class ItemSpec:
    """One gate item: its name, the :class:`GateSession` check it runs and that check's
    arguments. ``seed_group``: items of one seed run on one xdist worker."""

    name: str
    check: Callable[..., dict[str, Any]]
    args: tuple[Any, ...] = ()
    seed_group: int | None = None

    def run(self, session: GateSession) -> dict[str, Any]:
        """Run the check on ``session``: its measured properties, or :class:`GateFailure`."""
        return self.check(session, *self.args)


def _outcome(checks: Sequence[Check], props: dict[str, Any]) -> dict[str, Any]:
    """An item's result from its checks: passes; warns when only checks that do not
    decide under this profile failed; fails when a deciding one did."""
    failing = [c for c in checks if not c.passed]
    if any(c.enforced for c in failing):
        raise GateFailure("; ".join(c.message for c in failing if c.enforced), props)
    for c in failing:
        warnings.warn(EvidenceWarning(f"WARN {c.message}"), stacklevel=2)
    return props


def item_specs(
    seeds: Sequence[int], sources: Sequence[str], *, baseline: bool = False
) -> list[ItemSpec]:
    """Every gate item, in collection order (the controller's expected list uses it too).

    The names are the item ids after ``frreg-gate::``. The data, ensemble and evidence
    items are the gate's criteria that have items of their own
    (:func:`~frreg.gate.checks.gate_item_criteria`), one per held-out source for a
    per-source criterion: a criterion added there is an item here.
    """
    criteria = gate_item_criteria(baseline=baseline)
    specs = [ItemSpec("corpus", GateSession.check_corpus)]
    specs += [
        ItemSpec(c.item_id(), GateSession.check_data, (c.check_name(),))
        for c in criteria
        if c.stage == STAGE_DATA
    ]
    specs += [
        ItemSpec(f"fold[seed{s}-{src}]", GateSession.check_fold, (s, src), s)
        for s in seeds
        for src in sources
    ]
    specs += [ItemSpec(f"seed[seed{s}]", GateSession.check_seed, (s,), s) for s in seeds]
    for c in criteria:
        if c.stage == STAGE_DATA:
            continue  # collected after the corpus, above
        if c.stage == STAGE_ENSEMBLE:
            specs.append(ItemSpec(c.item_id(), GateSession.check_ensemble, (c.check_name(),)))
        elif c.scope == "per-source":
            specs += [
                ItemSpec(c.item_id(src), GateSession.check_evidence, (c.check_name(src), src))
                for src in sources
            ]
        else:
            specs.append(ItemSpec(c.item_id(), GateSession.check_evidence, (c.check_name(),)))
    return specs


def _cache_props(entry: CacheEntry) -> dict[str, Any]:
    """What an item reports about the seed's cache entry: its key, whether this process
    trained it, and then the digests it wrote (the controller exempts such a seed from
    the audit only while its published files still have them)."""
    props: dict[str, Any] = {"cache_key": entry.key, "trained_now": entry.trained_now}
    if entry.trained_now:
        props["built_sha256"] = dict(entry.built_sha256)
    return props
