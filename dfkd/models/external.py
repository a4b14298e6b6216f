"""Models from outside the registry, named by a spec string:

    torchvision:NAME          any torchvision classification model; `weights` (e.g. IMAGENET1K_V2 or
                              DEFAULT) loads its pretrained weights from the torch hub cache
    timm:NAME                 any timm model (optional extra: pip install "dfkd[timm]"); `weights`
                              'pretrained' loads timm's own pretrained weights
    pkg.module:factory        a class or function of an importable module
    path/to/file.py:factory   a class or function of a Python file

A factory is called with the keyword arguments it declares among `num_classes` and `in_channels`
(so `Net()`, `Net(num_classes=10)` and `make(num_classes, in_channels)` all work) and must return an
`nn.Module`. Factories and TorchScript files run the user's own code, by design.
Every failure is a `DfkdError` naming the spec and the fix.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from pathlib import Path

import torch
from torch import nn

from dfkd.base.errors import DfkdError
from dfkd.base.registry import suggest


def is_factory(spec: str) -> bool:
    """'pkg.mod:fn' or 'file.py:fn' (not 'torchvision:x' / 'timm:x')."""
    head, sep, tail = spec.rpartition(":")
    return bool(sep and head and tail) and head not in ("torchvision", "timm")


def _import_target(spec: str, key: str):
    head, _, attr = spec.rpartition(":")
    try:
        if head.endswith(".py"):
            path = Path(head).expanduser().resolve()
            if not path.is_file():
                raise DfkdError(f"{key}='{spec}': no file '{head}'; give the path of the Python file that "
                                f"defines {attr}")
            name = f"dfkd_user_{path.stem}_{abs(hash(str(path))) % 10**8}"
            module = sys.modules.get(name)
            if module is None:
                loader = importlib.util.spec_from_file_location(name, path)
                module = importlib.util.module_from_spec(loader)
                sys.modules[name] = module
                try:
                    loader.loader.exec_module(module)
                except BaseException:
                    del sys.modules[name]
                    raise
        else:
            module = importlib.import_module(head)
    except DfkdError:
        raise
    except Exception as e:  # ImportError, SyntaxError, whatever the user's module raises at import
        first = (str(e).strip().splitlines() or [""])[0]
        raise DfkdError(f"{key}='{spec}': cannot import '{head}' ({type(e).__name__}: {first}); check the "
                        f"module path (pkg.module:factory or file.py:factory)") from None
    target = module
    for part in attr.split("."):
        if not hasattr(target, part):
            names = [n for n in dir(module) if not n.startswith("_")]
            raise DfkdError(f"{key}='{spec}': '{head}' has no '{attr}'{suggest(part, names)}")
        target = getattr(target, part)
    return target


def build_factory(spec: str, num_classes: int, in_channels: int, key: str = "arch") -> nn.Module:
    """Call the class or function named by 'module:factory' with the arguments it declares."""
    return call_factory(_import_target(spec, key), num_classes, in_channels, f"{key}='{spec}'")


def call_factory(fn, num_classes: int, in_channels: int, label: str) -> nn.Module:
    """fn(**the ones of num_classes / in_channels it declares), checked to be an nn.Module."""
    if not callable(fn):
        raise DfkdError(f"{label} is not a class or function")
    given = {"num_classes": num_classes, "in_channels": in_channels}
    try:
        params = inspect.signature(fn).parameters
        takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
        kwargs = {k: v for k, v in given.items() if takes_any or k in params}
    except (TypeError, ValueError):  # no signature (a C extension): call it plainly
        kwargs = {}
    try:
        model = fn(**kwargs)
    except Exception as e:
        first = (str(e).strip().splitlines() or [""])[0]
        raise DfkdError(f"{label}: calling it with {kwargs or 'no arguments'} failed "
                        f"({type(e).__name__}: {first})") from None
    if not isinstance(model, nn.Module):
        raise DfkdError(f"{label} returned a {type(model).__name__}, not an nn.Module")
    return model


# ----------------------------------------------------------------------------- torchvision


def torchvision_weights(name: str, weights: str):
    """The torchvision weights enum member `weights` ('DEFAULT', 'IMAGENET1K_V2', ...) of model `name`."""
    import torchvision

    try:
        enum = torchvision.models.get_model_weights(name)
    except (ValueError, KeyError):
        raise DfkdError(f"torchvision:{name} has no pretrained weights in this torchvision") from None
    members = list(enum.__members__)
    if weights not in members:
        raise DfkdError(f"torchvision:{name} has no weights '{weights}'{suggest(weights, members)}; "
                        f"choose one of: {', '.join(members)}")
    return enum[weights]


def hub_file(url: str) -> Path:
    """Where torch keeps a downloaded file: $TORCH_HOME/hub/checkpoints/<file name of the url>."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def build_torchvision(name: str, num_classes: int, in_channels: int, weights: str | None = None,
                      download: bool = False, key: str = "arch") -> nn.Module:
    import torchvision

    available = torchvision.models.list_models(module=torchvision.models)
    if name not in available:
        raise DfkdError(f"unknown torchvision model '{name}'{suggest(name, available)}; "
                        f"see torchvision.models.list_models()")
    if in_channels != 3:
        raise DfkdError(f"torchvision:{name} takes 3-channel input but the data has {in_channels}; "
                        f"use a dfkd model (see `dfkd list models`)")
    if not weights:
        return torchvision.models.get_model(name, weights=None, num_classes=num_classes)
    w = torchvision_weights(name, weights)
    classes = len(w.meta.get("categories") or []) or num_classes
    if classes != num_classes:
        raise DfkdError(f"torchvision:{name} {w.name} has {classes} classes but the data has {num_classes}; "
                        f"set data.num_classes={classes} (or an InputSpec with num_classes={classes})")
    path = hub_file(w.url)
    if not path.is_file():
        if not download:
            raise DfkdError(f"pretrained weights for torchvision:{name} {w.name} not found at '{path}'; put "
                            f"the file there (from {w.url}), set TORCH_HOME, or pass --download")
        torch.hub.download_url_to_file(w.url, str(path), progress=True)
    model = torchvision.models.get_model(name, weights=None, num_classes=num_classes)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as e:
        raise DfkdError(f"'{path}' does not hold the weights of torchvision:{name} {w.name} "
                        f"({type(e).__name__}); delete it and pass --download") from None
    return model


# ----------------------------------------------------------------------------- timm


def build_timm(name: str, num_classes: int, in_channels: int, weights: str | None = None,
               download: bool = False) -> nn.Module:
    try:
        import timm
    except ImportError:
        raise DfkdError(f"timm:{name} needs the timm package: pip install 'dfkd[timm]'") from None
    if name not in timm.list_models(pretrained=bool(weights)):
        names = timm.list_models()
        raise DfkdError(f"unknown timm model '{name}'{suggest(name, names)}" +
                        (" with pretrained weights" if weights else "") + "; see timm.list_models()")
    if weights not in (None, "", "pretrained"):
        raise DfkdError(f"timm:{name}: weights must be 'pretrained' (timm's default tag) or empty, not '{weights}'")
    old = os.environ.get("HF_HUB_OFFLINE")
    if weights and not download:
        os.environ["HF_HUB_OFFLINE"] = "1"  # only the local cache, unless --download
    try:
        return timm.create_model(name, pretrained=bool(weights), num_classes=num_classes, in_chans=in_channels)
    except Exception as e:
        first = (str(e).strip().splitlines() or [""])[0]
        raise DfkdError(f"timm:{name} could not be built ({type(e).__name__}: {first})" +
                        ("; its pretrained weights are read from the Hugging Face cache: pass --download to "
                         "fetch them" if weights and not download else "")) from None
    finally:
        if weights and not download:
            if old is None:
                os.environ.pop("HF_HUB_OFFLINE", None)
            else:
                os.environ["HF_HUB_OFFLINE"] = old
