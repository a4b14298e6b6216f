"""Robust distillation: the ε-ball, PGD, the perturbed real source, its terms and configs."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dfkd.base.errors import DfkdError
from dfkd.methods.configure import build_config
from dfkd.objective.signals import Signals
from dfkd.objective.terms import Objective
from dfkd.synthesis.robust import Ball, pgd, robust_accuracy

MEAN, STD = (0.5, 0.4), (0.25, 0.5)


def _images(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    pix = torch.rand(n, 2, 5, 5, generator=g)
    return (pix - torch.tensor(MEAN).view(1, 2, 1, 1)) / torch.tensor(STD).view(1, 2, 1, 1)


def test_the_ball_keeps_every_perturbation_inside_its_radius_and_the_valid_images():
    ball = Ball(0.1, MEAN, STD)
    x = _images()
    delta = ball.start(x)
    torch.manual_seed(1)
    for _ in range(20):  # large random steps
        delta = ball.step(x, delta, torch.randn_like(x), size=0.3)
        per_channel = delta.abs().amax(dim=(0, 2, 3))
        assert torch.all(per_channel <= torch.tensor([0.1 / 0.25, 0.1 / 0.5]) + 1e-6)
        pixels = (x + delta) * torch.tensor(STD).view(1, 2, 1, 1) + torch.tensor(MEAN).view(1, 2, 1, 1)
        assert pixels.min() >= -1e-6 and pixels.max() <= 1 + 1e-6
    assert torch.equal(ball.start(x, random=False), torch.zeros_like(x))


def test_pgd_increases_the_loss_it_attacks():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(50, 3))
    x, y = _images(16), torch.randint(3, (16,))
    ball = Ball(0.05, MEAN, STD)
    delta = pgd(lambda xa: -F.cross_entropy(model(xa), y), x, ball, steps=5, size=0.02)
    with torch.no_grad():
        assert F.cross_entropy(model(x + delta), y) > F.cross_entropy(model(x), y) + 0.01
    # and robust accuracy is at most the clean accuracy; with a zero radius they agree
    loader = [(x, y)]
    clean = robust_accuracy(model, loader, "cpu", Ball(0.0, MEAN, STD), 3, 0.02)
    attacked = robust_accuracy(model, loader, "cpu", Ball(0.2, MEAN, STD), 10, 0.05)
    assert attacked <= clean
    assert clean == pytest.approx(100.0 * (model(x).argmax(1) == y).float().mean().item())


def test_clean_and_adversarial_terms_against_hand_computed_values():
    s_adv = torch.tensor([[1.0, 0.0]])
    s_clean = torch.tensor([[0.0, 2.0]])
    t = torch.tensor([[0.0, 0.0]])  # uniform teacher
    y = torch.tensor([1])
    sig = Signals(x=torch.zeros(1, 1, 1, 1), t_logits=t, s_logits=s_adv, s_logits_clean=s_clean, targets=y)
    # KL(uniform || softmax(0, 2)) = -log 2 - (1/2)(log p0 + log p1), p = softmax([0, 2])
    logp = F.log_softmax(s_clean, 1)[0]
    expected = -torch.log(torch.tensor(2.0)) - 0.5 * (logp[0] + logp[1])
    assert Objective({"kd_kl_clean": 1.0})(sig)[0].item() == pytest.approx(expected.item(), rel=1e-5)
    assert Objective({"label_ce_clean": 1.0})(sig)[0].item() == pytest.approx(-logp[1].item(), rel=1e-5)
    ce_adv = -F.log_softmax(s_adv, 1)[0, 1]
    assert Objective({"adv_ce": 1.0})(sig)[0].item() == pytest.approx(-ce_adv.item(), rel=1e-5)


@pytest.mark.parametrize("sets, match", [
    (["source.eps=0"], "set synth.g_steps=0"),
    (["synth.g_steps=0"], "needs PGD steps"),
])
def test_inconsistent_robust_configs_are_refused(sets, match):
    with pytest.raises(DfkdError, match=match):
        build_config(method="rslad", sets=sets)
    with pytest.raises(DfkdError, match="clean batch of a perturbed real source"):
        build_config(method="kd", sets=["objective.student.kd_kl_clean=1"])


def test_the_perturbed_source_stays_in_its_ball_and_the_teacher_sees_the_clean_batch(digits_teacher):
    from dfkd.io.data import dataset_info
    from dfkd.models import build_model
    from dfkd.run.parts import build_parts
    from dfkd.run.resolve import resolve_teacher

    cfg = build_config(method="rslad", sets=[f"teacher.checkpoint={digits_teacher}", "device=cpu",
                                              "source.eps=0.1", "source.step=0.05", "synth.g_steps=3"])
    info = dataset_info(cfg.data)
    teacher = resolve_teacher(cfg, info).model
    parts = build_parts(cfg, teacher, info, torch.device("cpu"))
    student = build_model(cfg.student.arch, 10, 1)
    batch, g_parts = parts.synth.synthesize(student)
    delta = batch.x - batch.clean
    assert delta.abs().max().item() <= 0.1 / info.std[0] + 1e-5 and delta.abs().max().item() > 0
    assert torch.equal(batch.teacher_x, batch.clean)
    with torch.no_grad():
        assert torch.allclose(batch.t_logits, teacher(batch.clean), atol=1e-5)
        kl = lambda xa: F.kl_div(F.log_softmax(student.eval()(xa), 1), F.softmax(batch.t_logits, 1),  # noqa: E731
                                 reduction="batchmean")
        assert kl(batch.x) > kl(batch.clean)  # the attack raised the student's disagreement
    assert g_parts["adv_kl"] < 0


def test_margin_and_masked_pgd():
    from dfkd.objective.losses import margin

    logits = torch.tensor([[1.0, 3.0, 0.0], [2.0, 0.0, 5.0]])
    # sample 0: z[1] - z[0] = 2; sample 1: z[0] - z[2] = -3; mean -0.5
    assert margin(logits, torch.tensor([1, 0]), torch.tensor([0, 2])).item() == pytest.approx(-0.5)
    x = _images(4)
    mask = torch.tensor([True, False, True, False])
    delta = pgd(lambda xa: -xa.sum(), x, Ball(0.1, MEAN, STD), steps=3, size=0.05, mask=mask)
    assert delta[1].abs().max() == 0 and delta[3].abs().max() == 0 and delta[0].abs().max() > 0


def test_boundary_attack_stops_each_sample_at_the_teachers_boundary():
    """BSS's attack (attack_BSS.py) on a linear 2-class model: z = W x, margin z[first] - z[target];
    each step moves x by 0.3 (margin + 1e-4) along the normalised gradient, so the margin shrinks
    geometrically (x 0.7 per step) and a sample that crosses stops."""
    from dfkd.synthesis.robust import boundary_attack

    w = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    logits = lambda x: x.flatten(1) @ w.t()  # noqa: E731
    x = torch.tensor([[2.0, 0.0], [0.05, 0.0]]).view(2, 2, 1, 1)  # margins 2 and 0.05, both class 0
    target = torch.tensor([1, 1])
    out = boundary_attack(logits, x, target, steps=3, step=0.3, clamp=10.0)
    m = logits(out)
    # the gradient of z1 - z0 is (-1, 1): a unit step along it lowers the margin by sqrt(2)
    for k, m0 in enumerate((2.0, 0.05)):
        g = m0
        for _ in range(3):
            g = g - 0.3 * (g + 1e-4) * 2 ** 0.5
        assert (m[k, 0] - m[k, 1]).item() == pytest.approx(g, abs=1e-5)
    # with step 1 both cross in the first step (margin < 0) and then stay where they crossed
    out = boundary_attack(logits, x, target, steps=3, step=1.0, clamp=10.0)
    m = logits(out)
    for k, m0 in enumerate((2.0, 0.05)):
        crossed = m0 - 1.0 * (m0 + 1e-4) * 2 ** 0.5
        assert crossed < 0 and (m[k, 0] - m[k, 1]).item() == pytest.approx(crossed, abs=1e-5)
    assert boundary_attack(logits, x, target, steps=3, clamp=0.5).abs().max() <= 0.5


def test_bss_attacks_what_both_get_right_and_ramps_its_weights(digits_teacher, tmp_path):
    from dfkd.io.data import dataset_info
    from dfkd.run.parts import build_parts
    from dfkd.run.resolve import resolve_teacher

    cfg = build_config(method="bss", sets=[f"teacher.checkpoint={digits_teacher}", "device=cpu",
                                            "source.attack_max=8"])
    info = dataset_info(cfg.data)
    teacher = resolve_teacher(cfg, info).model
    parts = build_parts(cfg, teacher, info, torch.device("cpu"))
    torch.manual_seed(0)
    batch, _ = parts.synth.synthesize(teacher)  # a "student" that is the teacher: every sample is correct
    assert len(batch.x) == 8 and len(batch.clean) == 64  # capped at attack_max, the clean batch whole
    with torch.no_grad():
        t_adv = teacher(batch.x)
    assert batch.t_logits.shape == (8, 10) and torch.allclose(batch.t_logits, t_adv, atol=1e-5)

    from dfkd.run.runner import distill

    cfg = build_config(method="bss", sets=[f"teacher.checkpoint={digits_teacher}", "device=cpu", f"out={tmp_path}",
                                            "distill.rounds=4", "distill.eval_every=4", "synth.g_steps=2",
                                            "objective.ramp_every=2", "tracking.mode=disabled", "tracking.log_every=1"])
    run_dir, _ = distill(cfg, quiet=True)
    import json

    rows = [json.loads(r) for r in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 4  # the ramped weights the loss total uses, per 2 rounds: progress 1/2, 1/2, 1, 1
    for i, r in enumerate(rows):
        p = 0.5 if i < 2 else 1.0
        clean, bss = 4.0 - 3.0 * p, 2.0 * max(0.0, 1.0 - p / 0.75)
        expected = r["student/label_ce_clean"] + clean * r["student/kd_soft_ce_clean"] + bss * r.get(
            "student/kd_soft_ce", 0.0)
        assert r["student/loss"] == pytest.approx(expected, rel=1e-4)
    with pytest.raises(DfkdError, match="objective.decay names 'at', which is not a weighted student term"):
        build_config(method="bss", sets=["objective.decay=[at]"])
    with pytest.raises(DfkdError, match="objective.ramp names 'at', which is not a weighted term"):
        build_config(method="bss", sets=["objective.ramp.at=[1, 0, 0.5]"])
    with pytest.raises(DfkdError, match=r"objective.ramp.kd_soft_ce=\[2.0, 0.0, 0.5, 0.6\]: give"):
        build_config(method="bss", sets=["objective.ramp.kd_soft_ce=[2, 0, 0.5, 0.6]"])


def test_data_free_perturbation_stays_in_its_ball_and_raises_the_disagreement(digits_teacher, tmp_path):
    from dfkd.io.data import dataset_info
    from dfkd.objective.losses import kl_div
    from dfkd.run.parts import build_parts
    from dfkd.run.resolve import resolve_teacher
    from dfkd.run.runner import distill, make_distiller

    sets = [f"teacher.checkpoint={digits_teacher}", "device=cpu", "synth.perturb_eps=0.3", "synth.perturb_steps=5",
            "synth.perturb_step=0.1", "synth.batch_size=32", "source.width=16"]
    cfg = build_config(method="dfq", sets=sets)
    info = dataset_info(cfg.data)
    teacher = resolve_teacher(cfg, info).model
    parts = build_parts(cfg, teacher, info, torch.device("cpu"))
    loop = make_distiller(cfg, parts, None, None, tmp_path, torch.device("cpu"), None)
    torch.manual_seed(0)
    x = parts.synth.sample(32)
    xa = loop.perturb(loop.student, loop.synth_student, x)
    assert (xa - x).abs().max().item() <= 0.3 + 1e-6
    student = parts.student.eval()
    with torch.no_grad():
        assert kl_div(student(xa), teacher(xa)) > kl_div(student(x), teacher(x))
    run_dir, summary = distill(build_config(method="dfq", sets=sets + [
        f"out={tmp_path}", "distill.rounds=2", "distill.eval_every=2", "tracking.mode=disabled"]), quiet=True)
    assert 0 <= summary["student_acc"] <= 100
    with pytest.raises(DfkdError, match="use source.eps"):
        build_config(method="kd", sets=["synth.perturb_eps=0.1"])
