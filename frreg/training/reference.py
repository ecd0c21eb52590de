"""The straightforward reference loop, one fold at a time.

:func:`fit_fold_reference` is the textbook recipe: one ``nn.Module``, a
shuffling ``DataLoader``, ``torch.optim.Adam`` and MSE. It is slow and kept on
purpose, as the oracle the batched engine (:mod:`frreg.training.batched`) is
tested against.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from frreg.training.model import FrRegressorMLP, set_seed
from frreg.training.settings import Fit, FoldJob, TrainSettings, fold_inputs, fold_seed

#: Bump whenever a change here can change a trained number: it is part of
#: every cache key, so stale models are retrained instead of served.
#: 2: initial weights drawn the same on every CPU (``model._linear``).
ENGINE_VERSION: Final = 2


def fit_fold_reference(
    features: np.ndarray,
    codec: np.ndarray,
    target: np.ndarray,
    job: FoldJob,
    settings: TrainSettings,
) -> Fit:
    """Train one fold the straightforward way; return its predictions and layers."""
    set_seed(fold_seed(job.seed, job.held_out))
    x_train = torch.from_numpy(fold_inputs(features, codec, job.train_idx, job.train_idx))
    y_train = torch.from_numpy(target[job.train_idx].astype(np.float32))
    x_test = torch.from_numpy(fold_inputs(features, codec, job.train_idx, job.test_idx))

    model = FrRegressorMLP(settings.model)
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
        predictions: np.ndarray = model(x_test).double().numpy()
        linears = [m for m in model.net if isinstance(m, nn.Linear)]
        layers = tuple(
            torch.cat([m.weight.T, m.bias[None, :]]).numpy().astype(np.float32) for m in linears
        )
    return Fit(predictions, layers)
