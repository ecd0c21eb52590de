"""Train many (seed, fold) models at once: the fast path behind the LOSO ensemble.

Every model follows :func:`frreg.train.train_fold_reference` step for step --
the same inputs (:func:`~frreg.train.fold_inputs`), the same initial weights,
MSE averaged over each minibatch (the last, partial one included), inverted
dropout, exact GELU and ``torch.optim.Adam`` with L2 weight decay -- but all
models advance together:

* The training rows of every distinct fold are scaled once and stacked into
  one ``(rows, in + 1)`` table whose last column is ones, so that each layer's
  bias is the last row of its weight matrix and one ``torch.bmm`` over a
  ``(models, batch, in + 1)`` gather computes every model's layer, bias
  gradient included. Shorter folds are padded with a dummy row whose loss
  weight is zero.
* The backward pass is written out by hand (no autograd) into preallocated
  buffers; GELU's derivative is ATen's own ``gelu_backward``.
* Adam runs on one ``(models, parameters)`` buffer with per-model bias
  corrections, in the same operation order as ``torch.optim.Adam``'s default
  (single-tensor) CPU path. A model with no batch left in the epoch is left
  untouched: no update, and its step count does not advance.
* Dropout bits are drawn in bulk, :data:`STEPS_PER_CHUNK` steps at a time, as
  64-bit random words read as 16-bit integers: a unit is dropped when its
  integer falls below a threshold, so the drop probability is ``p`` rounded
  to a multiple of 2**-16 (0.1 becomes 0.100006, an error of 6.1e-6).

Independence. All randomness of a model -- initial weights, per-epoch
shuffles, dropout -- comes from its own generators, seeded from
:func:`~frreg.train.fold_seed` of its job, and a model draws the same amounts
in the same order whichever other models share the batch. A job's predictions
therefore depend only on its seed, its held-out source, its rows and the
settings; the per-seed cache relies on that.

The initial weights are bit-identical to the reference's (the same module is
built under the same seed). The shuffles and dropout masks are not the
reference's draws -- they are statistically the same process -- so a batched
model and its reference twin agree in distribution (held-out PLCC), not bit
for bit.
"""

from __future__ import annotations

import hashlib
import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from frreg.model import FrRegressorMLP, MLPConfig
from frreg.train import FoldJob, TrainSettings, fold_inputs, fold_seed

__all__ = ["STEPS_PER_CHUNK", "train_folds_batched"]

# The reference optimizer is ``torch.optim.Adam`` with its default betas and
# eps; read them from torch rather than restating them.
_ADAM_DEFAULTS = inspect.signature(torch.optim.Adam).parameters
BETA1, BETA2 = _ADAM_DEFAULTS["betas"].default
ADAM_EPS: float = _ADAM_DEFAULTS["eps"].default

#: Dropout masks are drawn and expanded this many steps at a time (memory:
#: models x steps x batch x 2 x hidden x 7 bytes, ~42 MB for the full recipe).
STEPS_PER_CHUNK = 32

_WORD_BITS = 64  # random words are int64 ...
_MASK_BITS = 16  # ... read as four int16 draws each
_DRAWS_PER_WORD = _WORD_BITS // _MASK_BITS
_EVAL_ROWS = 4096  # held-out rows evaluated per chunk


def drop_threshold(p: float) -> int:
    """The int16 threshold below which a unit is dropped, for drop probability ``p``.

    The effective probability is ``(threshold + 2**15) / 2**16``, i.e. ``p``
    rounded to the nearest multiple of 2**-16.
    """
    return round(p * 2**_MASK_BITS) - 2 ** (_MASK_BITS - 1)


# --------------------------------------------------------------------------
# Parameter layout
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """Where each layer lives in a model's flat parameter vector.

    Layer ``k`` is stored as one ``(fan_in + 1, fan_out)`` matrix: the
    transposed ``nn.Linear`` weight with the bias appended as the last row.
    """

    n_in: int
    hidden: int

    @property
    def shapes(self) -> tuple[tuple[int, int], ...]:
        h = self.hidden
        return ((self.n_in + 1, h), (h + 1, h), (h + 1, 1))

    @property
    def size(self) -> int:
        return sum(r * c for r, c in self.shapes)

    def views(self, flat: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(models, fan_in + 1, fan_out)`` views of a ``(models, size)`` buffer."""
        out, start = [], 0
        for rows, cols in self.shapes:
            out.append(flat[:, start : start + rows * cols].unflatten(1, (rows, cols)))
            start += rows * cols
        return tuple(out)


def _linear_layers(model: FrRegressorMLP, layout: Layout) -> list[nn.Linear]:
    linears = [m for m in model.net if isinstance(m, nn.Linear)]
    got = [(m.in_features + 1, m.out_features) for m in linears]
    if got != list(layout.shapes):
        raise RuntimeError(
            f"frreg.batched expects layers {list(layout.shapes)} (fan_in + 1, fan_out) but "
            f"FrRegressorMLP has {got}; update frreg/batched.py together with frreg/model.py"
        )
    return linears


def initial_parameters(job: FoldJob, config: MLPConfig) -> tuple[torch.Tensor, torch.Generator]:
    """One model's initial flat parameters and the CPU generator that continues its stream.

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
    parts = [
        torch.cat([lin.weight.detach().T, lin.bias.detach()[None, :]]).reshape(-1)
        for lin in _linear_layers(model, layout)
    ]
    return torch.cat(parts), stream


# --------------------------------------------------------------------------
# Forward and hand-written backward
# --------------------------------------------------------------------------


class Workspace:
    """Preallocated activations and gradients for ``models x batch`` rows."""

    def __init__(
        self, layout: Layout, models: int, batch: int, dtype: torch.dtype, device: torch.device
    ) -> None:
        h = layout.hidden
        kw = {"dtype": dtype, "device": device}
        self.x = torch.empty(models * batch, layout.n_in + 1, **kw)
        self.y = torch.empty(models * batch, **kw)
        self.z1 = torch.empty(models, batch, h, **kw)
        self.z2 = torch.empty(models, batch, h, **kw)
        # Hidden activations carry a trailing column of ones (the next bias).
        self.h1 = torch.ones(models, batch, h + 1, **kw)
        self.h2 = torch.ones(models, batch, h + 1, **kw)
        self.out = torch.empty(models, batch, 1, **kw)
        self.g = torch.empty(models, batch, 1, **kw)
        self.gh = torch.empty(models, batch, h, **kw)
        self.gz = torch.empty(models, batch, h, **kw)
        self.grads = tuple(torch.empty(models, r, c, **kw) for r, c in layout.shapes)
        self.shape = (models, batch)
        self.hidden = h


def forward_backward(
    weights: Sequence[torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    coef: torch.Tensor,
    mask1: torch.Tensor,
    mask2: torch.Tensor,
    ws: Workspace,
) -> tuple[torch.Tensor, ...]:
    """One training step's forward pass and hand-written backward, for every model.

    ``x`` is ``(models, batch, n_in + 1)`` (last column ones), ``y`` and ``coef``
    ``(models, batch, 1)``; ``coef`` is ``2 / rows in the batch`` for real rows and
    0 for padding, so the gradient is that of each model's mean squared error.
    ``mask1``/``mask2`` are the dropout multipliers (0 or ``1 / (1 - p)``).
    Returns the per-layer gradients ``ws.grads`` (``(models, fan_in + 1, fan_out)``).
    """
    w1, w2, w3 = weights
    h = ws.hidden
    gw1, gw2, gw3 = ws.grads
    a1, a2 = ws.h1[..., :h], ws.h2[..., :h]
    gelu, gelu_backward = torch.ops.aten.gelu.out, torch.ops.aten.gelu_backward.grad_input

    torch.bmm(x, w1, out=ws.z1)
    gelu(ws.z1, out=a1)
    a1.mul_(mask1)
    torch.bmm(ws.h1, w2, out=ws.z2)
    gelu(ws.z2, out=a2)
    a2.mul_(mask2)
    torch.bmm(ws.h2, w3, out=ws.out)

    torch.sub(ws.out, y, out=ws.g)
    ws.g.mul_(coef)  # d(mean squared error)/d(output), zero on padding rows
    torch.bmm(ws.h2.transpose(1, 2), ws.g, out=gw3)
    torch.mul(ws.g, w3[:, :h, :].transpose(1, 2), out=ws.gh)
    ws.gh.mul_(mask2)
    gelu_backward(ws.gh, ws.z2, grad_input=ws.gz)
    torch.bmm(ws.h1.transpose(1, 2), ws.gz, out=gw2)
    torch.bmm(ws.gz, w2[:, :h, :].transpose(1, 2), out=ws.gh)
    ws.gh.mul_(mask1)
    gelu_backward(ws.gh, ws.z1, grad_input=ws.gz)
    torch.bmm(x.transpose(1, 2), ws.gz, out=gw1)
    return ws.grads


def predict(weights: Sequence[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Eval-mode outputs ``(models, rows)`` for inputs ``(models, rows, n_in)`` (no ones column)."""
    out = x
    for k, w in enumerate(weights):
        out = torch.baddbmm(w[:, -1:, :], out, w[:, :-1, :])
        if k < len(weights) - 1:
            out = torch.nn.functional.gelu(out)
    return out.squeeze(-1)


# --------------------------------------------------------------------------
# Adam
# --------------------------------------------------------------------------


def adam_factors(
    steps: np.ndarray, lr: float, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """``-lr / (1 - beta1**t)`` and ``sqrt(1 - beta2**t)`` for step counts ``t``, shaped
    ``steps.shape + (1,)`` -- the per-model scalars of ``torch.optim.Adam``'s update."""
    t = np.asarray(steps, dtype=np.float64)
    neg_step_size = -(lr / (1.0 - BETA1**t))
    bc2_sqrt = np.sqrt(1.0 - BETA2**t)
    as_tensor = lambda a: torch.from_numpy(a[..., None]).to(device=device, dtype=dtype)  # noqa: E731
    return as_tensor(neg_step_size), as_tensor(bc2_sqrt)


class FlatAdam:
    """``torch.optim.Adam`` (L2 weight decay, no amsgrad) over a ``(models, P)`` buffer.

    The caller supplies each step's per-model factors (:func:`adam_factors`)
    and, when some models sit the step out, the indices of those that take it.
    """

    def __init__(self, params: torch.Tensor, lr: float, weight_decay: float) -> None:
        self.params = params
        self.lr = lr
        self.weight_decay = weight_decay
        self.grad = torch.empty_like(params)
        self.exp_avg = torch.zeros_like(params)
        self.exp_avg_sq = torch.zeros_like(params)
        self._tmp = torch.empty_like(params)

    def load_grads(self, grads: Sequence[torch.Tensor], layout: Layout) -> None:
        """Copy per-layer gradients into the flat buffer, adding ``weight_decay * param``."""
        for src, dst, par in zip(
            grads, layout.views(self.grad), layout.views(self.params), strict=True
        ):
            if self.weight_decay != 0:
                torch.add(src, par, alpha=self.weight_decay, out=dst)
            else:
                dst.copy_(src)

    def step(
        self,
        neg_step_size: torch.Tensor,
        bc2_sqrt: torch.Tensor,
        active: torch.Tensor | None = None,
    ) -> None:
        """Apply one update from :attr:`grad` (already holding weight decay).

        ``neg_step_size``/``bc2_sqrt`` are ``(models, 1)``. With ``active`` (indices),
        only those models are updated; the others' parameters and moments are
        left exactly as they were.
        """
        if active is None:
            _adam_update(
                self.params, self.grad, self.exp_avg, self.exp_avg_sq, self._tmp,
                neg_step_size, bc2_sqrt,
            )  # fmt: skip
            return
        params, exp_avg, exp_avg_sq = (
            t.index_select(0, active) for t in (self.params, self.exp_avg, self.exp_avg_sq)
        )
        _adam_update(
            params, self.grad.index_select(0, active), exp_avg, exp_avg_sq,
            torch.empty_like(params), neg_step_size.index_select(0, active),
            bc2_sqrt.index_select(0, active),
        )  # fmt: skip
        self.params.index_copy_(0, active, params)
        self.exp_avg.index_copy_(0, active, exp_avg)
        self.exp_avg_sq.index_copy_(0, active, exp_avg_sq)


def _adam_update(
    params: torch.Tensor,
    grad: torch.Tensor,
    exp_avg: torch.Tensor,
    exp_avg_sq: torch.Tensor,
    tmp: torch.Tensor,
    neg_step_size: torch.Tensor,
    bc2_sqrt: torch.Tensor,
) -> None:
    # Same operations, in the same order, as torch.optim.adam._single_tensor_adam,
    # with the per-model scalars broadcast over each row. ``grad`` is clobbered.
    exp_avg.lerp_(grad, 1 - BETA1)
    exp_avg_sq.mul_(BETA2).addcmul_(grad, grad, value=1 - BETA2)
    torch.sqrt(exp_avg_sq, out=tmp)
    tmp.div_(bc2_sqrt).add_(ADAM_EPS)
    # param.addcdiv_(exp_avg, denom, value=-step_size) computes param + (value * exp_avg) / denom.
    torch.mul(exp_avg, neg_step_size, out=grad)
    grad.div_(tmp)
    params.add_(grad)


# --------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------


@dataclass
class _Packed:
    x: torch.Tensor  # (rows + 1, n_in + 1): every distinct fold's scaled training rows, ones
    y: torch.Tensor  # (rows + 1,)
    base: np.ndarray  # (models,) first row of each model's training block
    n_train: np.ndarray  # (models,)
    pad_row: int  # the dummy row that fills short folds' batches
    x_test: torch.Tensor  # (models, max test rows, n_in), zero-padded
    n_test: np.ndarray  # (models,)


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
    x = np.hstack([x, np.ones((x.shape[0], 1), dtype=np.float32)])
    y = np.concatenate([*ys, np.zeros(1)]).astype(np.float32)
    n_test = np.array([t.shape[0] for t in tests], dtype=np.int64)
    x_test = np.zeros((len(jobs), max(int(n_test.max()), 1), x.shape[1] - 1), dtype=np.float32)
    for m, t in enumerate(tests):
        x_test[m, : t.shape[0]] = t
    as_t = lambda a: torch.from_numpy(a).to(device=device, dtype=dtype)  # noqa: E731
    return _Packed(as_t(x), as_t(y), base, n_train, rows, as_t(x_test), n_test)


# --------------------------------------------------------------------------
# The trainer
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
        self.device = device
        if device.type == "cpu":
            self.gens = list(streams)
        else:
            # Seed a device generator from each model's own CPU stream.
            self.gens = [
                torch.Generator(device=device).manual_seed(
                    int(torch.randint(2**62, (1,), generator=s))
                )
                for s in streams
            ]
        self.n_train, self.steps, self.batch, self.hidden = n_train, steps, batch, hidden
        models = len(streams)
        draws = 2 * batch * hidden  # two dropout layers per step
        self.words_per_step = -(-draws // _DRAWS_PER_WORD)
        self.words = torch.empty(
            models, STEPS_PER_CHUNK, self.words_per_step, dtype=torch.int64, device=device
        )
        bits = self.words.view(torch.int16)[..., :draws]
        self.bits = bits.unflatten(-1, (2, batch, hidden))
        self.keep = torch.empty(self.bits.shape, dtype=torch.bool, device=device)
        self.masks = torch.empty(self.bits.shape, dtype=dtype, device=device)
        self.threshold = drop_threshold(dropout)
        self.keep_prob = 1 - dropout

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
        bits = self.bits[:, :n_steps]
        keep = self.keep[:, :n_steps]
        masks = self.masks[:, :n_steps]
        torch.ge(bits, self.threshold, out=keep)
        # Same multiplier as nn.Dropout: the kept indicator divided by 1 - p.
        torch.div(keep, self.keep_prob, out=masks)
        return masks


def train_folds_batched(
    features: np.ndarray,
    codec: np.ndarray,
    target: np.ndarray,
    jobs: Sequence[FoldJob],
    settings: TrainSettings,
    *,
    device: str = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> list[np.ndarray]:
    """Train every job's model at once; return each job's held-out predictions
    (float64, aligned with ``job.test_idx``).

    Each model follows :func:`frreg.train.train_fold_reference`'s recipe and
    depends only on its own job, not on the other jobs in ``jobs``.
    ``progress(done_epochs, total_epochs)`` is called after every epoch.
    """
    if not jobs:
        return []
    dev = torch.device(device)
    dtype = torch.float32
    config = settings.model_config
    layout = Layout(config.in_features, config.hidden)
    batch = settings.batch_size
    models = len(jobs)

    with torch.no_grad():
        packed = _pack(features, codec, target, jobs, dtype, dev)
        inits = [initial_parameters(job, config) for job in jobs]
        params = torch.stack([p for p, _ in inits]).to(device=dev, dtype=dtype)
        weights = layout.views(params)
        adam = FlatAdam(params, settings.lr, settings.weight_decay)

        n_train = packed.n_train
        steps = -(-n_train // batch)  # each model's minibatches per epoch
        max_steps = int(steps.max())
        rand = _Randomness(
            [s for _, s in inits], n_train, steps, batch, config.hidden, config.dropout,
            dtype, dev,
        )  # fmt: skip

        # Loss weight of each (step, model, slot): 2 / rows in that batch, 0 on padding.
        pos = np.arange(max_steps * batch).reshape(max_steps, 1, batch)
        rows_left = n_train[None, :, None] - (pos - pos % batch)
        in_batch = np.minimum(rows_left, batch)
        coef_np = np.where(pos < n_train[None, :, None], 2.0 / np.maximum(in_batch, 1), 0.0)
        coef = torch.from_numpy(coef_np[..., None]).to(device=dev, dtype=dtype)
        active_np = np.arange(max_steps)[:, None] < steps[None, :]  # (step, model)
        active_idx = [
            None if row.all() else torch.from_numpy(np.flatnonzero(row)).to(dev)
            for row in active_np
        ]

        order = torch.zeros(models, max_steps * batch, dtype=torch.int64, device=dev)
        base = torch.from_numpy(packed.base).to(dev)[:, None]
        slot = torch.arange(max_steps * batch, device=dev)[None, :]
        padding = slot >= torch.from_numpy(n_train).to(dev)[:, None]
        ws = Workspace(layout, models, batch, dtype, dev)
        x_step = ws.x.view(models, batch, -1)
        y_step = ws.y.view(models, batch, 1)

        for epoch in range(settings.epochs):
            rand.shuffle(order)
            rows = (order + base).masked_fill_(padding, packed.pad_row)
            # (step, model * batch): one contiguous gather index per step.
            rows = rows.view(models, max_steps, batch).transpose(0, 1).reshape(max_steps, -1)
            neg_step_size, bc2_sqrt = adam_factors(
                epoch * steps[None, :] + np.arange(1, max_steps + 1)[:, None],
                settings.lr, dtype, dev,
            )  # fmt: skip
            for first in range(0, max_steps, STEPS_PER_CHUNK):
                n_chunk = min(STEPS_PER_CHUNK, max_steps - first)
                masks = rand.dropout_masks(first, n_chunk)
                for k in range(n_chunk):
                    s = first + k
                    torch.index_select(packed.x, 0, rows[s], out=ws.x)
                    torch.index_select(packed.y, 0, rows[s], out=ws.y)
                    grads = forward_backward(
                        weights, x_step, y_step, coef[s], masks[:, k, 0], masks[:, k, 1], ws
                    )
                    adam.load_grads(grads, layout)
                    adam.step(neg_step_size[s], bc2_sqrt[s], active_idx[s])
            if progress is not None:
                progress(epoch + 1, settings.epochs)

        predictions = []
        x_test = packed.x_test
        out = torch.empty(models, x_test.shape[1], dtype=dtype, device=dev)
        for start in range(0, x_test.shape[1], _EVAL_ROWS):
            out[:, start : start + _EVAL_ROWS] = predict(
                weights, x_test[:, start : start + _EVAL_ROWS]
            )
        out_np = out.double().cpu().numpy()
        for m in range(models):
            predictions.append(out_np[m, : packed.n_test[m]].copy())
    return predictions


def _check_step_math() -> None:  # pragma: no cover - guard against a silent dtype change
    assert math.isclose(BETA1, 0.9) and math.isclose(BETA2, 0.999)
