"""Optimizers and learning-rate schedules from an `OptimConfig`, stepped once per update."""
from __future__ import annotations

import math
import warnings

import torch

from dfkd.config.fields import OptimConfig


def make_optimizer(params, cfg: OptimConfig, total_steps: int):
    """(optimizer, scheduler). The schedule spans `horizon` × `total_steps` calls of
    `scheduler.step()` (the run is its first 1/horizon): cosine decays to `min_lr` (PyTorch's
    CosineAnnealingLR with eta_min, in closed form), step multiplies by `gamma` at each fraction in
    `milestones`."""
    params = list(params)
    if cfg.name == "sgd":
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                              nesterov=False)
    else:
        opt = torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    total = max(1, round(total_steps * cfg.horizon))
    if cfg.schedule == "cosine":
        floor = min(cfg.min_lr / cfg.lr, 1.0) if cfg.lr > 0 else 0.0
        factor = lambda t: floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(t, total) / total))  # noqa: E731
    elif cfg.schedule == "step":
        marks = sorted(int(m * total) for m in cfg.milestones)
        factor = lambda t: cfg.gamma ** sum(t >= m for m in marks)  # noqa: E731
    else:
        factor = lambda t: 1.0  # noqa: E731
    return opt, UpdateCountingLR(opt, factor)


class UpdateCountingLR(torch.optim.lr_scheduler.LambdaLR):
    """A LambdaLR that counts updates taken or skipped: dfkd steps it after every update, also one the
    non-finite guard or the fp16 scaler skipped, so the schedule stays on the run's clock. PyTorch
    warns when the first update was skipped ("lr_scheduler.step() before optimizer.step()"); here that
    is the intended order, so the warning is not raised."""

    def step(self, epoch=None):
        if self._step_count > 1:  # PyTorch checks the order on the first call only
            return super().step(epoch)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before")
            return super().step(epoch)
