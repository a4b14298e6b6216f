"""The run's teacher and student from whatever the user has: a module in memory, a dfkd checkpoint,
another codebase's state dict, a .safetensors or TorchScript file, pretrained torchvision/timm
weights, or a dfkd teacher trained on the spot (`teacher.checkpoint=auto`).

    t = resolve_teacher(cfg, info)          # Resolved(model, sha256, kind, source, name, meta)

Whatever the origin, the model is checked against the run's inputs before anything is written:
first-layer channels, a forward pass on (2, C, S, S) zeros, logits of shape (N, num_classes), and
a tuple/dict output selected by `teacher.output` (`SelectOutput`).
"""
from __future__ import annotations

import copy
from pathlib import Path
from dataclasses import dataclass, field

import torch
from torch import nn

from .errors import DfkdError
from .model_files import fit_weights, read_model_file


class SelectOutput(nn.Module):
    """`model(x)[output]`: the logits of a model whose forward returns a tuple, list or dict (logits
    plus features, common in research code). `output` is an index or a key."""

    def __init__(self, model: nn.Module, output: int | str, role: str = "teacher"):
        super().__init__()
        self.model, self.output, self.role = model, output, role

    def forward(self, x):
        out = self.model(x)
        if torch.is_tensor(out):
            raise DfkdError(f"{self.role}.output={self.output!r} does not select the logits: the {self.role} returns "
                            f"{_describe(out)}, which are its logits; unset {self.role}.output")
        try:
            return out[self.output]
        except (IndexError, KeyError, TypeError):
            raise DfkdError(f"{self.role}.output={self.output!r} does not select the logits: the {self.role} "
                            f"returns {_describe(out)}") from None


def unwrapped(model: nn.Module) -> nn.Module:
    return model.model if isinstance(model, SelectOutput) else model


def parse_output(value: str | None) -> int | str | None:
    """'' / None -> None; '0', '-1' -> an index; anything else -> a dict key."""
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        return value


def _describe(out) -> str:
    if torch.is_tensor(out):
        return f"a tensor of shape {tuple(out.shape)}"
    if isinstance(out, dict):
        return "a dict {" + ", ".join(f"{k!r}: {_shape(v)}" for k, v in out.items()) + "}"
    if isinstance(out, (tuple, list)):
        return f"a {type(out).__name__} of {len(out)} (" + ", ".join(f"[{i}] {_shape(v)}" for i, v in enumerate(out)) + ")"
    return f"a {type(out).__name__}"


def _shape(v) -> str:
    return str(tuple(v.shape)) if torch.is_tensor(v) else type(v).__name__


def first_conv_channels(model: nn.Module) -> tuple[str, int] | None:
    """(name, in_channels) of the first 2-D convolution registered in `model`, if any."""
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            return name, m.in_channels
    return None


@torch.no_grad()
def registry_models_taking(channels: int, size: int, num_classes: int) -> list[str]:
    """The registry architectures that map (2, channels, size, size) zeros to (2, num_classes) logits."""
    from .models import MODELS, build_model

    names = []
    for name in sorted(MODELS.names()):
        try:
            out = build_model(name, num_classes, channels).eval()(torch.zeros(2, channels, size, size))
        except Exception:
            continue
        if torch.is_tensor(out) and tuple(out.shape) == (2, num_classes):
            names.append(name)
    return names


@torch.no_grad()
def check_io(model: nn.Module, channels: int, size: int, num_classes: int, role: str, device="cpu",
             arch: str | None = None, pick: str | None = None) -> None:
    """Refuse, in one line, a model that does not take (N, channels, size, size) inputs to (N, num_classes)
    logits, naming the model (`arch`), the role and the registry models that take that size; the advice
    is to pick another model (`pick`, e.g. 'a student.arch') where the model can be chosen freely, else
    to describe the data the teacher was trained on."""
    first = first_conv_channels(unwrapped(model))
    if first is not None and first[1] != channels:
        raise DfkdError(f"the {role}'s first layer ({first[0] or 'the model'}) takes {first[1]}-channel inputs but "
                        f"the data has {channels}; describe its inputs (data.channels={first[1]}, or "
                        f"InputSpec(channels={first[1]}, ...)) or pick the dataset it was trained on")
    was = model.training
    model.eval()
    try:
        out = model(torch.zeros(2, channels, size, size, device=device))
    except DfkdError:
        raise
    except Exception as e:
        line = (str(e).strip().splitlines() or [""])[0][:200]
        fits = ", ".join(registry_models_taking(channels, size, num_classes)[:8]) or "none"
        name = f" ({arch})" if arch else ""
        if pick:
            advice = f"pick {pick} that takes {size} px (registry models that do: {fits})"
        else:
            advice = (f"set data.image_size / data.channels to what it was trained on, or pick a {role}.arch that "
                      f"takes {size} px (registry models that do: {fits})")
        raise DfkdError(f"the {role}{name} fails on inputs of shape (N, {channels}, {size}, {size}) "
                        f"({type(e).__name__}: {line}); {advice}") from None
    finally:
        model.train(was)
    if not torch.is_tensor(out):
        keys = [i for i, v in (out.items() if isinstance(out, dict) else enumerate(out)
                               if isinstance(out, (tuple, list)) else [])
                if torch.is_tensor(v) and v.dim() == 2 and v.shape[1] == num_classes]
        hint = f" (e.g. {role}.output={keys[0]})" if keys else ""
        raise DfkdError(f"the {role} returns {_describe(out)}, not a logits tensor; set {role}.output to the index "
                        f"or key of its logits{hint}")
    if out.dim() != 2 or out.shape[1] != num_classes:
        raise DfkdError(f"the {role} outputs shape {tuple(out.shape)} but logits of shape (N, {num_classes}) are "
                        f"expected; set data.num_classes to its number of classes" +
                        (f" or {role}.output to select its logits" if out.dim() != 2 else ""))


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


def module_name(module: nn.Module) -> str:
    return f"module:{type(module).__name__}"


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
    from .checkpoint import state_hash
    from .models import build_model

    t = cfg.teacher
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
    elif t.checkpoint == "auto":
        if cfg.data.name == "none":
            raise DfkdError("teacher.checkpoint=auto trains a teacher on the dataset, and data.name=none has "
                            "none; pass your teacher (teacher.checkpoint=PATH, or an nn.Module from Python)")
        from .runs import auto_teacher_config
        from .teacher import ensure_teacher

        path, ckpt = ensure_teacher(auto_teacher_config(cfg), quiet=quiet)
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
            from .tracking import fetch_artifact

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
        from . import log

        log.note(f"TorchScript teacher '{cfg.teacher.checkpoint}' ({original}) runs as a black box: "
                 f"logits only, so terms that read its layers (BN statistics, features) are unavailable; set "
                 f"teacher.arch to its Python class to load its weights into it")
    return f.module, f"torchscript:{original}"


def resolve_student(cfg, info, channels: int, module: nn.Module | None = None) -> tuple[nn.Module, str]:
    """(student, its name): a copy of `module`, or `student.arch` built fresh (pretrained with
    `student.weights`), its output selected by `student.output` and checked like the teacher's."""
    from .models import build_model

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
