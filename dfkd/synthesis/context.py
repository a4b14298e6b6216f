"""What a schedule is given and what it returns (the contract in `dfkd.synthesis.schedule`):
`SynthContext` (everything besides the source, built once per run), the `TeacherProbe` (the frozen
teacher and the hooks a term may need), and `SynthBatch`, a round's batch."""
from __future__ import annotations

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
        cams = []
        if want_blocks and "gradcam" in needs:  # SpaceshipNet: a backward to the stages, none to the weights
            with torch.enable_grad():
                logits = self.teacher_forward(x.detach().requires_grad_(True))
                cams = [c.detach() for c in grad_cam(logits, self.blocks.values, logits.argmax(1))]
            logits = logits.detach()
        else:
            logits = self.teacher_forward(x)
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
