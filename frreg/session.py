"""One ship-gate session: the lazy corpus, cached training per seed, checks and verdict.

The pytest plugin is a thin shell over :class:`GateSession`: collection asks
it for the declared seeds and sources, each gate item asks it for one check,
and the controller asks it to :meth:`~GateSession.finalize` the verdict from
the items' reports. Every method is safe to call from several processes at
once (pytest-xdist workers): the corpus and every seed are produced once,
under a file lock, and written atomically. The checks themselves are the
gate's (:mod:`frreg.gate.checks`); this module only decides when to run them.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock

from frreg._io import atomic_writer
from frreg.cache import CacheEntry, SeedCache
from frreg.corpus import Corpus, load_corpus
from frreg.errors import EvidenceWarning
from frreg.gate.checks import (
    EVIDENCE_COMPUTED,
    ITEMS_CHECK,
    PER_SOURCE_EVIDENCE,
    RUN_CHECK,
    Check,
    GateReport,
    SeedArtifact,
    Thresholds,
    check_seed,
    evaluate,
    evidence_check_name,
    fold_problems,
)
from frreg.producer.settings import ProducerSettings, producer_settings
from frreg.schema import DEFAULT_ENSEMBLE_ID
from frreg.training.loso import Engine

if TYPE_CHECKING:
    from frreg.export import ExportResult
    from frreg.gate.ensemble import EnsembleEvidence
from frreg.training.settings import TrainSettings

#: File names the gate session writes into its out dir, besides the seed artifacts.
REPORT_MD = "frreg-report.md"
HEATMAP_PNG = "frreg-plcc.png"
EVIDENCE_PNG = "frreg-evidence.png"
#: Progress of long work (corpus production, training), one timestamped line per event.
#: Workers cannot draw on the terminal, so `tail -f` this file to watch a run.
LOG_FILE = "frreg-gate.log"


def file_log(path: Path) -> Callable[[str], None]:
    """A ``log(message)`` that appends timestamped lines to ``path`` (shared by processes)."""

    def log(message: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        # One short append per line: concurrent writers interleave whole lines.
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"{stamp} pid {os.getpid()}: {message}\n")

    return log


def _epoch_logger(log: Callable[[str], None], label: str) -> Callable[[int, int], None]:
    """A training progress callback that logs roughly every tenth of the epochs."""

    def progress(done: int, total: int) -> None:
        if done == total or done % max(1, total // 10) == 0:
            log(f"{label}: epoch {done}/{total}")

    return progress


class GateFailure(AssertionError):
    """A gate check failed; ``str()`` is the one-line verdict.

    ``properties`` carries what the check measured before failing, so a
    failing fold still reports its metrics (and JUnit XML records them).
    """

    def __init__(self, message: str, properties: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.properties = dict(properties or {})


@dataclass(frozen=True)
class GateConfig:
    """Everything a gate session needs, resolved from options / ini / defaults."""

    corpus: Path
    out_dir: Path
    cache_dir: Path
    settings: TrainSettings
    thresholds: Thresholds
    #: How a missing corpus is produced (the plugin's --frreg-sources/encoders/cqs).
    producer: ProducerSettings = field(default_factory=ProducerSettings)
    engine: Engine = "batched"
    device: str = "cpu"
    #: Jobs to retrain for the verdict's audit; ``None``: 1 unless this session
    #: trained every seed itself (then the evidence is its own, and 0).
    audit: int | None = None
    #: A previous verdict for the baseline-relative evidence check.
    baseline: Path | None = None
    #: After a PROMOTE, export the ensemble here (``None``: no export).
    export_dir: Path | None = None
    ensemble_id: str = DEFAULT_ENSEMBLE_ID
    export_registry: Path | None = None
    export_force: bool = False

    @property
    def seeds(self) -> tuple[int, ...]:
        return self.thresholds.seeds


@dataclass
class ItemOutcome:
    """What the controller learned about one gate item from its reports."""

    nodeid: str
    outcome: str
    properties: dict[str, Any] = field(default_factory=dict)


#: The plugin options that say how to produce a missing corpus.
PRODUCER_KEYS = ("sources", "encoders", "cqs", "scheduler")


def gate_config(values: Mapping[str, Any], base: Path, *, prefix: str = "--frreg-") -> GateConfig:
    """Build a :class:`GateConfig` from resolved option values (keyed by option dest).

    Relative paths are taken relative to ``base`` (the invocation directory).
    """
    from frreg import settings

    def path(value: Any) -> Path:
        p = Path(str(value)).expanduser()
        return p if p.is_absolute() else base / p

    return GateConfig(
        corpus=path(values["corpus"]),
        out_dir=path(values["out_dir"]),
        cache_dir=path(values["cache_dir"]),
        settings=settings.train_settings(values, prefix=prefix),
        thresholds=settings.thresholds(values),
        # Only the producer's own keys: the plugin's cache_dir is the seed cache.
        producer=producer_settings({k: values[k] for k in PRODUCER_KEYS}, base),
        engine=values["engine"],
        device=settings.device(values, prefix=prefix),
        audit=values.get("audit"),
        baseline=None if values.get("baseline") is None else path(values["baseline"]),
        export_dir=None if values.get("export_dir") is None else path(values["export_dir"]),
        ensemble_id=values.get("ensemble_id") or DEFAULT_ENSEMBLE_ID,
        export_registry=None
        if values.get("export_registry") is None
        else path(values["export_registry"]),
        export_force=bool(values.get("export_force")),
    )


class GateSession:
    """Lazily produce the corpus, train seeds through the cache, answer checks."""

    def __init__(self, config: GateConfig, log: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.log = log or file_log(config.out_dir / LOG_FILE)
        self.cache = SeedCache(config.cache_dir, on_event=self.log)
        self._corpus: Corpus | None = None
        self._entries: dict[int, CacheEntry] = {}
        self._report: GateReport | None = None
        self._evidence: list[Check] | None = None
        self._ensemble: EnsembleEvidence | None = None
        #: The verdict's ensemble evidence, once :meth:`finalize` ran.
        self.final_ensemble: EnsembleEvidence | None = None

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
                    progress=_epoch_logger(self.log, f"seed {seed}"),
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
            "cache_key": entry.key,
            "trained_now": entry.trained_now,
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
            "cache_key": entry.key,
            "trained_now": entry.trained_now,
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
        """One ensemble-level check by name (see :data:`~frreg.gate.checks.ENSEMBLE_CHECKS`)."""
        matches = self.ensemble_report().named(name)
        if not matches:
            raise GateFailure(f"no ensemble check named {name!r}")
        failing = [c.message for c in matches if not c.passed]
        if failing:
            raise GateFailure("; ".join(failing))
        return {"check": name, "observed": matches[0].observed, "threshold": matches[0].threshold}

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
            ensemble, problem = ensemble_of(evidence, corpus, self.config.thresholds)
            baseline = None if self.config.baseline is None else read_baseline(self.config.baseline)
            self._evidence = evidence_checks(
                ensemble, self.config.thresholds, problem=problem, baseline=baseline
            )
            self._ensemble = ensemble
        return self._evidence

    def check_evidence(self, name: str) -> dict[str, Any]:
        """One evidence check by name: passes, warns (not strict) or fails (strict)."""
        matches = [c for c in self.evidence_checks() if c.name == name]
        if not matches:
            # Evidence that could not be computed answers for every evidence item.
            matches = [
                c
                for c in self.evidence_checks()
                if c.name == evidence_check_name(EVIDENCE_COMPUTED)
            ]
        if not matches:
            raise GateFailure(f"no evidence check named {name!r}")
        check = matches[0]
        props: dict[str, Any] = {
            "check": name,
            "status": check.status,
            "observed": check.observed,
            "threshold": check.threshold,
        }
        if self._ensemble is not None:
            for src in self._ensemble.sources:
                names = {evidence_check_name(c, src.source) for c in PER_SOURCE_EVIDENCE}
                if name in names:
                    props.update({k: v for k, v in src.to_json().items() if k != "source"})
        if check.passed:
            return props
        if not check.enforced:
            warnings.warn(EvidenceWarning(f"WARN {check.message}"), stacklevel=1)
            return props
        raise GateFailure(check.message, props)

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
        gate (:func:`frreg.gate.verdict.validate`, exactly what
        ``frreg-validate`` runs) to pass on the artifacts the items produced.
        """
        from frreg.gate.verdict import clear_verdict, validate

        cfg = self.config
        out = cfg.out_dir
        out.mkdir(parents=True, exist_ok=True)
        clear_verdict(out)
        # Publish the seed artifacts the items reported, from the shared cache.
        keys = {}
        for o in outcomes.values():
            if "cache_key" in o.properties and "seed" in o.properties:
                keys[int(o.properties["seed"])] = str(o.properties["cache_key"])
        for seed in cfg.seeds:
            _publish(self.cache, out, seed, keys.get(seed))

        decision, path = validate(
            out,
            cfg.thresholds,
            corpus=cfg.corpus,
            audit_jobs=self.audit_jobs(outcomes),
            baseline=cfg.baseline,
            written_by="pytest-frreg",
            # A seed that did not train is a failed gate here, not an input error.
            missing_seeds_are_errors=False,
            extra_checks=session_checks(outcomes, expected, interrupted),
        )
        notes = [o.properties["notes"] for o in outcomes.values() if o.properties.get("notes")]
        records = {s: a.record for s, a in decision.artifacts.items()}
        self.final_ensemble = decision.ensemble
        self._write_reports(decision.report, records, path, notes)
        return decision.report, path

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
        )
        return export_ensemble(request, log=self.log)

    def audit_jobs(self, outcomes: Mapping[str, ItemOutcome]) -> int:
        """How many jobs the verdict retrains: the option, else 1 unless every seed was
        trained by this session (whatever came from the cache is audited)."""
        if self.config.audit is not None:
            return self.config.audit
        from frreg.schema import DEFAULT_AUDIT_JOBS

        trained = {
            int(o.properties["seed"])
            for o in outcomes.values()
            if o.properties.get("trained_now") and "seed" in o.properties
        }
        return 0 if trained >= set(self.config.seeds) else DEFAULT_AUDIT_JOBS

    def _write_reports(
        self,
        report: GateReport,
        records: Mapping[int, Any],
        verdict_path: Path,
        notes: Sequence[str],
    ) -> None:
        from frreg.gate.report import evidence_figure, heatmap, markdown, plcc_table

        out = self.config.out_dir
        sources, table = plcc_table(records)
        files = {"verdict": str(verdict_path), "report": str(out / REPORT_MD)}
        if sources and table:
            heatmap(out / HEATMAP_PNG, sources, table, f"held-out PLCC — {report.verdict}")
            files["heatmap"] = str(out / HEATMAP_PNG)
        ensemble = self.final_ensemble
        (out / EVIDENCE_PNG).unlink(missing_ok=True)  # never a stale figure beside a new verdict
        if ensemble is not None:
            title = f"ensemble bias and conformal half-width per held-out source — {report.verdict}"
            evidence_figure(out / EVIDENCE_PNG, ensemble, self.config.thresholds.bias_max, title)
            files["evidence figure"] = str(out / EVIDENCE_PNG)
        with atomic_writer(out / REPORT_MD) as fh:
            fh.write(markdown(report, sources, table, files=files, notes=notes, evidence=ensemble))


def session_checks(
    outcomes: Mapping[str, ItemOutcome], expected: Sequence[str], interrupted: str | None
) -> list[Check]:
    """What the session adds to the gate: failing items, an interruption.

    Only failures are added, so a clean session's verdict has exactly the
    checks ``frreg-validate`` writes for the same artifacts.
    """
    checks = []
    missing = [n for n in expected if n not in outcomes]
    not_passed = [n for n in expected if n in outcomes and outcomes[n].outcome != "passed"]
    if missing or not_passed:
        checks.append(
            Check(
                ITEMS_CHECK,
                False,
                f"gate items: {len(expected) - len(missing) - len(not_passed)} of {len(expected)} passed"
                + (f"; not run: {len(missing)}" if missing else "")
                + (f"; failed: {', '.join(not_passed[:5])}" if not_passed else ""),
            )
        )
    if interrupted:
        checks.append(Check(RUN_CHECK, False, f"run: {interrupted}"))
    return checks


def items_line(outcomes: Mapping[str, ItemOutcome], expected: Sequence[str]) -> str:
    """One line for the terminal: how many gate items passed."""
    passed = sum(1 for n in expected if n in outcomes and outcomes[n].outcome == "passed")
    return f"gate items: {passed} of {len(expected)} passed"


def summary_lines(
    session: GateSession,
    report: GateReport,
    verdict_path: Path | None,
    outcomes: Mapping[str, ItemOutcome],
    expected: Sequence[str],
) -> list[str]:
    """The terminal summary: PLCC table, per-seed means, gate parts, verdict, files."""
    from frreg.gate.checks import load_loso_dir
    from frreg.gate.report import plcc_table, table_lines

    out = session.config.out_dir
    arts = load_loso_dir(out, session.config.seeds)
    sources, table = plcc_table({s: a.record for s, a in arts.items()})
    lines = table_lines(sources, table, report.seed_means) if table else ["(no trained seeds)"]
    lines.append("")
    if session.final_ensemble is not None:
        from frreg.gate.report import evidence_lines

        lines += evidence_lines(session.final_ensemble)
        lines.append("")
    lines += report.lines()
    lines.append(items_line(outcomes, expected))
    reported = [o.properties for o in outcomes.values() if "seed" in o.properties]
    trained = sorted({int(p["seed"]) for p in reported if p.get("trained_now")})
    obtained = {int(p["seed"]) for p in reported if "cache_key" in p}
    cached = [s for s in session.config.seeds if s in obtained and s not in trained]
    absent = [s for s in session.config.seeds if s not in obtained]
    lines.append(
        f"trained this run: {', '.join(map(str, trained)) or 'none'}; "
        f"from cache: {', '.join(map(str, cached)) or 'none'} ({session.config.cache_dir})"
        + (f"; not trained: {', '.join(map(str, absent))}" if absent else "")
    )
    if verdict_path is not None:
        lines.append(f"verdict: {verdict_path}")
    lines.append(f"report: {out / REPORT_MD}")
    lines.append(f"log: {out / LOG_FILE}")
    if (out / HEATMAP_PNG).exists():
        lines.append(f"heatmap: {out / HEATMAP_PNG}")
    if (out / EVIDENCE_PNG).exists():
        lines.append(f"evidence figure: {out / EVIDENCE_PNG}")
    return lines


def _publish(cache: SeedCache, out: Path, seed: int, key: str | None) -> None:
    """Copy one seed's cached artifact into ``out``, or remove a stale one."""
    from frreg.schema import seed_files

    names = seed_files(seed)
    src_dir = cache.entry_dir(key) if key else None
    if src_dir is None or not all((src_dir / n).is_file() for n in names):
        for name in names:
            (out / name).unlink(missing_ok=True)
        return
    for name in names:  # the JSON last, so it never points at a missing file
        with atomic_writer(out / name, "wb") as fh:
            fh.write((src_dir / name).read_bytes())
