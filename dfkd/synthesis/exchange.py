"""SpaceshipNet's channel-wise feature exchange (Yu, Chen, Han, Jiang, "Data-Free Knowledge
Distillation via Feature Exchange and Activation Region Constraint", CVPR 2023; skgyu/SpaceshipNet
@30a76b0 models/model_CFE_mSARC_bases/model_CFE_mSARC_base_V37.py `train_G`, `train_S`,
`channel_mix_batch`).

An `Extension` of the source (`synth.exchange` > 0): the generator's intermediate features of each
round's kept batch (its `levels`: for the DCGAN generator bn0, block1, block2) go to one replay pool
per level, never trimmed by default. Every student batch (`distill.batch=fresh`) is decoded from
them: one level is drawn uniformly among `synth.exchange_levels`, a batch F (N, C, H, W) is read from
its pool in shuffled passes (a new pass each round, as the authors' per-round DataLoader), and with
probability `synth.exchange` the whole batch is exchanged,

    F'[i] = m_i ⊙ F[i] + (1 − m_i) ⊙ F[N − 1 − i],   m_i ∈ {0, 1}^C with exactly C // 2 ones,

a fresh random half of the channels for every i (the partner is the mirror position in the shuffled
batch). F' goes through the *current* generator's layers after that level in eval mode (BatchNorm
on its running statistics), under no_grad: old features are re-decoded by today's generator.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from dfkd.base.errors import DfkdError
from dfkd.synthesis.pool import ReplayPool
from dfkd.synthesis.schedule import EXTENSIONS, Extension, ExtensionSpec, Schedule


def random_halves(n: int, c: int, device=None) -> Tensor:
    """(n, c // 2): a random half of c channels for each of n samples, drawn independently."""
    return torch.rand(n, c, device=device).argsort(1)[:, : c // 2]


def exchange_channels(f: Tensor, keep: Tensor | None = None) -> Tensor:
    """(N, C, ...) -> (N, C, ...): each sample keeps C // 2 of its channels, `keep` (N, C // 2) (a random
    half, independent per sample, if None), and takes the rest from its mirror sample f[N - 1 - i]."""
    n, c = f.shape[:2]
    if keep is None:
        keep = random_halves(n, c, f.device)
    m = torch.zeros(n, c, device=f.device, dtype=f.dtype).scatter_(1, keep, 1.0)
    m = m.view(n, c, *([1] * (f.dim() - 2)))
    return f * m + f.flip(0) * (1 - m)


class FeatureExchange(Extension):
    key = "feature_exchange"

    def __init__(self, generator: nn.Module, p: float, levels: list[int], capacity: int, storage: str,
                 device, pool: Callable[..., ReplayPool] | None = None):
        """`pool(name, capacity, shape, storage)` makes each level's pool (`ExtensionBuild.pool`:
        pool.device's place); default in RAM."""
        names = getattr(generator, "levels", None)
        if names is None or not hasattr(generator, "decode"):
            raise DfkdError(f"synth.exchange decodes the generator's intermediate features, and the source "
                            f"'{type(generator).__name__}' has no levels/decode; use source.name=dcgan")
        bad = [lv for lv in levels if not 0 <= lv < len(names)]
        if bad or not levels:
            raise DfkdError(f"synth.exchange_levels={list(levels)}: give levels among 0..{len(names) - 1} "
                            f"(the generator's {', '.join(names)})")
        self.p, self.levels, self.device = p, list(levels), device
        modules = dict(generator.named_modules())
        self._seen: dict[int, Tensor] = {}
        self._handles = [modules[names[lv]].register_forward_hook(self._recorder(lv)) for lv in self.levels]
        with torch.no_grad():  # the features' shapes, from one pass of zeros
            was = generator.training
            generator.eval()(torch.zeros(2, generator.nz, device=device))
            generator.train(was)
        pool = pool or (lambda name, cap, shape, st: ReplayPool.placed(cap, shape, st, "cpu", device))
        shapes = {lv: tuple(self._seen[lv].shape[1:]) for lv in self.levels}
        self._make = lambda lv: pool(f"exchange-level{lv}", capacity, shapes[lv], storage)
        self._pools: dict[int, ReplayPool] = {}
        self._kept: dict[int, Tensor] = {}
        self._reads: dict[int, object] = {}

    def pool(self, level: int) -> ReplayPool:
        """`level`'s pool, made at its first use (a disk pool's file goes in the run directory, which
        exists by then)."""
        if level not in self._pools:
            self._pools[level] = self._make(level)
        return self._pools[level]

    def _recorder(self, level: int):
        def hook(module, inputs, output):
            self._seen[level] = output
        return hook

    def keep(self, sig) -> None:
        """This step's features are (for now) the round's."""
        self._kept = {lv: self._seen[lv].detach() for lv in self.levels}

    def end_round(self) -> None:
        for lv, f in self._kept.items():
            self.pool(lv).add(f)
        self._kept = {}
        self._reads = {}  # a new shuffled pass over every pool each round

    # the random pieces of one student batch (each its own method, so that a reference trace can
    # inject the authors' draws: tests/reference_trace.py)
    def draw_level(self) -> int:
        """The level of one student batch, uniform among `levels`."""
        return self.levels[int(torch.randint(len(self.levels), ()))]

    def read(self, level: int, n: int) -> Tensor:
        """The next batch of `level`'s pool, in this round's shuffled passes."""
        if level not in self._reads:
            self._reads[level] = self.pool(level).passes(n)
        return next(self._reads[level])

    def draw_exchange(self) -> bool:
        """Whether this batch is exchanged (probability `p`, the whole batch or nothing)."""
        return float(torch.rand(())) < self.p

    def draw_kept(self, n: int, c: int) -> Tensor:
        """(n, c // 2): the channels each sample keeps, a random half per sample."""
        return random_halves(n, c, self.device)

    @torch.no_grad()
    def sample(self, n: int, schedule: Schedule) -> Tensor:
        if len(self.pool(self.levels[0])) == 0:
            raise DfkdError("synth.exchange samples features of kept batches, and none is pooled yet")
        lv = self.draw_level()
        f = self.read(lv, n)
        if self.draw_exchange():
            f = exchange_channels(f, self.draw_kept(*f.shape[:2]))
        g = schedule.generator
        was = g.training
        g.eval()
        try:
            return g.decode(f, lv)
        finally:
            g.train(was)

    def state_dict(self) -> dict:
        return {lv: self.pool(lv).state_dict() for lv in self.levels}

    def load_state_dict(self, state: dict) -> None:
        for lv in self.levels:
            self.pool(lv).load_state_dict(state[lv])
        self._reads = {}


EXTENSIONS.register("exchange")(ExtensionSpec(
    on=lambda cfg: cfg.synth.exchange > 0,
    check=lambda cfg: None if cfg.distill.batch == "fresh" and cfg.synth.schedule in ("persistent", "reinit") else (
        "synth.exchange (SpaceshipNet's feature exchange) decodes the student's fresh samples from pooled "
        "generator features: use it with distill.batch=fresh and a persistent or reinit schedule"),
    build=lambda cfg, b: FeatureExchange(b.generator.to(b.device), cfg.synth.exchange, cfg.synth.exchange_levels,
                                         cfg.synth.exchange_capacity or cfg.distill.rounds * b.share, cfg.pool.storage,
                                         b.device, b.pool),
    order=20))
