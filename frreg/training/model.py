"""The fr_regressor_v2 network: a config dataclass and the ``nn.Module``.

Nothing here knows about video, corpora or folds. :class:`MLPConfig` is the
whole shape of the network; it is part of every cache key, so changing any
field retrains rather than reusing models of another shape.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from frreg.schema import ACTIVATION, CANONICAL_6, DEPTH, DROPOUT, HIDDEN_WIDTH, NUM_CODECS

Activation = Literal["gelu"]


@dataclass(frozen=True)
class MLPConfig:
    """Shape of the regressor: (6 features + codec block) -> ``depth`` x ``hidden`` -> 1.

    Each hidden layer is Linear, exact GELU, inverted Dropout.
    """

    n_features: int = len(CANONICAL_6)
    num_codecs: int = NUM_CODECS
    hidden: int = HIDDEN_WIDTH
    depth: int = DEPTH
    dropout: float = DROPOUT
    activation: Activation = ACTIVATION

    def __post_init__(self) -> None:
        if self.hidden < 1 or self.depth < 1:
            raise ValueError(f"MLPConfig needs hidden >= 1 and depth >= 1, got {self}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"MLPConfig dropout must be in [0, 1), got {self.dropout}")
        if self.activation != "gelu":
            raise ValueError(f"MLPConfig activation {self.activation!r}: only 'gelu' is built")

    @property
    def in_features(self) -> int:
        return self.n_features + self.num_codecs

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class FrRegressorMLP(nn.Module):
    """Linear-GELU-Dropout, ``depth`` times, then a linear head producing one score."""

    def __init__(self, config: MLPConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or MLPConfig()
        layers: list[nn.Module] = []
        width = cfg.in_features
        for _ in range(cfg.depth):
            layers += [nn.Linear(width, cfg.hidden), nn.GELU(), nn.Dropout(cfg.dropout)]
            width = cfg.hidden
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)
        return out.squeeze(-1)


def set_seed(seed: int) -> None:
    """Seed every random source frreg touches (Python, NumPy, torch)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
