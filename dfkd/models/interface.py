"""A model's interface: what it takes and what it returns. `check_io` refuses, in one line, a model that
does not map (N, C, S, S) inputs to (N, num_classes) logits, naming the model and the registry models
that take that size; `SelectOutput` picks the logits of a model that returns a tuple, list or dict."""
from __future__ import annotations

import torch
from torch import nn

from dfkd.base.errors import DfkdError


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
    from dfkd.models import MODELS, build_model

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


def module_name(module: nn.Module) -> str:
    return f"module:{type(module).__name__}"
