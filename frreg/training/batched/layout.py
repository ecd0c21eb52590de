"""How a group of models' parameters is stored, and each model's initial weights."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from frreg.training.model import FrRegressorMLP, MLPConfig
from frreg.training.settings import FoldJob, fold_seed

_ROW_ALIGN = 64  # parameter rows are padded to a multiple of this many elements


@dataclass(frozen=True)
class Layout:
    """How a group's parameters are stored: one ``(models, width)`` buffer per layer.

    Layer ``k`` of a model is one ``(fan_in + 1, fan_out)`` matrix -- the
    transposed ``nn.Linear`` weight with the bias appended as the last row --
    stored as the first ``(fan_in + 1) * fan_out`` elements of its row in buffer
    ``k``. Rows are padded with zeros (which Adam leaves at zero) to a multiple
    of :data:`_ROW_ALIGN` elements, so that vectorised kernels (Adam's above
    all) treat a model's numbers alike wherever the model sits in the group.
    """

    n_in: int
    hidden: int

    @property
    def shapes(self) -> tuple[tuple[int, int], ...]:
        h = self.hidden
        return ((self.n_in + 1, h), (h + 1, h), (h + 1, 1))

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
    layout = Layout(config.in_features, config.hidden)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(fold_seed(job.seed, job.held_out))
        model = FrRegressorMLP(config)
        stream = torch.Generator()
        stream.set_state(torch.random.get_rng_state())
    linears = [m for m in model.net if isinstance(m, nn.Linear)]
    found = [(m.in_features + 1, m.out_features) for m in linears]
    if found != list(layout.shapes):
        raise RuntimeError(
            f"frreg.training.batched expects layers {list(layout.shapes)} (fan_in + 1, fan_out) but "
            f"FrRegressorMLP has {found}; frreg/training/batched must change with frreg/training/model.py"
        )
    layers = tuple(torch.cat([m.weight.detach().T, m.bias.detach()[None, :]]) for m in linears)
    return layers, stream
