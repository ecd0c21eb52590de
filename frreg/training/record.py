"""One typed record per seed artifact: ``loso_seed{N}.json``.

:class:`SeedRecord` is the only shape a seed's results have. The trainer
builds it (:meth:`SeedRecord.build`) and writes :meth:`SeedRecord.to_json`;
the gate, the report, the CLIs, the pytest plugin and the test factories read
it with :meth:`SeedRecord.read` / :meth:`SeedRecord.from_json`, which validate
once and raise :class:`~frreg.errors.ArtifactError` (``PATH: problem``).

The summary fields (``mean_plcc`` ...) are stored as the file says them, so
that the gate can compare them with what the folds say; :meth:`build`
computes them from the folds.
"""

from __future__ import annotations

import json
import math
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from frreg.errors import ArtifactError
from frreg.schema import (
    LEGACY_PRESET_NORM,
    PRESET_NORM_FIXED,
    PRESET_NORM_MODES,
    SEED_RECORD_VERSION,
    SWEEP_DIGEST_HEX,
    is_sweep_digest,
)
from frreg.training.metrics import (
    FOLD_METRICS,
    GATE_METRIC,
    Metric,
    summarize_metric,
    summary_fields,
)


@dataclass(frozen=True)
class FoldRecord:
    """Held-out results of one (seed, source) model: its sizes and every fold metric
    (:data:`~frreg.training.metrics.FOLD_METRICS`, by name; ``None`` where undefined)."""

    held_out: str
    n_train: int
    n_val: int
    metrics: Mapping[str, Metric]

    @property
    def plcc(self) -> Metric:
        """The gate's metric (ADR-0303 judges PLCC)."""
        return self.metrics.get(GATE_METRIC)

    def to_json(self) -> dict[str, Any]:
        return {
            "held_out": self.held_out,
            "n_train": self.n_train,
            "n_val": self.n_val,
            **{m.name: self.metrics.get(m.name) for m in FOLD_METRICS},
        }


@dataclass(frozen=True)
class FileRef:
    """A file beside a seed artifact (its predictions, its weights) and its sha256."""

    file: str
    sha256: str

    def to_json(self) -> dict[str, str]:
        return {"file": self.file, "sha256": self.sha256}


def summarize(folds: Sequence[FoldRecord]) -> dict[str, Metric]:
    """Seed-level summary of the fold metrics (``mean_plcc``, ``std_plcc``, ...), in
    written order; ``None`` where undefined (a fold with an undefined metric makes
    that metric's summary undefined: a fold is never dropped)."""
    return {
        metric.summary_field(stat): summarize_metric(
            stat, [f.metrics.get(metric.name) for f in folds]
        )
        for metric, stat in summary_fields()
    }


#: Where a record comes from: frreg's trainer, or the fork's (read-only: see
#: :func:`_fork_record`).
ORIGIN_FRREG: Final = "frreg"
ORIGIN_FORK: Final = "fork"
#: The seed-level summary of the folds (``mean_plcc`` ...), in written order.
SUMMARY_FIELDS: Final = tuple(m.summary_field(stat) for m, stat in summary_fields())
#: The summary fields the fork's trainer writes too.
FORK_SUMMARY_FIELDS: Final = tuple(
    m.summary_field(stat) for m, stat in summary_fields() if m.in_fork
)
#: The fork trainer's ``loso_seed{N}.json`` fields (its ``note`` is optional).
FORK_FIELDS: Final = (
    "seed", "corpus", "n_folds", "folds", *FORK_SUMMARY_FIELDS, "epochs", "batch_size", "lr",
    "weight_decay", "num_codecs", "encoder_vocab_version", "wall_time_s",
)  # fmt: skip
#: The fork's minimal seed file, as its validator's tests write them and its gate reads
#: them (only ``mean_plcc`` is required there): ``per_fold`` lists ``{source, plcc}``.
FORK_MINIMAL_FIELDS: Final = ("seed", "mean_plcc", "per_fold")
#: Fields only frreg's artifacts carry.
FRREG_ONLY_FIELDS: Final = (
    "corpus_sha256",
    "corpus_abs",
    "sources",
    "config",
    "predictions",
    "weights",
)
#: What a fork record says where frreg records the engine, device and corpus digest.
FORK_ENGINE: Final = "fork-trainer"
FORK_UNKNOWN: Final = "unknown"


@dataclass(frozen=True)
class SeedRecord:
    """Everything ``loso_seed{N}.json`` says about one seed's LOSO run.

    ``wall_time_s`` is this seed's own training time, as the fork defines it
    (in a batched run of several seeds: its jobs' share of the run);
    ``run_wall_time_s`` is the whole run's. A record read from the fork's
    trainer has ``origin`` :data:`ORIGIN_FORK`, an empty ``corpus_sha256``
    and ``engine``/``device`` :data:`FORK_ENGINE`/:data:`FORK_UNKNOWN`:
    nothing in it can be recomputed.
    """

    seed: int
    corpus: str
    corpus_sha256: str
    n_rows: int
    sources: tuple[str, ...]
    folds: tuple[FoldRecord, ...]
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    num_codecs: int
    encoder_vocab_version: int
    engine: str
    device: str
    wall_time_s: float
    config: Mapping[str, Any]
    #: The summary of the folds as the file states it (:data:`SUMMARY_FIELDS`), kept
    #: so that the gate can compare it with what the folds say.
    summary: Mapping[str, Metric] = field(default_factory=dict)
    unknown_encoders: Mapping[str, int] = field(default_factory=dict)
    versions: Mapping[str, str] = field(default_factory=dict)
    argv: tuple[str, ...] = ()
    note: str | None = None
    predictions: FileRef | None = None
    weights: FileRef | None = None
    run_wall_time_s: float | None = None
    schema_version: int = SEED_RECORD_VERSION
    origin: str = ORIGIN_FRREG
    #: The corpus path made absolute where frreg-train ran (``corpus`` stays as typed,
    #: the fork's meaning): a gate run elsewhere finds it (``None``: an older record).
    corpus_abs: str | None = None
    #: ``False`` for the fork's minimal seed files (:data:`FORK_MINIMAL_FIELDS`), which
    #: state no recipe: ``epochs`` ... ``encoder_vocab_version`` are then 0, meaning
    #: nothing, and the gate names the recipe as not recorded.
    recipe_recorded: bool = True
    #: How ``preset_norm`` was filled (:data:`~frreg.schema.PRESET_NORM_MODES`): the
    #: fork's trainer always uses ``fixed``; a frreg file that records none is
    #: :data:`~frreg.schema.LEGACY_PRESET_NORM`.
    preset_norm: str = PRESET_NORM_FIXED
    #: The sha256 of the sweep record the recipe was chosen from (``frreg-train
    #: --sweep``); ``None``: no search chose it (and every file from before it was
    #: recorded, and the fork's).
    sweep: str | None = None

    @property
    def from_fork(self) -> bool:
        return self.origin == ORIGIN_FORK

    @property
    def mean_plcc(self) -> Metric:
        """The seed's mean held-out PLCC as recorded (the ADR-0303 gate's number)."""
        return self.summary.get(f"mean_{GATE_METRIC}")

    @property
    def std_plcc(self) -> Metric:
        return self.summary.get("std_plcc")

    # ------------------------------------------------------------------ writing

    @classmethod
    def build(cls, folds: Sequence[FoldRecord], **fields: Any) -> SeedRecord:
        """A record whose summary is computed from ``folds``."""
        return cls(folds=tuple(folds), summary=summarize(folds), **fields)

    def with_folds(
        self, folds: Sequence[FoldRecord], *, sources: Sequence[str], n_rows: int
    ) -> SeedRecord:
        """This record with other folds (and their summary), e.g. recomputed ones."""
        return replace(
            self,
            folds=tuple(folds),
            sources=tuple(sources),
            n_rows=n_rows,
            summary=summarize(folds),
        )

    def with_files(self, predictions: FileRef, weights: FileRef) -> SeedRecord:
        return replace(self, predictions=predictions, weights=weights)

    def to_json(self) -> dict[str, Any]:
        """The artifact's JSON object, fields in their documented order."""
        return {
            "schema_version": self.schema_version,
            "seed": self.seed,
            "corpus": self.corpus,
            "corpus_abs": self.corpus_abs,
            "corpus_sha256": self.corpus_sha256,
            "n_rows": self.n_rows,
            "sources": list(self.sources),
            "n_folds": len(self.folds),
            "folds": [f.to_json() for f in self.folds],
            **{k: self.summary.get(k) for k in SUMMARY_FIELDS},
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "num_codecs": self.num_codecs,
            "preset_norm": self.preset_norm,
            "sweep": self.sweep,
            "encoder_vocab_version": self.encoder_vocab_version,
            "unknown_encoders": dict(sorted(self.unknown_encoders.items())),
            "engine": self.engine,
            "device": self.device,
            "wall_time_s": self.wall_time_s,
            "run_wall_time_s": self.run_wall_time_s,
            "versions": dict(self.versions),
            "argv": list(self.argv),
            "config": dict(self.config),
            "note": self.note,
            "predictions": None if self.predictions is None else self.predictions.to_json(),
            "weights": None if self.weights is None else self.weights.to_json(),
        }

    # ------------------------------------------------------------------ reading

    @classmethod
    def read(cls, path: str | Path) -> SeedRecord:
        """Read and validate one artifact file (a regular file of at most
        :data:`MAX_ARTIFACT_BYTES`, strict UTF-8 JSON, no duplicate keys)."""
        path = Path(path)
        try:
            mode = path.stat().st_mode
            if not stat.S_ISREG(mode):
                what = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
                raise ArtifactError(path, f"is {what}; a seed artifact is a JSON file")
            with open(path, "rb") as fh:
                data = fh.read(MAX_ARTIFACT_BYTES + 1)
        except OSError as exc:
            raise ArtifactError(path, f"cannot read: {exc.strerror}") from None
        if len(data) > MAX_ARTIFACT_BYTES:
            raise ArtifactError(
                path, f"larger than {MAX_ARTIFACT_BYTES} bytes; not a seed artifact"
            )
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ArtifactError(path, "not UTF-8 text") from None
        try:
            obj = json.loads(text, object_pairs_hook=_unique_keys)
        except json.JSONDecodeError as exc:
            raise ArtifactError(path, f"invalid JSON at line {exc.lineno}: {exc.msg}") from None
        except _DuplicateKey as exc:
            raise ArtifactError(path, f"key {exc.args[0]!r} appears twice in one object") from None
        except RecursionError:
            raise ArtifactError(path, "JSON nested too deeply") from None
        except ValueError as exc:  # e.g. an integer of thousands of digits
            raise ArtifactError(path, f"invalid JSON: {exc}") from None
        return cls.from_json(obj, path)

    @classmethod
    def from_json(cls, obj: Any, path: str | Path = "<seed record>") -> SeedRecord:
        """Validate a parsed artifact; every problem is one :class:`ArtifactError` line."""
        r = _Reader(Path(path), obj)
        if r.fork:
            return _fork_record(r)
        folds = r.get("folds", list, "a list")
        return cls(
            schema_version=r.integer("schema_version"),
            seed=r.integer("seed"),
            corpus=r.get("corpus", str, "a string"),
            corpus_abs=r.optional("corpus_abs", str, "a string"),
            corpus_sha256=r.get("corpus_sha256", str, "a string"),
            n_rows=r.integer("n_rows"),
            sources=r.strings("sources"),
            folds=tuple(r.fold(i, f) for i, f in enumerate(folds)),
            **r.shared_fields(),
            unknown_encoders=r.get("unknown_encoders", dict, "an object"),
            engine=r.get("engine", str, "a string"),
            device=r.get("device", str, "a string"),
            wall_time_s=r.number("wall_time_s"),
            versions=r.get("versions", dict, "an object"),
            argv=r.strings("argv"),
            config=r.get("config", dict, "an object"),
            note=r.optional("note", str, "a string"),
            predictions=r.file_ref("predictions"),
            weights=r.file_ref("weights"),
            run_wall_time_s=r.optional_number("run_wall_time_s"),
            preset_norm=r.preset_norm(),
            sweep=r.sweep(),
        )


def _fork_record(r: _Reader) -> SeedRecord:
    """A ``loso_seed{N}.json`` as the fork's trainer writes it (no ``schema_version``).

    Its ``NaN`` literals are undefined metrics (the gate fails closed on them).
    The fold list is all it says about the corpus: sources are the folds'
    held-out ids, rows the first fold's train + held-out sizes.
    """
    if "folds" not in r.obj and all(k in r.obj for k in FORK_MINIMAL_FIELDS):
        return _fork_minimal_record(r)
    missing = [k for k in FORK_FIELDS if k not in r.obj]
    if missing:
        raise r.fail(
            f"neither a frreg seed artifact (no 'schema_version') nor the fork trainer's: "
            f"missing field '{missing[0]}'"
        )
    folds = tuple(r.fold(i, f) for i, f in enumerate(r.get("folds", list, "a list")))
    if r.integer("n_folds") != len(folds):
        raise r.fail(f"n_folds is {r.obj['n_folds']} but {len(folds)} folds are listed")
    first = folds[0] if folds else None
    return SeedRecord(
        seed=r.integer("seed"),
        corpus=r.get("corpus", str, "a string"),
        corpus_sha256="",
        n_rows=0 if first is None else first.n_train + first.n_val,
        sources=tuple(sorted({f.held_out for f in folds})),
        folds=folds,
        **r.shared_fields(),
        engine=FORK_ENGINE,
        device=FORK_UNKNOWN,
        wall_time_s=r.number("wall_time_s"),
        config={},
        note=r.optional("note", str, "a string"),
        schema_version=0,
        origin=ORIGIN_FORK,
    )


def _fork_minimal_record(r: _Reader) -> SeedRecord:
    """The fork's minimal seed file (:data:`FORK_MINIMAL_FIELDS`): a seed, its mean PLCC
    and one ``{source, plcc}`` per fold; no sizes, no other metric, no recipe. It is
    judged on those numbers alone, as the fork's gate judges it."""
    per_fold = r.get("per_fold", list, "a list")
    gate_metric = next(m for m in FOLD_METRICS if m.name == GATE_METRIC)
    bounds = (gate_metric.lo, gate_metric.hi)
    folds = []
    for i, fold in enumerate(per_fold):
        if not isinstance(fold, dict) or not isinstance(fold.get("source"), str):
            raise r.fail(f"per_fold[{i}] must be an object with a string 'source'")
        plcc = r.metric(GATE_METRIC, bounds, fold, f"per_fold[{i}].{GATE_METRIC}")
        metrics: dict[str, Metric] = {m.name: None for m in FOLD_METRICS}
        metrics[GATE_METRIC] = plcc
        folds.append(FoldRecord(fold["source"], 0, 0, metrics))
    summary_key = f"mean_{GATE_METRIC}"
    return SeedRecord(
        seed=r.integer("seed"),
        corpus="",
        corpus_sha256="",
        n_rows=0,
        sources=tuple(sorted({f.held_out for f in folds})),
        folds=tuple(folds),
        summary={summary_key: r.metric(summary_key, bounds)},
        epochs=0,
        batch_size=0,
        lr=0.0,
        weight_decay=0.0,
        num_codecs=0,
        encoder_vocab_version=0,
        engine=FORK_ENGINE,
        device=FORK_UNKNOWN,
        wall_time_s=0.0,
        config={},
        schema_version=0,
        origin=ORIGIN_FORK,
        recipe_recorded=False,
    )


#: Integers frreg writes (seeds, sizes, epochs) are far below this.
MAX_INT: Final = 2**53

#: A seed artifact is a few kilobytes per fold; anything far larger is not one.
MAX_ARTIFACT_BYTES: Final = 64 << 20


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


class _Reader:
    """Typed field access on one parsed artifact, raising ``PATH: problem``."""

    def __init__(self, path: Path, obj: Any) -> None:
        if not isinstance(obj, dict):
            raise ArtifactError(path, f"expected a JSON object, got {type(obj).__name__}")
        self.path = path
        self.obj = obj
        # frreg always writes schema_version and its own fields; the fork's trainer
        # writes neither (a frreg file stripped of its version is not a fork file).
        self.fork = "schema_version" not in obj and not any(k in obj for k in FRREG_ONLY_FIELDS)

    def fail(self, problem: str) -> ArtifactError:
        return ArtifactError(self.path, problem)

    def get(self, key: str, kind: type, what: str) -> Any:
        if key not in self.obj:
            raise self.fail(f"missing field '{key}'")
        value = self.obj[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise self.fail(f"field '{key}' must be {what}, got {value!r}")
        return value

    def optional(self, key: str, kind: type, what: str) -> Any:
        value = self.obj.get(key)
        if value is not None and not isinstance(value, kind):
            raise self.fail(f"field '{key}' must be {what} or null, got {value!r}")
        return value

    def integer(self, key: str) -> int:
        value: int = self.get(key, int, "an integer")
        if abs(value) > MAX_INT:
            raise self.fail(f"field '{key}' is {value}, beyond any value frreg writes")
        return value

    def shared_fields(self) -> dict[str, Any]:
        """The summary and recipe fields frreg's and the fork's seed files both carry."""
        fields = FORK_SUMMARY_FIELDS if self.fork else SUMMARY_FIELDS
        return {
            "summary": {
                m.summary_field(stat): self.metric(m.summary_field(stat), m.summary_range(stat))
                for m, stat in summary_fields()
                if m.summary_field(stat) in fields
            },
            **{k: self.integer(k) for k in ("epochs", "batch_size")},
            **{k: self.number(k) for k in ("lr", "weight_decay")},
            **{k: self.integer(k) for k in ("num_codecs", "encoder_vocab_version")},
        }

    def preset_norm(self) -> str:
        """``preset_norm`` (a frreg file from before it was recorded: the legacy one)."""
        value = self.optional("preset_norm", str, "a string")
        if value is None:
            return LEGACY_PRESET_NORM
        if value not in PRESET_NORM_MODES:
            raise self.fail(
                f"field 'preset_norm' is {value!r}, not one of {', '.join(PRESET_NORM_MODES)}"
            )
        return str(value)

    def sweep(self) -> str | None:
        """``sweep``: a sweep record's digest, or ``None`` (also a file from before it
        was recorded)."""
        value = self.obj.get("sweep")
        if value is not None and not is_sweep_digest(value):
            raise self.fail(
                f"field 'sweep' must be a sweep record's sha256 ({SWEEP_DIGEST_HEX} lowercase "
                f"hex digits) or null, got {value!r}"
            )
        return value

    def optional_number(self, key: str) -> float | None:
        value = self.obj.get(key)
        if value is None:
            return None
        if not _is_number(value) or not math.isfinite(value):
            raise self.fail(f"field '{key}' must be a finite number or null, got {value!r}")
        return float(value)

    def number(self, key: str) -> float:
        if key not in self.obj:
            raise self.fail(f"missing field '{key}'")
        value = self.obj[key]
        if not _is_number(value):
            raise self.fail(f"field '{key}' must be a number, got {value!r}")
        return float(value)

    def metric(
        self,
        key: str,
        bounds: tuple[float, float],
        where: Mapping[str, Any] | None = None,
        label: str = "",
    ) -> Metric:
        """A metric: a number or null within ``bounds`` (the metric's declared range;
        NaN passes here as undefined, and the gate fails closed on it)."""
        source = self.obj if where is None else where
        value = source.get(key)
        shown = label or f"field '{key}'"
        if value is not None and not _is_number(value):
            raise self.fail(f"{shown} must be a number or null, got {value!r}")
        if value is None or math.isnan(value):
            return None if value is None else float(value)
        lo, hi = bounds
        if not lo <= value <= hi or math.isinf(value):
            raise self.fail(f"{shown} is {value!r}, outside [{lo:g}, {hi:g}]")
        return float(value)

    def strings(self, key: str) -> tuple[str, ...]:
        values = self.get(key, list, "a list of strings")
        if not all(isinstance(v, str) for v in values):
            raise self.fail(f"field '{key}' must be a list of strings")
        return tuple(values)

    def fold(self, i: int, fold: Any) -> FoldRecord:
        if not isinstance(fold, dict):
            raise self.fail(f"folds[{i}] must be an object")
        if not isinstance(fold.get("held_out"), str):
            raise self.fail(f"folds[{i}].held_out must be a string")
        sizes = []
        for key in ("n_train", "n_val"):
            value = fold.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise self.fail(f"folds[{i}].{key} must be a non-negative integer, got {value!r}")
            sizes.append(value)
        metrics: dict[str, Metric] = {}
        for m in FOLD_METRICS:
            if m.name not in fold and self.fork and not m.in_fork:
                metrics[m.name] = None  # a metric the fork's trainer does not compute
                continue
            if m.name not in fold:
                raise self.fail(f"folds[{i}] is missing '{m.name}'")
            metrics[m.name] = self.metric(m.name, (m.lo, m.hi), fold, f"folds[{i}].{m.name}")
        return FoldRecord(fold["held_out"], sizes[0], sizes[1], metrics)

    def file_ref(self, key: str) -> FileRef | None:
        value = self.optional(key, dict, "an object")
        if value is None:
            return None
        file, digest = value.get("file"), value.get("sha256")
        if not isinstance(file, str) or not isinstance(digest, str):
            raise self.fail(f"field '{key}' must have string 'file' and 'sha256'")
        if Path(file).name != file or file in ("", ".", ".."):
            raise self.fail(
                f"field '{key}'.file must be a file name beside the artifact, got {file!r}"
            )
        return FileRef(file, digest)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
