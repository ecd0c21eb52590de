"""``frreg-sweep``'s options, declared once (see :mod:`frreg.options`). Light: no torch or
numpy, so ``--help`` is quick."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from frreg.options import (
    Option,
    dropout_rate,
    nonnegative_float,
    positive_float,
    positive_int,
    seed_list,
    split_list,
)
from frreg.schema import DEFAULT_EPOCHS, DROPOUT, HIDDEN_WIDTH

#: The default grid (:data:`DEFAULT_AXES` below): 3 x 2 x 2 x 2 =
#: 24 recipes around the ADR-0303 recipe (lr 5e-4, weight decay 1e-5, batch 32, dropout
#: 0.1, width 64), whose learning rate and dropout are on it so that the report shows
#: what the search gained over them.
DEFAULT_LRS: Final = (5e-4, 2e-3, 4e-3)
DEFAULT_WEIGHT_DECAYS: Final = (1e-5, 1e-4)
DEFAULT_BATCH_SIZES: Final = (32, 64)
DEFAULT_DROPOUTS: Final = (0.0, DROPOUT)
DEFAULT_HIDDENS: Final = (HIDDEN_WIDTH,)
#: Held-out predictions are taken every this many epochs (and after the last).
DEFAULT_CURVE_EVERY: Final = 10
#: The seeds a sweep trains: not the gate's ensemble seeds (0-4), so that the run that
#: trains the chosen recipe for the gate is a fresh seed set the search never saw.
DEFAULT_SWEEP_SEEDS: Final = (100, 101, 102, 103, 104)
DEFAULT_SWEEP_DIR: Final = "runs/sweep"


def _items(text: str, item: Callable[[str], Any]) -> tuple[Any, ...]:
    return tuple(item(part) for part in split_list(text))


def positive_float_list(text: str) -> tuple[float, ...]:
    """A list (``a,b`` or ``a b``) of finite floats > 0."""
    return _items(text, positive_float)


def nonnegative_float_list(text: str) -> tuple[float, ...]:
    """A list of finite floats >= 0."""
    return _items(text, nonnegative_float)


def positive_int_list(text: str) -> tuple[int, ...]:
    """A list of integers >= 1."""
    return _items(text, positive_int)


def dropout_rate_list(text: str) -> tuple[float, ...]:
    """A list of dropout probabilities in [0, 1)."""
    return _items(text, dropout_rate)


def _axis(
    name: str,
    dest: str,
    what: str,
    default: tuple[Any, ...],
    parse: Callable[[str], tuple[Any, ...]],
) -> Option:
    # A list option's default is None (argparse would extend a default list in place);
    # :func:`axis_values` puts the declared default in.
    return Option(
        name, dest, f"{what} values to sweep (a list: 1,2 or 1 2)", None,
        parse, "V", shown_default=",".join(map(str, default)), repeatable=True,
    )  # fmt: skip


LRS = _axis("lr", "lr", "Adam learning rate", DEFAULT_LRS, positive_float_list)
WEIGHT_DECAYS = _axis(
    "weight-decay", "weight_decay", "Adam weight decay (L2)", DEFAULT_WEIGHT_DECAYS,
    nonnegative_float_list,
)  # fmt: skip
BATCH_SIZES = _axis(
    "batch-size", "batch_size", "minibatch size", DEFAULT_BATCH_SIZES, positive_int_list
)
DROPOUTS = _axis("dropout", "dropout", "dropout probability", DEFAULT_DROPOUTS, dropout_rate_list)
HIDDENS = _axis(
    "hidden", "hidden", "hidden width (a multiple of 16 for the native kernel)",
    DEFAULT_HIDDENS, positive_int_list,
)  # fmt: skip
#: The swept axes, in :data:`frreg.sweep.grid.AXIS_FLAGS` order.
AXES: Final = (LRS, WEIGHT_DECAYS, BATCH_SIZES, DROPOUTS, HIDDENS)
#: Each axis's default values.
DEFAULT_AXES: Final[dict[str, tuple[Any, ...]]] = {
    "lr": DEFAULT_LRS,
    "weight_decay": DEFAULT_WEIGHT_DECAYS,
    "batch_size": DEFAULT_BATCH_SIZES,
    "dropout": DEFAULT_DROPOUTS,
    "hidden": DEFAULT_HIDDENS,
}


def axis_values(values: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    """Each axis's values from parsed options keyed by dest (``None``: the default),
    duplicates dropped in order."""
    return {o.dest: tuple(dict.fromkeys(values.get(o.dest) or DEFAULT_AXES[o.dest])) for o in AXES}


OUT_DIR = Option(
    "out-dir", "out_dir", "directory for sweep.json, sweep.md and sweep.png",
    DEFAULT_SWEEP_DIR, None, "DIR",
)  # fmt: skip
SEEDS = Option(
    "seeds", "seeds", "comma-separated seeds each recipe trains (keep them apart from the "
    "gate's ensemble seeds, so the final run is fresh)", DEFAULT_SWEEP_SEEDS, seed_list,
    "N[,N...]",
)  # fmt: skip
EPOCHS = Option(
    "epochs", "epochs", "epochs every recipe trains; shorter counts come from the curve",
    DEFAULT_EPOCHS, positive_int, "N",
)  # fmt: skip
CURVE_EVERY = Option(
    "curve-every", "curve_every", "score every recipe's held-out predictions every N epochs "
    "(and after the last): each such count is a candidate", DEFAULT_CURVE_EVERY,
    positive_int, "N",
)  # fmt: skip
WORKERS = Option(
    "workers", "workers", "training threads (default: one per available core)", None,
    positive_int, "N", show_default=False,
)  # fmt: skip
SCHEDULER = Option(
    "scheduler", "scheduler", "train on the Dask cluster whose scheduler listens at ADDRESS "
    "(tcp://HOST:PORT; the cluster extra), one task per recipe and seed (default: this "
    "machine's cores)", None, metavar="ADDRESS", show_default=False,
)  # fmt: skip
