"""The run's teacher and student from whatever the user has: a module in memory, a dfkd checkpoint,
another codebase's state dict, a .safetensors or TorchScript file, pretrained torchvision/timm
weights, or a dfkd teacher trained on the spot (`teacher.checkpoint=auto`).

    t = resolve_teacher(cfg, info)          # Resolved(model, sha256, kind, source, name, meta)

Whatever the origin, the model is checked against the run's inputs before anything is written:
first-layer channels, a forward pass on (2, C, S, S) zeros, logits of shape (N, num_classes), and
a tuple/dict output selected by `teacher.output` (`dfkd.models.interface`).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from pathlib import Path

from torch import nn

from dfkd.base.errors import DfkdError
from dfkd.io.model_files import fit_weights, read_model_file
from dfkd.models.interface import SelectOutput, check_io, parse_output


@dataclass
class Resolved:
    model: nn.Module
    sha256: str
    kind: str  # module | dfkd | state_dict | safetensors | torchscript | pretrained | built
    source: str  # the file, or what the model came from
    name: str  # what tables and run names call it
    meta: dict = field(default_factory=dict)  # a dfkd checkpoint's metadata

    @property
    def black_box(self) -> bool:
        """A TorchScript module: logits only, no layers for hooks to read."""
        return self.kind == "torchscript"


def _check_dfkd_meta(meta: dict, cfg, info, path) -> None:
    if cfg.data.name == "none":
        if meta["in_channels"] != info.in_channels or meta["num_classes"] != info.num_classes:
            raise DfkdError(f"teacher checkpoint '{path}' takes {meta['in_channels']}-channel inputs to "
                            f"{meta['num_classes']} classes but the input spec says {info.in_channels} / "
                            f"{info.num_classes}; set data.channels / data.num_classes to match")
        return
    if meta["dataset"] != cfg.data.name or meta["image_size"] != info.image_size:
        raise DfkdError(f"teacher checkpoint '{path}' was trained on {meta['dataset']} at "
                        f"{meta['image_size']}px but the run uses {cfg.data.name} at {info.image_size}px; "
                        f"pass a matching checkpoint or set data.name / data.image_size")
    if [round(v, 6) for v in meta["mean"] + meta["std"]] != [round(v, 6) for v in info.mean + info.std]:
        raise DfkdError(f"teacher checkpoint '{path}' was trained with input mean/std {meta['mean']}/{meta['std']} "
                        f"but the run normalises with {list(info.mean)}/{list(info.std)}; retrain the teacher "
                        f"or set data.mean / data.std to match")


def resolve_teacher(cfg, info, module: nn.Module | None = None, quiet: bool = False) -> Resolved:
    """The frozen teacher of run `cfg` (inputs `info`), from `module` (a copy of it) or the config."""
    from dfkd.io.checkpoint import state_hash
    from dfkd.models import build_model
    from dfkd.run.teacher import auto_seed

    t = cfg.teacher
    if t.members and module is None:
        return _resolve_ensemble(cfg, info, quiet)
    build = lambda: build_model(t.arch, info.num_classes, info.in_channels, t.weights,  # noqa: E731
                                cfg.data.download, key="teacher.arch")
    meta: dict = {}
    if module is not None:
        model, kind, source, name = copy.deepcopy(module), "module", "in-memory", t.arch
    elif t.checkpoint == "in-memory":
        raise DfkdError("this run's teacher was an nn.Module in memory; resume it from Python with "
                        "dfkd.distill(teacher=the_same_model, resume=RUN_DIR)")
    elif t.checkpoint in ("auto", "none") and t.weights:
        model, kind, source, name = build(), "pretrained", f"{t.arch} {t.weights}", t.arch
    elif t.checkpoint == "none":
        model, kind, source, name = build(), "built", t.arch, t.arch
    elif auto_seed(t.checkpoint) is not None:
        if cfg.data.name == "none":
            raise DfkdError("teacher.checkpoint=auto trains a teacher on the dataset, and data.name=none has "
                            "none; pass your teacher (teacher.checkpoint=PATH, or an nn.Module from Python)")
        from dfkd.run.teacher import auto_teacher_config, ensure_teacher

        path, ckpt = ensure_teacher(auto_teacher_config(cfg, auto_seed(t.checkpoint)), quiet=quiet)
        meta = {k: v for k, v in ckpt.items() if k != "state_dict"}
        _check_dfkd_meta(meta, cfg, info, path)
        model, kind, source, name = build(), "dfkd", str(path), t.arch
        _load_dfkd(model, ckpt["state_dict"], meta, t.arch, path)
    else:
        if t.weights:
            raise DfkdError(f"teacher.weights={t.weights} and teacher.checkpoint={t.checkpoint} both give weights; "
                            f"set one of them")
        path = t.checkpoint
        if path.startswith("wandb:"):  # a W&B model artifact, downloaded under OUT/artifacts
            from dfkd.io.wandb_files import fetch_artifact

            path = str(fetch_artifact(path[len("wandb:"):], Path(cfg.out) / "artifacts"))
        f = read_model_file(path)
        source, kind = t.checkpoint, f.kind
        if f.kind == "dfkd":
            meta = f.meta
            _check_dfkd_meta(meta, cfg, info, t.checkpoint)
            model, name = build(), t.arch
            _load_dfkd(model, f.state_dict, meta, t.arch, t.checkpoint)
        elif f.kind == "torchscript":
            model, name = _torchscript(f, cfg, info, build, quiet)
            kind = "torchscript" if model is f.module else "state_dict"
        else:
            model, name = build(), t.arch
            fit_weights(model, f.state_dict, t.checkpoint, t.arch, "teacher.arch", info.num_classes, info.in_channels)
    sha = meta.get("sha256") or state_hash(model.state_dict())
    output = parse_output(t.output)
    if output is not None:
        model = SelectOutput(model, output, "teacher")
    check_io(model, info.in_channels, info.image_size, info.num_classes, "teacher", arch=name)
    return Resolved(model, sha, kind, source, name, meta)


def _resolve_ensemble(cfg, info, quiet: bool) -> Resolved:
    """`teacher.members`: each member resolved as a single teacher would be, then one TeacherEnsemble;
    its sha256 is that of the members' in order."""
    import hashlib

    from dfkd.models.ensemble import TeacherEnsemble

    t = cfg.teacher
    if len(t.members) < 2:
        raise DfkdError(f"teacher.members={list(t.members)} names {len(t.members)} teacher; an ensemble needs at "
                        f"least two (or set teacher.checkpoint for one)")
    if t.checkpoint not in ("auto", "none") or t.weights:
        raise DfkdError("teacher.members and teacher.checkpoint/teacher.weights both name the teacher; set one of them")
    members = []
    for spec in t.members:
        arch, checkpoint = spec.split("=", 1) if "=" in spec else (t.arch, spec)
        one = replace(t, members=[], arch=arch, checkpoint=checkpoint)
        members.append(resolve_teacher(replace(cfg, teacher=one), info, quiet=quiet))
    sha = hashlib.sha256("".join(m.sha256 for m in members).encode()).hexdigest()
    model = TeacherEnsemble([m.model for m in members], t.combine)
    names = sorted({m.name for m in members})
    return Resolved(model, sha, "ensemble", "; ".join(m.source for m in members),
                    f"ensemble{len(members)}-{'+'.join(names)}")


def _load_dfkd(model: nn.Module, state: dict, meta: dict, arch: str, path) -> None:
    if meta["arch"] != arch:
        raise DfkdError(f"checkpoint '{path}' holds a '{meta['arch']}' but the config asks for '{arch}'; "
                        f"set teacher.arch={meta['arch']} or pass a {arch} checkpoint")
    try:
        model.load_state_dict(state)
    except RuntimeError:
        raise DfkdError(f"checkpoint '{path}' ({meta['arch']}, {meta['num_classes']} classes, "
                        f"{meta['in_channels']} channels) does not fit the model the config builds; "
                        f"check the dataset and arch") from None


def _torchscript(f, cfg, info, build, quiet: bool):
    """A TorchScript teacher: its weights loaded into `teacher.arch` when they fit exactly (every hook
    works), else the ScriptModule itself, a black box that gives logits only."""
    try:
        model = build()
        fit_weights(model, f.state_dict, cfg.teacher.checkpoint, cfg.teacher.arch)
        return model, cfg.teacher.arch
    except DfkdError:
        pass
    original = getattr(f.module, "original_name", "module")
    if not quiet:
        from dfkd.base import log

        log.note(f"TorchScript teacher '{cfg.teacher.checkpoint}' ({original}) runs as a black box: "
                 f"logits only, so terms that read its layers (BN statistics, features) are unavailable; set "
                 f"teacher.arch to its Python class to load its weights into it")
    return f.module, f"torchscript:{original}"


def resolve_student(cfg, info, channels: int, module: nn.Module | None = None) -> tuple[nn.Module, str]:
    """(student, its name): a copy of `module`, or `student.arch` built fresh (pretrained with
    `student.weights`), its output selected by `student.output` and checked like the teacher's."""
    from dfkd.models import build_model

    s = cfg.student
    if module is not None:
        model = copy.deepcopy(module)
    else:
        model = build_model(s.arch, info.num_classes, channels, s.weights, cfg.data.download, key="student.arch")
    output = parse_output(s.output)
    if output is not None:
        model = SelectOutput(model, output, "student")
    check_io(model, channels, info.image_size, info.num_classes, "student", arch=s.arch,
             pick="a student (student.arch or your module)")
    return model, s.arch


def resolve_epochs(cfg):
    """The config with `distill.rounds` from `distill.epochs` (> 0, real data): epochs x the training
    split's batches per epoch, floor(N / synth.batch_size), rounded. Unchanged when epochs is 0."""
    d = cfg.distill
    if d.epochs <= 0:
        return cfg
    from dfkd.io.data import load_split

    per_epoch = len(load_split(cfg.data, "train")) // cfg.synth.batch_size
    if per_epoch == 0:
        raise DfkdError(f"synth.batch_size={cfg.synth.batch_size} is larger than the {cfg.data.name} training split; "
                        f"lower synth.batch_size")
    out = replace(cfg, distill=replace(d, rounds=max(1, round(d.epochs * per_epoch))))
    out.preset = cfg.preset
    if cfg.provenance is not None:
        out.provenance = {**cfg.provenance, "distill.rounds": f"distill.epochs ({d.epochs:g} x {per_epoch} batches)"}
    return out
