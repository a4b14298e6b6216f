"""DFME (Truong et al. 2021): the zeroth-order source step, the black-box teacher, its query count."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dfkd
from dfkd.config.fields import OptimConfig
from dfkd.config.synthesis import SynthConfig
from dfkd.generators.dcgan import DCGANGenerator
from dfkd.models import build_model
from dfkd.objective.terms import Objective
from dfkd.synthesis.context import SynthContext, TeacherProbe
from dfkd.synthesis.zeroth_order import (ZerothOrderSynthesizer, forward_difference_gradient, per_sample_losses,
                                         unit_directions)


def test_forward_differences_against_a_hand_computed_estimate():
    losses = torch.tensor([[3.0, 1.0]])  # one sample, one direction: l(P + eps u) = 3, l(P) = 1
    u = torch.tensor([[[1.0, 0.0]]])  # (n, m, d) = (1, 1, 2)
    # d / (eps m) * (3 - 1) * u = 2 / 0.5 * 2 * [1, 0]
    assert torch.allclose(forward_difference_gradient(losses, u, eps=0.5, scale=1.0), torch.tensor([[8.0, 0.0]]))
    assert torch.allclose(forward_difference_gradient(losses, u, eps=0.5, scale=0.25), torch.tensor([[2.0, 0.0]]))


def test_with_many_directions_the_estimate_of_a_linear_loss_is_its_gradient():
    torch.manual_seed(0)
    n, m, d, eps = 3, 4000, 12, 1e-3
    a = torch.randn(n, d)  # l_i(x) = a_i . x: forward differences are exact, a_i . u
    u = unit_directions(n, m, d)
    assert torch.allclose(u.norm(dim=2), torch.ones(n, m), atol=1e-5)
    x = torch.randn(n, d)
    pts = torch.cat([x[:, None] + eps * u, x[:, None]], 1)
    losses = (pts * a[:, None]).sum(2)
    g = forward_difference_gradient(losses, u, eps, 1.0)
    assert F.cosine_similarity(g, a).min() > 0.95
    assert torch.allclose(g.norm(dim=1), a.norm(dim=1), rtol=0.1)


def test_per_sample_losses_are_each_rows_own_objective():
    t = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    s = torch.tensor([[1.0, 0.0, 3.0], [1.0, -1.0, 4.0]])
    obj = Objective({"adv_l1": 1.0})
    got = per_sample_losses(obj, torch.zeros(2, 1, 2, 2), t, s)
    assert torch.allclose(got, torch.tensor([-2.0 / 3, -6.0 / 3]))  # -mean_k |s - t| per row
    assert torch.allclose(got.mean(), obj(dfkd_signals(t, s))[0])  # the batch objective is their mean


def dfkd_signals(t, s):
    from dfkd.objective.signals import Signals

    return Signals(x=torch.zeros(len(t), 1, 2, 2), t_logits=t, s_logits=s)


def test_the_mean_correction_is_log_softmax_minus_its_mean():
    class Fixed(nn.Module):
        def forward(self, x):
            return torch.tensor([[1.0, 2.0, 6.0]]).expand(len(x), 3)

    probe = TeacherProbe(Fixed(), black_box=True, correction="mean")
    t = probe(torch.zeros(4, 1, 2, 2)).t_logits
    assert torch.allclose(t, torch.tensor([[-2.0, -1.0, 3.0]]).expand(4, 3))  # x - mean(x): the lse cancels
    assert probe.queries == 4
    with probe.uncounted():
        probe(torch.zeros(5, 1, 2, 2))
    assert probe.queries == 4


def _zo(teacher, m):
    torch.manual_seed(0)
    g = DCGANGenerator(nz=8, width=8, size=8, channels=1, output="bn_tanh")
    ctx = SynthContext(SynthConfig(batch_size=6, schedule="zeroth_order", zo_directions=m, zo_eps=1e-3),
                       OptimConfig(name="sgd", lr=0.0, momentum=0.0, schedule="constant"), Objective({"adv_l1": 1.0}),
                       TeacherProbe(teacher), nn.Identity(), nn.Identity(), 3, torch.device("cpu"), num_classes=10)
    return g, ZerothOrderSynthesizer(g, ctx)


def test_the_zeroth_order_step_follows_the_true_gradient_of_the_source_objective():
    """Against backprop through a white-box teacher: with many directions the estimated generator
    gradient points the true gradient's way, scaled by the authors' 1/K."""
    teacher, student = build_model("cnn_small", 10, 1).eval(), build_model("cnn_small", 10, 1).eval()
    g, synth = _zo(teacher, m=3000)
    synth.generator.train()
    torch.manual_seed(1)
    sig = synth.forward(student, None)
    loss, _ = synth.step_loss(sig)
    est = torch.autograd.grad(loss, list(g.parameters()))
    torch.manual_seed(1)
    x = g(torch.randn(6, 8))  # the same codes and BN batch statistics
    true_loss = -(student(x) - teacher(x)).abs().mean()
    assert torch.allclose(loss, true_loss, atol=1e-5)  # the value: the objective at the unperturbed points
    true = torch.autograd.grad(true_loss, list(g.parameters()))
    flat_est, flat_true = torch.cat([e.flatten() for e in est]), torch.cat([t.flatten() for t in true])
    assert F.cosine_similarity(flat_est, flat_true, dim=0) > 0.8
    assert 0.5 < (flat_est.norm() / (flat_true.norm() / 10)).item() < 2.0  # 1/K of the true gradient


class AnswersOnly(nn.Module):
    """A served model: outputs for inputs, never a gradient."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        if torch.is_grad_enabled():
            raise RuntimeError("this API returns outputs only")
        return self.net(x)


def test_dfme_distils_a_teacher_that_refuses_gradients_and_counts_its_queries(tmp_path):
    api = AnswersOnly(build_model("cnn", 10, 1))
    run = dfkd.distill(api, "cnn_small", method="dfme", out=tmp_path, quiet=True,
                       set={"distill.rounds": 3, "distill.eval_every": 3, "synth.batch_size": 16,
                            "tracking.mode": "disabled"})
    # per round: one source step on 16 (m + 1) = 32 points, then 5 student batches of 16
    assert run.summary["teacher_queries"] == 3 * (16 * 2 + 5 * 16)
    with pytest.raises(dfkd.DfkdError, match="synth.schedule=zeroth_order"):
        dfkd.distill(api, "cnn_small", method="dfad", out=tmp_path / "dfad", quiet=True,
                     set={"teacher.black_box": True, "distill.rounds": 1, "tracking.mode": "disabled"})
