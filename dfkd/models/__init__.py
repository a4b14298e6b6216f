"""Model registry: plain `nn.Module`s built as `build_model(spec, num_classes, in_channels)`.

A spec is a registry name (`dfkd list models`), `torchvision:NAME`, `timm:NAME`, or a factory of the
user's own, `pkg.module:factory` or `file.py:factory` (`dfkd.models.external`). Features are read by
hooks (`dfkd.objective.hooks`), never through a special forward signature.
"""
from __future__ import annotations

from torch import nn

from dfkd.base.errors import DfkdError
from dfkd.base.registry import Registry

MODELS = Registry("model")

from dfkd.models import cnn, lenet, resnet_cifar, vgg, wrn  # noqa: E402,F401  (they register themselves)


def build_model(name: str, num_classes: int, in_channels: int, weights: str | None = None,
                download: bool = False, key: str = "arch") -> nn.Module:
    """The model `name` names (see the module doc). `weights` names pretrained weights of a
    torchvision or timm model; `key` is the config key named in errors."""
    from dfkd.models import external

    if name.startswith("torchvision:"):
        return external.build_torchvision(name.split(":", 1)[1], num_classes, in_channels, weights, download, key)
    if name.startswith("timm:"):
        return external.build_timm(name.split(":", 1)[1], num_classes, in_channels, weights, download)
    if weights:
        raise DfkdError(f"pretrained weights ('{weights}') are for torchvision: and timm: models; '{name}' takes "
                        f"its weights from a checkpoint file")
    if external.is_factory(name):
        return external.build_factory(name, num_classes, in_channels, key)
    return MODELS.get(name)(num_classes=num_classes, in_channels=in_channels)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def model_names() -> list[str]:
    return MODELS.names() + ["torchvision:<name>", "timm:<name>", "<pkg.module>:<factory>", "<file.py>:<factory>"]
