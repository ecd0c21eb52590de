"""The batched engine: train many (seed, fold) models at once, the fast path behind LOSO.

Every model follows :func:`frreg.training.reference.fit_fold_reference` step for step --
the same inputs (:func:`~frreg.training.settings.fold_inputs`), the same initial weights,
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

Shapes. Both kernels take every size from the run's
:class:`~frreg.training.network.MLPConfig` (its ``layer_shapes``): the torch
kernel trains any depth and width; the native kernel the widths and depths its
build declares (multiples of its widest vector, so no scalar remainder), and
:func:`check_supported` refuses any other shape before training, in one line,
even when the kernel was not asked for: an unsupported shape is never quietly
handed to the slower kernel.

Independence. All randomness of a model -- initial weights, per-epoch
shuffles, dropout -- comes from its own generators, seeded from
:func:`~frreg.training.settings.fold_seed` of its job, and a model draws the same amounts
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

from frreg.training.batched.engine import (
    ENGINE_VERSION,
    KERNEL_ENV,
    KERNELS,
    STEPS_PER_CHUNK,
    check_supported,
    drop_threshold,
    fit_folds_batched,
    fit_recipes_batched,
    native_module,
    native_recipe,
    resolve_kernel,
)

__all__ = [
    "ENGINE_VERSION",
    "KERNELS",
    "KERNEL_ENV",
    "STEPS_PER_CHUNK",
    "check_supported",
    "drop_threshold",
    "fit_folds_batched",
    "fit_recipes_batched",
    "native_module",
    "native_recipe",
    "resolve_kernel",
]
