"""Views: differentiable transforms of a batch, one for the teacher (`view.teacher`) and one for
the student (`view.student`). Ordinary KD uses the identity for both; cross-modal KD (Gupta,
Hoffman, Malik, "Cross Modal Distillation for Supervision Transfer", CVPR 2016) gives the student
another modality of the same input, and the student's input channels follow its view.

Every view takes and returns *normalised* batches (N, C, H, W): colour-space views first undo the
dataset's normalisation (pixels in [0, 1]), convert with kornia, and rescale the result by fixed
constants to about zero mean and unit scale. All are differentiable, so a generator can be
trained through them. Registered as `factory(in_channels, mean, std, cfg: ViewConfig) ->
(module, out_channels)`.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dfkd.base.errors import DfkdError
from dfkd.base.registry import Registry

VIEWS = Registry("view")


class _Pixels(nn.Module):
    """Base: holds the dataset's normalisation to go to [0, 1] pixels and back."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def pixels(self, x: Tensor) -> Tensor:
        return x * self.std.to(x.dtype) + self.mean.to(x.dtype)

    def rgb(self, x: Tensor) -> Tensor:
        """[0, 1] RGB pixels (a 1-channel input is repeated to grey RGB)."""
        p = self.pixels(x)
        return p.expand(-1, 3, -1, -1) if p.shape[1] == 1 else p


class Grayscale(_Pixels):
    """Luma (ITU-R 601) of the RGB pixels, standardised with the luma of the dataset mean/std: 1 channel."""

    def forward(self, x: Tensor) -> Tensor:
        from kornia.color import rgb_to_grayscale

        if x.shape[1] == 1:
            return x
        w = x.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        m, s = (self.mean.to(x.dtype) * w).sum(1, keepdim=True), (self.std.to(x.dtype) * w).sum(1, keepdim=True)
        return (rgb_to_grayscale(self.pixels(x)) - m) / s


class Sobel(_Pixels):
    """Edge magnitude (kornia's Sobel filter) of the grey image in [0, 1], scaled by 4: 1 channel, >= 0."""

    def forward(self, x: Tensor) -> Tensor:
        from kornia.color import rgb_to_grayscale
        from kornia.filters import sobel

        grey = self.pixels(x) if x.shape[1] == 1 else rgb_to_grayscale(self.pixels(x))
        return 4.0 * sobel(grey)


class HSV(_Pixels):
    """Hue / saturation / value (kornia), each mapped to [0, 1] then standardised as a uniform
    variable ((v − 0.5) / 0.29): 3 channels. Hue is an angle: it jumps at red."""

    def forward(self, x: Tensor) -> Tensor:
        from kornia.color import rgb_to_hsv

        hsv = rgb_to_hsv(self.rgb(x))
        hsv = torch.cat([hsv[:, :1] / (2 * math.pi), hsv[:, 1:]], dim=1)
        return (hsv - 0.5) / 0.29


class LAB(_Pixels):
    """CIE L*a*b* (kornia), rescaled to L/50 − 1, a/50, b/50: 3 channels."""

    def forward(self, x: Tensor) -> Tensor:
        from kornia.color import rgb_to_lab

        lab = rgb_to_lab(self.rgb(x).clamp(0, 1))
        return torch.cat([lab[:, :1] / 50 - 1, lab[:, 1:] / 50], dim=1)


class LowRes(nn.Module):
    """Area-downsampling by `factor`, then bilinear upsampling to the input size: the same
    channels, 1/factor² of the information."""

    def __init__(self, factor: int):
        super().__init__()
        self.factor = factor

    def forward(self, x: Tensor) -> Tensor:
        small = F.avg_pool2d(x, self.factor, ceil_mode=True)
        return F.interpolate(small, size=x.shape[-2:], mode="bilinear", align_corners=False)


class ColorMix(nn.Module):
    """A fixed random mixing of the channels, out = M·x per pixel, M (C_out, C_in) drawn from
    N(0, 1/C_in) by `seed`: the same information in an unfamiliar basis."""

    def __init__(self, in_channels: int, out_channels: int, seed: int):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("mix", torch.randn(out_channels, in_channels, generator=g) / math.sqrt(in_channels))

    def forward(self, x: Tensor) -> Tensor:
        return torch.einsum("oc,nchw->nohw", self.mix.to(x.dtype), x)


@VIEWS.register("identity")
def identity(in_channels: int, mean, std, cfg) -> tuple[nn.Module, int]:
    """x -> x."""
    return nn.Identity(), in_channels


@VIEWS.register("grayscale")
def grayscale(in_channels: int, mean, std, cfg) -> tuple[nn.Module, int]:
    """RGB -> standardised luma, 1 channel (a grey input passes through)."""
    return Grayscale(mean, std), 1


@VIEWS.register("sobel")
def sobel(in_channels: int, mean, std, cfg) -> tuple[nn.Module, int]:
    """Sobel edge magnitude of the grey image, 1 channel."""
    return Sobel(mean, std), 1


@VIEWS.register("hsv")
def hsv(in_channels: int, mean, std, cfg) -> tuple[nn.Module, int]:
    """HSV colour space, 3 channels (a grey input is treated as grey RGB)."""
    return HSV(mean, std), 3


@VIEWS.register("lab")
def lab(in_channels: int, mean, std, cfg) -> tuple[nn.Module, int]:
    """CIE L*a*b* colour space, 3 channels."""
    return LAB(mean, std), 3


@VIEWS.register("lowres")
def lowres(in_channels: int, mean, std, cfg) -> tuple[nn.Module, int]:
    """Down- then up-sampled by view.lowres_factor, same channels."""
    return LowRes(cfg.lowres_factor), in_channels


@VIEWS.register("colormix")
def colormix(in_channels: int, mean, std, cfg) -> tuple[nn.Module, int]:
    """Fixed random channel mixing (seed view.mix_seed), 3 output channels."""
    return ColorMix(in_channels, 3, cfg.mix_seed), 3


def build_view(name: str, in_channels: int, mean=None, std=None, cfg=None) -> tuple[nn.Module, int]:
    """(module, output channels) of view `name` on inputs with `in_channels` channels."""
    from dfkd.config.schema import ViewConfig

    mean = mean if mean is not None else (0.0,) * in_channels
    std = std if std is not None else (1.0,) * in_channels
    return VIEWS.get(name)(in_channels, mean, std, cfg or ViewConfig())


def check_teacher_view(name: str, out_channels: int, teacher_channels: int, arch: str) -> None:
    if out_channels != teacher_channels:
        raise DfkdError(f"view.teacher={name} gives {out_channels}-channel inputs but the teacher '{arch}' takes "
                        f"{teacher_channels}; the teacher sees its own modality: use view.teacher=identity")
