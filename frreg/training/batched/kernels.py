"""One training step's forward pass and hand-written backward, and eval-mode prediction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from frreg.training.batched.layout import Layout


class Workspace:
    """Weights, inputs, activations and gradients of one training step for a group.

    ``params`` are the group's layer buffers (:class:`Layout`), one per layer of
    ``layout.config`` (any depth); the weight views follow their in-place
    updates. Gradients land in :attr:`grad_buffers`, laid out like ``params``.
    Fill :attr:`rows` (``(models * batch, n_in + 2)``: inputs, a one, the
    target), or its views :attr:`x` (``(models, batch, n_in + 1)``, last column
    ones) and :attr:`y` (``(models, batch, 1)``), then call :func:`forward_backward`.
    """

    def __init__(self, layout: Layout, params: Sequence[torch.Tensor], batch: int) -> None:
        config = layout.config
        models, h, depth = params[0].shape[0], config.hidden, config.depth
        dtype, device = params[0].dtype, params[0].device

        def empty(width: int) -> torch.Tensor:
            return torch.empty(models, batch, width, dtype=dtype, device=device)

        self.layout = layout
        self.weights = layout.views(params)  # input layer first, head last
        head = self.weights[-1]
        # Hidden layer k >= 1's weight rows, transposed (``hidden_t[k - 1]``): the
        # gradient's way back from layer k to layer k - 1.
        self.hidden_t = [w[:, :h, :].transpose(1, 2) for w in self.weights[1:-1]]
        self.head_row = head.transpose(1, 2)
        self.head_hidden_row = head[:, :h, :].transpose(1, 2)

        # One gathered row per (model, slot): n_in inputs, a one, the target.
        self.rows = torch.empty(models * batch, config.in_features + 2, dtype=dtype, device=device)
        self.x = self.rows.view(models, batch, -1)[..., :-1]
        self.y = self.rows.view(models, batch, -1)[..., -1:]
        self.z = [empty(h) for _ in range(depth)]  # each hidden layer's pre-activations
        self.a = empty(h)
        # Hidden activations carry a trailing column of ones (the next bias).
        self.hidden = [torch.ones(models, batch, h + 1, dtype=dtype, device=device)
                       for _ in range(depth)]  # fmt: skip
        self.units = [hk[..., :h] for hk in self.hidden]
        self.inputs = [self.x, *self.hidden[:-1]]  # what each hidden layer multiplies
        self.wide = empty(h + 1)
        self.out = empty(1)
        self.g = empty(1)
        self.gh = empty(h)
        self.gz = empty(h)
        self.grad_buffers = layout.buffers(models, dtype=dtype, device=device)
        self.grads = layout.views(self.grad_buffers)
        self.gw_head_row = self.grads[-1].transpose(1, 2)


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
    ws: Workspace, coef: torch.Tensor, *masks: torch.Tensor
) -> tuple[torch.Tensor, ...]:
    """One step's forward pass and hand-written backward, for every model of a group.

    ``coef`` (``(models, batch, 1)``) is ``2 / rows in the batch`` for real rows
    and 0 for padding, so the result is the gradient of each model's mean
    squared error over its batch. ``masks`` (one ``(models, batch, hidden)`` per
    hidden layer) are the dropout multipliers, 0 or ``1 / (1 - p)``. Returns the
    per-layer gradients, ``(models, fan_in + 1, fan_out)`` each (``ws.grads``).
    """
    depth = len(ws.z)
    if len(masks) != depth:
        raise ValueError(f"{len(masks)} dropout masks for {depth} hidden layers")
    # GELU goes to a contiguous buffer first: on torch 2.13's CPU, gelu.out into a
    # strided view (such as ``hidden[k][..., :h]``) writes wrong float32 values -- its
    # oneDNN path is picked by the input's layout and writes the output as if
    # contiguous (tests/test_batched.py checks the float32 gradients).
    for k in range(depth):
        torch.bmm(ws.inputs[k], ws.weights[k], out=ws.z[k])
        _gelu(ws.z[k], out=ws.a)
        torch.mul(ws.a, masks[k], out=ws.units[k])
    # The one-column head is cheaper as multiply-and-sum than as a bmm.
    top = ws.hidden[-1]
    torch.mul(top, ws.head_row, out=ws.wide)
    torch.sum(ws.wide, -1, keepdim=True, out=ws.out)

    torch.sub(ws.out, ws.y, out=ws.g)
    ws.g.mul_(coef)  # d(loss)/d(output); zero on padding rows
    torch.mul(top, ws.g, out=ws.wide)
    torch.sum(ws.wide, 1, keepdim=True, out=ws.gw_head_row)
    torch.mul(ws.g, ws.head_hidden_row, out=ws.gh)  # d(loss)/d(top hidden units)
    for k in reversed(range(depth)):
        ws.gh.mul_(masks[k])
        _gelu_backward(ws.gh, ws.z[k], grad_input=ws.gz)
        torch.bmm(ws.inputs[k].transpose(1, 2), ws.gz, out=ws.grads[k])
        if k:
            torch.bmm(ws.gz, ws.hidden_t[k - 1], out=ws.gh)
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
