"""What a schedule is given and what it returns (the contract in `dfkd.synthesis.schedule`):
`SynthContext` (everything besides the source, built once per run), the `TeacherProbe` (the frozen
teacher and the hooks a term may need), and `SynthBatch`, a round's batch."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from dfkd.base.runtime import Precision
from dfkd.config.fields import OptimConfig
from dfkd.config.synthesis import SynthConfig
from dfkd.objective.cam import grad_cam
from dfkd.objective.hooks import BlockHooks, BNStatsHook, FeatureHook, classifier_layer, has_batchnorm
from dfkd.objective.signals import Signals
from dfkd.objective.terms import Objective


@dataclass
class SynthBatch:
    x: Tensor  # (N, C, H, W), detached
    t_logits: Tensor  # (N, K), teacher on view_t(x), detached
    targets: Tensor | None = None  # (N,) true labels of a real batch (data-driven KD)
    clean: Tensor | None = None  # the real batch before its perturbation (x = clean + delta)
    teacher_x: Tensor | None = None  # what the teacher scored, when not x (source.teacher_input=clean)
    t_logits_clean: Tensor | None = None  # teacher on `clean`, when t_logits is on the perturbed x


class TeacherProbe:
    """The frozen teacher (eval mode, no parameter gradients) plus the hooks a term may need.

    `black_box=True` (teacher.black_box; a TorchScript teacher is one for hooks anyway): no hooks, and
    every forward pass runs under no_grad, so nothing ever differentiates through the teacher.
    `correction="mean"` (DFME): the logits handed out are log_softmax(t) - mean_k log_softmax(t)_k.
    `queries` counts the samples the teacher has been asked about (the attack's query budget);
    evaluations run inside `uncounted()`."""

    def __init__(self, teacher: nn.Module, black_box: bool = False, correction: str = "none"):
        self.teacher = teacher.eval()
        for p in teacher.parameters():  # (a ScriptModule has no requires_grad_)
            p.requires_grad_(False)
        self.teacher_forward = self.teacher  # torch.compile(teacher) with perf.compile
        self.no_grad = black_box
        self.black_box = black_box or isinstance(teacher, torch.jit.ScriptModule)  # logits only, no hooks
        self.bn = BNStatsHook(teacher) if has_batchnorm(teacher) and not black_box else None
        linear = any(isinstance(m, nn.Linear) for m in teacher.modules()) and not black_box
        self.features = FeatureHook(classifier_layer(teacher), mode="input") if linear else None
        self.blocks: BlockHooks | None = None
        self.correction = correction
        self.queries, self._counting = 0, True

    @contextlib.contextmanager
    def uncounted(self):
        """Teacher passes that are not the method's queries (evaluation)."""
        was, self._counting = self._counting, False
        try:
            yield
        finally:
            self._counting = was

    def _asked(self, x: Tensor) -> None:
        """x's samples are queries unless inside `uncounted()`."""
        if self._counting:
            self.queries += x.shape[0]

    def logits(self, x: Tensor) -> Tensor:
        """The teacher's logits on x (corrected), a counted query; under no_grad for a black box."""
        self._asked(x)
        with torch.no_grad() if self.no_grad else contextlib.nullcontext():
            t = self.teacher_forward(x)
        if self.correction == "mean":
            t = t.log_softmax(1)
            t = t - t.mean(1, keepdim=True)
        return t

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
        cams = []
        if want_blocks and "gradcam" in needs:  # SpaceshipNet: a backward to the stages, none to the weights
            self._asked(x)
            with torch.enable_grad():
                logits = self.teacher_forward(x.detach().requires_grad_(True))
                cams = [c.detach() for c in grad_cam(logits, self.blocks.values, logits.argmax(1))]
            logits = logits.detach()
        else:
            logits = self.logits(x)
        return Signals(x=x, t_logits=logits,
                       bn_stats=list(self.bn.stats) if want_bn else [],
                       t_features=self.features.value if want_feat and self.features is not None else None,
                       t_blocks=[b.detach() for b in self.blocks.values] if cams else
                       self.blocks.values if want_blocks else [], t_gradcams=cams)


@dataclass
class SynthContext:
    """What a schedule works with besides its source; built once per run by `dfkd.run.runner`."""

    cfg: SynthConfig
    optim_cfg: OptimConfig  # the source's optimizer
    objective: Objective | None  # the source objective (None with synth.g_steps=0)
    probe: TeacherProbe
    view_t: nn.Module
    view_s: nn.Module
    rounds: int
    device: torch.device
    augment: nn.Module | None = None  # one differentiable view that teacher and student both see
    num_classes: int = 10
    extensions: list = field(default_factory=list)  # dfkd.synthesis.schedule.Extension instances
    precision: Precision | None = None  # perf.amp (default: off)
    extra: dict = field(default_factory=dict)  # what a particular schedule needs (per_batch: the real batches)
    pixel_range: tuple[Tensor, Tensor] | None = None  # valid images in normalised space, (1, C, 1, 1) each (synth.clip)
    batch_size: int = 0  # this process's share of synth.batch_size under torchrun (0: all of it)
    guard: object = None  # the run's NonFiniteGuard, shared with the student's steps (None: no guard)
