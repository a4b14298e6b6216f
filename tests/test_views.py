"""Views: declared channels and shapes, differentiability, channel checks, a cross-modal run."""
import pytest
import torch

from dfkd.base.errors import DfkdError
from dfkd.config.schema import ViewConfig
from dfkd.methods.configure import build_config
from dfkd.synthesis.views import VIEWS, build_view

RGB = ((0.5, 0.4, 0.3), (0.25, 0.2, 0.3))


@pytest.mark.parametrize("name", sorted(VIEWS))
@pytest.mark.parametrize("channels", [1, 3])
def test_views_keep_the_size_and_give_their_declared_channels(name, channels):
    mean, std = (RGB[0][:channels], RGB[1][:channels])
    view, out = build_view(name, channels, mean, std, ViewConfig(lowres_factor=2))
    y = view(torch.randn(2, channels, 8, 8))
    assert y.shape == (2, out, 8, 8) and bool(torch.isfinite(y).all())


@pytest.mark.parametrize("name", sorted(VIEWS))
def test_views_are_differentiable(name):
    view, _ = build_view(name, 3, *RGB, ViewConfig(lowres_factor=2))
    view = view.double()
    # pixels well inside (0, 1) and away from grey, where hue and the Sobel magnitude are smooth
    torch.manual_seed(0)
    pix = 0.2 + 0.6 * torch.rand(1, 3, 4, 4, dtype=torch.float64)
    x = ((pix - torch.tensor(RGB[0], dtype=torch.float64).view(1, 3, 1, 1))
         / torch.tensor(RGB[1], dtype=torch.float64).view(1, 3, 1, 1)).requires_grad_(True)
    assert torch.autograd.gradcheck(view, (x,), eps=1e-6, atol=1e-4)


def test_known_values():
    sobel, _ = build_view("sobel", 1, (0.0,), (1.0,))
    flat = torch.full((1, 1, 5, 5), 0.7)
    assert sobel(flat).abs().max().item() < 5e-3  # no edges in a flat image (kornia's sqrt eps aside)
    step = torch.zeros(1, 1, 5, 6)
    step[..., 3:] = 1.0
    edges = sobel(step)[0, 0, 2]  # the middle row, across a vertical step
    assert edges[2] > 1.0 and edges[3] > 1.0 and edges[0] < 5e-3 and edges[5] < 5e-3
    grey, _ = build_view("grayscale", 3, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    red = torch.zeros(1, 3, 2, 2)
    red[:, 0] = 1.0
    assert grey(red).flatten()[0].item() == pytest.approx(0.299, abs=1e-3)  # ITU-R 601 luma of pure red
    low, _ = build_view("lowres", 1, cfg=ViewConfig(lowres_factor=2))
    x = torch.arange(16.0).view(1, 1, 4, 4)
    assert low(x).mean().item() == pytest.approx(x.mean().item(), rel=1e-5)  # averaging keeps the mean
    mix, c = build_view("colormix", 1, cfg=ViewConfig(mix_seed=3))
    assert c == 3 and torch.equal(mix(x), build_view("colormix", 1, cfg=ViewConfig(mix_seed=3))[0](x))


def test_a_teacher_view_with_the_wrong_channels_is_a_config_error():
    with pytest.raises(DfkdError, match="view.teacher=hsv gives 3-channel"):
        build_config(method="kd", sets=["view.teacher=hsv"])  # the digits teacher takes 1 channel
    with pytest.raises(DfkdError, match="unknown view"):
        build_config(method="kd", sets=["view.student=sobell"])


def test_paired_cross_modal_kd_teaches_an_edge_student(digits_teacher, tmp_path):
    """Supervision transfer (Gupta et al. 2016): the teacher sees the digits, the student their Sobel
    edges, and learns from the teacher's outputs alone (no labels); it is evaluated on edges."""
    from dfkd.run.runner import distill

    cfg = build_config(method="kd", sets=[
        f"teacher.checkpoint={digits_teacher}", f"out={tmp_path}", "distill.rounds=150", "distill.eval_every=150",
        "objective.student.label_ce=0", "objective.student.kd_kl=1", "view.student=sobel",
        "tracking.mode=disabled", "device=cpu"])
    run_dir, summary = distill(cfg, quiet=True)
    assert summary["student_acc"] > 80.0
    from dfkd.io.checkpoint import read_model

    assert read_model(run_dir / "student.pt")["in_channels"] == 1


def test_naive_transfer_scores_a_same_modality_student_on_another_view(digits_teacher, tmp_path):
    """The control of data-free cross-modal KD: train on the teacher's view, score on the student's."""
    from dfkd.run.runner import distill

    base = [f"teacher.checkpoint={digits_teacher}", f"out={tmp_path}", "distill.rounds=60", "distill.eval_every=60",
            "tracking.mode=disabled", "device=cpu"]
    _, same = distill(build_config(method="kd", sets=base + ["run_name=same"]), quiet=True)
    _, naive = distill(build_config(method="kd", sets=base + ["run_name=naive", "view.eval=sobel"]), quiet=True)
    assert naive["student_acc"] < same["student_acc"] - 20  # the same weights, scored on edges
    with pytest.raises(DfkdError, match="view.eval=colormix gives 3-channel"):
        distill(build_config(method="kd", sets=base + ["run_name=bad", "view.eval=colormix"]), quiet=True)
    assert not (tmp_path / "bad").exists()
