"""NAYER's source (Tran, Tran, Le, Harandi, Phung, "NAYER: Noisy Layer Data Generation for Efficient
and Effective Data-free Knowledge Distillation", CVPR 2024), as the authors' code builds it
(tmtuan1307/NAYER datafree/models/generator.py `NLGenerator`):

    x = G(noisy_i(BN1d(e_y)))   e_y: a fixed embedding of class y (K, E); BN1d: affine, trained;
                                noisy_i: ⌈N/K⌉ Linear(E, nz) layers, layer i mapping the i-th block of
                                K consecutive samples (the targets come as tiled 0..K-1), re-drawn from
                                N(0, 1) (bias 0) every batch (`new_round`); G: the DAFL/DFAD generator
                                body from its first Linear (nz -> width·s0²) on, sigmoid output in the
                                authors' code (`source.output`)

The authors embed "a image of {class}" with CLIP's text encoder; none can be downloaded here, so the
label embedding is pluggable: fixed random vectors (default, seeded by the run), learned, or a user
tensor file of shape (num_classes, E) (e.g. their converted CLIP features). There is no latent code:
the noisy layers are the randomness (`source.nayer_z` adds z ~ N(0, I) to their output, dfkd's older
NAYER-style variant). The modules are created in the authors' order, so re-initialising from one seed
gives both codes the same weights.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from dfkd.generators.dcgan import DCGANGenerator


class NayerSource(nn.Module):
    conditional = True  # forward takes (z, labels)

    def __init__(self, num_classes: int, nz: int, width: int, size: int, channels: int,
                 embed: Tensor | None = None, embed_dim: int = 64, learn_embed: bool = False, output: str = "tanh_bn",
                 mean=None, std=None, batch_size: int = 256, add_z: bool = False):
        super().__init__()
        e = embed.float().clone() if embed is not None else torch.randn(num_classes, embed_dim)
        if learn_embed:
            self.embed = nn.Parameter(e)
        else:
            self.register_buffer("embed", e)
        self.num_classes, self.nz, self.add_z = num_classes, nz, add_z
        self.norm = nn.BatchNorm1d(e.shape[1])
        self.noisy = nn.ModuleList(nn.Linear(e.shape[1], nz) for _ in range(math.ceil(batch_size / num_classes)))
        self.generator = DCGANGenerator(nz=nz, width=width, size=size, channels=channels, output=output,
                                        mean=mean, std=std)

    def new_round(self) -> list[nn.Parameter]:
        """Re-draw the noisy layers from N(0, 1), biases 0; returns their parameters (their optimizer
        state is stale)."""
        with torch.no_grad():
            for layer in self.noisy:
                nn.init.normal_(layer.weight, 0.0, 1.0)
                nn.init.zeros_(layer.bias)
        return list(self.noisy.parameters())

    def forward(self, z: Tensor, labels: Tensor) -> Tensor:
        e = self.norm(self.embed[labels])
        k = self.num_classes
        if math.ceil(len(e) / k) > len(self.noisy):
            raise ValueError(f"the NAYER source has {len(self.noisy)} noisy layers for {len(self.noisy) * k} samples, "
                             f"asked for {len(e)}")
        h = torch.cat([self.noisy[i](e[i * k:(i + 1) * k]) for i in range(math.ceil(len(e) / k))])
        return self.generator(h + z if self.add_z else h)
