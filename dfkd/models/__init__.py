"""Model registry: plain `nn.Module`s built as `build_model(name, num_classes, in_channels)`.

Features are read by hooks (`dfkd.hooks`), never through a special forward signature.
Any torchvision classification model is available as `torchvision:NAME` (random init, 3 channels).
"""
from __future__ import annotations

from torch import nn

from ..errors import DfkdError
from ..registry import Registry, suggest

MODELS = Registry("model")

from . import cnn, lenet, resnet_cifar, vgg, wrn  # noqa: E402,F401  (they register themselves)


def build_model(name: str, num_classes: int, in_channels: int) -> nn.Module:
    if name.startswith("torchvision:"):
        return _torchvision_model(name.split(":", 1)[1], num_classes, in_channels)
    return MODELS.get(name)(num_classes=num_classes, in_channels=in_channels)


def _torchvision_model(name: str, num_classes: int, in_channels: int) -> nn.Module:
    import torchvision

    available = torchvision.models.list_models(module=torchvision.models)
    if name not in available:
        raise DfkdError(f"unknown torchvision model '{name}'{suggest(name, available)}; "
                        f"see torchvision.models.list_models()")
    if in_channels != 3:
        raise DfkdError(f"torchvision:{name} takes 3-channel input but the data has {in_channels}; "
                        f"use a dfkd model (see `dfkd list models`)")
    return torchvision.models.get_model(name, weights=None, num_classes=num_classes)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def model_names() -> list[str]:
    return MODELS.names() + ["torchvision:<name>"]
