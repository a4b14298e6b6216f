"""Free pixels: the batch itself is the source's parameter (DeepInversion, Yin et al. 2020).

forward(z) ignores the values of z and returns the (N, C, H, W) parameter, N fixed at construction;
`reset_parameters()` draws it anew from N(0, I), which the re-initialising schedule does every round.
"""
import torch
from torch import Tensor, nn


class PixelSource(nn.Module):
    nz = 1

    def __init__(self, batch_size: int, size: int, channels: int):
        super().__init__()
        self.x = nn.Parameter(torch.empty(batch_size, channels, size, size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.x)

    @torch.no_grad()
    def clamp_(self, lo: Tensor, hi: Tensor) -> None:
        """Clamp the pixels into [lo, hi] per channel ((1, C, 1, 1) each), in place (synth.clip)."""
        self.x.copy_(torch.max(torch.min(self.x, hi), lo))

    def forward(self, z: Tensor) -> Tensor:
        if z.shape[0] != self.x.shape[0]:
            raise ValueError(f"the pixel source holds {self.x.shape[0]} images, asked for {z.shape[0]}")
        return self.x
