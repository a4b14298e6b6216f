"""The DCGAN-style generator of the DAFL/DFAD family (Chen et al. 2019; Fang et al. 2019).

    z (N, nz) -> Linear -> (N, width, s0, s0) -> BN -> [×2 upsample, 3×3 conv, BN, LeakyReLU] ×2
      -> 3×3 conv to `channels` -> tanh -> affine-free BN  -> (N, channels, size, size)

s0 = ceil(size / 4); when 4·s0 ≠ size the output is resized to `size`. The closing affine-free
BatchNorm puts every channel at zero mean and unit variance per batch, which matches inputs
normalised with the dataset's mean and std.
"""
from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn


class DCGANGenerator(nn.Module):
    def __init__(self, nz: int = 100, width: int = 128, size: int = 32, channels: int = 3):
        super().__init__()
        self.nz, self.size, self.channels = nz, size, channels
        self.init_size = math.ceil(size / 4)
        self.fc = nn.Linear(nz, width * self.init_size ** 2)
        self.bn0 = nn.BatchNorm2d(width)
        self.block1 = nn.Sequential(
            nn.Upsample(scale_factor=2),
            nn.Conv2d(width, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.LeakyReLU(0.2, inplace=True),
        )
        self.block2 = nn.Sequential(
            nn.Upsample(scale_factor=2),
            nn.Conv2d(width, width // 2, 3, padding=1, bias=False),
            nn.BatchNorm2d(width // 2),
            nn.LeakyReLU(0.2, inplace=True),
        )
        self.to_image = nn.Conv2d(width // 2, channels, 3, padding=1)
        self.out_bn = nn.BatchNorm2d(channels, affine=False)

    def forward(self, z: Tensor) -> Tensor:
        h = self.fc(z).view(z.shape[0], -1, self.init_size, self.init_size)
        h = self.block2(self.block1(self.bn0(h)))
        if h.shape[-1] != self.size:
            h = F.interpolate(h, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return self.out_bn(self.to_image(h).tanh())
