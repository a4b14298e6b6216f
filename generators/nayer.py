"""NAYER-style source (Tran, Tran, Le, Harandi, Phung, "NAYER: Noisy Layer Data Generation for
Efficient and Effective Data-free Knowledge Distillation", CVPR 2024).

    x = G(noisy(e_y) + z)     e_y: a fixed embedding of class y (K, E); noisy: Linear(E, nz),
                              re-initialised every round; G: the DAFL/DFAD generator, kept

The paper embeds class names with a text encoder; none can be downloaded here, so the label
embedding is pluggable: fixed random vectors (default, seeded by the run), learned with the
generator, or a user tensor file of shape (num_classes, E). Differs: z ~ N(0, I) is added to the
noisy layer's output so samples of one class differ within a batch.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .dcgan import DCGANGenerator


class NayerSource(nn.Module):
    conditional = True  # forward takes (z, labels)

    def __init__(self, num_classes: int, nz: int, width: int, size: int, channels: int,
                 embed: Tensor | None = None, embed_dim: int = 64, learn_embed: bool = False, output: str = "tanh_bn",
                 mean=None, std=None):
        super().__init__()
        e = embed.float().clone() if embed is not None else torch.randn(num_classes, embed_dim)
        if learn_embed:
            self.embed = nn.Parameter(e)
        else:
            self.register_buffer("embed", e)
        self.noisy = nn.Linear(e.shape[1], nz)
        self.generator = DCGANGenerator(nz=nz, width=width, size=size, channels=channels, output=output,
                                        mean=mean, std=std)
        self.nz = nz

    def new_round(self) -> list[nn.Parameter]:
        """Re-initialise the noisy layer; returns its parameters (their optimizer state is stale)."""
        self.noisy.reset_parameters()
        return list(self.noisy.parameters())

    def forward(self, z: Tensor, labels: Tensor) -> Tensor:
        return self.generator(self.noisy(self.embed[labels]) + z)
