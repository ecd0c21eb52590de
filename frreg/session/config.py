"""What a gate session is asked to do: :class:`GateConfig`, built once from the plugin's values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from frreg.gate.criteria import Thresholds
from frreg.gate.options import AuditRequest
from frreg.producer.settings import ProducerSettings, producer_settings
from frreg.schema import DEFAULT_ENSEMBLE_ID
from frreg.session_options import PRODUCER_OPTIONS
from frreg.training.loso import Engine
from frreg.training.settings import TrainSettings

#: The plugin options that say how to produce a missing corpus, by dest.
PRODUCER_KEYS = tuple(opt.dest for opt in PRODUCER_OPTIONS)


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
    #: What the verdict's audit retrains (``all`` or a job count); ``None``: every job
    #: of the seeds this session did not train itself (see ``GateSession.audit_plan``).
    audit: AuditRequest | None = None
    #: A previous verdict for the baseline-relative evidence check.
    baseline: Path | None = None
    #: How reports name the baseline: the path given, where the session judges a copy
    #: of it (:func:`keep_baseline`); ``None``: :attr:`baseline` itself.
    baseline_name: str | None = None
    #: After a PROMOTE, export the ensemble here (``None``: no export).
    export_dir: Path | None = None
    ensemble_id: str = DEFAULT_ENSEMBLE_ID
    export_registry: Path | None = None
    export_force: bool = False

    #: The directory paths are shown relative to (pytest's rootdir), in reports.
    root: Path | None = None

    @property
    def seeds(self) -> tuple[int, ...]:
        return self.thresholds.seeds

    def shown(self, path: Path) -> str:
        """``path`` as reports show it: relative to :attr:`root` when inside it (no
        machine-absolute paths in a report a CI posts), else as it is."""
        if self.root is not None:
            try:
                return path.relative_to(self.root).as_posix()
            except ValueError:
                pass
        return str(path)


def gate_config(values: Mapping[str, Any], base: Path, *, prefix: str = "--frreg-") -> GateConfig:
    """Build a :class:`GateConfig` from resolved option values (keyed by option dest).

    Relative paths are taken relative to ``base`` (pytest's rootdir; the plugin makes
    the paths it was given absolute first, each from where it was given), and
    reports show paths relative to it.
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
        baseline_name=values.get("baseline_name"),
        export_dir=None if values.get("export_dir") is None else path(values["export_dir"]),
        ensemble_id=values.get("ensemble_id") or DEFAULT_ENSEMBLE_ID,
        export_registry=None
        if values.get("export_registry") is None
        else path(values["export_registry"]),
        export_force=bool(values.get("export_force")),
        root=base,
    )


#: Where a session keeps the baseline verdict it was given when that verdict is one of
#: the files it clears (the previous verdict in its own out dir).
KEPT_BASELINE: Final = "frreg-baseline.json"


def keep_baseline(baseline: Path, out_dir: Path) -> Path | None:
    """A copy of ``baseline`` that :func:`clear_outputs` leaves alone, when ``baseline``
    is a verdict file in ``out_dir`` (``--frreg-baseline runs/frreg-gate/PROMOTE.json``:
    compare with the previous run); ``None`` when it is elsewhere (or not there)."""
    from frreg._io import atomic_writer
    from frreg.schema import VERDICT_FILES

    if baseline.name not in VERDICT_FILES or not baseline.is_file():
        return None
    if baseline.resolve().parent != out_dir.resolve():
        return None
    kept = out_dir / KEPT_BASELINE
    with atomic_writer(kept, "wb") as fh:
        fh.write(baseline.read_bytes())
    return kept


def clear_outputs(out_dir: Path) -> None:
    """Remove every verdict-bearing file of a gate session in ``out_dir``: the verdict,
    its diff against a baseline, the report and the figures (before a session whose
    outcome is not known yet: none of them may describe it)."""
    from frreg.gate.verdict import clear_verdict
    from frreg.session.output import EVIDENCE_PNG, HEATMAP_PNG, REPORT_MD

    clear_verdict(out_dir, also=(REPORT_MD, HEATMAP_PNG, EVIDENCE_PNG))
