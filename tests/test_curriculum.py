"""CuDFKD's pieces (Li et al. 2023, arXiv:2208.13648) as shared parts: the class balance at a
temperature, ramps that start late and apply to generator terms, the self-paced student weight,
fresh batches drawn in eval mode, the early-tapering generator and its one-time DCGAN init."""
import math

import pytest
import torch

from dfkd.base.errors import DfkdError
from dfkd.methods.configure import build_config
from dfkd.objective.losses import class_balance, self_paced_weight
from dfkd.objective.signals import Signals
from dfkd.objective.terms import Objective


def test_class_balance_at_a_temperature_against_hand_computed_values():
    logits = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    for t in (1.0, 2.0):
        p = [(math.exp(2 / t) / (math.exp(2 / t) + 1) + 0.5) / 2]
        p.append(1 - p[0])
        assert class_balance(logits, t).item() == pytest.approx(sum(q * math.log(q) for q in p), rel=1e-6)
    sig = Signals(x=torch.zeros(2, 1, 2, 2), t_logits=logits)
    hot = Objective({"ie": 1.0}, params={"ie": {"T": 20.0}})(sig)[0].item()
    assert hot < Objective({"ie": 1.0})(sig)[0].item() and hot == pytest.approx(-math.log(2), abs=1e-3)  # near uniform


def test_self_paced_weight_is_one_at_zero_loss_and_falls_for_hard_batches():
    lam = 2.0
    for loss, want in ((0.0, 1.0), (2.0, (1 + math.exp(-2)) / 2), (10.0, (1 + math.exp(-2)) / (1 + math.exp(8)))):
        v = self_paced_weight(torch.tensor(loss, requires_grad=True), lam)
        assert v.item() == pytest.approx(want, rel=1e-6) and not v.requires_grad


def test_self_paced_weight_keeps_the_losss_precision():
    """float64 stays float64 (the reference trace compares v to 1e-12 with the authors' code), a
    half-precision loss is weighed in float32."""
    loss = torch.tensor(0.1338136175787652, dtype=torch.float64)
    v = self_paced_weight(loss, 2.0)
    want = (1 + math.exp(-2.0)) / (1 + math.exp(0.1338136175787652 - 2.0))
    assert v.dtype == torch.float64 and v.item() == pytest.approx(want, rel=1e-14)
    assert self_paced_weight(loss.half(), 2.0).dtype == torch.float32


def test_a_ramp_with_a_start_holds_then_rises_then_stays():
    obj = Objective({"adv_kl": 1.0})
    obj.ramp, obj.ramp_every = {"adv_kl": [0.0, 62.5, 0.756, 0.256]}, 40  # CuDFKD, CIFAR-10: 250 epochs of 40
    factors = {}
    for epoch in (0, 63, 64, 65, 100, 188, 189, 249):  # 0-based; the authors' weight for the epoch
        obj.at_round(epoch * 40 + 1, 10000)
        factors[epoch] = obj.factors["adv_kl"]
        want = 0.5 * min(max(epoch - 1 - 62, 0), 187 - 62)  # adv0 + grad * clip(n - 1 - B0, 0, E0 - B0)
        assert factors[epoch] == pytest.approx(want, abs=1e-9)
    assert factors[63] == 0 and factors[65] == pytest.approx(1.0) and factors[249] == pytest.approx(62.5)


def test_generator_ramps_and_self_paced_weights_are_checked(tmp_path):
    cfg = build_config(method="cudfkd", sets=[f"out={tmp_path}"])
    assert cfg.objective.ramp["adv_kl"] == [0.0, 62.5, 0.756, 0.256] and cfg.objective.generator["adv_kl"] == 1.0
    with pytest.raises(DfkdError, match=r"objective.self_paced=\[2.0\]: give \[LAMBDA0, RATE\]"):
        build_config(method="cudfkd", sets=["objective.self_paced=[2]"])
    with pytest.raises(DfkdError, match="0 <= FROM < AT"):
        build_config(method="cudfkd", sets=["objective.ramp.adv_kl=[0, 1, 0.2, 0.5]"])


def test_the_early_taper_and_dcgan_init_build_cudfkds_generator():
    from dfkd.generators.dcgan import DCGANGenerator
    from dfkd.synthesis.synthesizers import dcgan_init

    g = DCGANGenerator(nz=512, width=256, size=32, output="sigmoid", taper="early")
    widths = [m.out_channels for m in g.modules() if isinstance(m, torch.nn.Conv2d)]
    assert g.fc.out_features == 256 * 8 * 8 and widths == [128, 64, 3]
    torch.manual_seed(0)
    dcgan_init(g)
    assert abs(g.fc.weight.std().item() - 0.02) < 1e-3 and abs(g.bn0.weight.mean().item() - 1.0) < 0.01
    assert torch.all(g.fc.bias == 0)


def test_fresh_batches_drawn_in_eval_mode_use_the_running_statistics():
    from dfkd.config.synthesis import SynthConfig
    from dfkd.generators.dcgan import DCGANGenerator
    from dfkd.models import build_model
    from dfkd.synthesis.context import SynthContext, TeacherProbe
    from dfkd.synthesis.synthesizers import PersistentSynthesizer

    torch.manual_seed(0)
    g = DCGANGenerator(nz=8, width=8, size=8, channels=1, output="sigmoid")
    g.bn0.running_mean.fill_(3.0)  # far from any batch's statistics
    ctx = SynthContext(SynthConfig(batch_size=4, g_steps=0, sample_mode="eval"), None, None,
                       TeacherProbe(build_model("cnn_small", 10, 1)), torch.nn.Identity(), torch.nn.Identity(), 1,
                       torch.device("cpu"))
    synth = PersistentSynthesizer(g, ctx)
    z = torch.randn(4, 8)
    synth.z = lambda n: z[:n]
    x = synth.sample(4)
    assert synth.generator.training  # back in train mode after the draw
    with torch.no_grad():
        assert torch.equal(x, g.eval()(z)) and not torch.allclose(x, g.train()(z))


def test_kd_nce_against_hand_computed_values_and_its_gradient_sign():
    from dfkd.objective.relation import feature_infonce

    t = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    s = torch.tensor([[2.0, 0.0], [0.0, 3.0]], requires_grad=True)  # the same directions, other norms
    assert feature_infonce(t, s, tau=1.0).item() == pytest.approx(math.log(1 + math.exp(-1)), rel=1e-6)
    assert feature_infonce(t, s.detach(), tau=0.5).item() == pytest.approx(math.log(1 + math.exp(-2)), rel=1e-6)
    wrong = torch.tensor([[0.6, 0.8], [0.8, 0.6]], requires_grad=True)  # each closer to the other's teacher row
    loss = feature_infonce(t, wrong, tau=1.0)
    loss.backward()
    assert loss.item() > math.log(2)  # worse than chance
    assert wrong.grad[0, 0] < 0 and wrong.grad[1, 1] < 0  # descending moves sample i toward teacher row i
    sig = Signals(x=torch.zeros(2, 1, 2, 2), t_logits=torch.zeros(2, 3), t_features=t, s_features=s.detach())
    nce = Objective({"kd_nce": 1.0}, params={"kd_nce": {"tau": 0.5}})(sig)[0].item()
    assert nce == pytest.approx(math.log(1 + math.exp(-2)), rel=1e-5)
    assert Objective({"kd_nce": 1.0}).params["kd_nce"] == {"tau": 0.07, "project": "none"}  # defaults
    from dfkd.objective.relation import to_width

    with pytest.raises(DfkdError, match="set objective.params.kd_nce.project=random"):
        to_width(torch.zeros(2, 3), 2, "none", "kd_nce")
    torch.manual_seed(0)
    mapped = to_width(torch.ones(2, 3), 2, "random", "kd_nce")
    torch.manual_seed(0)
    assert mapped.shape == (2, 2) and torch.equal(mapped, torch.nn.Linear(3, 2)(torch.ones(2, 3)))  # nn.Linear's draw


def test_relation_infonce_keeps_its_window_of_negatives():
    from dfkd.objective.relation import relation_infonce

    a, k = torch.tensor([[1.0, 0.0]]), torch.tensor([[2.0, 0.0]])  # positive cosine 1
    queue = torch.tensor([[0.0, -1.0], [1.0, 0.0]])  # columns: cosines 0 and -1 to the anchor
    whole = relation_infonce(a, k, queue, hard=0.0, length=1.0, tau=1.0).item()
    assert whole == pytest.approx(-math.log(math.e / (math.e + 1 + math.exp(-1))), rel=1e-6)
    hardest = relation_infonce(a, k, queue, hard=0.5, length=0.5, tau=1.0).item()  # only the cosine-0 one
    easiest = relation_infonce(a, k, queue, hard=0.0, length=0.5, tau=1.0).item()  # only the cosine -1 one
    assert hardest == pytest.approx(math.log(1 + math.exp(-1)), rel=1e-6)
    assert easiest == pytest.approx(math.log(1 + math.exp(-2)), rel=1e-6) and easiest < hardest


def test_the_relation_queue_slides_its_window_enqueues_and_round_trips():
    from dfkd.synthesis.relation import RelationQueue

    params = {"bank": 4, "length": 0.9, "begin": 0.25, "end": 0.75, "tau": 0.07, "project": "none"}
    torch.manual_seed(0)
    q = RelationQueue(2, params, run_rounds=400, epoch_rounds=40, device="cpu")  # 10 epochs: slides over 2..7
    assert torch.allclose(q.queue.norm(dim=0), torch.ones(4))
    for rounds_done, want in ((0, 0.0), (80, 0.0), (160, 0.1 * 2 / 5), (280, 0.1), (399, 0.1)):
        q.rounds_done = rounds_done
        assert q.hard == pytest.approx(want)
    sig = Signals(x=torch.zeros(3, 1, 2, 2), t_logits=torch.zeros(3, 2), s_features=torch.tensor([[3.0, 0.0]] * 3))
    q.after_step(sig, None)
    q.after_step(sig, None)  # 6 keys into 4 slots: the ring wraps
    assert q.ptr == 2 and torch.equal(q.queue, torch.tensor([[1.0] * 4, [0.0] * 4]))
    other = RelationQueue(2, params, 400, 40, "cpu")
    other.load_state_dict(q.state_dict())
    assert torch.equal(other.queue, q.queue) and other.ptr == 2 and other.rounds_done == q.rounds_done


def test_adadfkds_feature_terms_keep_double_precision():
    """float64 features stay float64 in kd_nce and in the relation queue (the reference trace
    compares them with the authors' code to 1e-11; in float32 they drifted to 1e-3 by round 4)."""
    from dfkd.objective.relation import feature_infonce
    from dfkd.synthesis.relation import RelationQueue

    g = torch.Generator().manual_seed(0)
    t, s = torch.randn(4, 3, generator=g, dtype=torch.float64), torch.randn(4, 3, generator=g, dtype=torch.float64)
    nce = feature_infonce(t, s, tau=0.07)
    d = torch.nn.functional.normalize(t, dim=1) @ torch.nn.functional.normalize(s, dim=1).t()
    assert nce.dtype == torch.float64
    assert nce.item() == pytest.approx(torch.nn.functional.cross_entropy(d / 0.07, torch.arange(4)).item(), rel=1e-14)
    assert feature_infonce(t.half(), s.half()).dtype == torch.float32  # autocast features: weighed in float32
    params = {"bank": 4, "length": 0.5, "begin": 0.0, "end": 1.0, "tau": 0.07, "project": "none"}
    q = RelationQueue(3, params, run_rounds=1, epoch_rounds=1, device="cpu")
    q.queue = q.queue.double()
    q.after_step(Signals(x=torch.zeros(4, 1, 2, 2), t_logits=torch.zeros(4, 2), s_features=s), None)
    assert torch.equal(q.queue, torch.nn.functional.normalize(s, dim=1).t())


def test_a_source_step_gives_the_student_features_to_terms_that_need_them():
    from dfkd.config.synthesis import SynthConfig
    from dfkd.generators.dcgan import DCGANGenerator
    from dfkd.models import build_model
    from dfkd.synthesis.context import SynthContext, TeacherProbe
    from dfkd.synthesis.synthesizers import PersistentSynthesizer

    torch.manual_seed(0)
    obj = Objective({"kd_nce": 1.0})  # student features (16-d) against the teacher's (16-d)
    ctx = SynthContext(SynthConfig(batch_size=4, g_steps=1), _adam(), obj,
                       TeacherProbe(build_model("cnn_small", 10, 1)), torch.nn.Identity(), torch.nn.Identity(), 1,
                       torch.device("cpu"))
    synth = PersistentSynthesizer(DCGANGenerator(nz=8, width=8, size=8, channels=1), ctx)
    _, parts = synth.synthesize(build_model("cnn_small", 10, 1))
    assert "kd_nce" in parts and math.isfinite(parts["kd_nce"].item())


def _adam():
    from dfkd.config.fields import OptimConfig

    return OptimConfig(name="adam", lr=1e-3)
