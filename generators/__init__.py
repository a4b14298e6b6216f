"""Input sources: generator architectures (and, later, the free-pixel source).

Every source is registered in `SOURCES` as a factory
`(cfg: SourceConfig, size, channels, batch_size) -> nn.Module` mapping latent codes (N, nz) to images
(N, channels, size, size) in normalised input space; it has an `nz` attribute.
"""
from dfkd.registry import Registry

from .dcgan import DCGANGenerator
from .noise import NoiseSource
from .pixels import PixelSource

SOURCES = Registry("source")


@SOURCES.register("dcgan")
def dcgan(cfg, size: int, channels: int, batch_size: int) -> DCGANGenerator:
    """DAFL/DFAD generator (Chen et al. 2019; Fang et al. 2019)."""
    return DCGANGenerator(nz=cfg.nz, width=cfg.width, size=size, channels=channels)


@SOURCES.register("noise")
def noise(cfg, size: int, channels: int, batch_size: int) -> NoiseSource:
    """Gaussian noise images, no parameters (the noise control; use with synth.g_steps=0)."""
    return NoiseSource(size=size, channels=channels)


@SOURCES.register("pixels")
def pixels(cfg, size: int, channels: int, batch_size: int) -> PixelSource:
    """Free pixels optimised directly, one batch (DeepInversion); use with synth.schedule=reinit."""
    return PixelSource(batch_size=batch_size, size=size, channels=channels)


__all__ = ["SOURCES", "DCGANGenerator", "NoiseSource", "PixelSource"]
