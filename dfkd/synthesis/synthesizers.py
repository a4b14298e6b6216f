"""The data-free schedules (the contract is in dfkd/synthesis/schedule.py): a source kept across rounds,
re-initialised every round, or meta-learned as an initialisation; and MAD's EMA generator, an
extension that rides on any of them.
"""
from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from dfkd.synthesis.context import SynthBatch
from dfkd.synthesis.schedule import EXTENSIONS, SCHEDULES, Extension, ExtensionSpec, Schedule, generate


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

    key = "ema_generator"

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


EXTENSIONS.register("ema")(ExtensionSpec(
    on=lambda cfg: cfg.synth.ema > 0,
    check=lambda cfg: None if cfg.distill.batch == "fresh" and cfg.synth.schedule != "meta" else (
        "synth.ema (MAD's EMA generator) feeds the student's fresh samples: use it with distill.batch=fresh "
        "and a persistent or reinit schedule (with reuse, pool or meta it would never be read)"),
    build=lambda cfg, b: EmaGenerator(b.generator, cfg.synth.ema, cfg.synth.ema_fraction, b.device),
    order=10))


@torch.no_grad()
def kaiming_init(module: nn.Module) -> None:
    """SpaceshipNet's generator initialisation (skgyu/SpaceshipNet networks/init.py, 'kaiming'): Linear
    and convolution weights Kaiming-normal (fan-in, gain sqrt(2)), BatchNorm scales N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def dcgan_init(module: nn.Module) -> None:
    """DCGAN's initialisation (Radford et al. 2016), as CMI re-initialises its generator every round
    (zju-vipa/CMI datafree/synthesis/contrastive.py `reset_model`): Linear and convolution weights
    N(0, 0.02), BatchNorm scales N(1, 0.02), biases 0, in module order; running statistics kept."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            if m.affine:
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)
        elif not any(True for _ in m.children()) and hasattr(m, "reset_parameters"):
            m.reset_parameters()  # e.g. free pixels


@torch.no_grad()
def reset_first_layer(module: nn.Module) -> None:
    """Fast's `reset_l0` (zju-vipa/Fast-Datafree datafree/synthesis/fast_meta.py): the first nn.Linear
    and the first BatchNorm of the generator get weights N(0, 0.02) and biases 0."""
    for kind in (nn.Linear, nn.modules.batchnorm._BatchNorm):
        m = next((m for m in module.modules() if isinstance(m, kind) and getattr(m, "weight", None) is not None), None)
        if m is not None:
            nn.init.normal_(m.weight, 0.0, 0.02)
            nn.init.zeros_(m.bias)


@SCHEDULES.register("reinit")
class ReinitSynthesizer(Schedule):
    """The source is re-initialised at the start of every round and optimised from scratch for
    `g_steps` with a fresh optimizer whose schedule spans those steps: DeepInversion's free pixels
    (Yin et al. 2020), CMI's generator (Fang et al. 2021; `synth.reset=dcgan` re-draws it as the
    authors do, `synth.latent=optimised` optimises one latent code per round with it; `synth.reset=none`
keeps the source and gives it only a fresh optimizer: SpaceshipNet, Yu et al. 2023). Each round's
    batch is meant for a replay pool (`distill.batch=pool`); target classes (for the `ce` term) are
    drawn anew each round.
    """

    def begin_round(self) -> None:
        if self.cfg.reset == "dcgan":
            dcgan_init(self.generator)
        elif self.cfg.reset != "none":
            for m in self.generator.modules():
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()
        self.optimizer, self.scheduler = self.round_optimizer(self.cfg.g_steps)

    def after_step(self) -> None:
        self.scheduler.step()
        if self.cfg.clip and self.ctx.pixel_range is not None and hasattr(self.generator, "clamp_"):
            self.generator.clamp_(*self.ctx.pixel_range)

    def end_round(self) -> None:
        pass


REPTILE_SCALE = 67.0  # the authors' Reptile pseudo-gradient is 67·(θ − θ') (fast_meta.py `reptile_grad`)


@SCHEDULES.register("meta")
class MetaSynthesizer(Schedule):
    """Fast (Fang et al., "Up to 100× Faster Data-free Knowledge Distillation", AAAI 2022): one
    shared generator is a meta-learned *initialisation*. Each round clones it, optimises the clone
    (and, with `synth.latent=optimised`, one latent code per round at `synth.z_lr`) for `g_steps`
    with a fresh optimizer, then moves the shared weights toward what the round found.

    `synth.meta_step=adam` (the authors' code, zju-vipa/Fast-Datafree fast_meta.py): the shared
    generator has its own Adam, at lr = source.optim.lr × g_steps with the source's betas, kept
    across rounds; it steps once per round on a pseudo-gradient:
    - first-order MAML (`synth.meta=fomaml`): the clone's gradients summed over the round's steps;
    - Reptile (`synth.meta=reptile`): 67·(θ − θ'), the authors' scale.
    The shared generator's buffers stay as they are (its BatchNorm layers run on batch statistics).
    `synth.meta_step=plain`: θ <- θ + meta_lr·(θ' − θ) (Reptile, buffers likewise) or
    θ <- θ − meta_lr·∇θ' L (FOMAML, the last step's gradient).
    Used with a replay pool (`distill.batch=pool`), BN momentum and warm-up rounds;
    `synth.reset_first_layer` re-draws the shared generator's first layers once (the authors' reset_l0).
    """

    optimises_codes = True  # one latent code per round, optimised with the clone (as the authors')

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.shared = self.generator
        self.meta_optimizer = None
        if self.cfg.meta_step == "adam" and self.cfg.g_steps > 0:
            o = self.optim_cfg
            self.meta_optimizer = torch.optim.Adam(self.shared.parameters(), lr=o.lr * self.cfg.g_steps,
                                                   betas=tuple(o.betas))
        self._meta_grads: list[Tensor] | None = None

    def begin_round(self) -> None:
        if self.cfg.reset_first_layer and self.round == self.cfg.reset_first_layer:
            reset_first_layer(self.shared)
        self.generator = copy.deepcopy(self.shared)
        self.optimizer, self.scheduler = self.round_optimizer(self.cfg.g_steps)
        self._meta_grads = None
        super().begin_round()  # e.g. NAYER's noisy layer is refreshed in the clone too

    def after_step(self) -> None:
        self.scheduler.step()
        if self.meta_optimizer is not None and self.cfg.meta == "fomaml":
            grads = [q.grad.detach() if q.grad is not None else torch.zeros_like(q) for q in self.generator.parameters()]
            # a step the guard or the fp16 scaler skipped adds nothing (decided on the device: no host sync)
            finite = torch.stack([torch.isfinite(g).all() for g in grads]).all()
            grads = [torch.where(finite, g, torch.zeros_like(g)) for g in grads]
            self._meta_grads = grads if self._meta_grads is None else [a + g for a, g in zip(self._meta_grads, grads)]

    @torch.no_grad()
    def end_round(self) -> None:
        clone, self.generator = self.generator, self.shared
        if self.meta_optimizer is not None:
            if self.cfg.meta == "reptile":
                grads = [REPTILE_SCALE * (p - q) for p, q in zip(self.shared.parameters(), clone.parameters())]
            else:
                grads = self._meta_grads
            if grads is not None:
                for p, g in zip(self.shared.parameters(), grads):
                    p.grad = g
                self.meta_optimizer.step()
                self.meta_optimizer.zero_grad(set_to_none=True)
            return
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
        return generate(self.shared, torch.randn(n, self.shared.nz, device=self.device), None, self.ctx.num_classes)

    def state_dict(self) -> dict:
        state = {"generator": self.shared.state_dict(), "round": self.round, **self._shared_state()}
        if self.meta_optimizer is not None:
            state["meta_optimizer"] = self.meta_optimizer.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.shared.load_state_dict(state["generator"])
        self.round = state["round"]
        self._load_shared_state(state)
        if self.meta_optimizer is not None and state.get("meta_optimizer") is not None:
            self.meta_optimizer.load_state_dict(state["meta_optimizer"])


@SCHEDULES.register("nayer")
class NayerSynthesizer(Schedule):
    """NAYER (Tran et al. 2024; tmtuan1307/NAYER datafree/synthesis/nayer.py): every
    `synth.reinit_every` rounds the whole source is re-initialised (each layer's default
    initialisation); each round then synthesizes `synth.loops` batches (`synth.warmup_loops` during
    the warm-up), each with the noisy layers re-drawn (`new_round`), a fresh optimizer over the whole
    source, `g_steps` steps, its kept batch (`synth.keep`) and the BN momentum moved once; the round's
    batch is all of them, for the replay pool. `synth.student_mode=train_after_first` puts the student
    in train mode after the first batch, as the authors' loop does (`student.train()` at the end of
    each batch): from the second batch on, the adversarial term sees batch statistics and moves the
    student's BN running statistics."""

    def reset_source(self) -> None:
        for m in self.generator.modules():
            if m is not self.generator and hasattr(m, "reset_parameters"):
                m.reset_parameters()

    def begin_round(self) -> None:  # one batch: noisy layers re-drawn, a fresh optimizer
        if hasattr(self.generator, "new_round"):
            self.generator.new_round()
        self.optimizer, self.scheduler = self.round_optimizer(self.cfg.g_steps)

    def after_step(self) -> None:
        self.scheduler.step()

    def end_round(self) -> None:
        pass

    def synthesize(self, student: nn.Module, on_step=None) -> tuple[SynthBatch, dict[str, Tensor]]:
        self.next_round(on_step)
        every, ep = self.cfg.reinit_every, self.round - 1  # the authors' 0-based epoch
        if every and ((ep - self.cfg.warmup) % every == 0 or ep % every == 0):  # nayer.py: both counts
            self.reset_source()
        loops = self.cfg.warmup_loops if self.warming_up and self.cfg.warmup_loops else self.cfg.loops
        batches, parts = [], {}
        for i in range(loops):
            if i == 1 and self.cfg.student_mode == "train_after_first":  # nayer.py: student.train() after a batch
                student.train()
            self.begin_round()
            batch, parts = self.synthesize_batch(student)
            batches.append(batch)
        return SynthBatch(torch.cat([b.x for b in batches]), torch.cat([b.t_logits for b in batches])), parts
