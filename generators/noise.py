"""Gaussian-noise source: the "noise" control of the method tables.

The latent code *is* the image: z (N, C·H·W) ~ N(0, I) reshaped to (N, C, H, W), no parameters.
Distilling through the same loop on these inputs measures what a method gains over no synthesis.
"""
from torch import Tensor, nn


class NoiseSource(nn.Module):
    def __init__(self, size: int, channels: int):
        super().__init__()
        self.size, self.channels = size, channels
        self.nz = channels * size * size

    def forward(self, z: Tensor) -> Tensor:
        return z.view(z.shape[0], self.channels, self.size, self.size)
