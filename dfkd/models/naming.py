"""Parameter names of the teachers other DFKD codebases released, mapped onto ours, so a published
table can be rerun with the papers' very teachers (`teacher.checkpoint=their_file.pth`).

The networks are the same; only the names differ (read from the authors' public model code):
- CIFAR ResNet-18/34 of DAFL, DFAD, CMI and Fast (`resnet.py`): conv1, bn1, layer1..4 (blocks with
  conv1/bn1/conv2/bn2/shortcut.0/shortcut.1), linear  ->  stem.0, stem.1, stages.0..3, fc.
- He et al.'s CIFAR ResNet-8..110 and the ×4 variants of CRD, Fast and CMI (`resnet_tiny.py`):
  conv1, bn1, layer1..3 (downsample.0/1 for projections), fc  ->  stem.0, stem.1, stages.0..2, shortcut.
- Wide ResNets of ZSKT, CMI and Fast (`wresnet.py`): conv1, block1..3.layer.J (bn1, conv1, bn2, conv2,
  convShortcut), bn1, fc  ->  stem, stages.0..2.J (…, shortcut), head.0, fc.
Their VGG (CRD's `vgg.py`, convolutions with bias and three max-pools at 32 px) is another network
than our `vgg*`, so it is not mapped.
"""
from __future__ import annotations

import re

from torch import nn

RESNET_RULES = [
    (r"^conv1\.", "stem.0."),
    (r"^bn1\.", "stem.1."),
    (r"^layer(\d+)\.", lambda m: f"stages.{int(m.group(1)) - 1}."),
    (r"\.downsample\.", ".shortcut."),
    (r"^linear\.", "fc."),
]
_WRN = [
    (r"^conv1\.", "stem."),
    (r"^block(\d+)\.layer\.", lambda m: f"stages.{int(m.group(1)) - 1}."),
    (r"\.convShortcut\.", ".shortcut."),
    (r"^bn1\.", "head.0."),
]


def _rules(model: nn.Module):
    from dfkd.models.resnet_cifar import CifarResNet
    from dfkd.models.wrn import WideResNet

    if isinstance(model, CifarResNet):
        return RESNET_RULES
    if isinstance(model, WideResNet):
        return _WRN
    return None


def rename(key: str, rules) -> str:
    for pattern, repl in rules:
        key = re.sub(pattern, repl, key)
    return key


def to_dfkd_names(model: nn.Module, state: dict) -> dict | None:
    """`state` with the authors' names mapped onto `model`'s, or None when `model` has no known
    other naming (or nothing was renamed)."""
    rules = _rules(model)
    if rules is None:
        return None
    out = {rename(k, rules): v for k, v in state.items()}
    return out if out.keys() != state.keys() else None
