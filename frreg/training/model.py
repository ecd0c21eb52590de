"""The fr_regressor_v2 network as an ``nn.Module``, built from its shape.

Nothing here knows about video, corpora or folds. The shape is
:class:`~frreg.training.network.MLPConfig` (:mod:`frreg.training.network`, without
torch).
"""

from __future__ import annotations

import math
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
            layers += [_linear(rows - 1, cols), nn.GELU(), nn.Dropout(cfg.dropout)]
        layers.append(_linear(head_rows - 1, 1))
        self.net = nn.Sequential(*layers)

    def linears(self) -> list[nn.Linear]:
        """The linear layers, input first: one per entry of ``config.layer_shapes``."""
        return [m for m in self.net if isinstance(m, nn.Linear)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)
        return out.squeeze(-1)


def _linear(fan_in: int, fan_out: int) -> nn.Linear:
    """``nn.Linear(fan_in, fan_out)`` with torch's default initialisation, weight and bias
    uniform on +-1 / sqrt(fan_in), drawn from the global generator in torch's order (the
    weight's draws, then the bias's), but computed so that the bits do not depend on the CPU.

    torch's own ``uniform_(-b, b)`` scales its draws in code compiled per instruction set,
    and its bits depend on which runs: the same seed gave other initial weights with
    ``ATEN_CPU_CAPABILITY=default`` than with ``avx2``. Here ``u`` comes from ``torch.rand``
    (exact whatever the code: ``u * 1 + 0``) and the scaling is NumPy float64 arithmetic,
    one rounding per operation, rounded to float32 at the end.
    """
    linear = nn.Linear(fan_in, fan_out, device="meta").to_empty(device="cpu")  # no draws
    bound = 1.0 / math.sqrt(fan_in)
    with torch.no_grad():
        for param in (linear.weight, linear.bias):
            u = torch.rand(param.shape, dtype=torch.float32).numpy().astype(np.float64)
            param.copy_(torch.from_numpy((u * (2.0 * bound) - bound).astype(np.float32)))
    return linear


def set_seed(seed: int) -> None:
    """Seed every random source frreg touches (Python, NumPy, torch)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
