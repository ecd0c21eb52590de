"""The batched trainer: packing inputs, per-model randomness, model groups and threads.

See :mod:`frreg.training.batched` for the method and its independence guarantee.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import torch

from frreg.training.batched.adam import ADAM_EPS, BETA1, BETA2, FlatAdam
from frreg.training.batched.kernels import Workspace, forward_backward, predict
from frreg.training.batched.layout import Layout, initial_parameters
from frreg.training.network import MLPConfig
from frreg.training.settings import Fit, FoldJob, TrainSettings, fold_inputs

#: Bump whenever a change in this package can change a trained number: it is
#: part of every cache key, so stale models are retrained instead of served.
#: (The kernel that trained a model, ``native`` or ``torch``, is in the key too.)
#: 2: the native kernel's Adam without divisions (recip_f), GELU's slope from erf's exp,
#: dropout drawn from four xoshiro lanes (none without dropout), subnormals flushed.
#: 3: initial weights drawn without torch's per-instruction-set uniform_ (model._linear),
#: native held-out predictions by the kernel's own forward pass: a native run is the same
#: bits on AVX2 and AVX-512 CPUs, torch's dispatch included.
ENGINE_VERSION: Final = 3

#: The batched engine's two kernels: ``native``, the compiled C kernel
#: (``_native.c``, CPU only), one model at a time for a whole epoch per call; and
#: ``torch``, the same recipe as batched torch ops (any device). They draw their
#: randomness differently, so they agree in distribution, not bit for bit.
#: Both take every size from the run's :class:`MLPConfig`; the shapes each trains
#: are :func:`check_supported`'s.
KERNELS: Final = ("native", "torch")
#: Set to ``torch`` to run the torch kernel even where the native one is built.
KERNEL_ENV: Final = "FRREG_KERNEL"

#: Dropout masks are drawn and expanded this many steps at a time.
STEPS_PER_CHUNK = 32

_MASK_BITS = 16  # each dropout draw is one int16 ...
_DRAWS_PER_WORD = 64 // _MASK_BITS  # ... read out of int64 random words
_EVAL_ROWS = 4096  # held-out rows evaluated per chunk


def drop_threshold(p: float) -> int:
    """The int16 below which a unit is dropped, for drop probability ``p``.

    The effective probability is ``(threshold + 2**15) / 2**16``: ``p`` rounded
    to the nearest multiple of 2**-16.
    """
    return round(p * (1 << _MASK_BITS)) - (1 << (_MASK_BITS - 1))


#: The native kernel's instruction-set variant that is too slow to choose: x86-64
#: without AVX2 and FMA (it also rounds differently, having no fused multiply-add).
SLOW_NATIVE_TARGET: Final = "baseline"


def native_module() -> Any | None:
    """The compiled kernel, or ``None`` where it was not built or would run its slow
    x86-64 baseline variant (then ``torch`` runs).

    Its AVX-512 and AVX2 variants compute the same numbers, bit for bit.
    """
    try:
        from frreg.training.batched import _native  # type: ignore[attr-defined]
    except ImportError:
        return None
    if _native.target() == SLOW_NATIVE_TARGET:
        return None
    return _native


def resolve_kernel(
    device: str = "cpu", requested: str | None = None, model: MLPConfig | None = None
) -> str:
    """The kernel a batched run of ``model`` (default: ``MLPConfig()``) uses:
    ``requested``, else :data:`KERNEL_ENV`, else ``native`` on the CPU where it is
    built, else ``torch``.

    Raises ``ValueError`` for an unknown kernel, ``native`` where it cannot run, and a
    shape the chosen kernel does not train (:func:`check_supported`): on the CPU that
    includes the default choice, so a shape the native kernel lacks is refused, never
    quietly handed to the slower torch kernel; ask for ``torch`` to train it there.
    """
    if requested is None:
        requested = os.environ.get(KERNEL_ENV) or None
        if requested is None:
            native = torch.device(device).type == "cpu" and native_module() is not None
            requested = "native" if native else "torch"
    if requested not in KERNELS:
        raise ValueError(f"unknown kernel {requested!r}; expected one of {', '.join(KERNELS)}")
    if requested == "native":
        if torch.device(device).type != "cpu":
            raise ValueError(f"the native kernel runs on the CPU only, not {device}")
        if native_module() is None:
            raise ValueError(
                "the native kernel is not available here (not built, or this CPU lacks "
                "AVX2 and FMA): reinstall frreg with a C compiler, or use the torch kernel"
            )
    check_supported(model or MLPConfig(), requested)
    return requested


def check_supported(config: MLPConfig, kernel: str) -> None:
    """Raise a one-line ``ValueError`` unless ``kernel`` trains networks of ``config``'s shape.

    The torch kernel trains every :class:`MLPConfig` (any depth and width). The native
    kernel trains the widths and depths its build declares (``_native.hidden_multiple()``,
    ``_native.max_depth()``): widths that fill its vector registers exactly, where any
    other would run scalar code, slower than the torch kernel.
    """
    if kernel != "native":
        return
    native = native_module()
    if native is None:
        return  # resolve_kernel says why it cannot run
    if not _native_trains(native, config):
        multiple, max_depth = int(native.hidden_multiple()), int(native.max_depth())
        max_hidden = int(native.max_hidden())
        raise ValueError(
            f"the native kernel trains hidden widths that are multiples of {multiple} at depth "
            f"1 to {max_depth}, not hidden {config.hidden} at depth {config.depth} (widths up "
            f"to {max_hidden}): choose such a shape, or set {KERNEL_ENV}=torch to train this "
            "one with the torch kernel"
        )


def _native_trains(native: Any, config: MLPConfig) -> bool:
    """Whether the built native kernel trains (and evaluates) networks of ``config``'s
    shape: the widths and depths it declares."""
    return (
        config.hidden % int(native.hidden_multiple()) == 0
        and config.hidden <= int(native.max_hidden())
        and config.depth <= int(native.max_depth())
    )


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
        config: MLPConfig,
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
        depth, hidden = config.depth, config.hidden
        draws = depth * batch * hidden  # a dropout layer after each hidden layer
        words = -(-draws // _DRAWS_PER_WORD)
        shape = (len(streams), STEPS_PER_CHUNK, words)
        self.words = torch.empty(shape, dtype=torch.int64, device=device)
        bits = self.words.view(torch.int16)[..., :draws]
        self.bits = bits.view(*bits.shape[:-1], depth, batch, hidden)
        self.masks = torch.empty(self.bits.shape, dtype=dtype, device=device)
        self.threshold = drop_threshold(config.dropout)
        self.scale = 1 / (1 - config.dropout)  # nn.Dropout's multiplier for kept units

    def shuffle(self, order: torch.Tensor) -> None:
        """Write each model's permutation of its training rows into ``order[m, :n_m]``."""
        for m, gen in enumerate(self.gens):
            n = int(self.n_train[m])
            torch.randperm(n, generator=gen, device=self.device, out=order[m, :n])

    def dropout_masks(self, first_step: int, n_steps: int) -> torch.Tensor:
        """Masks ``(models, n_steps, depth, batch, hidden)`` for steps ``first_step ...``.

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
        config = settings.model
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
        self.ws = Workspace(Layout(config), params, batch)
        self.adam = FlatAdam(
            params, self.ws.grad_buffers, settings.lr, settings.weight_decay, blocks
        )
        self.rand = _Randomness(streams, n_train, self.steps, batch, config, dtype, dev)
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
        step_rows = rows.reshape(self.max_steps, -1).unbind(0)
        for first in range(0, self.max_steps, STEPS_PER_CHUNK):
            n_chunk = min(STEPS_PER_CHUNK, self.max_steps - first)
            masks = self.rand.dropout_masks(first, n_chunk)
            for s, step_masks in zip(range(first, first + n_chunk), masks.unbind(1), strict=True):
                torch.index_select(packed.table, 0, step_rows[s], out=ws.rows)
                # step_masks: (models, depth, batch, hidden), one mask per hidden layer
                forward_backward(ws, self.coef[s], *step_masks.unbind(1))  # into adam.grads
                adam.step(self.active[s])

    def fits(self) -> list[Fit]:
        return _fits(self.packed, self.members, self.ws.weights)


def _fits(
    packed: _Packed, members: np.ndarray, views: Sequence[torch.Tensor], native: bool = False
) -> list[Fit]:
    """Each member's held-out predictions and layers (``views``: its group's layer views);
    ``native``: the native kernel trained them (see :func:`_predictions`)."""
    fits = []
    for i, m in enumerate(members):
        weights = tuple(v[i] for v in views)
        preds = _predictions(weights, packed.x_test[m], native)
        layers = tuple(w.detach().cpu().numpy().astype(np.float32) for w in weights)
        fits.append(Fit(preds, layers))
    return fits


def _predictions(weights: Sequence[torch.Tensor], x: torch.Tensor, native: bool) -> np.ndarray:
    """One model's eval-mode outputs (float64) for inputs ``x``. A model the native kernel
    trained is evaluated by it (its training forward pass with every unit kept), so that
    its predictions, like its weights, are the same bits on every CPU that trains it: torch's
    float32 products and GELU run code picked by instruction set, whose last bits differ
    (``ATEN_CPU_CAPABILITY=default`` against ``avx2``). Others go through
    :func:`kernels.predict`."""
    if native:
        return predict_layers([w.numpy() for w in weights], x.numpy())
    parts = [
        predict(weights, x[start : start + _EVAL_ROWS])
        for start in range(0, x.shape[0], _EVAL_ROWS)
    ]
    return torch.cat(parts).double().cpu().numpy() if parts else np.empty(0)


#: Rows the native kernel evaluates at a time in :func:`predict_layers` (its scratch): any
#: count gives the same bits, each row's outputs being sums of its own.
_PREDICT_ROWS: Final = 256


def predict_layers(layers: Sequence[np.ndarray], x: np.ndarray) -> np.ndarray:
    """Eval-mode outputs (float64) of one model, ``layers`` its ``(fan_in + 1, fan_out)``
    float32 matrices, for float32 inputs ``x`` ``(rows, fan_in)``: by the native kernel
    where it is built and trains this shape (the bits its training run recorded, see
    :func:`_predictions`), else by :func:`kernels.predict`."""
    native, config = native_module(), _config_of(layers)
    if (
        native is None
        or config is None
        or x.shape[1:] != (config.in_features,)
        or not _native_trains(native, config)
    ):
        with torch.inference_mode():
            weights = [torch.from_numpy(np.ascontiguousarray(w)) for w in layers]
            return predict(weights, torch.from_numpy(x)).double().numpy()
    recipe = native_recipe(TrainSettings(batch_size=_PREDICT_ROWS, model=config))
    out = np.empty(x.shape[0], dtype=np.float64)
    native.predict(
        np.ascontiguousarray(x, dtype=np.float32),
        tuple(np.ascontiguousarray(w, dtype=np.float32) for w in layers),
        recipe,
        out,
    )
    return out


def _config_of(layers: Sequence[np.ndarray]) -> MLPConfig | None:
    """The dropout-free :class:`MLPConfig` whose ``layer_shapes`` are these layers' shapes
    (its inputs all counted as features), or ``None`` where no config has them."""
    shapes = tuple(tuple(w.shape) for w in layers)
    if len(shapes) < 2 or any(len(s) != 2 for s in shapes):
        return None
    try:
        config = MLPConfig(
            n_features=shapes[0][0] - 1,
            num_codecs=0,
            hidden=shapes[0][1],
            depth=len(shapes) - 1,
            dropout=0.0,
        )
    except ValueError:
        return None
    return config if config.layer_shapes == shapes else None


def native_recipe(settings: TrainSettings) -> tuple[int | float, ...]:
    """The native kernel's recipe tuple: the network's shape from ``settings.model``, then
    the batch, dropout and Adam settings, in ``_native.c``'s ``parse_recipe`` order."""
    config = settings.model
    return (
        config.in_features + 1,
        config.hidden,
        config.depth,
        settings.batch_size,
        drop_threshold(config.dropout) + (1 << (_MASK_BITS - 1)),  # as an unsigned threshold
        1.0 / (1.0 - config.dropout),
        settings.lr,
        settings.weight_decay,
        BETA1,
        BETA2,
        ADAM_EPS,
    )


def _stream_seed(stream: torch.Generator) -> np.ndarray:
    """A model's xoshiro256** state (four 64-bit words), drawn from its own torch stream."""
    words = torch.randint(-(2**63), 2**63 - 1, (4,), dtype=torch.int64, generator=stream)
    state = words.numpy().view(np.uint64).copy()
    if not state.any():  # the one state xoshiro cannot leave
        state[0] = 1
    return state


class _NativeGroup:
    """Models trained by the compiled kernel: one call per epoch, one model after another.

    Same interface as :class:`_ModelGroup`. The layer buffers are shared with
    torch (``Tensor.numpy()``), so held-out predictions and the returned layers
    go through exactly the code the torch kernel's models do.
    """

    def __init__(
        self,
        packed: _Packed,
        members: np.ndarray,
        params: Sequence[torch.Tensor],
        streams: Sequence[torch.Generator],
        settings: TrainSettings,
    ) -> None:
        self.members = members
        self.packed = packed
        self.views = Layout(settings.model).views(params)
        self.params = tuple(p.numpy() for p in params)
        self.exp_avg = tuple(np.zeros_like(p) for p in self.params)
        self.exp_avg_sq = tuple(np.zeros_like(p) for p in self.params)
        self.step = np.zeros(len(members), dtype=np.int64)
        self.rng = np.stack([_stream_seed(s) for s in streams])
        self.base = np.ascontiguousarray(packed.base[members], dtype=np.int64)
        self.n_train = np.ascontiguousarray(packed.n_train[members], dtype=np.int64)
        self.table = packed.table.numpy()
        self.recipe = native_recipe(settings)
        self.used = _used_columns(self.table, self.base, self.n_train, int(self.recipe[0]))
        native = native_module()
        if native is None:
            raise RuntimeError("the native kernel is not built")
        self.native: Any = native

    def train_epoch(self, trace: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        """One epoch of every member. ``trace`` (tests; a one-model group): arrays the
        kernel copies its draws into, the epoch's permutation of the training rows
        (``(n_train,)`` int64) and each step's dropout masks
        (``(steps, depth, batch, hidden)`` float32, a partial batch's first rows)."""
        self.native.train_epoch(
            self.table, self.base, self.n_train, self.params, self.exp_avg, self.exp_avg_sq,
            self.step, self.rng, self.recipe, trace=trace, used=self.used,
        )  # fmt: skip

    def fits(self) -> list[Fit]:
        return _fits(self.packed, self.members, self.views, native=True)


def _used_columns(
    table: np.ndarray, base: np.ndarray, n_train: np.ndarray, n_in1: int
) -> np.ndarray:
    """``(models, n_in1)`` uint8: 1 where a column of the inputs is nonzero in some training
    row of the model. The kernel skips the others (the one-hot slots of encoders a corpus
    lacks), which changes no number: see ``Scratch`` in ``_native.c``."""
    blocks: dict[tuple[int, int], np.ndarray] = {}
    used = np.empty((len(base), n_in1), dtype=np.uint8)
    for m, (b, n) in enumerate(zip(base.tolist(), n_train.tolist(), strict=True)):
        if (b, n) not in blocks:
            blocks[b, n] = (table[b : b + n, :n_in1] != 0).any(axis=0)
        used[m] = blocks[b, n]
    return used


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
    groups: Sequence[_ModelGroup | _NativeGroup],
    epochs: int,
    progress: Callable[[int, int], None] | None,
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


def fit_folds_batched(
    features: np.ndarray,
    codec: np.ndarray,
    target: np.ndarray,
    jobs: Sequence[FoldJob],
    settings: TrainSettings,
    *,
    device: str = "cpu",
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
    kernel: str | None = None,
) -> list[Fit]:
    """Train every job's model at once; return each job's :class:`Fit` (held-out
    predictions, float64 aligned with ``job.test_idx``, and the trained layers).

    Each model follows :func:`frreg.training.reference.fit_fold_reference`'s recipe and
    depends only on its own job, never on the other jobs in ``jobs``.
    ``progress(done_epochs, total_epochs)`` is called after every epoch, from
    the calling thread. On the CPU the models are split into ``workers`` groups
    (default: one per available core), each trained in its own thread with
    single-threaded ops: torch's intra-op thread count is 1 until this returns
    (other torch work in the process meanwhile sees it too). On other devices
    ``workers`` defaults to 1. ``kernel`` (:data:`KERNELS`; default:
    :func:`resolve_kernel`) says which kernel trains.
    """
    if not jobs:
        return []
    dev = torch.device(device)
    dtype = torch.float32
    config = settings.model
    kernel = resolve_kernel(device, kernel, config)  # refuses a shape the kernel lacks
    group_type = _NativeGroup if kernel == "native" else _ModelGroup
    layout = Layout(config)
    if workers is None:
        workers = _cpu_cores() if dev.type == "cpu" else 1
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")

    with torch.inference_mode():
        packed = _pack(features, codec, target, jobs, dtype, dev)
        inits = [initial_parameters(job, config) for job in jobs]
        groups = [
            group_type(
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
        fits: list[Fit | None] = [None] * len(jobs)
        for group in groups:
            for m, fit in zip(group.members, group.fits(), strict=True):
                fits[m] = fit
    return [f for f in fits if f is not None]


# --------------------------------------------------------------------------
# Many recipes in one run
# --------------------------------------------------------------------------


#: A many-recipe run is split into about this many groups per worker thread, so that the
#: last groups to finish leave little idle time: 24 groups of 65 models on 2 threads left
#: the default sweep 94.5 % parallel (about one group's time idle at the end); this
#: makes it 3 groups per recipe, 72 in all.
TASKS_PER_WORKER: Final = 32

#: ``curve(job index, epoch, held-out predictions)``: one point of a model's held-out
#: curve, called from the calling thread.
CurvePoint = Callable[[int, int, np.ndarray], None]
#: ``trained(job indices, seconds)``: a group of models finished, in this many seconds of
#: its thread's CPU time (its curve's evaluations not counted), from the calling thread.
GroupTrained = Callable[[np.ndarray, float], None]


@dataclass
class _Task:
    """One group of models of one recipe, trained for all its epochs by one thread."""

    group: _ModelGroup | _NativeGroup
    jobs: np.ndarray  # the group's members as indices into the run's jobs
    epochs: int
    cost: float  # relative training time, to start the longest tasks first


def _recipe_cost(settings: TrainSettings, n_train: int) -> float:
    """Relative time of one model: its epochs x its rows x its network's multiply-adds per row."""
    macs = sum(rows * cols for rows, cols in settings.model.layer_shapes)
    return float(settings.epochs) * float(n_train) * float(macs)


def fit_recipes_batched(
    features: np.ndarray,
    codec: np.ndarray,
    target: np.ndarray,
    jobs: Sequence[FoldJob],
    settings: Sequence[TrainSettings],
    *,
    device: str = "cpu",
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
    kernel: str | None = None,
    curve_every: int | None = None,
    curve: CurvePoint | None = None,
    trained: GroupTrained | None = None,
) -> list[Fit]:
    """:func:`fit_folds_batched` for jobs that each carry their own recipe: job ``i``
    is trained with ``settings[i]`` (its network, epochs, batch, Adam and dropout), and
    its numbers are exactly those it gets alone with that recipe.

    Jobs of one recipe form groups (of at most ``len(jobs) / (TASKS_PER_WORKER x
    workers)`` models); ``workers`` threads take the groups longest first, each training
    a group for all its epochs. ``progress(done, total)`` counts model-epochs. With
    ``curve_every`` and ``curve``, every model's held-out predictions after every
    ``curve_every``-th epoch and after its last are passed to ``curve(job index, epoch,
    predictions)`` (in the calling thread), so one run yields every shorter epoch count.
    ``trained`` hears how long each group took (:data:`GroupTrained`).
    All recipes must share ``preset_norm``: it decides ``codec``, which comes filled.
    """
    if len(settings) != len(jobs):
        raise ValueError(f"{len(jobs)} jobs but {len(settings)} settings")
    if not jobs:
        return []
    if len({s.preset_norm for s in settings}) > 1:
        raise ValueError("every recipe of one run must share preset_norm (it fills codec)")
    if curve_every is not None and curve_every < 1:
        raise ValueError(f"curve_every must be at least 1, got {curve_every}")
    dev = torch.device(device)
    dtype = torch.float32
    if workers is None:
        workers = _cpu_cores() if dev.type == "cpu" else 1
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    recipes: dict[TrainSettings, list[int]] = {}
    for i, s in enumerate(settings):
        recipes.setdefault(s, []).append(i)
    kernels = {s: resolve_kernel(device, kernel, s.model) for s in recipes}

    with torch.inference_mode():
        packed = _pack(features, codec, target, jobs, dtype, dev)
        tasks: list[_Task] = []
        # Groups of at most this many models: enough tasks that the last ones to finish
        # leave little of the other threads' time idle.
        per_task = max(1, -(-len(jobs) // (TASKS_PER_WORKER * workers)))
        for recipe, indices in recipes.items():
            group_type = _NativeGroup if kernels[recipe] == "native" else _ModelGroup
            layout = Layout(recipe.model)
            idx = np.asarray(indices, dtype=np.int64)
            for part in _split(packed.n_train[idx], -(-len(idx) // per_task)):
                members = idx[part]
                inits = [initial_parameters(jobs[m], recipe.model) for m in members]
                group = group_type(
                    packed,
                    members,
                    _stack_layers(layout, [layers for layers, _ in inits], dtype, dev),
                    [stream for _, stream in inits],
                    recipe,
                )
                cost = sum(_recipe_cost(recipe, int(packed.n_train[m])) for m in members)
                tasks.append(_Task(group, members, recipe.epochs, cost))
        tasks.sort(key=lambda t: -t.cost)
        threads_before = torch.get_num_threads()
        if dev.type == "cpu":
            torch.set_num_threads(1)
        try:
            _run_tasks(tasks, min(workers, len(tasks)), progress, curve_every, curve, trained)
        finally:
            torch.set_num_threads(threads_before)
        fits: list[Fit | None] = [None] * len(jobs)
        for task in tasks:
            for m, fit in zip(task.jobs, task.group.fits(), strict=True):
                fits[m] = fit
    return [f for f in fits if f is not None]


def _held_out(group: _ModelGroup | _NativeGroup) -> list[np.ndarray]:
    """Each member's held-out predictions now (eval mode), as :func:`_fits` computes them."""
    native = isinstance(group, _NativeGroup)
    views = group.views if isinstance(group, _NativeGroup) else group.ws.weights
    return [
        _predictions(tuple(v[i] for v in views), group.packed.x_test[m], native)
        for i, m in enumerate(group.members)
    ]


def _run_tasks(
    tasks: Sequence[_Task],
    threads: int,
    progress: Callable[[int, int], None] | None,
    curve_every: int | None,
    curve: CurvePoint | None,
    trained: GroupTrained | None = None,
) -> None:
    """Train every task, ``threads`` at a time, longest first; report progress and curve
    points from the calling thread; the first error stops the rest and is raised here."""
    total = sum(t.epochs * len(t.jobs) for t in tasks)
    pending: queue.SimpleQueue[_Task] = queue.SimpleQueue()
    for task in tasks:
        pending.put(task)
    events: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
    stop = threading.Event()

    def work() -> None:
        try:
            with torch.inference_mode():  # grad mode is per thread
                while not stop.is_set():
                    try:
                        task = pending.get_nowait()
                    except queue.Empty:
                        break
                    start, evaluating = time.thread_time(), 0.0
                    for epoch in range(1, task.epochs + 1):
                        if stop.is_set():
                            return
                        task.group.train_epoch()
                        point = None
                        if (
                            curve is not None
                            and curve_every is not None
                            and (epoch % curve_every == 0 or epoch == task.epochs)
                        ):
                            before = time.thread_time()
                            point = (task.jobs, epoch, _held_out(task.group))
                            evaluating += time.thread_time() - before
                        events.put(("epoch", (len(task.jobs), point)))
                    seconds = time.thread_time() - start - evaluating
                    events.put(("trained", (task.jobs, seconds)))
        except BaseException as exc:  # re-raised in the calling thread
            events.put(("error", exc))
        finally:
            events.put(("done", None))

    pool = [
        threading.Thread(target=work, name=f"frreg-recipes-{i}", daemon=True)
        for i in range(threads)
    ]
    for t in pool:
        t.start()
    done = finished = 0
    try:
        while finished < len(pool):
            kind, payload = events.get()
            if kind == "error":
                raise payload
            if kind == "done":
                finished += 1
                continue
            if kind == "trained":
                if trained is not None:
                    trained(*payload)
                continue
            models, point = payload
            done += models
            if point is not None and curve is not None:
                members, epoch, predictions = point
                for m, pred in zip(members, predictions, strict=True):
                    curve(int(m), epoch, pred)
            if progress is not None:
                progress(done, total)
    finally:
        stop.set()
        for t in pool:
            t.join()
