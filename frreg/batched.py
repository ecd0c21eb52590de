"""Train many (seed, fold) models at once: the fast path behind the LOSO ensemble.

Every model follows :func:`frreg.train.train_fold_reference` step for step --
the same inputs (:func:`~frreg.train.fold_inputs`), the same initial weights,
MSE averaged over each minibatch (the last, partial one included), inverted
dropout, exact GELU, and ``torch.optim.Adam`` with L2 weight decay -- but the
models advance together:

* The training rows of every distinct fold are scaled once and stacked into
  one table of ``[inputs, 1, target]`` rows; one ``index_select`` per step
  gathers every model's minibatch as ``(models, batch, ...)``. The column of
  ones makes each layer's bias the last row of its weight matrix, so one
  ``torch.bmm`` computes a layer for every model, bias gradient included. A
  model whose epoch has fewer rows fills its batch with a dummy row whose loss
  weight is zero.
* The backward pass is written out by hand (no autograd) into preallocated
  buffers; GELU's derivative is ATen's own ``gelu_backward``.
* Adam is torch's fused kernel (what ``torch.optim.Adam(fused=True)`` runs)
  over one ``(models, width)`` buffer per layer, in which the backward pass
  writes its gradients directly. Models with as many steps per epoch share a
  step count; a model with no batch left in the epoch is left out of the step:
  no update, and its step count does not advance.
* Dropout bits are drawn in bulk, :data:`STEPS_PER_CHUNK` steps at a time, as
  64-bit random words read as 16-bit integers; a unit is dropped when its
  integer falls below :func:`drop_threshold`, so the drop probability is ``p``
  rounded to a multiple of 2**-16 (0.1 becomes 0.100006, an error of 6.1e-6).
* On the CPU the models are split into one group per core, each trained by its
  own thread with single-threaded ops: OpenMP inside ops this small costs more
  in synchronisation than it saves, and on a busy machine it collapses.

Independence. All randomness of a model -- initial weights, per-epoch
shuffles, dropout -- comes from its own generators, seeded from
:func:`~frreg.train.fold_seed` of its job, and a model draws the same amounts
in the same order whichever other models share its batch or group. Every
kernel treats a model's numbers alike wherever the model sits (parameter rows
are padded to a vector-friendly width; held-out rows are evaluated one model at
a time), so a job's predictions are bit for bit a function of its seed, its
held-out source, its rows and the settings; the per-seed cache relies on that.

The initial weights are bit-identical to the reference's (the same module is
built under the same seed). The shuffles and dropout masks are not the
reference's draws -- they are the same random process -- so a batched model
and its reference twin agree in distribution (held-out PLCC), not bit for bit.
Fed the same shuffles with dropout off, they agree to float32 rounding.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from frreg.model import FrRegressorMLP, MLPConfig
from frreg.train import FoldJob, TrainSettings, fold_inputs, fold_seed

__all__ = ["STEPS_PER_CHUNK", "drop_threshold", "train_folds_batched"]

# The reference optimizer is ``torch.optim.Adam`` with its default betas and
# eps; read them from torch rather than restating them.
_ADAM_DEFAULTS = inspect.signature(torch.optim.Adam).parameters
BETA1, BETA2 = _ADAM_DEFAULTS["betas"].default
ADAM_EPS: float = _ADAM_DEFAULTS["eps"].default

#: Dropout masks are drawn and expanded this many steps at a time.
STEPS_PER_CHUNK = 32

_MASK_BITS = 16  # each dropout draw is one int16 ...
_DRAWS_PER_WORD = 64 // _MASK_BITS  # ... read out of int64 random words
_EVAL_ROWS = 4096  # held-out rows evaluated per chunk
_ROW_ALIGN = 64  # parameter rows are padded to a multiple of this many elements


def drop_threshold(p: float) -> int:
    """The int16 below which a unit is dropped, for drop probability ``p``.

    The effective probability is ``(threshold + 2**15) / 2**16``: ``p`` rounded
    to the nearest multiple of 2**-16.
    """
    return round(p * 2**_MASK_BITS) - 2 ** (_MASK_BITS - 1)


# --------------------------------------------------------------------------
# Parameter layout and initialisation
# --------------------------------------------------------------------------


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

    def buffers(self, models: int, **kw) -> tuple[torch.Tensor, ...]:
        """Zeroed ``(models, width)`` buffers, one per layer (``kw``: dtype, device)."""
        return tuple(torch.zeros(models, w, **kw) for w in self.widths)

    def views(self, buffers: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """``(models, fan_in + 1, fan_out)`` views of the layer buffers."""
        return tuple(
            buf[:, : r * c].unflatten(1, (r, c))
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
            f"frreg.batched expects layers {list(layout.shapes)} (fan_in + 1, fan_out) but "
            f"FrRegressorMLP has {found}; frreg/batched.py must change with frreg/model.py"
        )
    layers = tuple(torch.cat([m.weight.detach().T, m.bias.detach()[None, :]]) for m in linears)
    return layers, stream


# --------------------------------------------------------------------------
# Forward and hand-written backward
# --------------------------------------------------------------------------


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
        kw = {"dtype": params[0].dtype, "device": params[0].device}
        self.layout = layout
        self.w1, self.w2, self.w3 = layout.views(params)
        self.w2_hidden_t = self.w2[:, :h, :].transpose(1, 2)
        self.w3_row = self.w3.transpose(1, 2)
        self.w3_hidden_row = self.w3[:, :h, :].transpose(1, 2)

        # One gathered row per (model, slot): n_in inputs, a one, the target.
        self.rows = torch.empty(models * batch, layout.n_in + 2, **kw)
        self.x = self.rows.view(models, batch, -1)[..., :-1]
        self.y = self.rows.view(models, batch, -1)[..., -1:]
        self.z1 = torch.empty(models, batch, h, **kw)
        self.z2 = torch.empty(models, batch, h, **kw)
        self.a = torch.empty(models, batch, h, **kw)
        # Hidden activations carry a trailing column of ones (the next bias).
        self.h1 = torch.ones(models, batch, h + 1, **kw)
        self.h2 = torch.ones(models, batch, h + 1, **kw)
        self.h1_units, self.h2_units = self.h1[..., :h], self.h2[..., :h]
        self.wide = torch.empty(models, batch, h + 1, **kw)
        self.out = torch.empty(models, batch, 1, **kw)
        self.g = torch.empty(models, batch, 1, **kw)
        self.gh = torch.empty(models, batch, h, **kw)
        self.gz = torch.empty(models, batch, h, **kw)
        self.grad_buffers = layout.buffers(models, **kw)
        self.grads = layout.views(self.grad_buffers)
        self.gw3_row = self.grads[2].transpose(1, 2)


_gelu = torch.ops.aten.gelu.out
_gelu_backward = torch.ops.aten.gelu_backward.grad_input


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


# --------------------------------------------------------------------------
# Adam
# --------------------------------------------------------------------------


class FlatAdam:
    """``torch.optim.Adam`` (L2 weight decay, no amsgrad) for many models at once.

    ``params`` and ``grads`` are matching ``(models, n)`` buffers (one per layer,
    say). ``blocks`` are ``(start, stop)`` model ranges whose models always step
    together (default: all of them); each slice ``buffer[start:stop]`` is one
    parameter tensor to Adam, and the block's models share one step count (as
    ``state["step"]``). Fill the grads, then :meth:`step`. With ``fused`` (the
    default where torch has the kernel) the update is ``torch._fused_adam_``, the
    kernel behind ``Adam(fused=True)``; otherwise it is the code of Adam's
    default single-tensor path. Either matches its ``torch.optim.Adam`` bit for bit.
    """

    def __init__(
        self,
        params: Sequence[torch.Tensor],
        grads: Sequence[torch.Tensor],
        lr: float,
        weight_decay: float,
        blocks: Sequence[tuple[int, int]] | None = None,
        *,
        fused: bool | None = None,
    ) -> None:
        self.params = tuple(params)
        self.grads = tuple(grads)
        self.lr = lr
        self.weight_decay = weight_decay
        self.exp_avg = tuple(torch.zeros_like(p) for p in self.params)
        self.exp_avg_sq = tuple(torch.zeros_like(p) for p in self.params)
        device = self.params[0].device
        self.blocks = list(blocks) if blocks is not None else [(0, self.params[0].shape[0])]
        if fused is None:
            fused = hasattr(torch, "_fused_adam_") and device.type in ("cpu", "cuda")
        self.fused = fused
        # A float32 scalar per block, on the parameters' device for the fused kernel.
        step_device = device if fused else torch.device("cpu")
        self.steps = [torch.zeros((), dtype=torch.float32, device=step_device) for _ in self.blocks]
        self._lists: dict[tuple[int, ...] | None, tuple[list[torch.Tensor], ...]] = {}

    def step(self, active: tuple[int, ...] | None = None) -> None:
        """Update every block, or only the blocks ``active`` (indices into ``blocks``);
        the others' parameters, moments and step counts stay exactly as they were."""
        block_steps, params, grads, exp_avgs, exp_avg_sqs, steps = self._block_lists(active)
        if self.fused:
            torch._foreach_add_(block_steps, 1)
            torch._fused_adam_(
                params, grads, exp_avgs, exp_avg_sqs, [], steps,
                lr=self.lr, beta1=BETA1, beta2=BETA2, weight_decay=self.weight_decay,
                eps=ADAM_EPS, amsgrad=False, maximize=False,
            )  # fmt: skip
            return
        for step_t in block_steps:
            step_t += 1
        # torch.optim.adam._single_tensor_adam, line for line.
        for param, grad, exp_avg, exp_avg_sq, step_t in zip(
            params, grads, exp_avgs, exp_avg_sqs, steps, strict=True
        ):
            if self.weight_decay != 0:
                grad = grad.add(param, alpha=self.weight_decay)
            exp_avg.lerp_(grad, 1 - BETA1)
            exp_avg_sq.mul_(BETA2).addcmul_(grad, grad, value=1 - BETA2)
            step = step_t.item()
            bias_correction1 = 1 - BETA1**step
            bias_correction2 = 1 - BETA2**step
            step_size = self.lr / bias_correction1
            bias_correction2_sqrt = bias_correction2**0.5
            denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(ADAM_EPS)
            param.addcdiv_(exp_avg, denom, value=-step_size)

    def _block_lists(self, active: tuple[int, ...] | None) -> tuple[list[torch.Tensor], ...]:
        """The step counts of the chosen blocks, then Adam's per-tensor lists."""
        if active not in self._lists:
            chosen = range(len(self.blocks)) if active is None else active
            pieces = [(b, buf) for b in chosen for buf in range(len(self.params))]
            self._lists[active] = (
                [self.steps[b] for b in chosen],
                *(
                    [t[buf][slice(*self.blocks[b])] for b, buf in pieces]
                    for t in (self.params, self.grads, self.exp_avg, self.exp_avg_sq)
                ),
                [self.steps[b] for b, _ in pieces],
            )
        return self._lists[active]


# --------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------


@dataclass
class _Packed:
    # (rows + 1, n_in + 2): every distinct fold's scaled training rows, a one, the target
    table: torch.Tensor
    base: np.ndarray  # (models,) first row of each model's training block
    n_train: np.ndarray  # (models,)
    pad_row: int  # the dummy row that fills short folds' batches
    x_test: list[torch.Tensor]  # each model's (test rows, n_in)


def _pack(
    features: np.ndarray,
    codec: np.ndarray,
    target: np.ndarray,
    jobs: Sequence[FoldJob],
    dtype: torch.dtype,
    device: torch.device,
) -> _Packed:
    blocks: dict[bytes, int] = {}
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    tests: list[np.ndarray] = []
    base = np.empty(len(jobs), dtype=np.int64)
    n_train = np.empty(len(jobs), dtype=np.int64)
    rows = 0
    for m, job in enumerate(jobs):
        train_idx = np.asarray(job.train_idx, dtype=np.int64)
        if train_idx.size == 0:
            raise ValueError(
                f"job seed={job.seed} held_out={job.held_out!r} has no training rows; "
                "every fold needs at least one"
            )
        # Seeds share folds: scale each distinct training set once.
        key = hashlib.blake2b(train_idx.tobytes(), digest_size=16).digest()
        if key not in blocks:
            blocks[key] = rows
            xs.append(fold_inputs(features, codec, train_idx, train_idx))
            ys.append(np.asarray(target, dtype=np.float64)[train_idx])
            rows += train_idx.size
        base[m], n_train[m] = blocks[key], train_idx.size
        tests.append(fold_inputs(features, codec, train_idx, np.asarray(job.test_idx)))

    x = np.concatenate([*xs, np.zeros((1, xs[0].shape[1]), dtype=np.float32)])
    y = np.concatenate([*ys, np.zeros(1)]).astype(np.float32)
    table = np.hstack([x, np.ones((x.shape[0], 1), dtype=np.float32), y[:, None]])

    def as_tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a).to(device=device, dtype=dtype)

    return _Packed(as_tensor(table), base, n_train, rows, [as_tensor(t) for t in tests])


# --------------------------------------------------------------------------
# Randomness
# --------------------------------------------------------------------------


class _Randomness:
    """Each model's own generator: epoch shuffles and dropout bits."""

    def __init__(
        self,
        streams: Sequence[torch.Generator],
        n_train: np.ndarray,
        steps: np.ndarray,
        batch: int,
        hidden: int,
        dropout: float,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        if device.type == "cpu":
            self.gens = list(streams)
        else:  # a device generator seeded from the model's own CPU stream
            self.gens = [
                torch.Generator(device=device).manual_seed(
                    int(torch.randint(2**62, (1,), generator=s))
                )
                for s in streams
            ]
        self.device = device
        self.n_train, self.steps = n_train, steps
        draws = 2 * batch * hidden  # two dropout layers per step
        words = -(-draws // _DRAWS_PER_WORD)
        shape = (len(streams), STEPS_PER_CHUNK, words)
        self.words = torch.empty(shape, dtype=torch.int64, device=device)
        bits = self.words.view(torch.int16)[..., :draws]
        self.bits = bits.unflatten(-1, (2, batch, hidden))
        self.masks = torch.empty(self.bits.shape, dtype=dtype, device=device)
        self.threshold = drop_threshold(dropout)
        self.scale = 1 / (1 - dropout)  # nn.Dropout's multiplier for kept units

    def shuffle(self, order: torch.Tensor) -> None:
        """Write each model's permutation of its training rows into ``order[m, :n_m]``."""
        for m, gen in enumerate(self.gens):
            n = int(self.n_train[m])
            torch.randperm(n, generator=gen, device=self.device, out=order[m, :n])

    def dropout_masks(self, first_step: int, n_steps: int) -> torch.Tensor:
        """Masks ``(models, n_steps, 2, batch, hidden)`` for steps ``first_step ...``.

        A model draws only for the steps it takes, so its stream never depends
        on how many steps the other models take.
        """
        for m, gen in enumerate(self.gens):
            own = int(min(max(self.steps[m] - first_step, 0), n_steps))
            if own:
                self.words[m, :own].random_(-(2**63), None, generator=gen)
        masks = self.masks[:, :n_steps]
        # Comparing straight into the float buffer is several times faster than
        # making a bool mask and converting it.
        torch.ge(self.bits[:, :n_steps], self.threshold, out=masks)
        return masks.mul_(self.scale)


# --------------------------------------------------------------------------
# The trainer
# --------------------------------------------------------------------------


class _ModelGroup:
    """Models that step together: one gather, one bmm per layer, one Adam call per step."""

    def __init__(
        self,
        packed: _Packed,
        members: np.ndarray,
        params: Sequence[torch.Tensor],
        streams: Sequence[torch.Generator],
        settings: TrainSettings,
    ) -> None:
        dev, dtype = params[0].device, params[0].dtype
        config = settings.model_config
        batch = settings.batch_size
        models = len(members)
        self.members = members
        self.packed = packed
        n_train = packed.n_train[members]
        self.steps = -(-n_train // batch)  # each model's minibatches per epoch
        self.max_steps = max_steps = int(self.steps.max())
        if np.any(np.diff(self.steps) > 0):
            raise ValueError("a group's members must come in order of decreasing steps per epoch")
        # Models with as many steps per epoch always step together: one Adam block each.
        starts = np.flatnonzero(np.r_[True, np.diff(self.steps) != 0])
        stops = np.r_[starts[1:], models]
        blocks = list(zip(starts.tolist(), stops.tolist(), strict=True))
        self.ws = Workspace(Layout(config.in_features, config.hidden), params, batch)
        self.adam = FlatAdam(
            params, self.ws.grad_buffers, settings.lr, settings.weight_decay, blocks
        )
        self.rand = _Randomness(
            streams, n_train, self.steps, batch, config.hidden, config.dropout, dtype, dev
        )
        # Loss weight of each (step, model, slot): 2 / rows in that batch, 0 on padding.
        pos = np.arange(max_steps * batch).reshape(max_steps, 1, batch)
        in_batch = np.minimum(n_train[None, :, None] - (pos - pos % batch), batch)
        coef = np.where(pos < n_train[None, :, None], 2.0 / np.maximum(in_batch, 1), 0.0)
        self.coef = torch.from_numpy(coef[..., None]).to(device=dev, dtype=dtype).unbind(0)
        # The Adam blocks that take each step (None: all of them).
        block_steps = self.steps[starts]
        self.active = [
            None if taking.all() else tuple(np.flatnonzero(taking).tolist())
            for taking in np.arange(max_steps)[:, None] < block_steps[None, :]
        ]
        self.order = torch.zeros(models, max_steps * batch, dtype=torch.int64, device=dev)
        self.base = torch.from_numpy(packed.base[members]).to(dev)[:, None]
        slot = torch.arange(max_steps * batch, device=dev)[None, :]
        self.padding = slot >= torch.from_numpy(n_train).to(dev)[:, None]

    def train_epoch(self) -> None:
        ws, adam, packed = self.ws, self.adam, self.packed
        self.rand.shuffle(self.order)
        rows = (self.order + self.base).masked_fill_(self.padding, packed.pad_row)
        # (step, model * batch): one contiguous gather index per step.
        rows = rows.view(len(self.members), self.max_steps, -1).transpose(0, 1)
        rows = rows.reshape(self.max_steps, -1)
        rows = rows.unbind(0)
        for first in range(0, self.max_steps, STEPS_PER_CHUNK):
            n_chunk = min(STEPS_PER_CHUNK, self.max_steps - first)
            masks = self.rand.dropout_masks(first, n_chunk)
            for s, mask1, mask2 in zip(
                range(first, first + n_chunk), masks[:, :, 0].unbind(1),
                masks[:, :, 1].unbind(1), strict=True,
            ):  # fmt: skip
                torch.index_select(packed.table, 0, rows[s], out=ws.rows)
                forward_backward(ws, self.coef[s], mask1, mask2)  # into adam.grads
                adam.step(self.active[s])

    def predict(self) -> list[np.ndarray]:
        predictions = []
        for i, m in enumerate(self.members):
            weights = (self.ws.w1[i], self.ws.w2[i], self.ws.w3[i])
            x_test = self.packed.x_test[m]
            out = [
                predict(weights, x_test[start : start + _EVAL_ROWS])
                for start in range(0, x_test.shape[0], _EVAL_ROWS)
            ]
            predictions.append(torch.cat(out).double().cpu().numpy() if out else np.empty(0))
        return predictions


def _stack_layers(
    layout: Layout,
    models: Sequence[Sequence[torch.Tensor]],
    dtype: torch.dtype,
    device: torch.device,
) -> tuple[torch.Tensor, ...]:
    """Layer buffers (see :class:`Layout`) holding the given models' layers, in order."""
    buffers = layout.buffers(len(models), dtype=dtype)
    for view, layers in zip(layout.views(buffers), zip(*models, strict=True), strict=True):
        view.copy_(torch.stack(layers))
    return tuple(buf.to(device) for buf in buffers)


def _split(n_train: np.ndarray, groups: int) -> list[np.ndarray]:
    """Job indices of each group: equal shares, each sorted by decreasing training rows."""
    return [
        members[np.argsort(-n_train[members], kind="stable")]
        for members in np.array_split(np.arange(len(n_train)), groups)
    ]


def _cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _train_groups(
    groups: Sequence[_ModelGroup], epochs: int, progress: Callable[[int, int], None] | None
) -> None:
    """Train the groups side by side, a thread each; ``progress`` runs in this thread."""
    if len(groups) == 1:
        for epoch in range(epochs):
            groups[0].train_epoch()
            if progress is not None:
                progress(epoch + 1, epochs)
        return

    events: queue.SimpleQueue[tuple[int, BaseException | None]] = queue.SimpleQueue()
    stop = threading.Event()

    def work(i: int) -> None:
        try:
            with torch.inference_mode():  # grad mode is per thread
                for _ in range(epochs):
                    if stop.is_set():
                        return
                    groups[i].train_epoch()
                    events.put((i, None))
        except BaseException as exc:  # re-raised in the calling thread
            events.put((i, exc))

    threads = [
        threading.Thread(target=work, args=(i,), name=f"frreg-batched-{i}", daemon=True)
        for i in range(len(groups))
    ]
    for t in threads:
        t.start()
    done = [0] * len(groups)
    reported = 0
    try:
        while reported < epochs:
            i, exc = events.get()
            if exc is not None:
                raise exc
            done[i] += 1
            while reported < min(done):
                reported += 1
                if progress is not None:
                    progress(reported, epochs)
    finally:
        stop.set()
        for t in threads:
            t.join()


def train_folds_batched(
    features: np.ndarray,
    codec: np.ndarray,
    target: np.ndarray,
    jobs: Sequence[FoldJob],
    settings: TrainSettings,
    *,
    device: str = "cpu",
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> list[np.ndarray]:
    """Train every job's model at once; return each job's held-out predictions
    (float64, aligned with ``job.test_idx``).

    Each model follows :func:`frreg.train.train_fold_reference`'s recipe and
    depends only on its own job, never on the other jobs in ``jobs``.
    ``progress(done_epochs, total_epochs)`` is called after every epoch, from
    the calling thread. On the CPU the models are split into ``workers`` groups
    (default: one per available core), each trained in its own thread with
    single-threaded ops: torch's intra-op thread count is 1 until this returns
    (other torch work in the process meanwhile sees it too). On other devices
    ``workers`` defaults to 1.
    """
    if not jobs:
        return []
    dev = torch.device(device)
    dtype = torch.float32
    config = settings.model_config
    layout = Layout(config.in_features, config.hidden)
    if workers is None:
        workers = _cpu_cores() if dev.type == "cpu" else 1
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")

    with torch.inference_mode():
        packed = _pack(features, codec, target, jobs, dtype, dev)
        inits = [initial_parameters(job, config) for job in jobs]
        groups = [
            _ModelGroup(
                packed,
                members,
                _stack_layers(layout, [inits[m][0] for m in members], dtype, dev),
                [inits[m][1] for m in members],
                settings,
            )
            for members in _split(packed.n_train, min(workers, len(jobs)))
        ]
        threads_before = torch.get_num_threads()
        if dev.type == "cpu":
            torch.set_num_threads(1)
        try:
            _train_groups(groups, settings.epochs, progress)
        finally:
            torch.set_num_threads(threads_before)
        predictions: list[np.ndarray] = [np.empty(0)] * len(jobs)
        for group in groups:
            for m, pred in zip(group.members, group.predict(), strict=True):
                predictions[m] = pred
    return predictions
