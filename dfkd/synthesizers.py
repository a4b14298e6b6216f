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

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .hooks import BNStatsHook, FeatureHook, classifier_layer, has_batchnorm
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

    def __call__(self, x: Tensor, needs: frozenset = frozenset()) -> Signals:
        want_bn, want_feat = "bn" in needs, "features" in needs
        if self.bn is not None:
            self.bn.enabled = want_bn
            self.bn.clear()
        self.features.enabled = want_feat
        logits = self.teacher(x)
        return Signals(x=x, t_logits=logits,
                       bn_stats=list(self.bn.stats) if want_bn else [],
                       t_features=self.features.value if want_feat else None)


class PersistentSynthesizer:
    """One generator G kept (and trained) across all rounds: DAFL, DFAD, ZSKT, DFQ.

    Each round: `g_steps` times, x = G(z) with z ~ N(0, I); the teacher (and the student when a term
    needs it) score view_t(x) / view_s(x); G takes an optimizer step on the source objective.
    Gradients reach G's parameters only (`backward(inputs=...)`), never the student's.
    """

    def __init__(self, generator: nn.Module, optim_cfg, objective: Objective, probe: TeacherProbe,
                 view_t: nn.Module, view_s: nn.Module, batch_size: int, g_steps: int, rounds: int,
                 device: torch.device):
        self.generator = generator.to(device).train()
        self.objective, self.probe = objective, probe
        self.view_t, self.view_s = view_t, view_s
        self.batch_size, self.g_steps, self.device = batch_size, g_steps, device
        self.optimizer, self.scheduler = make_optimizer(generator.parameters(), optim_cfg, rounds)
        self._params = [p for p in generator.parameters() if p.requires_grad]

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
        self.scheduler.step()
        if x is None:  # g_steps == 0: a fixed generator, only sampled
            x = self.sample(self.batch_size)
            with torch.no_grad():
                return SynthBatch(x, self.probe(self.view_t(x)).t_logits), parts
        return SynthBatch(x.detach(), sig.t_logits.detach()), parts

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        return self.generator(self._z(n))

    def state_dict(self) -> dict:
        return {"generator": self.generator.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.load_state_dict(state["generator"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])


SCHEDULES.register("persistent")(PersistentSynthesizer)
