"""``torch.optim.Adam`` for many models at once, over flat per-layer buffers."""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch

# The reference optimizer is ``torch.optim.Adam`` with its default betas and
# eps; read them from torch rather than restating them.
_ADAM_DEFAULTS = inspect.signature(torch.optim.Adam).parameters
BETA1, BETA2 = _ADAM_DEFAULTS["betas"].default
ADAM_EPS: float = _ADAM_DEFAULTS["eps"].default


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
