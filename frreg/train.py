"""Training settings, per-fold inputs and the straightforward reference loop.

The reference loop (:func:`train_fold_reference`) is the textbook recipe: one
``nn.Module``, a shuffling ``DataLoader``, ``torch.optim.Adam`` and MSE, one
fold at a time. It is slow and kept on purpose, as the oracle the batched
trainer (:mod:`frreg.batched`) is tested against.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from frreg.model import FrRegressorMLP, MLPConfig, set_seed
from frreg.schema import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_EPOCHS,
    DEFAULT_LR,
    DEFAULT_WEIGHT_DECAY,
    NUM_CODECS,
)


@dataclass(frozen=True)
class TrainSettings:
    """Every knob that changes a trained fold. Part of every cache key."""

    epochs: int = DEFAULT_EPOCHS
    batch_size: int = DEFAULT_BATCH_SIZE
    lr: float = DEFAULT_LR
    weight_decay: float = DEFAULT_WEIGHT_DECAY
    num_codecs: int = NUM_CODECS

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)

    @property
    def model_config(self) -> MLPConfig:
        return MLPConfig(num_codecs=self.num_codecs)


@dataclass(frozen=True)
class FoldJob:
    """One model to train: a seed and the source it holds out."""

    seed: int
    held_out: str
    train_idx: np.ndarray
    test_idx: np.ndarray


def fold_seed(seed: int, held_out: str) -> int:
    """The RNG seed of one (seed, held-out source) model.

    Derived from both so that a fold's numbers never depend on which other
    folds or seeds were trained alongside it (the cache relies on this).
    """
    digest = hashlib.sha256(f"frreg-fold:{seed}:{held_out}".encode()).digest()
    return int.from_bytes(digest[:4], "little")  # fits every RNG (NumPy needs < 2**32)


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
        return (x - self.mean) / self.scale


def fold_inputs(
    features: np.ndarray, codec: np.ndarray, train_idx: np.ndarray, idx: np.ndarray
) -> np.ndarray:
    """Model inputs for rows ``idx``: features scaled by a scaler fit on ``train_idx`` only,
    followed by the codec block unscaled."""
    scaler = Scaler.fit(features[train_idx])
    return np.hstack([scaler.transform(features[idx]), codec[idx]]).astype(np.float32)


def train_fold_reference(
    features: np.ndarray,
    codec: np.ndarray,
    target: np.ndarray,
    job: FoldJob,
    settings: TrainSettings,
) -> np.ndarray:
    """Train one fold the straightforward way; return held-out predictions."""
    set_seed(fold_seed(job.seed, job.held_out))
    x_train = torch.from_numpy(fold_inputs(features, codec, job.train_idx, job.train_idx))
    y_train = torch.from_numpy(target[job.train_idx].astype(np.float32))
    x_test = torch.from_numpy(fold_inputs(features, codec, job.train_idx, job.test_idx))

    model = FrRegressorMLP(settings.model_config)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
    )
    loss_fn = nn.MSELoss()
    loader = DataLoader(
        TensorDataset(x_train, y_train), batch_size=settings.batch_size, shuffle=True
    )
    model.train()
    for _ in range(settings.epochs):
        for xb, yb in loader:
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        return model(x_test).double().numpy()
