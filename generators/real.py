"""The real training split as an input source, for data-driven KD (the upper reference rows).

`RealBatch` holds nothing to optimise: forward(x) returns the real batch x (N, C, H, W) as drawn
by the `per_batch` schedule (`dfkd.synthesis.real.RealDataSynthesizer`), which owns the data order.
"""
from torch import Tensor, nn


class RealBatch(nn.Module):
    nz = 0

    def forward(self, x: Tensor) -> Tensor:
        return x
