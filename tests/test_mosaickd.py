"""MosaicKD (Fang et al. 2021): the patch discriminator, its own step, the mixed student batch."""
import math

import pytest
import torch
from torch.utils.data import TensorDataset

import dfkd
from dfkd.objective.losses import prediction_entropy
from dfkd.synthesis.mosaic import MosaicPatches, PatchDiscriminator, patch_bce
from dfkd.synthesis.real import RealBatches


def test_patch_bce_and_entropy_by_hand():
    d = PatchDiscriminator(channels=1, ndf=4)
    assert d(torch.zeros(3, 1, 16, 16)).shape == (3, 1, 4, 4)  # one logit per patch, H/4 x W/4
    zeros = torch.zeros(2, 1, 4, 4)  # p = 1/2 everywhere: ln 2 per patch, 16 patches per sample
    assert patch_bce(zeros, real=True).item() == pytest.approx(16 * math.log(2))
    assert patch_bce(torch.full((2, 1, 4, 4), 50.0), real=True).item() == pytest.approx(0.0, abs=1e-12)
    assert prediction_entropy(torch.zeros(3, 4)).item() == pytest.approx(math.log(4))
    assert prediction_entropy(torch.tensor([[60.0, 0.0]])).item() == pytest.approx(0.0, abs=1e-12)


def _mosaic(real):
    ds = TensorDataset(real, torch.full((len(real),), -1))
    return MosaicPatches(1, 8, 1e-2, RealBatches(ds, 8, 1, "cpu"), RealBatches(ds, 8, 2, "cpu"), "cpu")


def test_the_discriminator_learns_to_tell_the_images_from_the_samples_and_owns_its_parameters():
    torch.manual_seed(0)
    real = torch.randn(32, 1, 16, 16).sign()  # +-1 checkerboard-free noise: the "out-of-domain" patches
    fake = 0.1 * torch.randn(8, 1, 16, 16, requires_grad=True)  # the generator's (smooth, small)
    m = _mosaic(real)
    before = [p.detach().clone() for p in m.d.parameters()]
    losses = []
    for _ in range(30):
        m.signals(None, fake, None)
        losses.append(float(m.d_loss))
    assert m.parameters() == [] and m.optimizer is None  # never among the source's parameters
    assert any(not torch.equal(a, b) for a, b in zip(before, m.d.parameters()))
    assert sum(losses[-5:]) < 0.9 * sum(losses[:5])  # its own loss falls: it learns to tell them apart
    with torch.no_grad():
        m.d.eval()
        assert m.d(real[:8]).mean() > m.d(fake).mean()
        m.d.train()
    # the generator's loss pulls its samples toward what D calls real: one step along it fools D more
    fake.grad = None
    loss = m.fool(fake)
    loss.backward(inputs=[fake])
    assert m.fool((fake - 0.05 * fake.grad).detach()) < loss.detach()


def test_the_student_batch_is_generator_samples_then_out_of_domain_images():
    torch.manual_seed(0)
    real = torch.arange(32.0).view(32, 1, 1, 1).expand(32, 1, 16, 16).clone()

    class Schedule:
        generator = torch.nn.Sequential(torch.nn.Linear(4, 256), torch.nn.Unflatten(1, (1, 16, 16)))

        class ctx:
            num_classes = 10

        def z(self, n):
            return torch.randn(n, 4)

    x = _mosaic(real).sample(8, Schedule())
    assert x.shape == (16, 1, 16, 16)
    tail = x[8:, 0, 0, 0]
    assert set(tail.tolist()) <= set(range(32)) and len(set(tail.tolist())) == 8  # 8 distinct images


def test_mosaickd_needs_its_out_of_domain_dataset(tmp_path):
    with pytest.raises(dfkd.DfkdError, match="objective.params.patch_gan.data"):
        dfkd.distill("cnn", "cnn_small", method="mosaickd", data="digits", out=tmp_path, quiet=True,
                     set={"objective.params.patch_gan.data": "", "teacher.checkpoint": "none",
                          "distill.rounds": 1, "tracking.mode": "disabled"})
