"""SpaceshipNet's pieces (Yu et al., CVPR 2023) as shared parts: the generator's levels and decoder,
the channel-wise feature exchange and its feature pools, a latent code held for a round, a kept
generator with a fresh optimizer, and the CAM / Grad-CAM consistency terms."""
import pytest
import torch
from torch import nn

from dfkd.base.errors import DfkdError
from dfkd.config.fields import OptimConfig
from dfkd.config.synthesis import SynthConfig
from dfkd.generators.dcgan import DCGANGenerator
from dfkd.methods.configure import build_config
from dfkd.models import build_model
from dfkd.objective.cam import cam_mse, grad_cam, gradcam_mse
from dfkd.objective.hooks import BlockHooks
from dfkd.objective.terms import Objective
from dfkd.synthesis.context import SynthContext, TeacherProbe
from dfkd.synthesis.exchange import FeatureExchange, exchange_channels
from dfkd.synthesis.schedule import ExtensionBuild
from dfkd.synthesis.synthesizers import ReinitSynthesizer


def test_exchange_takes_exactly_half_the_channels_from_the_mirror_sample():
    torch.manual_seed(0)
    n, c = 5, 6
    f = torch.arange(n, dtype=torch.float)[:, None, None, None].expand(n, c, 2, 2) * 10 \
        + torch.arange(c, dtype=torch.float)[None, :, None, None]  # value = 10·sample + channel
    out = exchange_channels(f)
    for i in range(n):
        own = out[i, :, 0, 0] == f[i, :, 0, 0]
        other = out[i, :, 0, 0] == f[n - 1 - i, :, 0, 0]
        assert torch.equal(out[i], out[i, :, :1, :1].expand(c, 2, 2))  # whole channels move
        if i != n - 1 - i:
            assert own.sum() == c // 2 and other.sum() == c - c // 2 and torch.all(own ^ other)
        else:  # the middle sample is its own mirror
            assert torch.all(own)
    masks = {tuple((out[i, :, 0, 0] == f[i, :, 0, 0]).tolist()) for i in range(n) if i != n // 2}
    assert len(masks) > 1  # an independent half for every sample


def test_decode_at_every_level_gives_the_forward_pass():
    torch.manual_seed(0)
    g = DCGANGenerator(nz=8, width=8, size=8, channels=1, output="sigmoid").eval()
    seen = BlockHooks(g, list(g.levels))
    z = torch.randn(3, 8)
    with torch.no_grad():
        x = g(z)
        feats = [h.clone() for h in seen.values]
        for level, h in enumerate(feats):
            assert torch.allclose(g.decode(h, level), x, atol=1e-6)
    assert [tuple(h.shape[1:]) for h in feats] == [(8, 2, 2), (8, 4, 4), (4, 8, 8)]


def _reinit(g, obj, **synth):
    probe = TeacherProbe(build_model("cnn_small", 10, 1))
    ctx = SynthContext(SynthConfig(batch_size=4, schedule="reinit", **synth), OptimConfig(name="adam", lr=1e-2,
                       schedule="constant"), obj, probe, nn.Identity(), nn.Identity(), 3, torch.device("cpu"))
    return ReinitSynthesizer(g, ctx)


def test_a_kept_generator_gets_a_fresh_optimizer_and_one_fixed_code_per_round():
    torch.manual_seed(0)
    g = DCGANGenerator(nz=8, width=8, size=8, channels=1, output="sigmoid")
    synth = _reinit(g, Objective({"bn": 1.0}), g_steps=3, reset="none", latent="round")
    codes = []
    g.register_forward_pre_hook(lambda m, args: codes.append(args[0].clone()))
    before = g.fc.weight.detach().clone()
    synth.synthesize(build_model("cnn_small", 10, 1))
    after_one = g.fc.weight.detach().clone()
    assert not torch.equal(before, after_one)  # trained
    assert all(torch.equal(c, codes[0]) for c in codes[:3])  # one code for the round's steps, not moved
    assert all(p is not synth.codes for grp in synth.optimizer.param_groups for p in grp["params"])
    synth.synthesize(build_model("cnn_small", 10, 1))
    assert not torch.equal(codes[3], codes[0])  # a new code next round
    assert all(s["step"] == 3 for s in synth.optimizer.state.values())  # a fresh Adam: 3 steps, not 6


def test_the_exchange_pools_the_kept_features_and_decodes_student_batches_from_them():
    torch.manual_seed(0)
    g = DCGANGenerator(nz=8, width=8, size=8, channels=1, output="sigmoid")
    ext = FeatureExchange(g, p=0.0, levels=[0, 2], capacity=8, storage="fp32", device="cpu")
    synth = _reinit(g, Objective({"bn": 1.0}), g_steps=2, reset="none", latent="round", keep="best")
    synth.extensions = [ext]
    batch, _ = synth.synthesize(build_model("cnn_small", 10, 1))
    assert len(ext.pool(0)) == 4 and len(ext.pool(2)) == 4 and 1 not in ext.state_dict()
    with torch.no_grad():  # the kept batch's features, decoded by the (now moved) generator in eval mode
        feats = ext.pool(0).held().clone(), ext.pool(2).held().clone()
        decoded = [g.eval().decode(feats[0], 0), g.decode(feats[1], 2)]
        g.train()
    x = synth.sample(4)
    assert g.training and x.shape == (4, 1, 8, 8)
    assert any(torch.allclose(x.sort(0).values, d.sort(0).values, atol=1e-6) for d in decoded)
    other = FeatureExchange(g, p=0.0, levels=[0, 2], capacity=8, storage="fp32", device="cpu")
    other.load_state_dict(ext.state_dict())
    assert torch.equal(other.pool(2).held(), ext.pool(2).held())
    with pytest.raises(DfkdError, match="exchange_levels"):
        FeatureExchange(g, p=0.5, levels=[3], capacity=8, storage="fp32", device="cpu")


def test_with_pool_device_disk_the_feature_pools_are_files_in_the_run_directory_made_at_first_use(tmp_path):
    torch.manual_seed(0)
    g = DCGANGenerator(nz=8, width=8, size=8, channels=1, output="sigmoid")
    made = []  # the run directory appears after the parts are built, as in the runner
    build = ExtensionBuild(g, torch.device("cpu"), 4, "disk", lambda: made[0] if made else None)
    ext = FeatureExchange(g, p=0.0, levels=[0, 2], capacity=8, storage="fp16", device="cpu", pool=build.pool)
    made.append(tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing written when built
    synth = _reinit(g, Objective({"bn": 1.0}), g_steps=2, reset="none", latent="round", keep="best")
    synth.extensions = [ext]
    synth.synthesize(build_model("cnn_small", 10, 1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exchange-level0-rank0.bin", "exchange-level2-rank0.bin"]
    numel = ext.pool(2).data[0].numel()  # level 2 of a width-8 generator: (4, 8, 8) per sample
    assert numel == 256 and (tmp_path / "exchange-level2-rank0.bin").stat().st_size == 8 * numel * 2  # fp16
    on_disk = torch.from_file(str(tmp_path / "exchange-level2-rank0.bin"), size=8 * numel, dtype=torch.float16)
    assert torch.equal(on_disk.view(8, *ext.pool(2).data.shape[1:])[:4], ext.pool(2).held())


def test_grad_cam_against_a_hand_computed_map():
    torch.manual_seed(0)
    a = torch.randn(2, 3, 2, 2, requires_grad=True)
    w = torch.randn(4, 3)
    logits = a.mean((2, 3)) @ w.t()  # a linear head on pooled features: dlogit_k/dA_c = w[k, c] / (H·W)
    classes = torch.tensor([1, 3])
    cams = grad_cam(logits, [a], classes)
    want = torch.stack([(w[k][:, None, None] / 4 * a[i]).sum(0) for i, k in enumerate(classes.tolist())])
    assert torch.allclose(cams[0], want, atol=1e-6) and cams[0].requires_grad  # differentiable through A


def test_cam_mse_value_and_that_only_the_students_map_learns():
    s_map = torch.ones(1, 2, 1, 1, requires_grad=True)
    t_map = torch.ones(1, 2, 1, 1)
    w_s = torch.tensor([[1.0, 0.0]], requires_grad=True)
    w_t = torch.tensor([[0.0, 3.0]])
    loss = cam_mse(s_map, t_map, w_s, w_t)
    assert loss.item() == pytest.approx((1.0 - 3.0) ** 2)
    loss.backward()
    assert w_s.grad is None  # the classifier gets no gradient from it
    assert s_map.grad[0, 0, 0, 0] < 0  # descending raises the student's CAM toward the teacher's


def test_the_cam_terms_keep_double_precision():
    """Only half precision is raised (to float32): a float64 run stays float64 (the reference trace)."""
    torch.manual_seed(0)
    s_map, t_map = torch.randn(2, 3, 2, 2, dtype=torch.float64), torch.randn(2, 3, 2, 2, dtype=torch.float64)
    w_s, w_t = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    loss = cam_mse(s_map, t_map, w_s, w_t)
    want = ((torch.einsum("kc,nchw->nkhw", w_s, s_map) - torch.einsum("kc,nchw->nkhw", w_t, t_map)) ** 2).mean()
    assert loss.dtype == torch.float64 and loss.item() == want.item()
    a = s_map.clone().requires_grad_(True)
    logits = a.mean((2, 3)) @ w_s.t()
    assert gradcam_mse(logits, [a], [t_map.sum(1)], logits.argmax(1)).dtype == torch.float64
    assert cam_mse(s_map.half(), t_map.float(), w_s.half(), w_t.float()).dtype == torch.float32


def test_gradcam_consistency_is_zero_for_a_copy_and_pulls_a_different_student():
    torch.manual_seed(0)
    teacher = build_model("cnn", 10, 1).eval()
    student = build_model("cnn", 10, 1).eval()
    student.load_state_dict(teacher.state_dict())
    from dfkd.objective.hooks import match_stages

    t_names, s_names = match_stages(teacher, student, (2, 1, 8, 8), (2, 1, 8, 8))
    probe = TeacherProbe(teacher)
    probe.watch_blocks(t_names)
    s_hooks = BlockHooks(student, s_names)
    x = torch.randn(6, 1, 8, 8)
    obj = Objective({"sarc_gradcam": 1.0})
    with torch.no_grad():
        sig = probe(x, obj.needs)
    assert len(sig.t_gradcams) == len(t_names) and not sig.t_logits.requires_grad
    sig.s_logits = student(x)
    sig.s_blocks = s_hooks.values
    assert obj(sig)[0].item() == pytest.approx(0.0, abs=1e-10)
    with torch.no_grad():
        for p in student.parameters():
            p.mul_(1.5)
    sig.s_logits = student(x)
    sig.s_blocks = s_hooks.values
    want = gradcam_mse(sig.s_logits, sig.s_blocks, sig.t_gradcams, sig.t_logits.argmax(1))
    loss = obj(sig)[0]
    assert loss.item() > 0 and loss.item() == pytest.approx(want.item(), rel=1e-6)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
    assert all(p.grad is None for p in teacher.parameters())


def test_spaceshipnet_config_and_its_checks(tmp_path):
    cfg = build_config(method="spaceshipnet", sets=[f"out={tmp_path}", "data.name=cifar10"])
    assert cfg.distill.kd_steps == 2000 and cfg.objective.temperature == 30.0 and cfg.synth.exchange == 0.7
    assert cfg.objective.params["kd_kl"]["reduction"] == "mean" and cfg.synth.reset == "none"
    with pytest.raises(DfkdError, match="synth.exchange .* distill.batch=fresh"):
        build_config(method="spaceshipnet", sets=["distill.batch=pool", "pool.capacity=64"])
