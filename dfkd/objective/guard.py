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

from dfkd.config.schema import GuardConfig


def all_finite(loss: Tensor, params) -> Tensor:
    """A 0-d bool tensor: the loss and every existing gradient are finite (one norm per tensor)."""
    grads = [p.grad for p in params if p.grad is not None]
    ok = torch.isfinite(loss.detach())
    if grads:
        norms = torch._foreach_norm(grads)  # inf/nan propagate into the norm
        ok = ok & torch.isfinite(torch.stack(norms)).all()
    return ok


def guarded_step(loss: Tensor, optimizer, scaler, guard: "NonFiniteGuard | None", params, inputs=None,
                 sync=None, clip: float = 0.0, owner: str = "student") -> bool:
    """backward (through the GradScaler), `sync(params)` (a data-parallel gradient all-reduce, if
    any), then the step of `optimizer` (one, or a list of optimizers sharing the loss) only if the
    guard finds the loss and gradients finite; with fp16 the scaler owns gradient overflow, so only
    the loss is checked; `owner` ("student", "source") keeps its own streak of skipped steps. `clip` > 0
    clips the global gradient L2 norm of `params` first (ZSKT). Under
    torchrun every rank takes the same decision. Returns whether the step was taken (a skipped step
    leaves no gradients behind)."""
    optimizers = list(optimizer) if isinstance(optimizer, (list, tuple)) else [optimizer]
    for opt in optimizers:
        opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward(inputs=inputs)
    if sync is not None:
        sync(params)
    for opt in optimizers:
        scaler.unscale_(opt)
    checked = () if scaler.is_enabled() else params
    if guard is not None and not guard.check(loss, checked, owner):
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        scaler.update()
        return False
    if clip > 0:
        torch.nn.utils.clip_grad_norm_(list(params), clip)
    for opt in optimizers:
        scaler.step(opt)
    scaler.update()
    return True


class NonFiniteGuard:
    def __init__(self, cfg: GuardConfig):
        self.cfg = cfg
        self.skipped = 0  # steps skipped so far
        self.streaks: dict[str, int] = {}  # per owner (student, source): skipped in a row
        self.rollbacks = 0

    def check(self, loss: Tensor, params, owner: str = "student") -> bool:
        """Whether the step may be taken; a skip extends `owner`'s streak, a taken step ends it (the
        student's streak is not ended by the source's good steps between them, and vice versa)."""
        if not self.cfg.enabled:
            return True
        from dfkd.base.distributed import agree

        ok = bool(agree(all_finite(loss, params)))
        self.streaks[owner] = 0 if ok else self.streaks.get(owner, 0) + 1
        self.skipped += not ok
        return ok

    @property
    def streak(self) -> int:
        """The longest current streak of skipped steps."""
        return max(self.streaks.values(), default=0)

    @streak.setter
    def streak(self, n: int) -> None:
        self.streaks = {"student": n}

    @property
    def tripped(self) -> bool:
        return self.cfg.enabled and self.streak >= self.cfg.patience

    def state_dict(self) -> dict:
        return {"skipped": self.skipped, "streak": dict(self.streaks), "rollbacks": self.rollbacks}

    def load_state_dict(self, state: dict) -> None:
        self.skipped, self.rollbacks = state["skipped"], state["rollbacks"]
        streak = state["streak"]
        self.streaks = dict(streak) if isinstance(streak, dict) else {"student": streak}


def finite_averages(sums: dict[str, Tensor], rounds: int, rnd: int) -> dict[str, float]:
    """The running sums of logged losses averaged over `rounds` (one host sync per log point), or
    NonFiniteError naming the first non-finite one: nothing non-finite is ever logged or written."""
    import math

    from dfkd.base.errors import NonFiniteError

    out = {}
    for k, v in sums.items():
        value = (v / rounds).item()
        if not math.isfinite(value):
            raise NonFiniteError(
                f"non-finite {k} ({value}) by round {rnd}; nothing was written after the last good "
                f"checkpoint. Lower the learning rates (student.optim.lr, source.optim.lr) or the term weights")
        out[k] = value
    return out
