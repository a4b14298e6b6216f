"""Differentiable batch augmentation (kornia), shared by teacher training, synthesis and the student's
reading of synthesized samples.

Batches live in normalised input space ((x − mean) / std per channel). The authors' pipelines
(zju-vipa/Fast-Datafree `base/registry.py`, the CMI and Fast synthesizers) augment images in [0, 1]
before normalising, so a padded crop fills its border with black; `crop_flip` does the same by
padding in pixel space when it is given the normalisation.

- `crop_flip(size, flip, mean, std)`: per sample, a random crop of the (size/8)-padded image back to
  size × size (zero = black padding), plus a random horizontal flip when `flip` (natural images;
  not digits): kornia RandomCrop + RandomHorizontalFlip, the CIFAR training transform.
- `roll_flip(shift, flip)`: DeepInversion's jitter: the whole batch is shifted circularly by one
  random (dy, dx) in [−shift, shift]² and, when `flip`, flipped as a whole with probability 1/2
  (NVlabs/DeepInversion cifar10/deepinversion_cifar10.py; Fast-Datafree
  datafree/synthesis/deepinversion.py `jitter_and_flip`).

Both draw from torch's global generator, on the batch's device, and are differentiable in the input.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


class PixelSpace(nn.Module):
    """Runs `inner` on x·std + mean (pixel space) and normalises its output again."""

    def __init__(self, inner: nn.Module, mean, std):
        super().__init__()
        self.inner = inner
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.get_default_dtype()).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.get_default_dtype()).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return (self.inner(x * self.std + self.mean) - self.mean) / self.std


def crop_flip(size: int, flip: bool, mean=None, std=None) -> nn.Module:
    """Random padded crop (+ flip); with `mean`/`std` the padding is black in pixel space."""
    import kornia.augmentation as K

    ops = [K.RandomCrop((size, size), padding=max(1, size // 8))]
    if flip:
        ops.append(K.RandomHorizontalFlip())
    aug = nn.Sequential(*ops)
    return aug if mean is None else PixelSpace(aug, mean, std)


class RollFlip(nn.Module):
    """One circular shift of the whole batch by (dy, dx) ~ U{−shift..shift}², then, with `flip`, a
    flip of the whole batch with probability 1/2 (DeepInversion's jitter)."""

    def __init__(self, shift: int, flip: bool):
        super().__init__()
        self.shift, self.flip = shift, flip

    def draw(self, device=None) -> tuple[int, int, bool]:
        """(dy, dx, flipped) for one batch."""
        dy, dx = (torch.randint(-self.shift, self.shift + 1, (2,))).tolist()
        flipped = bool(torch.rand(()) < 0.5) if self.flip else False
        return dy, dx, flipped

    def forward(self, x: Tensor, params: tuple[int, int, bool] | None = None) -> Tensor:
        dy, dx, flipped = self.draw() if params is None else params
        x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
        return torch.flip(x, dims=(3,)) if flipped else x


def roll_flip(shift: int, flip: bool) -> nn.Module:
    return RollFlip(shift, flip)
