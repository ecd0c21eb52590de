"""The fr_regressor_v2 network as an ``nn.Module``, built from its shape.

Nothing here knows about video, corpora or folds. The shape is
:class:`~frreg.training.network.MLPConfig` (:mod:`frreg.training.network`, without
torch).
"""

from __future__ import annotations

import random

import numpy as np
import torch
from torch import nn

from frreg.training.network import MLPConfig


class FrRegressorMLP(nn.Module):
    """Linear-GELU-Dropout, ``depth`` times, then a linear head producing one score."""

    def __init__(self, config: MLPConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or MLPConfig()
        *hidden, (head_rows, _) = cfg.layer_shapes
        layers: list[nn.Module] = []
        for rows, cols in hidden:
            layers += [nn.Linear(rows - 1, cols), nn.GELU(), nn.Dropout(cfg.dropout)]
        layers.append(nn.Linear(head_rows - 1, 1))
        self.net = nn.Sequential(*layers)

    def linears(self) -> list[nn.Linear]:
        """The linear layers, input first: one per entry of ``config.layer_shapes``."""
        return [m for m in self.net if isinstance(m, nn.Linear)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)
        return out.squeeze(-1)


def set_seed(seed: int) -> None:
    """Seed every random source frreg touches (Python, NumPy, torch)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
