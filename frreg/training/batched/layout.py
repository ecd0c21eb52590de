"""How a group of models' parameters is stored, and each model's initial weights."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from frreg.training.model import FrRegressorMLP
from frreg.training.network import MLPConfig
from frreg.training.settings import FoldJob, fold_seed

_ROW_ALIGN = 64  # parameter rows are padded to a multiple of this many elements


@dataclass(frozen=True)
class Layout:
    """How a group's parameters are stored: one ``(models, width)`` buffer per layer.

    Layer ``k`` of a model is one ``(fan_in + 1, fan_out)`` matrix -- the
    transposed ``nn.Linear`` weight with the bias appended as the last row --
    stored as the first ``(fan_in + 1) * fan_out`` elements of its row in buffer
    ``k``; the shapes are the config's own (:attr:`MLPConfig.layer_shapes`).
    Rows are padded with zeros (which Adam leaves at zero) to a multiple
    of :data:`_ROW_ALIGN` elements, so that vectorised kernels (Adam's above
    all) treat a model's numbers alike wherever the model sits in the group.
    """

    config: MLPConfig

    @property
    def shapes(self) -> tuple[tuple[int, int], ...]:
        return self.config.layer_shapes

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(-(-(r * c) // _ROW_ALIGN) * _ROW_ALIGN for r, c in self.shapes)

    def buffers(
        self, models: int, *, dtype: torch.dtype, device: torch.device | str = "cpu"
    ) -> tuple[torch.Tensor, ...]:
        """Zeroed ``(models, width)`` buffers, one per layer."""
        return tuple(torch.zeros(models, w, dtype=dtype, device=device) for w in self.widths)

    def views(self, buffers: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """``(models, fan_in + 1, fan_out)`` views of the layer buffers."""
        return tuple(
            buf[:, : r * c].view(buf.shape[0], r, c)
            for buf, (r, c) in zip(buffers, self.shapes, strict=True)
        )


def initial_parameters(
    job: FoldJob, config: MLPConfig
) -> tuple[tuple[torch.Tensor, ...], torch.Generator]:
    """One model's initial layers (``(fan_in + 1, fan_out)`` each, see :class:`Layout`),
    and a CPU generator continuing its random stream.

    The weights are ``FrRegressorMLP``'s own initialisation under
    ``fold_seed(job.seed, job.held_out)``, exactly as the reference builds
    them; the global RNG is left as it was.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(fold_seed(job.seed, job.held_out))
        model = FrRegressorMLP(config)
        stream = torch.Generator()
        stream.set_state(torch.random.get_rng_state())
    layers = tuple(
        torch.cat([m.weight.detach().T, m.bias.detach()[None, :]]) for m in model.linears()
    )
    return layers, stream
