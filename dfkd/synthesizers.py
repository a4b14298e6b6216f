"""Synthesis schedules: how an input source is optimised against the objective from round to round.

Contract (after Fang et al.'s `synthesize()/sample()`):
- `synthesize(student) -> SynthBatch`: runs `g_steps` updates of the source against the source
  objective and returns the round's last batch (detached) with the teacher's logits on it;
- `sample(n) -> Tensor`: a fresh batch (N, C, H, W) for a student step, without gradients;
- `state_dict()` / `load_state_dict()` for checkpoints.

The frozen teacher is run through a `TeacherProbe`, which switches on BN-statistics and feature
hooks only when a weighted term needs them.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .hooks import BlockHooks, BNStatsHook, FeatureHook, classifier_layer, has_batchnorm
from .errors import DfkdError
from .objective import Objective, Signals
from .optim import make_optimizer
from .registry import Registry

SCHEDULES = Registry("schedule")


@dataclass
class SynthBatch:
    x: Tensor  # (N, C, H, W), detached
    t_logits: Tensor  # (N, K), teacher on view_t(x), detached


class TeacherProbe:
    """The frozen teacher (eval mode, no parameter gradients) plus the hooks a term may need."""

    def __init__(self, teacher: nn.Module):
        self.teacher = teacher.eval().requires_grad_(False)
        self.bn = BNStatsHook(teacher) if has_batchnorm(teacher) else None
        self.features = FeatureHook(classifier_layer(teacher), mode="input")
        self.blocks: BlockHooks | None = None

    def watch_blocks(self, names: list[str]) -> None:
        """Record these stage outputs whenever a term needs "blocks"."""
        self.blocks = BlockHooks(self.teacher, names)

    def __call__(self, x: Tensor, needs: frozenset = frozenset()) -> Signals:
        want_bn, want_feat = "bn" in needs, "features" in needs
        want_blocks = "blocks" in needs and self.blocks is not None
        if self.bn is not None:
            self.bn.enabled = want_bn
            self.bn.clear()
        self.features.enabled = want_feat
        if self.blocks is not None:
            self.blocks.enabled = want_blocks
        logits = self.teacher(x)
        return Signals(x=x, t_logits=logits,
                       bn_stats=list(self.bn.stats) if want_bn else [],
                       t_features=self.features.value if want_feat else None,
                       t_blocks=self.blocks.values if want_blocks else [])


class PersistentSynthesizer:
    """One generator G kept (and trained) across all rounds: DAFL, DFAD, ZSKT, DFQ.

    Each round: `g_steps` times, x = G(z) with z ~ N(0, I); the teacher (and the student when a term
    needs it) score view_t(x) / view_s(x); G takes an optimizer step on the source objective.
    Gradients reach G's parameters only (`backward(inputs=...)`), never the student's.

    With `ema` > 0 (MAD, Do et al., "Momentum Adversarial Distillation", NeurIPS 2022) an EMA copy
    G' follows G after every step, p' <- ema·p' + (1 − ema)·p (buffers copied), and `sample(n)`
    draws round(ema_fraction·n) of the student's batch from G', so the student keeps seeing the
    regions the adversarial generator has already moved away from.
    """

    def __init__(self, generator: nn.Module, optim_cfg, objective: Objective, probe: TeacherProbe,
                 view_t: nn.Module, view_s: nn.Module, batch_size: int, g_steps: int, rounds: int,
                 device: torch.device, ema: float = 0.0, ema_fraction: float = 0.5):
        self.generator = generator.to(device).train()
        self.objective, self.probe = objective, probe
        self.view_t, self.view_s = view_t, view_s
        self.batch_size, self.g_steps, self.device = batch_size, g_steps, device
        self._params = [p for p in generator.parameters() if p.requires_grad]
        if g_steps > 0 and not self._params:
            raise DfkdError(f"source '{type(generator).__name__}' has no parameters to optimise; "
                            f"set synth.g_steps=0")
        self.optimizer = self.scheduler = None
        if g_steps > 0:
            self.optimizer, self.scheduler = make_optimizer(self._params, optim_cfg, rounds)
        self.ema, self.ema_fraction = ema, ema_fraction
        self.ema_generator = copy.deepcopy(self.generator).requires_grad_(False) if ema > 0 else None

    def _z(self, n: int) -> Tensor:
        return torch.randn(n, self.generator.nz, device=self.device)

    def synthesize(self, student: nn.Module) -> tuple[SynthBatch, dict[str, Tensor]]:
        parts: dict[str, Tensor] = {}
        x = sig = None
        for _ in range(self.g_steps):
            x = self.generator(self._z(self.batch_size))
            sig = self.probe(self.view_t(x), self.objective.needs)
            if "student" in self.objective.needs:
                sig.s_logits = student(self.view_s(x))
            loss, parts = self.objective(sig)
            parts["loss"] = loss.detach()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward(inputs=self._params)
            self.optimizer.step()
            if self.ema_generator is not None:
                self._update_ema()
        if self.scheduler is not None:
            self.scheduler.step()
        if x is None:  # g_steps == 0: a fixed generator, only sampled
            x = self.sample(self.batch_size)
            with torch.no_grad():
                return SynthBatch(x, self.probe(self.view_t(x)).t_logits), parts
        return SynthBatch(x.detach(), sig.t_logits.detach()), parts

    @torch.no_grad()
    def _update_ema(self) -> None:
        for p_ema, p in zip(self.ema_generator.parameters(), self.generator.parameters()):
            p_ema.lerp_(p, 1.0 - self.ema)
        for b_ema, b in zip(self.ema_generator.buffers(), self.generator.buffers()):
            b_ema.copy_(b)

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        if self.ema_generator is None:
            return self.generator(self._z(n))
        k = round(self.ema_fraction * n)
        parts = [g(self._z(m)) for g, m in ((self.ema_generator, k), (self.generator, n - k)) if m > 0]
        return torch.cat(parts) if len(parts) > 1 else parts[0]

    def state_dict(self) -> dict:
        state = {"generator": self.generator.state_dict()}
        if self.ema_generator is not None:
            state["ema_generator"] = self.ema_generator.state_dict()
        if self.optimizer is not None:
            state.update(optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict())
        return state

    def load_state_dict(self, state: dict) -> None:
        self.generator.load_state_dict(state["generator"])
        if self.ema_generator is not None:
            self.ema_generator.load_state_dict(state["ema_generator"])
        if self.optimizer is not None:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])


SCHEDULES.register("persistent")(PersistentSynthesizer)
