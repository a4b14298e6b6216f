"""Non-finite guard: a step whose loss or gradients hold NaN/Inf is skipped, not taken.

    guard = NonFiniteGuard(cfg.guard)
    loss.backward()
    if guard.check(loss, params):      # finite: take the step
        optimizer.step()
    else:                              # skipped and counted; gradients dropped
        optimizer.zero_grad(set_to_none=True)
    if guard.tripped: ...              # `patience` skipped steps in a row: roll back (see Distiller)

The check reads one boolean back from the device per step (a host sync on a GPU; nothing on a CPU).
"""
from __future__ import annotations

import torch
from torch import Tensor

from .config import GuardConfig


def all_finite(loss: Tensor, params) -> Tensor:
    """A 0-d bool tensor: the loss and every existing gradient are finite (one norm per tensor)."""
    grads = [p.grad for p in params if p.grad is not None]
    ok = torch.isfinite(loss.detach())
    if grads:
        norms = torch._foreach_norm(grads)  # inf/nan propagate into the norm
        ok = ok & torch.isfinite(torch.stack(norms)).all()
    return ok


def guarded_step(loss: Tensor, optimizer, scaler, guard: "NonFiniteGuard | None", params, inputs=None,
                 sync=None) -> bool:
    """backward (through the GradScaler), `sync(params)` (a data-parallel gradient all-reduce, if
    any), then the optimizer step only if the guard finds the loss and gradients finite; with fp16
    the scaler owns gradient overflow, so only the loss is checked. Under torchrun every rank takes
    the same decision. Returns whether the step was taken (a skipped step leaves no gradients behind)."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward(inputs=inputs)
    if sync is not None:
        sync(params)
    scaler.unscale_(optimizer)
    checked = () if scaler.is_enabled() else params
    if guard is not None and not guard.check(loss, checked):
        optimizer.zero_grad(set_to_none=True)
        scaler.update()
        return False
    scaler.step(optimizer)
    scaler.update()
    return True


class NonFiniteGuard:
    def __init__(self, cfg: GuardConfig):
        self.cfg = cfg
        self.skipped = 0  # steps skipped so far
        self.streak = 0  # skipped in a row
        self.rollbacks = 0

    def check(self, loss: Tensor, params) -> bool:
        if not self.cfg.enabled:
            return True
        from .distributed import agree

        ok = bool(agree(all_finite(loss, params)))
        self.streak = 0 if ok else self.streak + 1
        self.skipped += not ok
        return ok

    @property
    def tripped(self) -> bool:
        return self.cfg.enabled and self.streak >= self.cfg.patience

    def state_dict(self) -> dict:
        return {"skipped": self.skipped, "streak": self.streak, "rollbacks": self.rollbacks}

    def load_state_dict(self, state: dict) -> None:
        self.skipped, self.streak, self.rollbacks = state["skipped"], state["streak"], state["rollbacks"]


def finite_averages(sums: dict[str, Tensor], rounds: int, rnd: int) -> dict[str, float]:
    """The running sums of logged losses averaged over `rounds` (one host sync per log point), or
    NonFiniteError naming the first non-finite one: nothing non-finite is ever logged or written."""
    import math

    from .errors import NonFiniteError

    out = {}
    for k, v in sums.items():
        value = (v / rounds).item()
        if not math.isfinite(value):
            raise NonFiniteError(
                f"non-finite {k} ({value}) by round {rnd}; nothing was written after the last good "
                f"checkpoint. Lower the learning rates (student.optim.lr, source.optim.lr) or the term weights")
        out[k] = value
    return out
