"""Option definitions shared by the CLIs and the pytest plugin.

Each option is declared once, as an :class:`Option`, and added to a parser by
:func:`add_options` with whatever ``add`` callable the caller has
(``ArgumentParser.add_argument`` or pytest's ``OptionGroup.addoption``) and a
prefix (``""`` for the CLIs, ``"frreg-"`` for the plugin). Types and defaults
therefore cannot drift between ``frreg-train --epochs`` and
``pytest --frreg-epochs``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from frreg.schema import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CORPUS,
    DEFAULT_EPOCHS,
    DEFAULT_LR,
    DEFAULT_OUT_DIR,
    DEFAULT_SEEDS,
    DEFAULT_WEIGHT_DECAY,
    DEMO_CQS,
    DEMO_ENCODERS,
    ENCODER_VOCAB,
    ENSEMBLE_SEEDS,
    MEAN_PLCC_MIN,
    NUM_CODECS,
    PER_SEED_PLCC_MIN,
    PLCC_SPREAD_MAX,
    UNKNOWN_ENCODER,
)

# --------------------------------------------------------------------------
# argparse ``type=`` callables. Each raises ArgumentTypeError quoting the value.
# --------------------------------------------------------------------------


def seed_list(text: str) -> tuple[int, ...]:
    """Parse ``"0,1,2"`` into ``(0, 1, 2)``: non-negative integers, no repeats."""
    parts = [p.strip() for p in str(text).split(",")]
    if not text or any(p == "" for p in parts):
        raise argparse.ArgumentTypeError(
            f"invalid seed list {text!r}: "
            "expected comma-separated non-negative integers, e.g. 0,1,2"
        )
    seeds = []
    for part in parts:
        if not part.isdigit():
            raise argparse.ArgumentTypeError(
                f"invalid seed list {text!r}: {part!r} is not a non-negative integer"
            )
        seeds.append(int(part))
    dupes = sorted({s for s in seeds if seeds.count(s) > 1})
    if dupes:
        raise argparse.ArgumentTypeError(
            f"invalid seed list {text!r}: seed {dupes[0]} is listed twice"
        )
    return tuple(seeds)


def encoder_list(text: str) -> tuple[str, ...]:
    """Parse ``"libx264,libx265"``: encoders of the vocabulary, no repeats."""
    names = [p.strip() for p in str(text).split(",")]
    allowed = [e for e in ENCODER_VOCAB if e != UNKNOWN_ENCODER]
    for name in names:
        if name not in allowed:
            raise argparse.ArgumentTypeError(
                f"invalid encoder {name!r} in {text!r}: choose from {', '.join(allowed)}"
            )
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(
            f"invalid encoder list {text!r}: an encoder is listed twice"
        )
    return tuple(names)


def cq_list(text: str) -> tuple[int, ...]:
    """Parse ``"22,30,38"``: non-negative integer quality settings, no repeats."""
    parts = [p.strip() for p in str(text).split(",")]
    if not all(p.isdigit() for p in parts):
        raise argparse.ArgumentTypeError(
            f"invalid cq list {text!r}: expected comma-separated non-negative integers, e.g. 22,30,38"
        )
    values = tuple(int(p) for p in parts)
    if len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"invalid cq list {text!r}: a value is listed twice")
    return values


def positive_int(text: str) -> int:
    """An integer >= 1."""
    try:
        value = int(str(text), 10)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid value {text!r}: expected an integer >= 1"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected an integer >= 1")
    return value


def _finite_float(text: str, what: str) -> float:
    try:
        value = float(str(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected {what}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected {what}")
    return value


def positive_float(text: str) -> float:
    """A finite float > 0."""
    value = _finite_float(text, "a finite number > 0")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected a finite number > 0")
    return value


def nonnegative_float(text: str) -> float:
    """A finite float >= 0."""
    value = _finite_float(text, "a finite number >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected a finite number >= 0")
    return value


def correlation(text: str) -> float:
    """A correlation threshold in [-1, 1]."""
    value = _finite_float(text, "a number in [-1, 1]")
    if not -1.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected a number in [-1, 1]")
    return value


# --------------------------------------------------------------------------
# Declarations
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """One option, declared once for every parser that offers it."""

    name: str
    dest: str
    help: str
    default: Any = None
    type: Callable[[str], Any] | None = None
    metavar: str | None = None
    action: str | None = None
    choices: tuple[str, ...] | None = None
    #: How the help text shows the default, when ``str(default)`` would not read well.
    shown_default: str | None = None

    def flag(self, prefix: str = "") -> str:
        return f"--{prefix}{self.name}"

    def kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"dest": self.dest, "default": self.default}
        if self.action:
            kw["action"] = self.action
            kw["help"] = self.help
            return kw
        if self.shown_default is not None:
            shown = self.shown_default
        elif isinstance(self.default, tuple):
            shown = ",".join(str(v) for v in self.default)
        else:
            shown = self.default
        kw["help"] = f"{self.help} (default: {shown})"
        if self.type is not None:
            kw["type"] = self.type
        if self.metavar:
            kw["metavar"] = self.metavar
        if self.choices:
            kw["choices"] = self.choices
        return kw


SEEDS = Option(
    "seeds",
    "seeds",
    "comma-separated training seeds, one model per seed and fold",
    default=DEFAULT_SEEDS,
    type=seed_list,
    metavar="N[,N...]",
)
EPOCHS = Option("epochs", "epochs", "training epochs per fold", DEFAULT_EPOCHS, positive_int, "N")
BATCH_SIZE = Option(
    "batch-size", "batch_size", "minibatch size", DEFAULT_BATCH_SIZE, positive_int, "N"
)
LR = Option("lr", "lr", "Adam learning rate", DEFAULT_LR, positive_float, "LR")
WEIGHT_DECAY = Option(
    "weight-decay",
    "weight_decay",
    "Adam weight decay (L2)",
    DEFAULT_WEIGHT_DECAY,
    nonnegative_float,
    "WD",
)
NUM_CODECS_OPT = Option(
    "num-codecs",
    "num_codecs",
    "width of the codec block (encoder one-hot + preset_norm + crf_norm); only "
    f"{NUM_CODECS} is supported by encoder vocabulary v2",
    NUM_CODECS,
    positive_int,
    "N",
)

#: The training settings shared by ``frreg-train`` and ``pytest --frreg-*``.
TRAINING_OPTIONS = (EPOCHS, BATCH_SIZE, LR, WEIGHT_DECAY, NUM_CODECS_OPT)

CORPUS = Option(
    "corpus", "corpus", "Phase A per-frame corpus (JSONL)", DEFAULT_CORPUS, None, "PATH"
)
OUT_DIR = Option(
    "out-dir",
    "out_dir",
    "directory for loso_seed{N}.json and predictions",
    DEFAULT_OUT_DIR,
    None,
    "DIR",
)

GATE_SEEDS = Option(
    "seeds", "seeds", "seeds the ensemble must contain", ENSEMBLE_SEEDS, seed_list, "N[,N...]"
)
MEAN_PLCC = Option(
    "mean-plcc-threshold",
    "mean_plcc_threshold",
    "minimum mean over seeds of the per-seed mean PLCC",
    MEAN_PLCC_MIN,
    correlation,
    "X",
)
SPREAD = Option(
    "plcc-spread-max",
    "plcc_spread_max",
    "maximum max-min spread of per-seed mean PLCC",
    PLCC_SPREAD_MAX,
    nonnegative_float,
    "X",
)
PER_SEED = Option(
    "per-seed-min",
    "per_seed_min",
    "minimum mean PLCC of every seed",
    PER_SEED_PLCC_MIN,
    correlation,
    "X",
)

FOLD_MIN = Option(
    "fold-min",
    "fold_min",
    "also fail any fold whose held-out PLCC is below this",
    None,
    correlation,
    "X",
    shown_default="off",
)


#: Gate thresholds shared by ``frreg-gate``, ``frreg-validate`` and the plugin.
THRESHOLD_OPTIONS = (MEAN_PLCC, SPREAD, PER_SEED, FOLD_MIN)

ENGINES = ("batched", "reference")
ENGINE = Option(
    "engine",
    "engine",
    "batched: every fold and seed in one batched run (fast); reference: the "
    "straightforward per-fold DataLoader loop, for cross-checking",
    "batched",
    choices=ENGINES,
)
DEVICE = Option(
    "device", "device", "torch device; cuda only when available", "cpu", choices=("cpu", "cuda")
)

# Options only the pytest plugin has (prefixed --frreg-, ini frreg_<dest>).
GATE_CORPUS = Option(
    "corpus",
    "corpus",
    "Phase A corpus (JSONL); turns the gate on; produced from --frreg-sources if missing",
    None,
    metavar="PATH",
    shown_default="off",
)
GATE_SOURCES = Option(
    "sources",
    "sources",
    "source manifest (TOML or JSON) used to produce a missing corpus",
    None,
    metavar="MANIFEST",
    shown_default="the built-in source set",
)
GATE_ENCODERS = Option(
    "encoders",
    "encoders",
    "encoders used to produce a missing corpus",
    None,
    encoder_list,
    "E[,E...]",
    shown_default=f"the manifest's, else {','.join(DEMO_ENCODERS)}",
)
GATE_CQS = Option(
    "cqs",
    "cqs",
    "quality grid used to produce a missing corpus",
    None,
    cq_list,
    "N[,N...]",
    shown_default=f"the manifest's, else {','.join(map(str, DEMO_CQS))}",
)
GATE_OUT_DIR = Option(
    "out-dir",
    "out_dir",
    "where loso_seed{N}.json, the verdict and the report land",
    "runs/frreg-gate",
    metavar="DIR",
)
GATE_CACHE_DIR = Option(
    "cache-dir",
    "cache_dir",
    "trained-seed cache shared by xdist workers and concurrent sessions",
    "runs/frreg-cache",
    metavar="DIR",
)
#: Every ``--frreg-*`` option, in help order.
PLUGIN_OPTIONS = (
    GATE_CORPUS,
    GATE_SOURCES,
    GATE_ENCODERS,
    GATE_CQS,
    SEEDS,
    *TRAINING_OPTIONS,
    ENGINE,
    DEVICE,
    GATE_OUT_DIR,
    GATE_CACHE_DIR,
    *THRESHOLD_OPTIONS,
)


def add_options(add: Callable[..., Any], options: tuple[Option, ...], prefix: str = "") -> None:
    """Add ``options`` through ``add`` (``add_argument`` or ``addoption``) with a flag prefix."""
    for opt in options:
        add(opt.flag(prefix), **opt.kwargs())


class StrictParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that refuses abbreviated long options.

    argparse's default lets ``--out`` silently bind ``--out-dir``; that is how
    a caller can drift from a CLI without anyone noticing. Every frreg parser
    is built from this class so callers must spell flags out in full.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
