"""Recompute, don't trust: rebuild a seed's numbers from the corpus and its files.

A seed file says what its folds scored; :func:`recompute` checks it. From the
corpus (which must be the one the seed recorded) it rebuilds the fold list
exactly as the splitter makes it, every fold's sizes, and, from the seed's
predictions file (hashed), every PLCC/SROCC/RMSE and summary. It re-runs
every stored fold model (``loso_seed{N}.weights.npz``, hashed) on its
held-out rows and requires the predictions file to be what those models
predict. Any disagreement is a named problem; the gate then judges only the
recomputed record.

:func:`retrain` goes one step further: it retrains the (seed, fold) jobs
:func:`audit_selection` picks (every one, or a partial draw seeded by the
artifacts' content) with the recorded settings and requires the same
predictions. Training
is deterministic on the CPU and a job's numbers depend only on its own inputs,
so on the CPU the comparison is exact; on CUDA it is within
:data:`CUDA_AUDIT_ATOL`.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import math
import os
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any, Final

import numpy as np

from frreg._io import sha256_file
from frreg.corpus import Corpus
from frreg.errors import ArtifactError
from frreg.gate.checks import SeedArtifact, load_loso_dir
from frreg.gate.options import AuditRequest
from frreg.schema import (
    AUDIT_ALL,
    DRY_RUN_EPOCHS,
    DRY_RUN_NOTE,
    LEGACY_PRESET_NORM,
    PRESET_NORM_MODES,
    SWEEP_DIGEST_HEX,
    is_sweep_digest,
)
from frreg.training.batched.engine import KERNELS
from frreg.training.code_digest import CodeDigest
from frreg.training.loso import (
    ENGINES,
    PREDICTIONS_HEADER,
    Engine,
    Progress,
    engine_version,
    fold_record,
)
from frreg.training.metrics import FOLD_METRICS
from frreg.training.network import MLPConfig
from frreg.training.record import FoldRecord, SeedRecord
from frreg.training.settings import FoldJob, TrainSettings, fold_inputs
from frreg.training.splits import LeaveOneSourceOut

#: Re-running a stored model must reproduce its predictions to float32 rounding.
RERUN_ATOL: Final = 1e-4
#: On CUDA, kernels are not bit-reproducible: the audit compares within this.
CUDA_AUDIT_ATOL: Final = 1e-3

_MODEL_FIELDS = {f for f in MLPConfig.__dataclass_fields__}
#: No recorded count (epochs, batch size) is larger: an audit must be able to finish.
MAX_CONFIG_INT: Final = 1_000_000


@dataclass(frozen=True)
class RecordedRun:
    """How a seed says it was trained, validated: enough to retrain any of its jobs."""

    settings: TrainSettings
    engine: Engine
    engine_version: int
    device: str
    dry_run: bool
    #: The kernel that trained it (records from before kernels were recorded: ``torch``).
    kernel: str = "torch"
    #: The code that trained it (``None``: a record from before the code was recorded).
    code: CodeDigest | None = None


def recorded_run(record: SeedRecord, path: Path) -> RecordedRun:
    """Parse and validate the seed's ``config`` (the cache key's dict).

    Invalid values (``lr: NaN``, ``epochs: -5``, an unknown engine) are input
    errors; the top-level recipe fields must say what ``config`` says.
    """
    cfg = dict(record.config)

    def need(key: str) -> Any:
        if key not in cfg:
            raise ArtifactError(path, f"config is missing '{key}'")
        return cfg[key]

    def integer(key: str, minimum: int, maximum: int = MAX_CONFIG_INT) -> int:
        value = need(key)
        if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
            raise ArtifactError(
                path, f"config.{key} must be an integer in [{minimum}, {maximum}], got {value!r}"
            )
        return value

    def number(key: str, *, positive: bool) -> float:
        value = need(key)
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or value < 0 or (positive and value == 0):
            what = "a finite number > 0" if positive else "a finite number >= 0"
            raise ArtifactError(path, f"config.{key} must be {what}, got {value!r}")
        return float(value)

    model = need("model")
    if not isinstance(model, dict) or set(model) != _MODEL_FIELDS:
        raise ArtifactError(path, f"config.model must have fields {sorted(_MODEL_FIELDS)}")
    for key, limit in (
        ("hidden", 1 << 16),
        ("depth", 64),
        ("n_features", 1 << 10),
        ("num_codecs", 1 << 10),
    ):
        value = model.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= limit:
            raise ArtifactError(
                path, f"config.model.{key} must be an integer in [1, {limit}], got {value!r}"
            )
    try:
        mlp = MLPConfig(**model)
    except (TypeError, ValueError) as exc:
        raise ArtifactError(path, f"config.model is not a valid network: {exc}") from None
    preset_norm = cfg.get("preset_norm", LEGACY_PRESET_NORM)
    if preset_norm not in PRESET_NORM_MODES:
        raise ArtifactError(
            path, f"config.preset_norm {preset_norm!r} is not one of {', '.join(PRESET_NORM_MODES)}"
        )
    sweep = cfg.get("sweep")  # absent: a record from before it was recorded
    if sweep is not None and not is_sweep_digest(sweep):
        raise ArtifactError(
            path,
            f"config.sweep must be a sweep record's sha256 ({SWEEP_DIGEST_HEX} lowercase hex "
            f"digits) or null, got {sweep!r}",
        )
    settings = TrainSettings(
        epochs=integer("epochs", 1),
        batch_size=integer("batch_size", 1),
        lr=number("lr", positive=True),
        weight_decay=number("weight_decay", positive=False),
        model=mlp,
        preset_norm=preset_norm,
        sweep=sweep,
    )
    engine = need("engine")
    if engine not in ENGINES:
        raise ArtifactError(path, f"config.engine {engine!r} is not one of {', '.join(ENGINES)}")
    device = need("device")
    if device not in ("cpu", "cuda"):
        raise ArtifactError(path, f"config.device {device!r} is not cpu or cuda")
    dry_run = need("dry_run")
    if not isinstance(dry_run, bool):
        raise ArtifactError(path, f"config.dry_run must be true or false, got {dry_run!r}")
    kernel = cfg.get("kernel", "torch")
    if kernel not in KERNELS:
        raise ArtifactError(path, f"config.kernel {kernel!r} is not one of {', '.join(KERNELS)}")
    code = None
    if "code" in cfg:
        try:
            code = CodeDigest.from_json(cfg["code"])
        except ValueError as exc:
            raise ArtifactError(path, f"config.code {exc}") from None
    return RecordedRun(
        settings, engine, integer("engine_version", 0), device, dry_run, kernel, code
    )


def is_dry_run(record: SeedRecord, run: RecordedRun | None) -> bool:
    """A dry run by any account: its note, its configuration or its argv."""
    return (
        record.note == DRY_RUN_NOTE
        or "--dry-run" in record.argv
        or (run is not None and run.dry_run)
        or (run is None and record.epochs == DRY_RUN_EPOCHS)
    )


def _consistency(record: SeedRecord, run: RecordedRun, file_seed: int) -> list[str]:
    """Where the record's own fields disagree with the configuration it claims."""
    problems = []
    cfg = record.config
    recipe = run.settings.recipe()
    for key, value in recipe.items():
        if getattr(record, key) != value:
            problems.append(f"records {key} {getattr(record, key)!r} but its config says {value!r}")
    for key, value in (
        ("seed", record.seed),
        ("corpus_sha256", record.corpus_sha256),
        ("engine", record.engine),
        ("device", record.device),
        ("encoder_vocab_version", record.encoder_vocab_version),
    ):
        if cfg.get(key) != value:
            problems.append(f"records {key} {value!r} but its config says {cfg.get(key)!r}")
    if record.seed != file_seed:
        problems.append(f"is loso_seed{file_seed}.json but records seed {record.seed}")
    if cfg.get("torch") != record.versions.get("torch") or cfg.get("frreg") != record.versions.get(
        "frreg"
    ):
        problems.append("its config and its versions disagree on the frreg/torch versions")
    if run.engine != "batched" and run.kernel != "torch":
        problems.append(f"its config names the {run.kernel} kernel for the {run.engine} engine")
    if run.engine_version != engine_version(run.engine):
        problems.append(
            f"was trained by {run.engine} engine version {run.engine_version}; this frreg's is "
            f"{engine_version(run.engine)}, so its numbers cannot be reproduced here"
        )
    return problems


# --------------------------------------------------------------------------
# Predictions and folds
# --------------------------------------------------------------------------


def corpus_keys(corpus: Corpus) -> dict[tuple[str, ...], int]:
    """Row index of every corpus row, keyed as the predictions file spells it."""
    return {tuple(str(v) for v in key): i for i, key in enumerate(corpus.row_keys())}


@dataclass
class CorpusFolds:
    """What every seed's recomputation derives from the corpus alone, derived once and
    shared by all of them (:func:`corpus_folds`): the predictions file's row keys, the
    LOSO folds' held-out rows, and each fold's scaled model inputs (the stored models'
    inputs: the same for every seed of one ``preset_norm`` convention)."""

    corpus: Corpus
    keys: Mapping[tuple[str, ...], int]
    #: ``(held-out source, test_idx)`` per fold, in fold order.
    test_indices: list[tuple[str, np.ndarray]]
    _inputs: dict[tuple[str, str], np.ndarray] = field(default_factory=dict, repr=False)

    def jobs(self, seed: int) -> list[FoldJob]:
        """One LOSO job per fold for ``seed``, in fold order."""
        n_rows = self.corpus.n_rows
        return [FoldJob(seed, src, None, te, n_rows=n_rows) for src, te in self.test_indices]

    def inputs(self, job: FoldJob, preset_norm: str) -> np.ndarray:
        """:func:`~frreg.training.settings.fold_inputs` of ``job``'s held-out rows."""
        key = (preset_norm, job.held_out)
        x = self._inputs.get(key)
        if x is None:
            codec = self.corpus.codec_for(preset_norm)
            x = fold_inputs(self.corpus.features, codec, job.train_idx, job.test_idx)
            self._inputs[key] = x
        return x


def corpus_folds(corpus: Corpus, keys: Mapping[tuple[str, ...], int] | None = None) -> CorpusFolds:
    """The corpus-only part of a recomputation (see :class:`CorpusFolds`)."""
    return CorpusFolds(
        corpus,
        corpus_keys(corpus) if keys is None else keys,
        [(str(src), te) for src, te in LeaveOneSourceOut().test_indices(corpus.groups)],
    )


def held_out_predictions(
    loso_dir: str | Path, corpus: Corpus, seeds: Sequence[int]
) -> dict[int, np.ndarray]:
    """Each present seed's held-out predictions, hashed and checked against ``corpus`` as a
    verdict reads them (the stored models are not re-run); seeds whose file is unusable
    are left out."""
    shared = corpus_folds(corpus)
    found = {
        seed: recompute(art, corpus, rerun=False, shared=shared).predictions
        for seed, art in load_loso_dir(loso_dir, seeds).items()
    }
    return {seed: p for seed, p in found.items() if p is not None}


def read_predictions(
    path: Path, corpus: Corpus, keys: Mapping[tuple[str, ...], int]
) -> tuple[np.ndarray | None, list[str]]:
    """The held-out prediction of every corpus row, or the problems that prevent it."""
    fast = _read_predictions_fast(path, corpus, keys)
    if fast is not None:
        return fast, []
    # Something is off (or the file is unusually large): row by row, naming each problem.
    pred = np.full(corpus.n_rows, np.nan)
    seen = np.zeros(corpus.n_rows, dtype=bool)
    problems: list[str] = []
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header != list(PREDICTIONS_HEADER):
                return None, [f"{path.name}: header {header} is not {list(PREDICTIONS_HEADER)}"]
            for lineno, row in enumerate(reader, start=2):
                problem = _prediction_row(row, corpus, keys, pred, seen)
                if problem:
                    problems.append(f"{path.name}:{lineno}: {problem}")
                    if len(problems) >= 3:
                        break
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        return None, [f"{path.name}: unreadable ({exc})"]
    if not problems and not seen.all():
        missing = int((~seen).sum())
        problems.append(f"{path.name}: {missing} corpus rows have no held-out prediction")
    return (None, problems) if problems else (pred, [])


#: A predictions row is well under this many bytes; a larger file is read row by row, so
#: that a huge file costs at most the three problems :func:`read_predictions` reports.
_FAST_BYTES_PER_ROW: Final = 1024
_PREDICTIONS_HEADER_LINE: Final = ",".join(PREDICTIONS_HEADER)


def _read_predictions_fast(
    path: Path, corpus: Corpus, keys: Mapping[tuple[str, ...], int]
) -> np.ndarray | None:
    """:func:`read_predictions` of a well-formed file, a column at a time: the predictions
    exactly as the row-by-row reader finds them, or ``None`` for that reader to name
    what is wrong. It accepts exactly the files that reader finds no problem in: the
    header, every corpus row once (so as many rows as the corpus has), each under its
    own source's fold, with the corpus's own ``vmaf`` and a finite prediction, both
    parsed by ``float``.

    It splits lines at ``\n`` and fields at ``,``, which is what the ``csv`` module
    does for text without quotes, ``\r``, NUL or a field over its size limit; any
    of those goes row by row. (Four times cheaper than the row-by-row reader's
    lists per row on the 33,840-row corpus, mostly in the garbage collector.)"""
    n_rows = corpus.n_rows
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            if os.fstat(fh.fileno()).st_size > _FAST_BYTES_PER_ROW * (n_rows + 1):
                return None
            text = fh.read()
    except (OSError, UnicodeDecodeError):
        return None
    if '"' in text or "\r" in text or "\0" in text:
        return None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the last line's newline
    if len(lines) != n_rows + 1 or lines[0] != _PREDICTIONS_HEADER_LINE:
        return None
    del lines[0]
    width = len(PREDICTIONS_HEADER)
    if set(map(str.count, lines, repeat(","))) != {width - 1}:
        return None
    if max(map(len, lines)) > csv.field_size_limit():
        return None
    fields = ",".join(lines).split(",")
    held_out, src = fields[0::width], fields[1::width]
    if held_out != src:
        return None
    found = list(map(keys.get, zip(src, *(fields[k::width] for k in (2, 3, 4)), strict=True)))
    if None in found:
        return None
    index = np.fromiter(found, dtype=np.intp, count=n_rows)
    seen = np.zeros(n_rows, dtype=bool)
    seen[index] = True
    if not seen.all():  # n_rows rows, so a row missing means another appears twice
        return None
    try:
        y = np.fromiter(map(float, fields[5::width]), dtype=np.float64, count=n_rows)
        p = np.fromiter(map(float, fields[6::width]), dtype=np.float64, count=n_rows)
    except ValueError:
        return None
    if (y != corpus.target[index]).any() or not np.isfinite(p).all():
        return None
    pred = np.full(n_rows, np.nan)
    pred[index] = p
    return pred


def _prediction_row(
    row: Sequence[str],
    corpus: Corpus,
    keys: Mapping[tuple[str, ...], int],
    pred: np.ndarray,
    seen: np.ndarray,
) -> str | None:
    if len(row) != len(PREDICTIONS_HEADER):
        return f"expected {len(PREDICTIONS_HEADER)} fields, got {len(row)}"
    held_out, *key, vmaf, value = row
    index = keys.get(tuple(key))
    if index is None:
        return f"row {'/'.join(key)} is not in the corpus"
    if seen[index]:
        return f"row {'/'.join(key)} appears twice"
    if held_out != key[0]:
        return f"row of source {key[0]!r} is filed under fold {held_out!r}"
    try:
        y, p = float(vmaf), float(value)
    except ValueError:
        return f"non-numeric vmaf or pred ({vmaf!r}, {value!r})"
    if y != corpus.target[index]:
        return f"vmaf {y!r} is not the corpus's {corpus.target[index]!r}"
    if not math.isfinite(p):
        return f"prediction {value!r} is not finite"
    pred[index] = p
    seen[index] = True
    return None


def fold_structure_problems(record: SeedRecord, corpus: Corpus) -> list[str]:
    """How a record's folds differ from the corpus's LOSO split: which sources are held
    out, in which order, and each fold's train and held-out sizes (metrics aside)."""
    expected = [
        (str(src), corpus.n_rows - len(te), len(te))
        for src, te in LeaveOneSourceOut().test_indices(corpus.groups)
    ]
    got = [(f.held_out, f.n_train, f.n_val) for f in record.folds]
    if [g[0] for g in got] != [e[0] for e in expected]:
        return [
            f"records folds {[g[0] for g in got]}; the corpus's LOSO folds are "
            f"{[e[0] for e in expected]}"
        ]
    return [
        f"fold {g[0]}: records n_train/n_val {g[1]}/{g[2]}, the corpus gives {e[1]}/{e[2]}"
        for g, e in zip(got, expected, strict=True)
        if g != e
    ]


def _fold_problems(record: SeedRecord, expected: Sequence[FoldRecord], corpus: Corpus) -> list[str]:
    problems = []
    if list(record.sources) != list(corpus.sources):
        problems.append(
            f"records sources {list(record.sources)}, the corpus has {list(corpus.sources)}"
        )
    if record.n_rows != corpus.n_rows:
        problems.append(f"records n_rows {record.n_rows}, the corpus has {corpus.n_rows}")
    got = [f.held_out for f in record.folds]
    want = [f.held_out for f in expected]
    if got != want:
        problems.append(f"records folds {got}; the corpus's LOSO folds are {want}")
        return problems
    for mine, truth in zip(record.folds, expected, strict=True):
        for key in ("n_train", "n_val"):
            a, b = getattr(mine, key), getattr(truth, key)
            if a != b:
                problems.append(f"fold {mine.held_out}: records {key} {a!r}, recomputed {b!r}")
        for metric in FOLD_METRICS:
            a, b = mine.metrics.get(metric.name), truth.metrics.get(metric.name)
            same = a == b or (
                isinstance(a, float)
                and isinstance(b, float)
                and (abs(a - b) <= metric.atol or (math.isnan(a) and math.isnan(b)))
            )
            if not same:
                problems.append(
                    f"fold {mine.held_out}: records {metric.name} {a!r}, recomputed {b!r}"
                )
    return problems


# --------------------------------------------------------------------------
# One seed
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedEvidence:
    """A seed artifact judged against the corpus: the recomputed record and what disagreed."""

    artifact: SeedArtifact
    recomputed: SeedRecord | None
    problems: tuple[str, ...]
    run: RecordedRun | None
    predictions: np.ndarray | None  # per corpus row, when the file was usable
    predictions_sha256: str | None
    weights_sha256: str | None
    #: sha256 of what the files hold, not of their bytes: the predictions in corpus row
    #: order, the fold models' layers by held-out source (``None``: unreadable). A clone
    #: with its CSV rows shuffled or its npz recompressed has the same content digest.
    predictions_content: str | None = None
    weights_content: str | None = None

    @property
    def seed(self) -> int:
        return self.artifact.file_seed

    @property
    def verified(self) -> bool:
        return self.recomputed is not None and not self.problems


def _sibling(art: SeedArtifact, name: str) -> Path:
    return art.path.parent / name


def _hashed(art: SeedArtifact, what: str, ref: Any) -> tuple[Path | None, str | None, str | None]:
    """``(path, sha256, problem)`` of a file the seed names."""
    if ref is None:
        return None, None, f"records no {what} file, so its numbers cannot be recomputed"
    path = _sibling(art, ref.file)
    if not path.is_file():
        return None, None, f"{what} file {ref.file} is missing"
    digest = sha256_file(path)
    if digest != ref.sha256:
        return None, digest, f"{what} file {ref.file} does not match the sha256 the seed recorded"
    return path, digest, None


def recompute(
    art: SeedArtifact,
    corpus: Corpus,
    *,
    keys: Mapping[tuple[str, ...], int] | None = None,
    rerun: bool = True,
    shared: CorpusFolds | None = None,
) -> SeedEvidence:
    """Judge one seed artifact against ``corpus`` (see the module docstring).

    ``shared`` (:func:`corpus_folds` of ``corpus``) is what every seed derives from the
    corpus alone: give one to recompute several seeds of one corpus (``keys``, its row
    keys, is taken from it)."""
    record = art.record
    problems: list[str] = []
    run = recorded_run(record, art.path)
    problems += _consistency(record, run, art.file_seed)
    if is_dry_run(record, run):
        problems.append(f"is a {DRY_RUN_NOTE} ({run.settings.epochs} epoch)")

    def done(
        recomputed: SeedRecord | None,
        pred: np.ndarray | None = None,
        pred_sha: str | None = None,
        weights_sha: str | None = None,
        weights_content: str | None = None,
    ) -> SeedEvidence:
        return SeedEvidence(
            art,
            recomputed,
            tuple(problems),
            run,
            pred,
            pred_sha,
            weights_sha,
            None if pred is None else array_digest([pred]),
            weights_content,
        )

    if record.corpus_sha256 != corpus.sha256:
        problems.append(
            f"was trained on corpus {record.corpus_sha256[:12]}…, not {corpus.sha256[:12]}…"
        )
        return done(None)
    pred_path, pred_sha, problem = _hashed(art, "predictions", record.predictions)
    if problem or pred_path is None:
        problems.append(problem or "predictions missing")
        return done(None, pred_sha=pred_sha)
    if shared is None or shared.corpus is not corpus:
        shared = corpus_folds(corpus, keys or None)
    pred, pred_problems = read_predictions(pred_path, corpus, shared.keys)
    problems += pred_problems
    if pred is None:
        return done(None, pred_sha=pred_sha)

    jobs = shared.jobs(art.file_seed)
    folds = [fold_record(job, corpus.target, pred[job.test_idx]) for job in jobs]
    problems += _fold_problems(record, folds, corpus)
    recomputed = record.with_folds(folds, sources=corpus.sources, n_rows=corpus.n_rows)

    weights_path, weights_sha, problem = _hashed(art, "weights", record.weights)
    weights_content = None
    if problem or weights_path is None:
        problems.append(problem or "weights missing")
    elif rerun:
        rerun_problems, weights_content = _rerun(weights_path, jobs, shared, pred, run.settings)
        problems += rerun_problems
    return done(recomputed, pred, pred_sha, weights_sha, weights_content)


def array_digest(arrays: Iterable[np.ndarray]) -> str:
    """sha256 of the arrays' dtypes, shapes and values, in order: what a file holds, not
    how it was written."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _rerun(
    path: Path,
    jobs: Sequence[FoldJob],
    shared: CorpusFolds,
    pred: np.ndarray,
    settings: TrainSettings,
) -> tuple[list[str], str | None]:
    """Re-run every stored fold model on its held-out rows; name the folds that differ.
    Also the weights' content digest (:func:`array_digest` by held-out source)."""
    from frreg.training.weights import check_shapes, predict, read_weights

    shapes = list(settings.model.layer_shapes)
    try:
        weights = read_weights(path, len(shapes))
        check_shapes(path, weights, shapes)
    except ArtifactError as exc:
        return [f"weights: {exc.problem}"], None
    content = array_digest(
        a
        for held_out in sorted(weights)
        for a in (np.frombuffer(held_out.encode(), np.uint8), *weights[held_out])
    )
    problems = []
    with _single_threaded_torch():
        for job in jobs:
            layers = weights.get(job.held_out)
            if layers is None:
                problems.append(f"weights file has no model for fold {job.held_out}")
                continue
            x = shared.inputs(job, settings.preset_norm)
            diff = float(np.max(np.abs(predict(layers, x) - pred[job.test_idx]), initial=0.0))
            if not diff <= RERUN_ATOL:
                problems.append(
                    f"fold {job.held_out}: its stored model predicts up to {diff:.3g} away from "
                    f"the predictions file (tolerance {RERUN_ATOL})"
                )
    return problems, content


@contextlib.contextmanager
def _single_threaded_torch() -> Iterator[None]:
    """Torch's intra-op thread count at 1 for the duration (restored after), as the
    batched trainer runs its models. A stored model is a few small matrix products:
    OpenMP's barriers cost more than a second thread saves, and on a loaded machine
    far more (re-running a seed's 9 models on 2 cores at load 4: 0.49 s with 2
    threads, 8.5 ms with 1). The outputs are the same bits either way (measured), and
    :data:`RERUN_ATOL` is far above any rounding."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def duplicate_problems(evidence: Sequence[SeedEvidence]) -> list[str]:
    """Seeds whose predictions or weights hold the same numbers (compared by content, so
    shuffled CSV rows or a recompressed npz are still one run filed as several seeds)."""
    problems = []
    for label, attr in (("predictions", "predictions_content"), ("weights", "weights_content")):
        by_digest: dict[str, list[int]] = {}
        for ev in evidence:
            digest = getattr(ev, attr)
            if digest is not None:
                by_digest.setdefault(digest, []).append(ev.seed)
        for seeds in by_digest.values():
            if len(seeds) > 1:
                problems.append(
                    f"seeds {', '.join(map(str, seeds))} have identical {label} (the same "
                    "numbers: one run filed as several seeds)"
                )
    return problems


# --------------------------------------------------------------------------
# Audit by retraining
# --------------------------------------------------------------------------


def _device_available(device: str) -> bool:
    if device == "cpu":
        return True
    import torch

    return bool(torch.cuda.is_available())


def _unavailable(run: RecordedRun) -> str | None:
    """What a recorded run needs that this machine lacks (``None``: it can be retrained)."""
    if not _device_available(run.device):
        return f"recorded device {run.device}"
    if run.engine != "batched" and run.kernel != "torch":
        return f"a {run.kernel} kernel for the {run.engine} engine (which has only torch's)"
    if run.kernel == "native":
        from frreg.training.batched import native_module

        if native_module() is None:
            return "the native kernel that trained it (not built in this install)"
    return None


@dataclass(frozen=True)
class AuditResult:
    """One retrained (seed, fold) job and how its predictions compare."""

    seed: int
    held_out: str
    passed: bool
    max_abs_diff: float | None
    tolerance: float
    message: str

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "held_out": self.held_out,
            "passed": self.passed,
            "max_abs_diff": self.max_abs_diff,
            "tolerance": self.tolerance,
            "message": self.message,
        }


def audit_key(evidence: Sequence[SeedEvidence], corpus: Corpus) -> str:
    """What a partial audit's selection is drawn from: the corpus and every seed's
    content (predictions and weights as numbers) and recipe. The same artifacts give
    the same selection on every run, so re-running does not re-roll it; changing any
    number of any seed draws anew (and the failures remembered for the old content
    stay with it, see :mod:`frreg.gate.audit_log`)."""
    h = hashlib.sha256(corpus.sha256.encode())
    for ev in sorted(evidence, key=lambda e: e.seed):
        h.update(
            repr(
                (ev.seed, ev.predictions_content, ev.weights_content, ev.run and repr(ev.run))
            ).encode()
        )
    return h.hexdigest()


def audit_candidates(
    evidence: Sequence[SeedEvidence], corpus: Corpus, exempt: Iterable[int] = ()
) -> list[tuple[SeedEvidence, str]]:
    """Every (seed, fold) job an audit may retrain, in (seed, source) order: the seeds
    whose predictions were readable, less ``exempt`` (seeds a gate session trained
    itself in this run and whose files are still what it wrote)."""
    skip = set(exempt)
    return [
        (ev, src)
        for ev in sorted(evidence, key=lambda e: e.seed)
        if ev.predictions is not None and ev.run and ev.seed not in skip
        for src in corpus.sources
    ]


def audit_selection(
    evidence: Sequence[SeedEvidence],
    corpus: Corpus,
    jobs: AuditRequest,
    *,
    exempt: Iterable[int] = (),
    rng: random.Random | None = None,
) -> list[tuple[SeedEvidence, str]]:
    """The jobs an audit of ``jobs`` retrains: all of them, or the first ``jobs`` of a
    permutation seeded by :func:`audit_key` (``rng``: tests only). A larger count
    extends a smaller one's selection, never replaces it."""
    candidates = audit_candidates(evidence, corpus, exempt)
    if jobs == AUDIT_ALL:
        return candidates
    if jobs <= 0 or not candidates:
        return []
    chooser = rng or random.Random(int(audit_key(evidence, corpus), 16))
    order = list(candidates)
    chooser.shuffle(order)
    chosen = order[:jobs]
    return sorted(chosen, key=lambda c: (c[0].seed, c[1]))


def detection_probability(n_jobs: int, n_audited: int, n_forged: int = 1) -> float:
    """Probability that auditing ``n_audited`` of ``n_jobs`` jobs, drawn uniformly, hits
    at least one of ``n_forged`` forged ones (hypergeometric)."""
    if n_forged <= 0 or n_jobs <= 0:
        return 0.0
    n_audited = min(n_audited, n_jobs)
    if n_audited > n_jobs - n_forged:
        return 1.0
    return 1.0 - math.comb(n_jobs - n_forged, n_audited) / math.comb(n_jobs, n_audited)


def _audit_tolerance(run: RecordedRun) -> float:
    """How far a retrained job may differ: exact on the CPU, :data:`CUDA_AUDIT_ATOL` on CUDA."""
    return 0.0 if run.device == "cpu" else CUDA_AUDIT_ATOL


def retrain(
    chosen: Sequence[tuple[SeedEvidence, str]],
    corpus: Corpus,
    *,
    progress: Progress | None = None,
) -> list[AuditResult]:
    """Retrain each (seed, fold) job in ``chosen`` with its seed's recorded recipe and
    compare the predictions with the recorded ones (exactly on the CPU). Jobs of one
    recipe train together, as frreg-train trains them: a job's numbers depend only on
    its own inputs."""
    from frreg.training.loso import train_jobs

    folds = dict(LeaveOneSourceOut().test_indices(corpus.groups))
    results: dict[tuple[int, str], AuditResult] = {}
    groups: dict[str, list[tuple[SeedEvidence, str]]] = {}
    for ev, src in chosen:
        assert ev.run is not None
        tol = _audit_tolerance(ev.run)
        missing = _unavailable(ev.run)
        if missing is not None:
            message = (
                f"audit seed {ev.seed} fold {src}: {missing} is not available here, so the job "
                "cannot be retrained"
            )
            results[ev.seed, src] = AuditResult(ev.seed, src, False, None, tol, message)
            continue
        groups.setdefault(repr(ev.run), []).append((ev, src))
    done = 0
    for members in groups.values():
        run = members[0][0].run
        assert run is not None
        batch = [
            FoldJob(ev.seed, src, None, folds[src], n_rows=corpus.n_rows) for ev, src in members
        ]

        def tick(k: int, n: int, base: int = done, size: int = len(batch)) -> None:
            # train_jobs reports epochs (batched) or jobs (reference): scaled to jobs.
            if progress is not None and n > 0:
                progress(base + size * k // n, len(chosen))

        trained = train_jobs(
            corpus,
            batch,
            run.settings,
            engine=run.engine,
            device=run.device,
            kernel=run.kernel,
            progress=tick,
        )
        done += len(batch)
        for (ev, src), fit in zip(members, trained, strict=True):
            assert ev.predictions is not None
            tol = _audit_tolerance(run)
            diff = float(np.max(np.abs(fit.predictions - ev.predictions[folds[src]]), initial=0.0))
            passed = diff <= tol
            message = (
                f"audit seed {ev.seed} fold {src}: retrained, predictions "
                + ("identical" if diff == 0 else f"differ by up to {diff:.3g}")
                + ("" if passed else f" (tolerance {tol}): not what this recipe trains")
            )
            results[ev.seed, src] = AuditResult(ev.seed, src, passed, diff, tol, message)
    return [results[k] for k in sorted(results)]
