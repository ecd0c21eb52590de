"""The training stage's options: ``frreg-train``'s, also offered by the plugin.

Declared once here (see :mod:`frreg.options` for how); resolved once in
:func:`frreg.settings.train_settings`. Light: no torch or numpy, as
``pytest --help`` reads it.
"""

from __future__ import annotations

import argparse

from frreg.options import (
    Option,
    dropout_rate,
    nonnegative_float,
    positive_float,
    positive_int,
    seed_list,
)
from frreg.schema import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CORPUS,
    DEFAULT_EPOCHS,
    DEFAULT_LR,
    DEFAULT_OUT_DIR,
    DEFAULT_PRESET_NORM,
    DEFAULT_SEEDS,
    DEFAULT_WEIGHT_DECAY,
    DROPOUT,
    HIDDEN_WIDTH,
    NUM_CODECS,
    PRESET_NORM_FIXED,
    PRESET_NORM_LADDER,
    PRESET_NORM_MODES,
    SWEEP_DIGEST_HEX,
    is_sweep_digest,
)


def sweep_digest(text: str) -> str:
    """A sweep record's sha256: :data:`~frreg.schema.SWEEP_DIGEST_HEX` lowercase hex digits."""
    if not is_sweep_digest(text):
        raise argparse.ArgumentTypeError(
            f"invalid value {text!r}: expected a sweep record's sha256 "
            f"({SWEEP_DIGEST_HEX} lowercase hex digits)"
        )
    return str(text)


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

PRESET_NORM = Option(
    "preset-norm",
    "preset_norm",
    f"how the codec block's preset_norm is filled: {PRESET_NORM_FIXED} (0.5 on every row, "
    f"as the fork's trainer does; the ADR-0303 recipe) or {PRESET_NORM_LADDER} (the row's "
    "preset's position on its encoder's ladder: a preset-conditioned variant, recorded "
    "as a deviation from the ADR-0303 recipe and in every exported sidecar)",
    DEFAULT_PRESET_NORM,
    choices=PRESET_NORM_MODES,
)

HIDDEN = Option(
    "hidden",
    "hidden",
    "width of each hidden layer of the network (a change from ADR-0303's is a recorded "
    "deviation; the CPU's native kernel trains the widths its build supports, and any "
    "other is refused before training)",
    HIDDEN_WIDTH,
    positive_int,
    "N",
)
DROPOUT_OPT = Option(
    "dropout",
    "dropout",
    "dropout probability after each hidden layer, in [0, 1) (a change from ADR-0303's is "
    "a recorded deviation)",
    DROPOUT,
    dropout_rate,
    "P",
)
SWEEP = Option(
    "sweep",
    "sweep",
    "sha256 of the sweep record this recipe was chosen from: changes no number, but every "
    "seed artifact records it and the verdict lists it as a deviation from ADR-0303 (whose "
    "recipe is the trainer's defaults, chosen by no search)",
    None,
    sweep_digest,
    "DIGEST",
    shown_default="none",
)

#: The training settings shared by ``frreg-train`` and ``pytest --frreg-*``.
TRAINING_OPTIONS = (
    EPOCHS,
    BATCH_SIZE,
    LR,
    WEIGHT_DECAY,
    NUM_CODECS_OPT,
    PRESET_NORM,
    HIDDEN,
    DROPOUT_OPT,
    SWEEP,
)

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

#: The training engines (``frreg.training.loso.ENGINES``; repeated here so that
#: the option table does not import the engines, which need torch).
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
