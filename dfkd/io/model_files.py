"""Model weights from files that any codebase writes, read safely.

    f = read_model_file("resnet56.th")      # -> ModelFile(kind, state_dict, module, meta)
    fit_weights(model, f.state_dict, "resnet56.th", "resnet56")

Kinds, told apart by content, not by name:
- "dfkd":        a dfkd model checkpoint (`dfkd.io.checkpoint.save_model`), verified by its sha256;
- "torchscript": a TorchScript archive: `module` is the loaded ScriptModule (no Python class needed;
                 it runs its own code, by design), `state_dict` its weights;
- "safetensors": a .safetensors file (no code at all);
- "state_dict":  anything `torch.save` wrote that holds tensors: a plain state dict or one of the usual
                 wrappers ({"state_dict": ...}, {"model": ...}, {"net": ...}, ...), with the
                 `module.` prefix of DataParallel / DDP and the `_orig_mod.` prefix of torch.compile
                 removed.
Every `torch.load` uses `weights_only=True`: a file that needs arbitrary unpickling (a whole model
saved with `torch.save(model)`) is refused with the way to re-save it.
"""
from __future__ import annotations

import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from dfkd.base.errors import DfkdError

WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "teacher", "student", "weights", "params",
                "module", "ema")
PREFIXES = ("module.", "_orig_mod.")


@dataclass
class ModelFile:
    kind: str  # dfkd | torchscript | safetensors | state_dict
    state_dict: dict
    module: nn.Module | None = None  # the TorchScript module
    meta: dict = field(default_factory=dict)  # a dfkd checkpoint: everything but the weights


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("/constants.pkl") or n == "constants.pkl" for n in z.namelist())


def _is_safetensors(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and int.from_bytes(head[:8], "little") < (1 << 30) and head[8:9] == b"{"


def read_model_file(path: str | Path, key: str = "teacher.checkpoint") -> ModelFile:
    path = Path(path).expanduser()
    if not path.is_file():
        raise DfkdError(f"{key}: no file '{path}'; pass the path of a checkpoint, state dict, .safetensors or "
                        f"TorchScript file (or 'auto' to train a teacher)")
    if _is_torchscript(path):
        try:
            with warnings.catch_warnings():  # TorchScript is deprecated upstream, still what many release
                warnings.simplefilter("ignore", FutureWarning)
                module = torch.jit.load(str(path), map_location="cpu")
        except Exception as e:
            raise DfkdError(f"TorchScript file '{path}' could not be loaded ({type(e).__name__}); re-export it "
                            f"with torch.jit.save") from None
        return ModelFile("torchscript", dict(module.state_dict()), module)
    if _is_safetensors(path):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return ModelFile("safetensors", strip_prefixes(load_file(str(path), device="cpu")))
        except (SafetensorError, OSError, ValueError) as e:
            raise DfkdError(f"'{path}' is not a readable .safetensors file ({type(e).__name__}); re-save it") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle of arbitrary objects, truncated files, foreign formats
        text = str(e)
        if "weights_only" in text or "Unsupported global" in text or "GLOBAL" in text:
            raise DfkdError(f"'{path}' holds pickled Python objects (e.g. a whole model saved with "
                            f"torch.save(model)), which dfkd does not unpickle for safety; re-save "
                            f"model.state_dict() (and set {key.split('.')[0]}.arch) or export TorchScript") from None
        raise DfkdError(f"'{path}' is unreadable or truncated ({type(e).__name__}); it is not a checkpoint, state "
                        f"dict, .safetensors or TorchScript file") from None
    if isinstance(obj, dict) and obj.get("format") == "dfkd-model-v1":
        from dfkd.io.checkpoint import state_hash

        if state_hash(obj["state_dict"]) != obj.get("sha256"):
            raise DfkdError(f"checkpoint '{path}' is corrupt: its weights do not match their sha256; "
                            f"re-create it with `dfkd train-teacher`")
        return ModelFile("dfkd", obj["state_dict"], meta={k: v for k, v in obj.items() if k != "state_dict"})
    state = unwrap(obj)
    if state is None:
        what = f"a dict with keys {', '.join(map(str, list(obj)[:6]))}" if isinstance(obj, dict) else \
            f"a {type(obj).__name__}"
        raise DfkdError(f"'{path}' holds {what}, not model weights; expected a state dict (or one under "
                        f"'state_dict', 'model' or 'net')")
    return ModelFile("state_dict", strip_prefixes(state))


def _is_state(d) -> bool:
    return isinstance(d, dict) and bool(d) and all(isinstance(k, str) for k in d) and \
        all(torch.is_tensor(v) for v in d.values())


def unwrap(obj, depth: int = 0) -> dict | None:
    """The state dict inside `obj`: itself, or under one of WRAPPER_KEYS (nested at most 3 deep).
    Non-tensor entries beside the tensors of a state dict (e.g. a stray epoch count) are dropped."""
    if _is_state(obj):
        return dict(obj)
    if not isinstance(obj, dict) or depth > 3:
        return None
    for k in WRAPPER_KEYS:
        if k in obj:
            found = unwrap(obj[k], depth + 1)
            if found is not None:
                return found
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and torch.is_tensor(v)}
    return tensors if len(tensors) >= max(1, len(obj) // 2) else None


def strip_prefixes(state: dict) -> dict:
    """Remove `module.` (DataParallel, DDP) and `_orig_mod.` (torch.compile) from every key that has it."""
    for prefix in PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


# ----------------------------------------------------------------------------- fitting


def _mismatch(model: nn.Module, state: dict) -> tuple[list[str], list[str], list[str]]:
    """(missing keys, unexpected keys, keys whose shapes differ) of `state` against `model`."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    return missing, unexpected, shapes


def _few(keys: list[str], n: int = 3) -> str:
    return ", ".join(keys[:n]) + (", ..." if len(keys) > n else "")


def fit_weights(model: nn.Module, state: dict, where: str, arch: str, key: str = "teacher.arch",
                num_classes: int | None = None, in_channels: int | None = None) -> str:
    """Load `state` into `model` (built as `arch`) exactly, mapping the names of other codebases'
    releases when that makes it fit (`dfkd.models.naming`); returns 'as is' or 'renamed'. When it does
    not fit: one DfkdError with the counts of missing / unexpected keys, a few of each, the
    shape mismatches, and the registry architecture that fits `state` best."""
    from dfkd.models.naming import to_dfkd_names

    candidates = [("as is", state)]
    renamed = to_dfkd_names(model, state)
    if renamed is not None:
        candidates.append(("renamed", renamed))
    best = None
    for how, sd in candidates:
        missing, unexpected, shapes = _mismatch(model, sd)
        if not (missing or unexpected or shapes):
            model.load_state_dict(sd)
            return how
        score = len(missing) + len(unexpected) + len(shapes)
        if best is None or score < best[0]:
            best = (score, missing, unexpected, shapes)
    _, missing, unexpected, shapes = best
    own = model.state_dict()
    conv = next((k for k, v in state.items() if v.dim() == 4 and k in own), None)
    if conv is not None and in_channels and state[conv].shape[1] != own[conv].shape[1]:
        c = int(state[conv].shape[1])
        raise DfkdError(f"the weights in '{where}' take {c}-channel inputs ({conv}) but the data has {in_channels}; "
                        f"describe the inputs the model was trained on (data.channels={c}, or InputSpec(channels={c}, "
                        f"...)) or pick the dataset it was trained on")
    parts = [f"{len(missing)} keys missing" + (f" ({_few(missing)})" if missing else ""),
             f"{len(unexpected)} unexpected" + (f" ({_few(unexpected)})" if unexpected else "")]
    if shapes:
        parts.append(f"{len(shapes)} of another shape ({_few(shapes, 2)})")
    close = closest_arch(state, num_classes, in_channels)
    hint = f"; the closest registry architecture is '{close}' (set {key}={close})" if close and close != arch else \
        f"; set {key} to the architecture the file was saved from"
    raise DfkdError(f"the weights in '{where}' do not fit {key}={arch}: {', '.join(parts)}{hint}")


def closest_arch(state: dict, num_classes: int | None = None, in_channels: int | None = None) -> str | None:
    """The registry architecture whose parameters (names and shapes, after the authors' renaming)
    agree best with `state`, or None when none shares half of them. Built on the meta device, so
    this costs no memory."""
    from dfkd.models import MODELS, build_model
    from dfkd.models.naming import to_dfkd_names

    classes = num_classes or guess_classes(state) or 10
    best, best_score = None, 0.5
    for name in MODELS:
        for c in ([in_channels] if in_channels else [3, 1]):
            try:
                with torch.device("meta"):
                    model = build_model(name, classes, c)
            except Exception:
                continue
            own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
            for sd in (state, to_dfkd_names(model, state) or state):
                agree = sum(1 for k, v in sd.items() if own.get(k) == tuple(v.shape))
                score = agree / max(len(own), len(sd))
                if score > best_score:
                    best, best_score = name, score
    return best


def guess_classes(state: dict) -> int | None:
    """The output size of the last 2-D weight whose name looks like a classifier's."""
    for k in reversed(list(state)):
        if k.endswith("weight") and state[k].dim() == 2:
            return int(state[k].shape[0])
    return None
