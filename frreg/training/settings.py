"""What one trained fold depends on: the recipe, the job, its seed and its inputs.

Shared by every engine (:mod:`frreg.training.reference`,
:mod:`frreg.training.batched`): a fold's numbers are a function of
:class:`TrainSettings`, its :class:`FoldJob` and the corpus rows, nothing else.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from frreg.schema import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_EPOCHS,
    DEFAULT_LR,
    DEFAULT_PRESET_NORM,
    DEFAULT_WEIGHT_DECAY,
)
from frreg.training.network import MLPConfig


@dataclass(frozen=True)
class TrainSettings:
    """Every knob that changes a trained fold. Part of every cache key.

    ``model`` is the network's shape; its ``num_codecs`` is the trainer's
    ``--num-codecs``. ``preset_norm`` is how the codec block's ``preset_norm`` is
    filled (:data:`~frreg.schema.PRESET_NORM_MODES`; the data a fold sees, so part of
    the recipe). ``sweep`` is the sha256 of the sweep record the recipe was chosen
    from (``frreg-train --sweep``; ``None``: none): it changes no number, but a
    recipe a search chose is not the same claim as the trainer's defaults, so it is
    recorded, keyed and judged like the rest.
    """

    epochs: int = DEFAULT_EPOCHS
    batch_size: int = DEFAULT_BATCH_SIZE
    lr: float = DEFAULT_LR
    weight_decay: float = DEFAULT_WEIGHT_DECAY
    model: MLPConfig = field(default_factory=MLPConfig)
    preset_norm: str = DEFAULT_PRESET_NORM
    sweep: str | None = None

    @property
    def num_codecs(self) -> int:
        return self.model.num_codecs

    def recipe(self) -> dict[str, Any]:
        """The recipe fields as every seed artifact records them at its top level."""
        return {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "num_codecs": self.num_codecs,
            "preset_norm": self.preset_norm,
            "sweep": self.sweep,
        }


class FoldJob:
    """One model to train: a seed, the source it holds out, and its row indices.

    Give ``train_idx`` explicitly, or ``None`` with ``n_rows`` for the LOSO case
    (train on every row not held out): then it is derived from ``test_idx``
    when asked for and never stored, so planning thousands of folds over a
    large corpus costs O(rows), not O(rows x folds).
    """

    __slots__ = ("_n_rows", "_train_idx", "held_out", "seed", "test_idx")

    def __init__(
        self,
        seed: int,
        held_out: str,
        train_idx: np.ndarray | None,
        test_idx: np.ndarray,
        *,
        n_rows: int | None = None,
    ) -> None:
        if train_idx is None and n_rows is None:
            raise ValueError("FoldJob needs train_idx, or n_rows to derive it")
        self.seed = seed
        self.held_out = held_out
        self.test_idx = test_idx
        self._train_idx = train_idx
        self._n_rows = n_rows

    @property
    def train_idx(self) -> np.ndarray:
        """Training rows, ascending (the complement of ``test_idx`` unless given)."""
        if self._train_idx is not None:
            return self._train_idx
        keep = np.ones(self._n_rows or 0, dtype=bool)
        keep[self.test_idx] = False
        return np.flatnonzero(keep)

    @property
    def n_train(self) -> int:
        if self._train_idx is not None:
            return len(self._train_idx)
        return (self._n_rows or 0) - len(self.test_idx)

    def __repr__(self) -> str:
        return f"FoldJob(seed={self.seed}, held_out={self.held_out!r}, n_val={len(self.test_idx)})"


def fold_seed(seed: int, held_out: str) -> int:
    """The RNG seed of one (seed, held-out source) model.

    Derived from both so that a fold's numbers never depend on which other
    folds or seeds were trained alongside it (the cache relies on this).
    """
    digest = hashlib.sha256(f"frreg-fold:{seed}:{held_out}".encode()).digest()
    return int.from_bytes(digest[:4], "little")  # fits every RNG (NumPy needs < 2**32)


@dataclass(frozen=True)
class Fit:
    """What an engine returns for one job: held-out predictions and the trained layers.

    ``predictions`` are float64, aligned with ``job.test_idx``. ``layers`` are
    the model's ``(fan_in + 1, fan_out)`` float32 matrices, the transposed
    ``nn.Linear`` weight with the bias as the last row, input layer first:
    enough to re-run the model (:func:`frreg.training.weights.predict`).
    """

    predictions: np.ndarray
    layers: tuple[np.ndarray, ...]


@dataclass(frozen=True)
class Scaler:
    """Standard scaler (population std, like scikit-learn's ``StandardScaler``)."""

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> Scaler:
        mean = x.mean(axis=0)
        std = x.std(axis=0)
        # A constant column carries no information; leave it centred, unscaled.
        return cls(mean=mean, scale=np.where(std > 0, std, 1.0))

    def transform(self, x: np.ndarray) -> np.ndarray:
        out: np.ndarray = (x - self.mean) / self.scale
        return out


def fold_inputs(
    features: np.ndarray, codec: np.ndarray, train_idx: np.ndarray, idx: np.ndarray
) -> np.ndarray:
    """Model inputs for rows ``idx``: features scaled by a scaler fit on ``train_idx`` only,
    followed by the codec block unscaled."""
    scaler = Scaler.fit(features[train_idx])
    return np.hstack([scaler.transform(features[idx]), codec[idx]]).astype(np.float32)
