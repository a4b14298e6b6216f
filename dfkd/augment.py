"""Differentiable batch augmentation (kornia), shared by teacher training and synthesis.

`crop_flip(size, flip)`: random crop of a (size/8)-padded image back to size × size, plus a random
horizontal flip when `flip` (natural images; not digits). Per-sample parameters, on the batch's
device, differentiable in the input, so a synthesized batch can be augmented inside the graph.
"""
from __future__ import annotations

from torch import nn


def crop_flip(size: int, flip: bool) -> nn.Module:
    import kornia.augmentation as K

    ops = [K.RandomCrop((size, size), padding=max(1, size // 8))]
    if flip:
        ops.append(K.RandomHorizontalFlip())
    return nn.Sequential(*ops)
