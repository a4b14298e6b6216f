"""The Python API: distil a model you already have, from a notebook, with the CLI's validation, run
directory, resume, W&B tracking and tables.

    import dfkd
    run = dfkd.distill(teacher=model, student="resnet20", method="dfq", data="cifar10",
                       set={"distill.rounds": 400}, out="runs")
    run.student, run.summary, run.dir

`teacher` and `student` take an `nn.Module`, a registry name, `torchvision:NAME`, `timm:NAME`,
`pkg.module:factory` or `file.py:factory`; `teacher` also takes the path of a weights file (a dfkd
checkpoint, a state dict, .safetensors, TorchScript; a state dict's class is `teacher.arch` in `set`),
or a list of modules or of weights files: an ensemble seen as one teacher (`teacher.members`, logits
combined by `teacher.combine`).
`data` is a registered dataset name, an `InputSpec` (no data at all), or None (inferred from the
teacher). Every bad input raises `dfkd.DfkdError` with the same one-line message as the CLI.
Modules are copied, never changed: `run.student` is the trained copy.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn
from torch.utils.data import Dataset

from dfkd.base.errors import DfkdError
from dfkd.base.runtime import isolated_globals


@dataclass(frozen=True)
class InputSpec:
    """What the teacher takes when there is no dataset: (N, channels, size, size) inputs normalised
    with per-channel `mean` / `std` (default 0 / 1: the teacher sees inputs as they are), and
    `num_classes` logits."""

    channels: int
    size: int
    num_classes: int
    mean: Sequence[float] | None = None
    std: Sequence[float] | None = None

    def config(self) -> dict:
        return {"name": "none", "channels": self.channels, "image_size": self.size, "num_classes": self.num_classes,
                "mean": None if self.mean is None else [float(v) for v in self.mean],
                "std": None if self.std is None else [float(v) for v in self.std]}


@dataclass
class Run:
    """A finished run: its directory (config.yaml, metrics.jsonl, checkpoints, W&B files), its
    summary.json as a dict, and the trained model (`student`; `model` for a teacher run)."""

    dir: Path
    summary: dict
    student: nn.Module

    @property
    def model(self) -> nn.Module:
        return self.student


def _nested(flat: dict | None) -> dict:
    """{'distill.rounds': 400} -> {'distill': {'rounds': 400}}; nested dicts pass through."""
    from dfkd.config.load import deep_merge

    out: dict = {}
    for key, value in (flat or {}).items():
        if not isinstance(key, str) or not key or any(not p for p in key.split(".")):
            raise DfkdError(f"set: bad key {key!r}; use dotted config keys such as 'distill.rounds'")
        node: Any = value
        for part in reversed(key.split(".")):
            node = {part: node}
        out = deep_merge(out, node)
    return out


def _need(name: str, value, ok: bool, what: str) -> None:
    """One DfkdError line for an argument of the wrong type or an impossible value."""
    if not ok:
        shown = repr(value) if isinstance(value, (str, int, float, bool, type(None))) else type(value).__name__
        raise DfkdError(f"{name} must be {what}; got {shown[:80]}")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_common(set, out, quiet, seed, optional: bool = True) -> None:
    """The arguments distill and train_teacher share; `optional`: out and seed may be None (distill)."""
    or_none = " or None" if optional else ""
    _need("set", set, set is None or isinstance(set, dict), "a dict of {'dotted.key': value} or None")
    _need("out", out, (out is None and optional) or isinstance(out, (str, Path)) and str(out) != "",
          "a directory path (str or Path)" + or_none)
    _need("quiet", quiet, isinstance(quiet, bool), "True or False")
    _need("seed", seed, (seed is None and optional) or _is_int(seed), "an integer" + or_none)


# what `dfkd.distill` / `train_teacher` take as arguments rather than config keys ('seed' is both)
_RUN_OPTIONS = {"quiet": "quiet=True", "resume": "resume=RUN_DIR"}


def _run_options(flat: dict | None, quiet: bool) -> tuple[dict, bool]:
    """`set` without the run options given in it: `quiet` there counts as the argument; any other
    (e.g. `resume`) is refused, naming the keyword argument to use."""
    flat = dict(flat or {})
    for key, use in _RUN_OPTIONS.items():
        if key not in flat:
            continue
        value = flat.pop(key)
        if key != "quiet":
            raise DfkdError(f"set: {key!r} is not a config key but an argument; pass it as {use}")
        if not isinstance(value, bool):
            raise DfkdError(f"set: {key!r} must be true or false, got {value!r}; or pass {use}")
        quiet = quiet or value
    return flat, quiet


def infer_spec(model: nn.Module, eval_set: Dataset | None = None, size: int | None = None,
               quiet: bool = False) -> InputSpec:
    """An InputSpec read off a teacher module: channels from its first convolution (or the eval
    set), size from the eval set or the first of 32, 28, 224, 64, 16 it accepts, classes from its
    output; mean 0, std 1."""
    from dfkd.models.interface import first_conv_channels

    sample = None
    if isinstance(eval_set, Dataset):
        sample = eval_set[0][0]
    first = first_conv_channels(model)
    channels = sample.shape[0] if torch.is_tensor(sample) else first[1] if first else None
    if channels is None:
        raise DfkdError("data=None: the teacher has no Conv2d to read its input channels from; pass "
                        "data=dfkd.InputSpec(channels, size, num_classes)")
    sizes = [size] if size else [sample.shape[-1]] if torch.is_tensor(sample) else [32, 28, 224, 64, 16]
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was = model.training
    model.eval()
    try:
        for s in sizes:
            try:
                with torch.no_grad():
                    out = model(torch.zeros(2, channels, s, s, device=device))
            except Exception:
                continue
            if torch.is_tensor(out) and out.dim() == 2:
                spec = InputSpec(channels, s, int(out.shape[1]))
                if not quiet:
                    print(f"dfkd: data=None: inputs read off the teacher: {spec} (mean 0, std 1: the teacher sees "
                          f"synthesized inputs as they are); pass data=dfkd.InputSpec(...) to set them",
                          file=sys.stderr)
                return spec
    finally:
        model.train(was)
    raise DfkdError(f"data=None: the teacher gives no (N, classes) logits on {channels}-channel inputs of size "
                    f"{', '.join(map(str, sizes))}; pass data=dfkd.InputSpec(channels, size, num_classes)")


WEIGHT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".safetensors", ".tar")


def _teacher_layer(teacher, data, eval_set, size, quiet) -> tuple[dict, nn.Module | None]:
    """(config layer for the teacher and the data, the in-memory teacher module or None)."""
    from dfkd.io.model_files import read_model_file
    from dfkd.models.interface import module_name

    layer: dict = {"teacher": {}}
    module = None
    if isinstance(teacher, (list, tuple)):  # an ensemble (teacher.members)
        if len(teacher) < 2:
            raise DfkdError(f"a list of teachers is an ensemble and needs at least two; got {len(teacher)}")
        if all(isinstance(m, nn.Module) for m in teacher):
            from dfkd.models.ensemble import TeacherEnsemble

            module = TeacherEnsemble(list(teacher))  # its combine rule is the config's (set in distill)
            layer["teacher"] = {"arch": module_name(teacher[0]), "checkpoint": "in-memory"}
        elif all(isinstance(m, (str, Path)) for m in teacher):
            missing = [str(m) for m in teacher if not Path(m).expanduser().is_file()]
            if missing:
                raise DfkdError(f"teacher file '{missing[0]}' not found; pass existing weights files")
            layer["teacher"]["members"] = [str(m) for m in teacher]
            f = read_model_file(teacher[0]) if data is None else None
            if f is not None and f.kind == "dfkd":  # the first member's dataset and architecture
                layer["teacher"]["arch"] = f.meta["arch"]
                data = f.meta["dataset"]
        else:
            raise DfkdError("a list of teachers must be all nn.Modules or all weights files")
    elif isinstance(teacher, nn.Module):
        module = teacher
        layer["teacher"] = {"arch": module_name(teacher), "checkpoint": "in-memory"}
    elif isinstance(teacher, (str, Path)) and Path(teacher).expanduser().is_file():
        layer["teacher"]["checkpoint"] = str(teacher)
        f = read_model_file(teacher) if data is None else None
        if f is not None and f.kind == "dfkd":  # a dfkd checkpoint knows its dataset and architecture
            layer["teacher"]["arch"] = f.meta["arch"]
            data = f.meta["dataset"]
    elif isinstance(teacher, Path) or isinstance(teacher, str) and Path(teacher).suffix in WEIGHT_SUFFIXES:
        raise DfkdError(f"teacher file '{teacher}' not found; pass an existing weights file, a model name or "
                        f"an nn.Module")
    elif isinstance(teacher, str) and teacher:
        layer["teacher"]["arch"] = teacher
    else:
        raise DfkdError(f"teacher must be an nn.Module, a model name or spec, or a weights file; got "
                        f"{type(teacher).__name__}")
    if data is None:
        if module is None:
            raise DfkdError("data=None needs the teacher as an nn.Module to read its inputs from; pass data= a "
                            "dataset name or a dfkd.InputSpec(channels, size, num_classes)")
        data = infer_spec(module, eval_set, size, quiet)
    if isinstance(data, InputSpec):
        layer["data"] = data.config()
    elif isinstance(data, str) and data:
        layer["data"] = {"name": data}
    else:
        raise DfkdError(f"data must be a dataset name, a dfkd.InputSpec or None; got {type(data).__name__}")
    return layer, module


def _eval_layer(eval_set) -> tuple[dict, Dataset | None]:
    if eval_set is None:
        return {}, None
    if isinstance(eval_set, Dataset):
        return {"data": {"eval": "in-memory"}}, eval_set
    if isinstance(eval_set, (str, Path)) and str(eval_set) != "":
        return {"data": {"eval": str(eval_set)}}, None
    raise DfkdError(f"eval_set must be a torch Dataset, an image folder path or 'none'; got {type(eval_set).__name__}")


@isolated_globals
def distill(teacher: nn.Module | str | Path | list | None = None, student: nn.Module | str | None = None,
            method: str | None = "dfq", data: str | InputSpec | None = None,
            eval_set: Dataset | str | Path | None = None, set: dict | None = None, out: str | Path | None = "runs",
            seed: int | None = None, quiet: bool = False, resume: str | Path | None = None) -> Run:
    """Distil `teacher` into `student` with recipe `method` (see the module doc); returns the Run.

    eval_set: a labelled torch Dataset of (tensor (C, H, W) normalised as the teacher expects,
    label) pairs, an image folder (CLASS/*.png), 'none', or None for the dataset's test split (no
    labelled data at all with an InputSpec: the run is then scored by teacher-student agreement).
    set: more config values as {'dotted.key': value} (see `dfkd options`).
    resume: an interrupted run directory; pass the same in-memory teacher / student / eval_set again.
    """
    from dfkd.config.load import deep_merge
    from dfkd.methods.configure import build_config
    from dfkd.run.runner import distill as run_distill

    _check_common(set, out, quiet, seed)
    _need("method", method, method is None or isinstance(method, str) and method != "",
          "a method name (see `dfkd list methods`) or None")
    _need("resume", resume, resume is None or isinstance(resume, (str, Path)) and str(resume) != "",
          "a run directory (str or Path) or None")
    set, quiet = _run_options(set, quiet)
    eval_layer, eval_ds = _eval_layer(eval_set)
    student_module = student if isinstance(student, nn.Module) else None
    if resume is not None:
        run_dir, summary = run_distill(quiet=quiet, resume=resume, teacher_module=teacher if isinstance(
            teacher, nn.Module) else None, student_module=student_module, eval_set=eval_ds)
        return _run(run_dir, summary, student_module)
    if teacher is None:
        raise DfkdError("distill() needs a teacher: an nn.Module, a model name or spec, or a weights file")
    user = _nested(set)
    size = (user.get("data") or {}).get("image_size") if isinstance(user.get("data"), dict) else None
    layer, module = _teacher_layer(teacher, data, eval_ds, size, quiet)
    layer = deep_merge(layer, eval_layer)
    if student_module is not None:
        from dfkd.models.interface import module_name

        layer["student"] = {"arch": module_name(student_module)}
    elif isinstance(student, str) and student:
        layer["student"] = {"arch": student}
    elif student is not None:
        raise DfkdError(f"student must be an nn.Module or a model name or spec; got {type(student).__name__}")
    if out is not None:
        layer["out"] = str(out)
    if seed is not None:
        layer["seed"] = seed
    cfg = build_config(method=method, base=deep_merge(layer, user), base_origin="dfkd.distill() arguments")
    if isinstance(teacher, (list, tuple)) and module is not None:
        module.combine = cfg.teacher.combine
    run_dir, summary = run_distill(cfg, quiet=quiet, teacher_module=module, student_module=student_module,
                                   eval_set=eval_ds)
    return _run(run_dir, summary, student_module)


def _run(run_dir: Path, summary: dict, student_module: nn.Module | None = None) -> Run:
    path = Path(run_dir) / "student.pt"
    if student_module is None:
        return Run(Path(run_dir), summary, load_model(path))
    import copy

    from dfkd.io.model_files import read_model_file

    model = copy.deepcopy(student_module)  # the user's class, with the trained weights
    model.load_state_dict(read_model_file(path, key="student").state_dict)
    return Run(Path(run_dir), summary, model.eval())


@isolated_globals
def train_teacher(dataset: str = "digits", arch: str | None = None, set: dict | None = None,
                  out: str | Path = "runs/teachers", seed: int = 0, quiet: bool = False) -> Run:
    """Train a teacher with the dataset's recipe (`dfkd train-teacher`); `run.model` is the trained
    network, `run.dir` holds teacher.pt, config.yaml, metrics.jsonl and summary.json."""
    from dfkd.config.load import deep_merge
    from dfkd.run.teacher import build_teacher_config
    from dfkd.run.teacher import train_teacher as train

    _check_common(set, out, quiet, seed, optional=False)
    _need("dataset", dataset, isinstance(dataset, str) and dataset != "", "a dataset name (see `dfkd list datasets`)")
    _need("arch", arch, arch is None or isinstance(arch, str) and arch != "", "a model name or spec, or None")
    set, quiet = _run_options(set, quiet)
    layer: dict = {"data": {"name": dataset}, "out": str(out), "seed": seed}
    if arch:
        layer["arch"] = arch
    cfg = build_teacher_config(base=deep_merge(layer, _nested(set)))
    path, _ = train(cfg, quiet=quiet)
    summary = json.loads((path.parent / "summary.json").read_text())
    return Run(path.parent, summary, load_model(path))


def load_model(path: str | Path, arch: str | Any = None, num_classes: int | None = None,
               in_channels: int | None = None) -> nn.Module:
    """A model from a weights file, in eval mode: a dfkd checkpoint rebuilds its own architecture; a
    TorchScript file loads as is; a state dict or .safetensors needs `arch` (a spec string, or a
    class / function called with the num_classes and in_channels it declares), the sizes read off
    the weights when not given. Files are read with weights_only=True."""
    from dfkd.io.model_files import fit_weights, guess_classes, read_model_file
    from dfkd.models import build_model

    _need("path", path, isinstance(path, (str, Path)) and str(path) != "", "a weights file path (str or Path)")
    _need("arch", arch, arch is None or isinstance(arch, str) and arch != "" or callable(arch),
          "a model name or spec, a class or a function, or None")
    for name, v in (("num_classes", num_classes), ("in_channels", in_channels)):
        _need(name, v, v is None or _is_int(v) and v > 0, "a positive integer or None")
    f = read_model_file(path, key="path")
    if f.kind == "torchscript" and arch is None:
        return f.module.eval()
    if f.kind == "dfkd":
        arch = arch or f.meta["arch"]
        num_classes = num_classes or f.meta["num_classes"]
        in_channels = in_channels or f.meta["in_channels"]
    if arch is None:
        raise DfkdError(f"'{path}' holds bare weights ({f.kind}); pass arch= the model they belong to (a name, "
                        f"'file.py:Class', or the class itself)")
    num_classes = num_classes or guess_classes(f.state_dict) or 10
    if in_channels is None:
        conv = next((v for v in f.state_dict.values() if v.dim() == 4), None)
        in_channels = int(conv.shape[1]) if conv is not None else 3
    if isinstance(arch, str):
        if arch.startswith("module:"):
            raise DfkdError(f"'{path}' was saved from an in-memory {arch[7:]}; pass arch= its class")
        model = build_model(arch, num_classes, in_channels, key="arch")
        name = arch
    else:
        from dfkd.models.external import call_factory

        name = getattr(arch, "__name__", repr(arch))
        model = call_factory(arch, num_classes, in_channels, f"arch={name}")
    fit_weights(model, f.state_dict, str(path), name, key="arch", num_classes=num_classes, in_channels=in_channels)
    return model.eval()
