"""The DCGAN-style generator of the DAFL/DFAD family (Chen et al. 2019; Fang et al. 2019).

    z (N, nz) -> Linear -> (N, width, s0, s0) -> BN -> [×2 upsample, 3×3 conv, BN, LeakyReLU] ×2
      -> 3×3 conv to `channels` -> output -> (N, channels, size, size)

s0 = ceil(size / 4); when 4·s0 ≠ size the output is resized to `size`. `output="tanh_bn"` (DAFL's,
huawei-noah DAFL) ends with tanh and an affine-free BatchNorm, which puts every channel at zero mean
and unit variance per batch, matching inputs normalised with the dataset's mean and std;
`output="sigmoid"` (the generator of zju-vipa/Fast-Datafree and CMI, datafree/models/generator.py:
width = 2·ngf) gives pixels in [0, 1], normalised with `mean` and `std`; `output="bn"` (ZSKT's,
polo5/ZeroShotKnowledgeTransfer models/generator.py) ends with a learned (affine) BatchNorm and no
squashing; `output="bn_tanh"` (DFME's GeneratorA, cake-lab/datafree-model-extraction
dfme/network/gan.py) ends with an affine-free BatchNorm, then tanh. `taper="early"` halves the width in both blocks, width -> width/2 -> width/4 (CuDFKD's
generator, ljrprocc/DFKD datafree/models/generator.py DCGAN_Generator_CIFAR10: 256, 128, 64).
`bn_eps`: the eps of the two inner BatchNorms (DAFL's code: 0.8). The layers are created in the
authors' order, so one seed gives both codes the same weights (l1.0 = fc, conv_blocks.0 = bn0, ...).

Its intermediate features are `levels` (module names, in forward order): level 0 = bn0's output
(N, width, s0, s0), 1 = block1's (N, mid, 2·s0, 2·s0), 2 = block2's (N, last, 4·s0, 4·s0);
`decode(h, level)` runs the rest of the network on such a feature (SpaceshipNet's
`generate_using_convout`, which its feature exchange decodes exchanged features with).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class DCGANGenerator(nn.Module):
    def __init__(self, nz: int = 100, width: int = 128, size: int = 32, channels: int = 3, output: str = "tanh_bn",
                 mean=None, std=None, bn_eps: float = 1e-5, taper: str = "late"):
        super().__init__()
        if output not in ("tanh_bn", "sigmoid", "bn", "bn_tanh"):
            raise ValueError(f"output must be 'tanh_bn', 'sigmoid', 'bn' or 'bn_tanh', not {output!r}")
        if taper not in ("late", "early"):
            raise ValueError(f"taper must be 'late' or 'early', not {taper!r}")
        mid, last = (width, width // 2) if taper == "late" else (width // 2, width // 4)
        self.nz, self.size, self.channels, self.output = nz, size, channels, output
        self.init_size = math.ceil(size / 4)
        self.fc = nn.Linear(nz, width * self.init_size ** 2)
        self.bn0 = nn.BatchNorm2d(width)
        self.block1 = nn.Sequential(
            nn.Upsample(scale_factor=2),
            nn.Conv2d(width, mid, 3, padding=1, bias=False),
            nn.BatchNorm2d(mid, eps=bn_eps),
            nn.LeakyReLU(0.2, inplace=True),
        )
        self.block2 = nn.Sequential(
            nn.Upsample(scale_factor=2),
            nn.Conv2d(mid, last, 3, padding=1, bias=False),
            nn.BatchNorm2d(last, eps=bn_eps),
            nn.LeakyReLU(0.2, inplace=True),
        )
        self.to_image = nn.Conv2d(last, channels, 3, padding=1)
        if output in ("tanh_bn", "bn", "bn_tanh"):
            self.out_bn = nn.BatchNorm2d(channels, affine=output == "bn")
        else:
            mean = torch.tensor(mean if mean is not None else (0.0,) * channels, dtype=torch.get_default_dtype())
            std = torch.tensor(std if std is not None else (1.0,) * channels, dtype=torch.get_default_dtype())
            self.register_buffer("mean", mean.view(1, -1, 1, 1), persistent=False)
            self.register_buffer("std", std.view(1, -1, 1, 1), persistent=False)

    levels = ("bn0", "block1", "block2")  # the modules whose outputs `decode` takes, by level

    def forward(self, z: Tensor) -> Tensor:
        return self.finish(self.pre_output(z))

    def pre_output(self, z: Tensor) -> Tensor:
        """(N, nz) -> (N, C, H, W): the output before its last element-wise squashing, `finish` (the
        point DFME's zeroth-order estimate perturbs: before tanh for 'bn_tanh', before sigmoid and
        normalisation for 'sigmoid'; the output itself for 'tanh_bn' and 'bn', which end in a BatchNorm)."""
        return self._raw(self.bn0(self.fc(z).view(z.shape[0], -1, self.init_size, self.init_size)), 0)

    def finish(self, x: Tensor) -> Tensor:
        """The element-wise end of the network after `pre_output` (identity for 'tanh_bn' and 'bn')."""
        if self.output == "sigmoid":
            return (x.sigmoid() - self.mean) / self.std
        if self.output == "bn_tanh":
            return x.tanh()
        return x

    def decode(self, h: Tensor, level: int) -> Tensor:
        """The image from the output `h` of `levels[level]` through the layers after it."""
        return self.finish(self._raw(h, level))

    def _raw(self, h: Tensor, level: int) -> Tensor:
        for block in (self.block1, self.block2)[level:]:
            h = block(h)
        if h.shape[-1] != self.size:
            h = F.interpolate(h, size=(self.size, self.size), mode="bilinear", align_corners=False)
        if self.output == "sigmoid":
            return self.to_image(h)
        if self.output in ("bn", "bn_tanh"):
            return self.out_bn(self.to_image(h))
        return self.out_bn(self.to_image(h).tanh())
