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
from .config import SynthConfig
from .errors import DfkdError
from .guard import guarded_step
from .objective import Objective, Signals
from .optim import make_optimizer
from .registry import Registry
from .runtime import Precision

SCHEDULES = Registry("schedule")


@dataclass
class SynthBatch:
    x: Tensor  # (N, C, H, W), detached
    t_logits: Tensor  # (N, K), teacher on view_t(x), detached
    targets: Tensor | None = None  # (N,) true labels of a real batch (data-driven KD)
    clean: Tensor | None = None  # the real batch before its perturbation (x = clean + delta)
    teacher_x: Tensor | None = None  # what the teacher scored, when not x (source.teacher_input=clean)
    t_logits_clean: Tensor | None = None  # teacher on `clean`, when t_logits is on the perturbed x


class TeacherProbe:
    """The frozen teacher (eval mode, no parameter gradients) plus the hooks a term may need."""

    def __init__(self, teacher: nn.Module):
        self.teacher = teacher.eval()
        for p in teacher.parameters():  # (a ScriptModule has no requires_grad_)
            p.requires_grad_(False)
        self.teacher_forward = self.teacher  # torch.compile(teacher) with perf.compile
        self.bn = BNStatsHook(teacher) if has_batchnorm(teacher) else None
        self.black_box = isinstance(teacher, torch.jit.ScriptModule)  # TorchScript: logits only, no hooks
        linear = any(isinstance(m, nn.Linear) for m in teacher.modules())
        self.features = FeatureHook(classifier_layer(teacher), mode="input") if linear else None
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
        if self.features is not None:
            self.features.enabled = want_feat
        if self.blocks is not None:
            self.blocks.enabled = want_blocks
        logits = self.teacher_forward(x)
        return Signals(x=x, t_logits=logits,
                       bn_stats=list(self.bn.stats) if want_bn else [],
                       t_features=self.features.value if want_feat and self.features is not None else None,
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

    def __init__(self, generator: nn.Module, cfg: SynthConfig, optim_cfg, objective: Objective | None,
                 probe: TeacherProbe, view_t: nn.Module, view_s: nn.Module, rounds: int, device: torch.device,
                 augment: nn.Module | None = None, num_classes: int = 10, contrast=None):
        self.generator = generator.to(device).train()
        self.cfg, self.objective, self.probe = cfg, objective, probe
        self.view_t, self.view_s = view_t, view_s
        self.augment = augment
        self.device = device
        self.optim_cfg, self.num_classes = optim_cfg, num_classes
        self.contrast = contrast  # CMI: its projection head trains with the source
        self.guard = None  # a NonFiniteGuard shared with the loop (set by the Distiller)
        self.sync = None  # under torchrun: averages the source's gradients over ranks (dfkd.distributed)
        self.precision = Precision("off", device)  # set by the run (perf.amp)
        self.on_step = None  # optional callback(step, g_steps) after each source step (the progress bar)
        self._scaler = None
        self._params = [p for p in generator.parameters() if p.requires_grad] + self._extra_params()
        if cfg.g_steps > 0 and not self._params:
            raise DfkdError(f"source '{type(generator).__name__}' has no parameters to optimise; "
                            f"set synth.g_steps=0")
        self.optimizer = self.scheduler = None
        if cfg.g_steps > 0:
            self.optimizer, self.scheduler = make_optimizer(self._params, optim_cfg, rounds)
        self.ema_generator = copy.deepcopy(self.generator).requires_grad_(False) if cfg.ema > 0 else None
        self.round = 0
        self.full_objective = objective
        self.warmup_objective = objective.without("adv_") if objective is not None and cfg.warmup > 0 else None

    def _extra_params(self) -> list[nn.Parameter]:
        """Parameters trained with the source besides its own (CMI's projection head)."""
        return list(self.contrast.parameters()) if self.contrast is not None else []

    def _z(self, n: int) -> Tensor:
        return torch.randn(n, self.generator.nz, device=self.device)

    def _targets(self) -> Tensor:
        """Balanced random target classes for one batch (N,)."""
        n = self.cfg.batch_size
        return (torch.arange(n) % self.num_classes)[torch.randperm(n)].to(self.device)

    def _begin_round(self) -> None:
        """Called before the round's steps (the re-initialising schedule resets the source here).
        A source with `new_round()` (NAYER's noisy layer) is refreshed, and the optimizer forgets the
        state of the parameters it re-initialised."""
        if hasattr(self.generator, "new_round"):
            for p in self.generator.new_round():
                if self.optimizer is not None:
                    self.optimizer.state.pop(p, None)

    def _generate(self, z: Tensor, labels: Tensor | None, generator: nn.Module | None = None) -> Tensor:
        """generator(z), or generator(z, labels) for a conditional source (random labels if None)."""
        generator = generator or self.generator
        if getattr(generator, "conditional", False):
            if labels is None:
                labels = torch.randint(self.num_classes, (z.shape[0],), device=self.device)
            return generator(z, labels)
        return generator(z)

    def _end_round(self) -> None:
        if self.scheduler is not None:
            self.scheduler.step()

    @property
    def warming_up(self) -> bool:
        """True during the first `warmup` rounds (adversarial terms off, no student steps)."""
        return self.round <= self.cfg.warmup

    def synthesize(self, student: nn.Module) -> tuple[SynthBatch, dict[str, Tensor]]:
        self.round += 1
        if self.warmup_objective is not None:
            self.objective = self.warmup_objective if self.warming_up else self.full_objective
        self._begin_round()
        parts: dict[str, Tensor] = {}
        x = sig = None
        conditional = getattr(self.generator, "conditional", False)
        wants = self.objective is not None and "targets" in self.objective.needs
        targets = self._targets() if wants or conditional else None
        if self._scaler is None:
            self._scaler = self.precision.scaler()
        scaler = self._scaler
        for step in range(self.cfg.g_steps):
            if self.on_step is not None:
                self.on_step(step, self.cfg.g_steps)
            with self.precision.autocast():
                x = self._generate(self._z(self.cfg.batch_size), targets)
                seen = self.augment(x) if self.augment is not None else x  # teacher and student see one view
                if "contrast" in self.objective.needs:
                    self.contrast.capture()  # the probe's forward pass also yields the global embedding
                sig = self.probe(self.view_t(seen), self.objective.needs)
                sig.x, sig.targets = x, targets
                if "student" in self.objective.needs:
                    sig.s_logits = student(self.view_s(seen))
                if "contrast" in self.objective.needs:
                    sig.embed, sig.embed_local, sig.bank = self.contrast.views(self.view_t(seen))
                loss, step_parts = self.objective(sig)
            if not guarded_step(loss, self.optimizer, scaler, self.guard, self._params, inputs=self._params,
                                sync=self.sync):
                self._after_step()  # skipped: nothing non-finite is applied
                continue
            parts = {**step_parts, "loss": loss.detach()}
            if sig.embed is not None:
                self.contrast.remember(sig.embed)
            if self.ema_generator is not None:
                self._update_ema()
            self._after_step()
        self._end_round()
        if x is None:  # no step taken: a fixed source, only sampled
            x = self.sample(self.cfg.batch_size)
        # a source that returns its own parameter (free pixels) would be overwritten in place by the
        # next round's reset: hand out a copy
        x = x.detach().clone() if isinstance(x, nn.Parameter) else x.detach()
        x = x.float()  # an autocast batch leaves the round in full precision
        if sig is None or self.augment is not None:  # the teacher has not yet seen this exact batch
            with torch.no_grad(), self.precision.autocast():
                return SynthBatch(x, self.probe(self.view_t(x)).t_logits.float()), parts
        return SynthBatch(x, sig.t_logits.detach().float()), parts

    def _after_step(self) -> None:
        """Called after every source step."""

    @torch.no_grad()
    def _update_ema(self) -> None:
        for p_ema, p in zip(self.ema_generator.parameters(), self.generator.parameters()):
            p_ema.lerp_(p, 1.0 - self.cfg.ema)
        for b_ema, b in zip(self.ema_generator.buffers(), self.generator.buffers()):
            b_ema.copy_(b)

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        if self.ema_generator is None:
            return self._generate(self._z(n), None)
        k = round(self.cfg.ema_fraction * n)
        parts = [self._generate(self._z(m), None, g) for g, m in ((self.ema_generator, k), (self.generator, n - k))
                 if m > 0]
        return torch.cat(parts) if len(parts) > 1 else parts[0]

    def state_dict(self) -> dict:
        """Everything the next round depends on: source (and EMA copy), optimizer and schedule, round
        counter, CMI's head and bank, the teacher's BN-momentum statistics (Fast)."""
        state = {"generator": self.generator.state_dict(), "round": self.round, **self._shared_state()}
        if self.ema_generator is not None:
            state["ema_generator"] = self.ema_generator.state_dict()
        if self.optimizer is not None:
            state.update(optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict())
        return state

    def load_state_dict(self, state: dict) -> None:
        self.generator.load_state_dict(state["generator"])
        self.round = state["round"]
        self._load_shared_state(state)
        if self.ema_generator is not None:
            self.ema_generator.load_state_dict(state["ema_generator"])
        if self.optimizer is not None:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])

    def _shared_state(self) -> dict:
        return {"contrast": self.contrast.state_dict() if self.contrast is not None else None,
                "bn_momentum": self.probe.bn.state_dict() if self.probe.bn is not None else None}

    def _load_shared_state(self, state: dict) -> None:
        if self.contrast is not None:
            self.contrast.load_state_dict(state["contrast"])
        if self.probe.bn is not None and state.get("bn_momentum") is not None:
            self.probe.bn.load_state_dict(state["bn_momentum"])


SCHEDULES.register("persistent")(PersistentSynthesizer)


class ReinitSynthesizer(PersistentSynthesizer):
    """The source is re-initialised at the start of every round and optimised from scratch for
    `g_steps` with a fresh optimizer whose schedule spans those steps: DeepInversion's free pixels
    (Yin et al. 2020), CMI's generator (Fang et al. 2021). Each round's batch is meant for a replay
    pool (`distill.batch=pool`); target classes (for the `ce` term) are drawn anew each round.
    """

    def _begin_round(self) -> None:
        for m in self.generator.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
        self.optimizer, self.scheduler = make_optimizer(self._params, self.optim_cfg, self.cfg.g_steps)

    def _after_step(self) -> None:
        self.scheduler.step()

    def _end_round(self) -> None:
        pass


SCHEDULES.register("reinit")(ReinitSynthesizer)


class MetaSynthesizer(PersistentSynthesizer):
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
        self.z: nn.Parameter | None = None

    def _z(self, n: int) -> Tensor:
        return self.z

    def _begin_round(self) -> None:
        self.generator = copy.deepcopy(self.shared)
        self.z = nn.Parameter(torch.randn(self.cfg.batch_size, self.shared.nz, device=self.device))
        self._params = [p for p in self.generator.parameters() if p.requires_grad] + [self.z] + self._extra_params()
        self.optimizer, self.scheduler = make_optimizer(self._params, self.optim_cfg, self.cfg.g_steps)
        super()._begin_round()  # e.g. NAYER's noisy layer is refreshed in the clone too

    def _after_step(self) -> None:
        self.scheduler.step()

    @torch.no_grad()
    def _end_round(self) -> None:
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


SCHEDULES.register("meta")(MetaSynthesizer)

# the real-data schedule lives in its own file; importing it here registers it with the others
from . import real  # noqa: E402,F401
