"""The schedule contract: how an input source is optimised from round to round (docs/design.md).

A schedule is registered in `SCHEDULES` (`synth.schedule`) and built as `Schedule(source, ctx)`:
`source` is the nn.Module mapping latent codes (N, nz) to inputs (N, C, H, W) (`dfkd.generators`),
`ctx` a `SynthContext` with everything else. The loop calls

    synthesize(student) -> (SynthBatch, logged terms)   once per round
    sample(n) -> (n, C, H, W)                           a fresh batch for a student step, no gradients
    state_dict() / load_state_dict(state)               checkpoints (resume, rollback)

A schedule is the source's `Component` (dfkd/base/component.py; checkpoint key `synthesizer`, its
state per rank); each extension is a component of its own.

`Schedule.synthesize` runs `cfg.g_steps` optimizer steps of the source on the source objective, and
calls these hooks, each optional to override:

    begin_round()       before the round's steps (re-initialise the source, clone it, ...)
    forward(student, targets) -> Signals  one step's batch and everything the objective reads
    step_loss(signals) -> (loss, terms)  what the step minimises (default: the source objective)
    after_step()        after every step, taken or skipped (a per-step learning-rate schedule)
    end_round()         after the round's steps (a meta update)
    sample(n), state_dict(), load_state_dict()

Method-specific pieces that ride on any schedule are `Extension`s in `ctx.extensions` (CMI's
contrastive head and bank, MAD's EMA generator, SpaceshipNet's feature exchange), switched on by the
recipe's config: components whose state each rank keeps (under their `key` in a checkpoint). The
module that defines one registers an `ExtensionSpec` in `EXTENSIONS` (when it is on, what it needs of
the config, how it is built), so the run builds it and the config check checks it without naming it
(a term's own component, like CMI's head, is built from the term instead: `COMPONENTS`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

from dfkd.base.component import Component
from dfkd.base.distributed import average_gradients
from dfkd.base.errors import DfkdError
from dfkd.base.registry import Registry
from dfkd.base.runtime import Precision, full
from dfkd.objective.guard import guarded_step
from dfkd.objective.hooks import BNStatsHook, FeatureHook, classifier_layer, has_batchnorm
from dfkd.objective.optim import make_optimizer
from dfkd.objective.signals import Signals
from dfkd.synthesis.context import SynthBatch, SynthContext
from dfkd.synthesis.pool import ReplayPool

SCHEDULES = Registry("schedule")


def generate(generator: nn.Module, z: Tensor, labels: Tensor | None, num_classes: int) -> Tensor:
    """generator(z), or generator(z, labels) for a conditional source (random labels if None)."""
    if getattr(generator, "conditional", False):
        if labels is None:
            labels = torch.randint(num_classes, (z.shape[0],), device=z.device)
        return generator(z, labels)
    return generator(z)


class Extension(Component):
    """A piece a recipe switches on that rides on any schedule, a `Component` of the source's side:
    trained with the source (by its own `optimizer`, kept across rounds, or else by the source's).
    Every hook is optional."""

    per_rank = True  # it works on this rank's own samples

    def before_probe(self) -> None:
        """Just before the teacher's forward pass of a source step."""

    def signals(self, sig: Signals, seen: Tensor, ctx: "SynthContext") -> None:
        """Add what it computes to the step's signals (after the teacher and the student)."""

    def after_step(self, sig: Signals, schedule: "Schedule") -> None:
        """After a source step that was taken."""

    def keep(self, sig: Signals) -> None:
        """This step's batch is (for now) the round's batch (`synth.keep`: every step for 'last', each
        new lowest loss for 'best')."""

    def end_round(self) -> None:
        """After the round's steps."""

    def sample(self, n: int, schedule: "Schedule") -> Tensor | None:
        """A student batch in place of the schedule's own (None: no opinion)."""
        return None


@dataclass(frozen=True)
class ExtensionBuild:
    """What an extension is built from besides the config: the run's source (on `device`), this
    process's samples per synthesized batch, and where its pools go (`pool.device`). `run_dir()` is the
    run directory once it exists (it is made after the parts are built, so a bad config leaves none):
    an extension makes its pools at its first use, not when it is built."""
    generator: nn.Module
    device: torch.device
    share: int
    pool_device: str = "cpu"
    run_dir: Callable[[], Path | None] = lambda: None
    rank: int = 0

    def pool(self, name: str, capacity: int, shape: tuple[int, ...], storage: str) -> ReplayPool:
        """A replay pool of `shape` samples as `pool.device` places it: RAM ('cpu'), the run's device
        ('same'), or a memory-mapped file NAME-rankR.bin in the run directory ('disk'; RAM without one)."""
        run_dir = self.run_dir() if self.pool_device == "disk" else None
        return ReplayPool.placed(capacity, shape, storage, self.pool_device, self.device,
                                 run_dir / f"{name}-rank{self.rank}.bin" if run_dir else None)


@dataclass(frozen=True)
class ExtensionSpec:
    """A registered extension: `on(cfg)` says whether the config switches it on; `check(cfg)` returns
    the one-line message for a config it cannot work with (None: fine), asked before anything is
    built; `build(cfg, ExtensionBuild)` makes it. Extensions are built in `order`, then by name."""
    on: Callable[..., bool]
    build: Callable[..., Extension]
    check: Callable[..., str | None] = lambda cfg: None
    order: int = 0


EXTENSIONS = Registry("source extension")


def _specs() -> list[ExtensionSpec]:
    specs = {n: EXTENSIONS.get(n) for n in EXTENSIONS}  # by name
    return [specs[n] for n in sorted(specs, key=lambda n: (specs[n].order, n))]


def check_extensions(cfg) -> None:
    """Raises DfkdError with the message of the first switched-on extension the config cannot use."""
    for spec in _specs():
        msg = spec.on(cfg) and spec.check(cfg)
        if msg:
            raise DfkdError(msg)


def build_extensions(cfg, build: ExtensionBuild) -> list[Extension]:
    """The extensions the config switches on, built in order."""
    return [spec.build(cfg, build) for spec in _specs() if spec.on(cfg)]


class Schedule(Component):
    """The base schedule: one source, `g_steps` optimizer steps per round on z ~ N(0, I) codes.
    Gradients reach the source's (and the extensions') parameters only (`backward(inputs=...)`),
    never the student's or the teacher's."""

    optimises_codes = False  # a schedule whose round always optimises its latent codes (meta)
    key, per_rank = "synthesizer", True  # a Component: its own source, statistics and samples on each rank

    def __init__(self, source: nn.Module, ctx: SynthContext):
        self.generator, self.ctx, self.cfg = source.to(ctx.device).train(), ctx, ctx.cfg
        self.objective = self.full_objective = ctx.objective
        self.probe, self.device, self.optim_cfg = ctx.probe, ctx.device, ctx.optim_cfg
        self.extensions = list(ctx.extensions)
        self.batch_size = ctx.batch_size or ctx.cfg.batch_size  # this process's share
        self.guard = ctx.guard  # a NonFiniteGuard shared with the loop
        self.precision = ctx.precision or Precision("off", ctx.device)
        self.on_step = None  # during synthesize(): callback(step, g_steps) before each source step
        self._scaler = None
        self.codes: Tensor | None = None  # the round's latent codes (synth.latent=optimised or round)
        self._params = self.trained_params(source)
        if self.cfg.g_steps > 0 and not self._params:
            raise DfkdError(f"source '{type(source).__name__}' has no parameters to optimise; set synth.g_steps=0")
        self.optimizer = self.scheduler = None
        if self.cfg.g_steps > 0:
            self.optimizer, self.scheduler = make_optimizer(self._params, self.optim_cfg, ctx.rounds)
        self.round = 0
        warm = ctx.objective is not None and self.cfg.warmup > 0
        self.warmup_objective = ctx.objective.without("adv_") if warm else None

    def trained_params(self, source: nn.Module, *extra: nn.Parameter) -> list[nn.Parameter]:
        """What the source optimizer trains: the source's parameters, `extra`, the extensions' that have
        no optimizer of their own."""
        return ([p for p in source.parameters() if p.requires_grad] + list(extra)
                + [p for e in self.extensions if e.optimizer is None for p in e.parameters()])

    def round_optimizer(self, steps: int):
        """A fresh source optimizer (and its schedule over `steps`) for the source's parameters and, with
        synth.latent=optimised, new latent codes z ~ N(0, I) at their own rate (synth.z_lr)."""
        self._params = self.trained_params(self.generator)
        groups = [{"params": self._params}]
        if self.cfg.latent == "optimised" or self.optimises_codes:
            self.codes = nn.Parameter(torch.randn(self.batch_size, self.generator.nz, device=self.device))
            groups.append({"params": [self.codes], "lr": self.cfg.z_lr or self.optim_cfg.lr})
            self._params = self._params + [self.codes]
        return make_optimizer(groups, self.optim_cfg, steps)

    def parameters(self) -> list[nn.Parameter]:
        """What the source optimizer trains (the source's, and the extensions' without an optimizer)."""
        return list(self._params)

    def weights(self) -> list[Tensor]:
        """The source's weights and buffers: what must be finite before a checkpoint."""
        source = self.state_dict()["generator"]  # (the meta schedule's is its shared initialisation)
        return [t for t in source.values() if torch.is_tensor(t) and t.is_floating_point()]

    @property
    def _optimizers(self) -> list:
        return [self.optimizer] + [e.optimizer for e in self.extensions if e.optimizer is not None]

    @property
    def _grad_params(self) -> list[nn.Parameter]:
        """Everything a source step's backward reaches: the optimised parameters and the extensions'."""
        own = [p for e in self.extensions if e.optimizer is not None for p in e.parameters()]
        return self._params + own

    def extension(self, kind: type) -> Extension | None:  # the extension of this type, if on
        return next((e for e in self.extensions if isinstance(e, kind)), None)

    @property
    def warming_up(self) -> bool:
        """True during the first `warmup` rounds (adversarial terms off, no student steps)."""
        return self.round <= self.cfg.warmup

    # ------------------------------------------------------------------ hooks
    def begin_round(self) -> None:
        """A source with `new_round()` (NAYER's noisy layer) is refreshed, and the optimizer forgets the
        state of the parameters it re-initialised."""
        if hasattr(self.generator, "new_round"):
            for p in self.generator.new_round():
                if self.optimizer is not None:
                    self.optimizer.state.pop(p, None)

    def z(self, n: int) -> Tensor:
        """Latent codes (n, nz) for one batch: the round's optimised codes, or fresh N(0, I) draws."""
        if self.codes is not None and n == self.codes.shape[0]:
            return self.codes
        return torch.randn(n, self.generator.nz, device=self.device)

    def generate(self, z: Tensor, labels: Tensor | None) -> Tensor:
        return generate(self.generator, z, labels, self.ctx.num_classes)

    def forward(self, student: nn.Module, targets: Tensor | None) -> Signals:
        """One step's batch, seen by the teacher (and the student when a term needs it)."""
        ctx, needs = self.ctx, self.objective.needs
        self._last_z = z = self.z(self.batch_size)
        x = self.generate(z, targets)
        seen = ctx.augment(x) if ctx.augment is not None else x  # teacher and student see one view
        for e in self.extensions:
            e.before_probe()
        sig = self.probe(ctx.view_t(seen), needs)
        sig.x, sig.x_seen, sig.targets = x, seen, targets
        if "student" in needs:
            hook = self._student_bn(student) if "s_bn" in needs else None
            features = self._student_features(student) if "s_features" in needs else None
            sig.s_logits = student(ctx.view_s(seen))
            if hook is not None:
                sig.s_bn_stats, hook.enabled = list(hook.stats), False
            if features is not None:  # the student's penultimate features (AdaDFKD's r2m)
                sig.s_features, features.value = features.value, None
        for e in self.extensions:
            e.signals(sig, seen, ctx)
        return sig

    def _student_bn(self, student: nn.Module) -> BNStatsHook:
        """The student's BN-statistics hook, armed for its next forward pass (the adv_sbn term)."""
        model = getattr(student, "_orig_mod", student)  # under torch.compile, the module itself
        if getattr(self, "_sbn", None) is None or self._sbn[0] is not model:
            if not has_batchnorm(model):
                raise DfkdError("the adv_sbn term reads the student's BatchNorm statistics, and the student has "
                                "none; set objective.generator.adv_sbn=0")
            self._sbn = (model, BNStatsHook(model))
        hook = self._sbn[1]
        hook.enabled = True
        hook.clear()
        return hook

    def _student_features(self, student: nn.Module) -> FeatureHook:
        """A hook on the input of the student's classifier, for its penultimate features in a source step."""
        model = getattr(student, "_orig_mod", student)  # under torch.compile, the module itself
        if getattr(self, "_sfeat", None) is None or self._sfeat[0] is not model:
            self._sfeat = (model, FeatureHook(classifier_layer(model), mode="input"))
        return self._sfeat[1]

    def step_loss(self, sig: Signals) -> tuple[Tensor, dict[str, Tensor]]:
        """The loss a source step minimises, and its logged terms: the source objective on the step's
        signals (a schedule that estimates its gradient otherwise returns a surrogate: zeroth_order)."""
        return self.objective(sig)

    def after_step(self) -> None:
        pass

    def end_round(self) -> None:
        if self.scheduler is not None:
            self.scheduler.step()

    # ------------------------------------------------------------------ the round
    def _targets(self) -> Tensor:
        """Target classes for one batch (N,): balanced and shuffled, drawn independently, or 0..K-1
        tiled in order with N mod K drawn at the end (synth.targets)."""
        n, k = self.batch_size, self.ctx.num_classes
        if self.cfg.targets == "uniform":
            return torch.randint(k, (n,)).to(self.device)
        if self.cfg.targets == "ordered":  # NAYER: 0..K-1 tiled, one block per noisy layer, the rest drawn
            return torch.cat([torch.arange(k).repeat(n // k), torch.randint(k, (n % k,))]).to(self.device)
        return (torch.arange(n) % k)[torch.randperm(n)].to(self.device)

    def next_round(self, on_step=None) -> None:
        """Count the round; its ramped generator terms (objective.ramp: CuDFKD's adversarial weight)
        and, during warm-up, the objective without the adversary."""
        self.round += 1
        self.on_step = on_step
        if self.cfg.latent == "round":  # SpaceshipNet: one z for the round's steps, never optimised
            self.codes = torch.randn(self.batch_size, self.generator.nz, device=self.device)
        if self.full_objective is not None:
            self.full_objective.at_round(self.round, self.ctx.rounds)
        if self.warmup_objective is not None:
            self.objective = self.warmup_objective if self.warming_up else self.full_objective

    def synthesize(self, student: nn.Module, on_step=None) -> tuple[SynthBatch, dict[str, Tensor]]:
        """One round: `begin_round`, then one batch (`synthesize_batch`); `on_step(step, g_steps)`, if
        given, is called before each source step (the progress bar)."""
        self.next_round(on_step)
        self.begin_round()
        return self.synthesize_batch(student)

    def synthesize_batch(self, student: nn.Module) -> tuple[SynthBatch, dict[str, Tensor]]:
        """`g_steps` source steps, `end_round`; the batch is the last step's or, with synth.keep=best,
        the one of lowest source loss (measured before its step, as the authors do)."""
        parts: dict[str, Tensor] = {}
        x = kept = None
        best = float("inf")
        wants = self.objective is not None and "targets" in self.objective.needs
        targets = self._targets() if wants or getattr(self.generator, "conditional", False) else None
        if self._scaler is None:
            self._scaler = self.precision.scaler()
        for step in range(self.cfg.g_steps):
            if self.on_step is not None:
                self.on_step(step, self.cfg.g_steps)
            with self.precision.autocast():
                sig = self.forward(student, targets)
                loss, step_parts = self.step_loss(sig)
            if self.cfg.keep == "last" or float(loss.detach()) < best:  # 'best': one host sync per step
                best = float(loss.detach()) if self.cfg.keep == "best" else best
                x, kept = (sig.x.detach().clone() if self.cfg.keep == "best" else sig.x), sig
                for e in self.extensions:
                    e.keep(sig)
            if guarded_step(loss, self._optimizers, self._scaler, self.guard, self._grad_params,
                            inputs=self._grad_params, sync=average_gradients, clip=self.optim_cfg.clip_grad,
                            owner="source"):  # else skipped: nothing non-finite is applied
                parts = {**step_parts, "loss": loss.detach()}
                for e in self.extensions:
                    e.after_step(sig, self)
            self.after_step()
        self.end_round()
        if self.probe.bn is not None and self.probe.bn.momentum > 0 and self.cfg.g_steps > 0:
            self.probe.bn.commit()  # Fast: the blended statistics move once per round, by its last step
        for e in self.extensions:
            e.end_round()
        if self.cfg.keep == "after" and kept is not None:  # ZSKT: the same codes through the updated source
            with torch.no_grad(), self.precision.autocast():
                x, kept = self.generate(self._last_z, targets), None
        if x is None:  # no step taken: a fixed source, only sampled
            x = self.sample(self.batch_size)
        # a source that returns its own parameter (free pixels) would be overwritten in place by the
        # next round's reset: hand out a copy; an autocast batch leaves the round in full precision
        x = full(x.detach().clone() if isinstance(x, nn.Parameter) else x.detach())
        if kept is None or self.ctx.augment is not None or isinstance(kept.x, nn.Parameter):
            # the teacher has not yet seen this exact batch (augmented, or pixels moved by their last step)
            with torch.no_grad(), self.precision.autocast():
                return SynthBatch(x, full(self.probe(self.ctx.view_t(x)).t_logits)), parts
        return SynthBatch(x, full(kept.t_logits.detach())), parts

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        """A fresh batch of n for the student: an extension's, or the source's on fresh codes (in eval
        mode with synth.sample_mode=eval: its BN layers on their running statistics)."""
        for e in self.extensions:
            x = e.sample(n, self)
            if x is not None:
                return x
        if self.cfg.sample_mode == "eval":
            was = self.generator.training
            self.generator.eval()
            try:
                return self.generate(self.z(n), None)
            finally:
                self.generator.train(was)
        return self.generate(self.z(n), None)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        """Everything the next round depends on: source, optimizer and schedule, round counter, the
        teacher's BN-momentum statistics (Fast); the extensions keep their own (components)."""
        state = {"generator": self.generator.state_dict(), "round": self.round, **self._shared_state()}
        if self.optimizer is not None:
            state.update(optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict())
        return state

    def load_state_dict(self, state: dict) -> None:
        self.generator.load_state_dict(state["generator"])
        self.round = state["round"]
        self._load_shared_state(state)
        if self.optimizer is not None:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])

    def _shared_state(self) -> dict:
        return {"bn_momentum": self.probe.bn.state_dict() if self.probe.bn is not None else None}

    def _load_shared_state(self, state: dict) -> None:
        if self.probe.bn is not None and state.get("bn_momentum") is not None:
            self.probe.bn.load_state_dict(state["bn_momentum"])
