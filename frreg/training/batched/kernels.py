"""One training step's forward pass and hand-written backward, and eval-mode prediction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from frreg.training.batched.layout import Layout


class Workspace:
    """Weights, inputs, activations and gradients of one training step for a group.

    ``params`` are the group's layer buffers (:class:`Layout`); the weight views
    follow their in-place updates. Gradients land in :attr:`grad_buffers`, laid
    out like ``params``. Fill :attr:`rows` (``(models * batch, n_in + 2)``:
    inputs, a one, the target), or its views :attr:`x` (``(models, batch, n_in + 1)``,
    last column ones) and :attr:`y` (``(models, batch, 1)``), then call
    :func:`forward_backward`.
    """

    def __init__(self, layout: Layout, params: Sequence[torch.Tensor], batch: int) -> None:
        models, h = params[0].shape[0], layout.hidden
        dtype, device = params[0].dtype, params[0].device
        self.layout = layout
        self.w1, self.w2, self.w3 = layout.views(params)
        self.w2_hidden_t = self.w2[:, :h, :].transpose(1, 2)
        self.w3_row = self.w3.transpose(1, 2)
        self.w3_hidden_row = self.w3[:, :h, :].transpose(1, 2)

        # One gathered row per (model, slot): n_in inputs, a one, the target.
        self.rows = torch.empty(models * batch, layout.n_in + 2, dtype=dtype, device=device)
        self.x = self.rows.view(models, batch, -1)[..., :-1]
        self.y = self.rows.view(models, batch, -1)[..., -1:]
        self.z1 = torch.empty(models, batch, h, dtype=dtype, device=device)
        self.z2 = torch.empty(models, batch, h, dtype=dtype, device=device)
        self.a = torch.empty(models, batch, h, dtype=dtype, device=device)
        # Hidden activations carry a trailing column of ones (the next bias).
        self.h1 = torch.ones(models, batch, h + 1, dtype=dtype, device=device)
        self.h2 = torch.ones(models, batch, h + 1, dtype=dtype, device=device)
        self.h1_units, self.h2_units = self.h1[..., :h], self.h2[..., :h]
        self.wide = torch.empty(models, batch, h + 1, dtype=dtype, device=device)
        self.out = torch.empty(models, batch, 1, dtype=dtype, device=device)
        self.g = torch.empty(models, batch, 1, dtype=dtype, device=device)
        self.gh = torch.empty(models, batch, h, dtype=dtype, device=device)
        self.gz = torch.empty(models, batch, h, dtype=dtype, device=device)
        self.grad_buffers = layout.buffers(models, dtype=dtype, device=device)
        self.grads = layout.views(self.grad_buffers)
        self.gw3_row = self.grads[2].transpose(1, 2)


_INV_SQRT2 = 0.7071067811865476
_INV_SQRT_2PI = 0.3989422804014327


def _aten(op: str, overload: str) -> Any | None:
    """A private ATen overload writing into a given buffer, or ``None`` where this torch lacks it."""
    try:
        return getattr(getattr(torch.ops.aten, op), overload)
    except (AttributeError, RuntimeError):
        return None


def gelu_public(z: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Exact GELU, ``0.5 z (1 + erf(z / sqrt 2))``, into ``out``, with public ops only."""
    torch.mul(z, _INV_SQRT2, out=out)
    torch.erf(out, out=out)
    return out.add_(1.0).mul_(z).mul_(0.5)


def gelu_backward_public(
    grad: torch.Tensor, z: torch.Tensor, grad_input: torch.Tensor
) -> torch.Tensor:
    """``grad * GELU'(z)`` into ``grad_input``: ``GELU'(z) = Phi(z) + z phi(z)``."""
    density = torch.mul(z, z).mul_(-0.5).exp_().mul_(_INV_SQRT_2PI).mul_(z)
    torch.mul(z, _INV_SQRT2, out=grad_input)
    torch.erf(grad_input, out=grad_input)
    return grad_input.add_(1.0).mul_(0.5).add_(density).mul_(grad)


# ATen's own kernels (one fused pass each) where torch has them; the public
# formulas otherwise. Both are tested against autograd.
_ATEN_GELU = _aten("gelu", "out")
_ATEN_GELU_BACKWARD = _aten("gelu_backward", "grad_input")


def _gelu(z: torch.Tensor, *, out: torch.Tensor) -> torch.Tensor:
    if _ATEN_GELU is None:
        return gelu_public(z, out)
    result: torch.Tensor = _ATEN_GELU(z, out=out)
    return result


def _gelu_backward(grad: torch.Tensor, z: torch.Tensor, *, grad_input: torch.Tensor) -> None:
    if _ATEN_GELU_BACKWARD is None:
        gelu_backward_public(grad, z, grad_input)
    else:
        _ATEN_GELU_BACKWARD(grad, z, grad_input=grad_input)


def forward_backward(
    ws: Workspace, coef: torch.Tensor, mask1: torch.Tensor, mask2: torch.Tensor
) -> tuple[torch.Tensor, ...]:
    """One step's forward pass and hand-written backward, for every model of a group.

    ``coef`` (``(models, batch, 1)``) is ``2 / rows in the batch`` for real rows
    and 0 for padding, so the result is the gradient of each model's mean
    squared error over its batch. ``mask1``/``mask2`` (``(models, batch, hidden)``)
    are the dropout multipliers, 0 or ``1 / (1 - p)``. Returns the per-layer
    gradients, ``(models, fan_in + 1, fan_out)`` each (``ws.grads``).
    """
    gw1, gw2, _ = ws.grads
    # GELU goes to a contiguous buffer first: on torch 2.13's CPU, gelu.out into a
    # strided view (such as ``h1[..., :h]``) writes wrong float32 values -- its
    # oneDNN path is picked by the input's layout and writes the output as if
    # contiguous (tests/test_batched.py checks the float32 gradients).
    torch.bmm(ws.x, ws.w1, out=ws.z1)
    _gelu(ws.z1, out=ws.a)
    torch.mul(ws.a, mask1, out=ws.h1_units)
    torch.bmm(ws.h1, ws.w2, out=ws.z2)
    _gelu(ws.z2, out=ws.a)
    torch.mul(ws.a, mask2, out=ws.h2_units)
    # The one-column head is cheaper as multiply-and-sum than as a bmm.
    torch.mul(ws.h2, ws.w3_row, out=ws.wide)
    torch.sum(ws.wide, -1, keepdim=True, out=ws.out)

    torch.sub(ws.out, ws.y, out=ws.g)
    ws.g.mul_(coef)  # d(loss)/d(output); zero on padding rows
    torch.mul(ws.h2, ws.g, out=ws.wide)
    torch.sum(ws.wide, 1, keepdim=True, out=ws.gw3_row)
    torch.mul(ws.g, ws.w3_hidden_row, out=ws.gh)
    ws.gh.mul_(mask2)
    _gelu_backward(ws.gh, ws.z2, grad_input=ws.gz)
    torch.bmm(ws.h1.transpose(1, 2), ws.gz, out=gw2)
    torch.bmm(ws.gz, ws.w2_hidden_t, out=ws.gh)
    ws.gh.mul_(mask1)
    _gelu_backward(ws.gh, ws.z1, grad_input=ws.gz)
    torch.bmm(ws.x.transpose(1, 2), ws.gz, out=gw1)
    return ws.grads


def predict(weights: Sequence[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Eval-mode (no dropout) outputs ``(rows,)`` of ONE model, for inputs ``(rows, n_in)``.

    ``weights`` are that model's ``(fan_in + 1, fan_out)`` matrices. Models are
    evaluated one at a time so that a prediction never depends on which other
    models were batched with it (a batched matmul may pick its kernel by batch count).
    """
    out = x
    for k, w in enumerate(weights):
        out = torch.addmm(w[-1], out, w[:-1])
        if k < len(weights) - 1:
            out = torch.nn.functional.gelu(out)
    return out.squeeze(-1)
