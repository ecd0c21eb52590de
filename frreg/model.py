"""The fr_regressor_v2 network: a config dataclass and the ``nn.Module``.

Nothing here knows about video, corpora or folds.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from frreg.schema import CANONICAL_6, DROPOUT, HIDDEN_WIDTH, NUM_CODECS


@dataclass(frozen=True)
class MLPConfig:
    """Shape of the regressor: (6 features + codec block) -> 64 -> 64 -> 1."""

    n_features: int = len(CANONICAL_6)
    num_codecs: int = NUM_CODECS
    hidden: int = HIDDEN_WIDTH
    dropout: float = DROPOUT

    @property
    def in_features(self) -> int:
        return self.n_features + self.num_codecs


class FrRegressorMLP(nn.Module):
    """Linear-GELU-Dropout, twice, then a linear head producing one score."""

    def __init__(self, config: MLPConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or MLPConfig()
        self.net = nn.Sequential(
            nn.Linear(cfg.in_features, cfg.hidden),
            nn.GELU(),
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.hidden, cfg.hidden),
            nn.GELU(),
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.hidden, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


def set_seed(seed: int) -> None:
    """Seed every random source frreg touches (Python, NumPy, torch)."""
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
