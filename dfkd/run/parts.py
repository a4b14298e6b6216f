"""The moving parts of a run around its frozen teacher (`build_parts` -> `RunParts`): the teacher
probe, the views, the student, the objectives (with the checks that need the built models) and the
components of their terms, the source and its schedule with the extensions a recipe switches on,
the replay pool, the `perf` options, and under torchrun this process's share of the work. Every
object is built final: nothing is patched after `build_parts` returns.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from dfkd.base import distributed
from dfkd.base.component import Component
from dfkd.base.errors import DfkdError
from dfkd.base.runtime import seed_everything
from dfkd.config.schema import Config
from dfkd.generators import SOURCES
from dfkd.io.data import load_split, per_class_subset
from dfkd.objective.guard import NonFiniteGuard
from dfkd.objective.hooks import FeatureHook, match_stages
from dfkd.objective.terms import TERMS, ComponentBuild, Objective, build_components, term_params
from dfkd.run.resolve import resolve_student
from dfkd.synthesis.augment import crop_flip, roll_flip
from dfkd.synthesis.context import SynthContext, TeacherProbe
from dfkd.synthesis.pool import ReplayPool
from dfkd.synthesis.real import RealBatches, most_confident, unlabelled_split
from dfkd.synthesis.robust import Ball
from dfkd.synthesis.schedule import SCHEDULES, ExtensionBuild, build_extensions
from dfkd.synthesis.synthesizers import dcgan_init, kaiming_init
from dfkd.synthesis.views import build_view, check_teacher_view


def build_objectives(cfg: Config, probe: TeacherProbe, student, info, s_channels: int):
    """(source objective or None, student objective, student stage names for "blocks" terms), after
    the checks that need the built models: BN terms need a BN teacher, `at` and `hint` need shared
    resolutions. The student objective's components (the critic, FitNets' adapter) are built here."""
    o = cfg.objective
    gen = Objective(o.generator, o.temperature, "generator", o.params) if cfg.synth.g_steps > 0 else None
    stu = Objective(o.student, o.temperature, "student", o.params)
    stu.decay = list(o.decay)
    for obj in (gen, stu):  # a ramped term's weight follows its ramp in whichever objective weights it
        if obj is not None:
            obj.ramp = {k: list(v) for k, v in o.ramp.items() if k in obj.weights}
            obj.ramp_every = o.ramp_every or 1
    check_teacher_terms(cfg, probe, gen, stu)
    layer = gen.params.get("act", {}).get("layer") if gen is not None else None
    if layer:  # DAFL's activation term on another layer than the classifier's input
        modules = dict(probe.teacher.named_modules())
        if layer not in modules:
            raise DfkdError(f"objective.params.act.layer='{layer}' is not a module of the teacher ({cfg.teacher.arch}); "
                            f"e.g. one of: {', '.join(n for n in list(modules)[1:8])}")
        probe.features.remove()
        probe.features = FeatureHook(modules[layer], mode="input")
    if gen is not None and "blocks" in gen.needs:
        stage = next(k for k in gen.weights if "blocks" in TERMS.get(k).needs)
        raise DfkdError(f"the {stage} term compares student and teacher stages: use it in objective.student, "
                        f"not objective.generator")
    if gen is not None and "adv_critic" in gen.weights:
        raise DfkdError("the adv_critic term trains the student against a critic: use it in objective.student")
    build = component_build(cfg, probe, student, info, s_channels)
    student_blocks = None
    if "blocks" in stu.needs:
        t_names, student_blocks = match_stages(probe.teacher, student, build.t_shape, build.s_shape)
        if not t_names:
            terms = " and ".join(f"objective.student.{k}=0" for k in stu.weights if "blocks" in TERMS.get(k).needs)
            raise DfkdError(f"the stage terms need teacher and student stages of equal spatial size, and "
                            f"{cfg.teacher.arch} / {cfg.student.arch} share none; set {terms}")
        probe.watch_blocks(t_names)
        build.t_blocks, build.s_blocks = t_names, student_blocks
    build_components(stu, build)
    return gen, stu, student_blocks


def component_build(cfg: Config, probe: TeacherProbe, student, info, s_channels: int) -> ComponentBuild:
    """What the terms' component factories are given (dfkd.objective.terms.ComponentBuild)."""
    shape = (2, info.in_channels, info.image_size, info.image_size)
    return ComponentBuild(probe.teacher, student, info.num_classes, next(student.parameters()).device, shape,
                          (2, s_channels) + shape[2:], info=info, source_lr=cfg.source.optim.lr,
                          run_rounds=cfg.distill.rounds, epoch_rounds=cfg.objective.ramp_every or 1,
                          data=cfg.data, seed=cfg.seed, batch_size=cfg.synth.batch_size)


def check_teacher_terms(cfg: Config, probe: TeacherProbe, gen: Objective | None, stu: Objective) -> None:
    """Refuse, in one line, terms that read layers this teacher does not have: BN statistics (and
    CMI's BN embeddings) without BatchNorm, penultimate features without an nn.Linear, stages of a
    TorchScript black box."""
    from dfkd.methods.configure import no_batchnorm_message

    box = probe.black_box
    if probe.no_grad and gen is not None and cfg.synth.g_steps > 0 and cfg.synth.schedule != "zeroth_order":
        raise DfkdError(f"teacher.black_box: no gradient passes through the teacher, so synth.schedule="
                        f"{cfg.synth.schedule} cannot train its source on objective.generator; use "
                        f"synth.schedule=zeroth_order (DFME's estimate from queries) or teacher.black_box=false")
    if gen is not None and gen.needs & {"bn", "contrast"} and probe.bn is None:
        why = ("is a black box (teacher.black_box: outputs only)" if probe.no_grad else
               "is a TorchScript black box (logits only; set teacher.arch to its class to load it into one)") \
            if box else f"({cfg.teacher.arch}) has no BatchNorm layers"
        raise DfkdError(no_batchnorm_message(cfg, why))
    for owner, obj in (("generator", gen), ("student", stu)):
        if obj is None:
            continue
        feats = [t for t in obj.weights if TERMS.get(t).needs & {"features"}]
        if feats and probe.features is None:
            why = "is a black box" if box else "has no nn.Linear layer"
            raise DfkdError(f"objective.{owner}.{feats[0]} reads the teacher's penultimate features (the input "
                            f"of its last nn.Linear), and the teacher {why}; set objective.{owner}.{feats[0]}=0")
        if box and "blocks" in obj.needs:
            blocks = [t for t in obj.weights if "blocks" in TERMS.get(t).needs]
            raise DfkdError(f"objective.{owner}.{blocks[0]} compares teacher and student stages, and a black-box "
                            f"teacher exposes none; set objective.{owner}.{blocks[0]}=0 or teacher.arch to its class")


@dataclass
class RunParts:
    """The moving parts of a run around its frozen teacher (`build_parts`)."""

    probe: TeacherProbe  # the teacher and its hooks
    student: torch.nn.Module
    student_channels: int  # what the student's view gives it
    view_t: torch.nn.Module
    view_s: torch.nn.Module
    view_eval: torch.nn.Module  # what the test split is scored through
    student_objective: Objective
    student_blocks: list[str] | None  # student stages matched to the teacher's ("blocks" terms)
    synth: object  # the schedule (dfkd/synthesis/schedule.py contract)
    precision: object  # dfkd.base.runtime.Precision
    student_forward: object  # what the student's steps call: the student, torch.compile of it, or its DDP wrapper
    student_augment: object = None  # distill.augment: what student batches are read through (None: as drawn)
    synth_student: object = None  # what the synthesizer scores with: never DDP-wrapped (None: student_forward)
    components: list = field(default_factory=list)  # every trainable part besides the student (checkpointed)
    guard: object = None  # the NonFiniteGuard that the student's and the source's steps share
    world: distributed.World = distributed.SINGLE  # this process under torchrun

    @property
    def student_components(self) -> list[Component]:
        """The student objective's components (trained with or against the student)."""
        return list(self.student_objective.components.values())


def build_parts(cfg: Config, teacher, info, device, world=distributed.SINGLE, student_module=None,
                run_dir=lambda: None) -> RunParts:
    """The run's moving parts around a frozen `teacher` (on `device`): probe, views, student,
    objectives, source and schedule, with the `perf` options applied. Draws from the RNG in a fixed
    order (student, then source), so a seeded run builds the same weights every time. Under torchrun
    (`world`) each rank synthesizes its share of the batch (`synth.batch_size / world.size`), the
    student's steps go through DDP, and once the models exist each rank draws its own random stream.
    `run_dir()`, the run directory once it exists, holds the extensions' pools when pool.device=disk."""
    share = cfg.synth.batch_size // world.size  # this process's part of every synthesized batch
    probe = TeacherProbe(teacher, cfg.teacher.black_box, cfg.teacher.correction)
    if probe.bn is not None:  # the bn term's parameters that shape the statistics themselves
        bn = term_params(cfg.objective.params, "bn")
        probe.bn.momentum, probe.bn.all_reduce = bn["momentum"], bn["all_reduce"] and world.active
    v = cfg.view
    view_t, t_channels = build_view(v.teacher, info.in_channels, info.mean, info.std, v)
    check_teacher_view(v.teacher, t_channels, info.in_channels, cfg.teacher.arch)
    view_s, s_channels = build_view(v.student, info.in_channels, info.mean, info.std, v)
    view_t, view_s = view_t.to(device), view_s.to(device)
    view_eval = view_s
    if v.eval and v.eval != v.student:
        view_eval, e_channels = build_view(v.eval, info.in_channels, info.mean, info.std, v)
        if e_channels != s_channels:
            raise DfkdError(f"view.eval={v.eval} gives {e_channels}-channel inputs but the student takes {s_channels} "
                            f"(from view.student={v.student}); pick views with the same channels")
        view_eval = view_eval.to(device)
    student = resolve_student(cfg, info, s_channels, student_module)[0].to(device)
    gen_objective, student_objective, student_blocks = build_objectives(cfg, probe, student, info, s_channels)
    generator = SOURCES.get(cfg.source.name)(cfg.source, info.image_size, info.in_channels, share,
                                             info.num_classes, mean=info.mean, std=info.std)
    if cfg.source.init != "torch":  # drawn once over the built weights (CuDFKD's reset_model, SpaceshipNet's)
        (dcgan_init if cfg.source.init == "dcgan" else kaiming_init)(generator)
    augment = synth_augment(cfg, info, device)
    student_augment = crop_flip(info.image_size, info.flip, info.mean, info.std).to(device) \
        if cfg.distill.augment == "crop" else None
    extensions = []  # the source side's components: its terms' (CMI's head and bank), then MAD's
    if gen_objective is not None:
        build_components(gen_objective, component_build(cfg, probe, student, info, s_channels))
        extensions += gen_objective.components.values()
    precision, student_forward = apply_perf(cfg, device, teacher, student, generator, probe)
    # the registered extensions the config switches on (MAD's EMA generator, SpaceshipNet's exchange)
    extensions += build_extensions(cfg, ExtensionBuild(generator, device, share, cfg.pool.device, run_dir, world.rank))
    extra = {}
    if cfg.source.name in ("real", "unlabelled"):  # real images, one batch per round
        if cfg.source.name == "real":  # data-driven KD: the training split
            train = load_split(cfg.data, "train")
        else:  # another dataset's images, unlabelled; DFND keeps the teacher's most confident
            train = unlabelled_split(cfg.data, cfg.source.data, info)
            if cfg.source.select:
                train = most_confident(train, cfg.source.select, lambda x: probe.logits(view_t(x.to(device))))
        if cfg.data.train_per_class:  # the few-sample regime (learning using privileged information)
            train = per_class_subset(train, cfg.data.train_per_class, cfg.seed)
        extra["batches"] = RealBatches(train, cfg.synth.batch_size, cfg.seed, device,
                                       cfg.data.num_workers, rank=world.rank, world=world.size)
        extra["source_cfg"] = cfg.source
        extra["ball"] = Ball(cfg.source.eps, info.mean, info.std, device) if cfg.source.eps > 0 else None
    guard = NonFiniteGuard(cfg.guard)
    ctx = SynthContext(cfg.synth, cfg.source.optim, gen_objective, probe, view_t, view_s, cfg.distill.rounds,
                       device, augment, info.num_classes, extensions, precision, extra=extra,
                       pixel_range=pixel_range(info, device), batch_size=share, guard=guard)
    synth = SCHEDULES.get(cfg.synth.schedule)(generator, ctx)
    synth_student = student_forward
    if world.active:  # the student's steps through DDP; the synthesizer scores with the bare student
        from torch.nn.parallel import DistributedDataParallel as DDP

        synth_student = student
        student_forward = DDP(student, device_ids=[device.index] if device.type == "cuda" else None)
        if world.rank > 0:  # same weights everywhere (DDP broadcasts rank 0's too), own samples per rank
            seed_everything(cfg.seed + 7919 * world.rank)
    components = [*student_objective.components.values(), synth, *extensions]
    return RunParts(probe, student, s_channels, view_t, view_s, view_eval, student_objective, student_blocks,
                    synth, precision, student_forward, student_augment, synth_student, components, guard, world)


def synth_augment(cfg: Config, info, device):
    """The view of synthesized batches that teacher and student score (synth.augment), or None."""
    s = cfg.synth
    if s.augment == "crop":
        black = s.augment_fill == "black"
        return crop_flip(info.image_size, info.flip, info.mean if black else None, info.std if black else None).to(device)
    if s.augment == "roll":
        return roll_flip(s.augment_shift or max(1, info.image_size // 8), s.augment_flip and info.flip)
    return None


def pixel_range(info, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Valid images in normalised space: ((0 - mean) / std, (1 - mean) / std), (1, C, 1, 1) each."""
    dtype = torch.get_default_dtype()
    mean = torch.tensor(info.mean, dtype=dtype, device=device).view(1, -1, 1, 1)
    std = torch.tensor(info.std, dtype=dtype, device=device).view(1, -1, 1, 1)
    return (0 - mean) / std, (1 - mean) / std


def build_pool(cfg: Config, info, device, run_dir: Path | None) -> ReplayPool | None:
    if cfg.pool.capacity == 0:
        return None
    return ReplayPool.placed(cfg.pool.capacity, (info.in_channels, info.image_size, info.image_size),
                             cfg.pool.storage, cfg.pool.device, device, run_dir / "pool.bin" if run_dir else None)


def apply_perf(cfg: Config, device, teacher, student, generator, probe):
    """`perf` options: channels-last weights, torch.compile of the teacher's and student's forward
    passes (the modules keep their weights and hooks), and the run's mixed precision. Returns
    (Precision, the student's forward callable)."""
    from dfkd.base.runtime import Precision

    p = cfg.perf
    if p.amp == "fp16" and device.type == "cpu" and not hasattr(torch.amp, "GradScaler"):
        raise DfkdError("perf.amp=fp16 on the CPU needs torch >= 2.3; use perf.amp=bf16")
    if p.channels_last:
        for m in (teacher, student, generator):
            m.to(memory_format=torch.channels_last)
    student_forward = student
    if p.compile:
        probe.teacher_forward = torch.compile(teacher, backend=p.compile_backend)
        student_forward = torch.compile(student, backend=p.compile_backend)
    return Precision(p.amp, device), student_forward
