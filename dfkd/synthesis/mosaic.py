"""MosaicKD's patch discriminator: the generator's local patches must look like out-of-domain data's.

Fang, Bao, Song, Wang, Xie, Shen, Song, "Mosaicking to Distill: Knowledge Distillation from
Out-of-Domain Data", NeurIPS 2021, arXiv:2110.15094; as the authors' code runs it
(zju-vipa/MosaicKD@a8d8e2c kd_mosaic.py `train`, engine/models/generator.py `PatchDiscriminator`).

The `patch_gan` term's component, an `Extension` of the source (a term of the generator objective):
- a patch discriminator D, (N, C, H, W) -> (N, 1, H/4, W/4) logits, one per receptive field:
  conv 4×4/2 (C -> ndf) + LeakyReLU(0.2), conv 4×4/2 (ndf -> 2·ndf, no bias) + BatchNorm +
  LeakyReLU(0.2), conv 1×1 (-> 1, no bias); Adam (lr, (0.5, 0.999)) of its own;
- before each source step's objective (`signals`), one D step on the step's batch (fake) and the
  next batch of the out-of-domain set (real): (BCE_sum(D(fake), 0) + BCE_sum(D(real), 1)) / 2N;
- the term `patch_gan` = BCE_sum(D(x), 1) / N with the gradient reaching the generator only (D is
  not among the source's parameters: it never takes the generator's step);
- every fresh student batch is the generator's n samples followed by n out-of-domain images
  (`sample`): the student learns on both, as their code does.
The out-of-domain images come from `objective.params.patch_gan.data` (a dataset's training split,
normalised as the teacher's data, labels never read), two independent shuffled streams (D's and
the student's). Differs: D's rate is constant (theirs: cosine over the run) and its loss is not
multiplied by the term's weight (theirs by `--local`, 1 in every script).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dfkd.base.errors import DfkdError
from dfkd.objective.terms import COMPONENTS
from dfkd.synthesis.real import RealBatches, unlabelled_split
from dfkd.synthesis.schedule import Extension, generate


class PatchDiscriminator(nn.Module):
    """(N, C, H, W) -> (N, 1, H/4, W/4): one real/fake logit per patch."""

    def __init__(self, channels: int, ndf: int = 128):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, 2 * ndf, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * ndf), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(2 * ndf, 1, 1, 1, 0, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        return self.main(x)


def patch_bce(logits: Tensor, real: bool) -> Tensor:
    """BCE of every patch logit (N, 1, h, w) against real (1) or fake (0), summed, per sample."""
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / len(logits)


class MosaicPatches(Extension):
    key = "mosaic"

    def __init__(self, channels: int, ndf: int, lr: float, d_batches: RealBatches, student_batches: RealBatches,
                 device):
        self.d = PatchDiscriminator(channels, ndf).to(device)
        self.d_optimizer = torch.optim.Adam(self.d.parameters(), lr=lr, betas=(0.5, 0.999))
        self.d_batches, self.student_batches = d_batches, student_batches
        self.d_loss: Tensor | None = None

    @classmethod
    def build(cls, b) -> "MosaicPatches":
        """The `patch_gan` term's factory (b: a `dfkd.objective.terms.ComponentBuild`)."""
        p = b.params
        if not p["data"]:
            raise DfkdError("the patch_gan term (MosaicKD) learns the patches of out-of-domain images; name their "
                            "dataset in objective.params.patch_gan.data (e.g. digits_mosaic, see `dfkd list "
                            "datasets`)")
        ood = unlabelled_split(b.data, p["data"], b.info)
        stream = lambda seed: RealBatches(ood, b.batch_size, seed, b.device)  # noqa: E731
        return cls(b.info.in_channels, p["ndf"], p["lr"], stream(b.seed * 2 + 1), stream(b.seed * 2 + 2), b.device)

    def parameters(self) -> list[nn.Parameter]:
        return []  # D takes its own steps, never the source's

    def weights(self) -> list[Tensor]:
        return [p.detach() for p in self.d.parameters()]

    def fool(self, x: Tensor) -> Tensor:
        """The generator's loss: every patch of x called real by D."""
        return patch_bce(self.d(x), real=True)

    def signals(self, sig, seen: Tensor, ctx) -> None:
        """One D step on this step's batch (fake) and the next out-of-domain batch (real)."""
        real = self.d_batches.next()[0]
        loss = (patch_bce(self.d(seen.detach()), False) + patch_bce(self.d(real), True)) / 2
        self.d_optimizer.zero_grad(set_to_none=True)
        loss.backward(inputs=list(self.d.parameters()))
        self.d_optimizer.step()
        self.d_loss = loss.detach()

    @torch.no_grad()
    def sample(self, n: int, schedule) -> Tensor:
        """The generator's n fresh samples, then n out-of-domain images."""
        x = generate(schedule.generator, schedule.z(n), None, schedule.ctx.num_classes)
        return torch.cat([x, self.student_batches.next()[0][:n]])

    def state_dict(self) -> dict:
        return {"d": self.d.state_dict(), "optimizer": self.d_optimizer.state_dict(),
                "streams": [(s.epoch, s.pos) for s in (self.d_batches, self.student_batches)]}

    def load_state_dict(self, state: dict) -> None:
        self.d.load_state_dict(state["d"])
        self.d_optimizer.load_state_dict(state["optimizer"])
        for s, (epoch, pos) in zip((self.d_batches, self.student_batches), state["streams"]):
            s.epoch, s.pos, s._it = epoch, pos, None


COMPONENTS.register("patch_gan")(MosaicPatches.build)
