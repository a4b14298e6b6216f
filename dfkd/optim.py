"""Optimizers and learning-rate schedules from an `OptimConfig`, stepped once per update."""
from __future__ import annotations

import math

import torch

from .config import OptimConfig


def make_optimizer(params, cfg: OptimConfig, total_steps: int):
    """(optimizer, scheduler). The schedule spans `total_steps` calls of `scheduler.step()`:
    cosine decays to 0, step multiplies by `gamma` at each fraction in `milestones`."""
    params = list(params)
    if cfg.name == "sgd":
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                              nesterov=False)
    else:
        opt = torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    total = max(1, total_steps)
    if cfg.schedule == "cosine":
        factor = lambda t: 0.5 * (1.0 + math.cos(math.pi * min(t, total) / total))  # noqa: E731
    elif cfg.schedule == "step":
        marks = sorted(int(m * total) for m in cfg.milestones)
        factor = lambda t: cfg.gamma ** sum(t >= m for m in marks)  # noqa: E731
    else:
        factor = lambda t: 1.0  # noqa: E731
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)
