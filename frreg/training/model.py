"""The fr_regressor_v2 network: a config dataclass and the ``nn.Module``.

Nothing here knows about video, corpora or folds. :class:`MLPConfig` is the
whole shape of the network and the one specification every implementation
takes its shapes from (this module, the batched engine's torch and native
kernels, the stored weights, the ONNX export): :attr:`MLPConfig.layer_shapes`.
It is part of every cache key, so changing any field retrains rather than
reusing models of another shape.
"""

from __future__ import annotations

import itertools
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

    @property
    def layer_shapes(self) -> tuple[tuple[int, int], ...]:
        """Each linear layer as ``(fan_in + 1, fan_out)``, input first, head last."""
        return layer_shapes(self.in_features, self.hidden, self.depth)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def layer_shapes(in_features: int, hidden: int, depth: int) -> tuple[tuple[int, int], ...]:
    """The ``(fan_in + 1, fan_out)`` of each linear layer of a network of this shape: a
    layer as the batched kernels and the weights files store it, the transposed
    ``nn.Linear`` weight with its bias as the last row."""
    widths = [in_features, *([hidden] * depth), 1]
    return tuple((a + 1, b) for a, b in itertools.pairwise(widths))


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
