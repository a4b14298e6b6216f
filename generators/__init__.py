"""Input sources: generator architectures, free pixels, noise, and the real training split.

Every source is registered in `SOURCES` as a factory
`(cfg: SourceConfig, size, channels, batch_size, num_classes, mean=..., std=...) -> nn.Module` mapping
latent codes (N, nz) to images (N, channels, size, size) in normalised input space (`mean`, `std`:
the dataset's normalisation, per channel); it has an `nz` attribute.
A source with `conditional = True` takes (z, labels); one with `new_round()` is refreshed at the
start of every round.
"""
from dfkd.base.registry import Registry
from dfkd.generators.dcgan import DCGANGenerator
from dfkd.generators.nayer import NayerSource
from dfkd.generators.noise import NoiseSource
from dfkd.generators.pixels import PixelSource
from dfkd.generators.real import RealBatch

SOURCES = Registry("source")


@SOURCES.register("dcgan")
def dcgan(cfg, size: int, channels: int, batch_size: int, num_classes: int, mean=None, std=None) -> DCGANGenerator:
    """DAFL/DFAD generator (Chen et al. 2019; Fang et al. 2019); source.output=sigmoid ends it as the
    CMI/Fast generator does."""
    return DCGANGenerator(nz=cfg.nz, width=cfg.width, size=size, channels=channels, output=cfg.output,
                          mean=mean, std=std, bn_eps=cfg.bn_eps, taper=cfg.taper)


@SOURCES.register("noise")
def noise(cfg, size: int, channels: int, batch_size: int, num_classes: int, **norm) -> NoiseSource:
    """Gaussian noise images, no parameters (the noise control; use with synth.g_steps=0)."""
    return NoiseSource(size=size, channels=channels)


@SOURCES.register("pixels")
def pixels(cfg, size: int, channels: int, batch_size: int, num_classes: int, **norm) -> PixelSource:
    """Free pixels optimised directly, one batch (DeepInversion); use with synth.schedule=reinit."""
    return PixelSource(batch_size=batch_size, size=size, channels=channels)


@SOURCES.register("nayer")
def nayer(cfg, size: int, channels: int, batch_size: int, num_classes: int, mean=None, std=None) -> NayerSource:
    """Label embedding -> BatchNorm1d -> noisy layers re-drawn every batch -> generator (NAYER, Tran et al. 2024)."""
    embed = None
    if cfg.embed not in ("random", "learned"):
        embed = _read_embedding(cfg.embed, num_classes)
    return NayerSource(num_classes, cfg.nz, cfg.width, size, channels, embed=embed,
                       embed_dim=cfg.embed_dim, learn_embed=cfg.embed == "learned", output=cfg.output,
                       mean=mean, std=std, batch_size=batch_size, add_z=cfg.nayer_z)


@SOURCES.register("real")
def real(cfg, size: int, channels: int, batch_size: int, num_classes: int, **norm) -> RealBatch:
    """The real training split, one shuffled batch per round (data-driven KD); use with
    synth.schedule=per_batch."""
    return RealBatch()


@SOURCES.register("unlabelled")
def unlabelled(cfg, size: int, channels: int, batch_size: int, num_classes: int, **norm) -> RealBatch:
    """Unlabelled images from another dataset (source.data), one shuffled batch per round, optionally the
    teacher's most confident ones (source.select: DFND); use with synth.schedule=per_batch."""
    return RealBatch()


def _read_embedding(path: str, num_classes: int):
    import torch

    from dfkd.base.errors import DfkdError

    try:
        e = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DfkdError(f"source.embed: '{path}' not found; give 'random', 'learned' or a tensor file") from None
    except Exception as err:
        raise DfkdError(f"source.embed: '{path}' is not a readable tensor file ({type(err).__name__})") from None
    if not isinstance(e, torch.Tensor) or e.dim() != 2 or e.shape[0] != num_classes:
        raise DfkdError(f"source.embed: '{path}' must hold a ({num_classes}, E) tensor, one row per class")
    return e


__all__ = ["SOURCES", "DCGANGenerator", "NayerSource", "NoiseSource", "PixelSource", "RealBatch"]
