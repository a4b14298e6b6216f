"""The data-free schedules (the contract is in dfkd/schedule.py): a source kept across rounds,
re-initialised every round, or meta-learned as an initialisation; and MAD's EMA generator, an
extension that rides on any of them.
"""
from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from .optim import make_optimizer
from .schedule import SCHEDULES, Extension, Schedule, generate


@SCHEDULES.register("persistent")
class PersistentSynthesizer(Schedule):
    """One generator G kept (and trained) across all rounds: DAFL, DFAD, ZSKT, DFQ. Each round:
    `g_steps` times, x = G(z) with z ~ N(0, I); the teacher (and the student when a term needs it)
    score view_t(x) / view_s(x); G takes an optimizer step on the source objective."""


class EmaGenerator(Extension):
    """MAD (Do et al., "Momentum Adversarial Distillation", NeurIPS 2022; `synth.ema` > 0): an EMA
    copy G' follows G after every step, p' <- ema·p' + (1 − ema)·p (buffers copied), and `sample(n)`
    draws round(ema_fraction·n) of the student's batch from G', so the student keeps seeing the
    regions the adversarial generator has already moved away from."""

    state_key = "ema_generator"

    def __init__(self, generator: nn.Module, ema: float, fraction: float, device):
        self.generator = copy.deepcopy(generator).to(device).requires_grad_(False)
        self.ema, self.fraction = ema, fraction

    @torch.no_grad()
    def after_step(self, sig, schedule: Schedule) -> None:
        for p_ema, p in zip(self.generator.parameters(), schedule.generator.parameters()):
            p_ema.lerp_(p, 1.0 - self.ema)
        for b_ema, b in zip(self.generator.buffers(), schedule.generator.buffers()):
            b_ema.copy_(b)

    def sample(self, n: int, schedule: Schedule) -> Tensor:
        k = round(self.fraction * n)
        parts = [generate(g, schedule.z(m), None, schedule.ctx.num_classes)
                 for g, m in ((self.generator, k), (schedule.generator, n - k)) if m > 0]
        return torch.cat(parts) if len(parts) > 1 else parts[0]

    def state_dict(self) -> dict:
        return self.generator.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.generator.load_state_dict(state)


@SCHEDULES.register("reinit")
class ReinitSynthesizer(Schedule):
    """The source is re-initialised at the start of every round and optimised from scratch for
    `g_steps` with a fresh optimizer whose schedule spans those steps: DeepInversion's free pixels
    (Yin et al. 2020), CMI's generator (Fang et al. 2021). Each round's batch is meant for a replay
    pool (`distill.batch=pool`); target classes (for the `ce` term) are drawn anew each round.
    """

    def begin_round(self) -> None:
        for m in self.generator.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
        self.optimizer, self.scheduler = make_optimizer(self._params, self.optim_cfg, self.cfg.g_steps)

    def after_step(self) -> None:
        self.scheduler.step()

    def end_round(self) -> None:
        pass


@SCHEDULES.register("meta")
class MetaSynthesizer(Schedule):
    """Fast (Fang et al., "Up to 100× Faster Data-free Knowledge Distillation", AAAI 2022): one
    shared generator is a meta-learned *initialisation*. Each round clones it, optimises the clone
    and fresh latent codes z (N, nz) for `g_steps` with a fresh optimizer, then moves the shared
    weights toward what the round found:
    - Reptile (Nichol et al. 2018): θ <- θ + meta_lr·(θ' − θ) (floating buffers likewise);
    - first-order MAML: θ <- θ − meta_lr·∇θ' L(θ'), the clone's last-step gradient.
    Used with a replay pool (`distill.batch=pool`), BN momentum and warm-up rounds. Differs from the
    authors' code: the meta update is this plain step rather than a pseudo-gradient through Adam, so
    `meta_lr` means exactly what it says.
    """

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.shared = self.generator
        self.codes: nn.Parameter | None = None  # the round's latent codes, optimised with the clone

    def z(self, n: int) -> Tensor:
        return self.codes

    def begin_round(self) -> None:
        self.generator = copy.deepcopy(self.shared)
        self.codes = nn.Parameter(torch.randn(self.cfg.batch_size, self.shared.nz, device=self.device))
        self._params = self.trained_params(self.generator, self.codes)
        self.optimizer, self.scheduler = make_optimizer(self._params, self.optim_cfg, self.cfg.g_steps)
        super().begin_round()  # e.g. NAYER's noisy layer is refreshed in the clone too

    def after_step(self) -> None:
        self.scheduler.step()

    @torch.no_grad()
    def end_round(self) -> None:
        clone, self.generator = self.generator, self.shared
        reptile, lr = self.cfg.meta == "reptile", self.cfg.meta_lr
        for p, q in zip(self.shared.parameters(), clone.parameters()):
            if reptile:
                p.add_(q - p, alpha=lr)
            elif q.grad is not None:
                p.sub_(q.grad, alpha=lr)
        for b, c in zip(self.shared.buffers(), clone.buffers()):
            if b.is_floating_point():
                b.lerp_(c, lr) if reptile else b.copy_(c)
            else:
                b.copy_(c)

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        return self.shared(torch.randn(n, self.shared.nz, device=self.device))

    def state_dict(self) -> dict:
        return {"generator": self.shared.state_dict(), "round": self.round, **self._shared_state()}

    def load_state_dict(self, state: dict) -> None:
        self.shared.load_state_dict(state["generator"])
        self.round = state["round"]
        self._load_shared_state(state)
