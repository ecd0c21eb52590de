"""The network's shape: :class:`MLPConfig`, without torch.

:class:`MLPConfig` is the whole shape of the network and the one specification every
implementation takes its shapes from (:mod:`frreg.training.model`'s ``nn.Module``,
the batched engine's torch and native kernels, the stored weights, the ONNX export):
:attr:`MLPConfig.layer_shapes`. It is part of every cache key, so changing any field
retrains rather than reusing models of another shape. It lives apart from the
``nn.Module`` so that what only reads shapes (a verdict, ``frreg-export --check``)
does not import torch.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Any, Literal

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
