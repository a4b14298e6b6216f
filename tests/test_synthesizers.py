import pytest
import torch
from torch import nn

from dfkd.base.errors import DfkdError
from dfkd.config.fields import OptimConfig
from dfkd.config.synthesis import SynthConfig
from dfkd.generators.dcgan import DCGANGenerator
from dfkd.generators.noise import NoiseSource
from dfkd.models import build_model
from dfkd.objective.terms import Objective
from dfkd.synthesis.context import SynthContext, TeacherProbe
from dfkd.synthesis.synthesizers import EmaGenerator, PersistentSynthesizer

SGD = OptimConfig(name="sgd", lr=0.1, momentum=0.0, weight_decay=0.0, schedule="constant")


def _synth(generator, g_steps=1, **kw):
    torch.manual_seed(0)
    probe = TeacherProbe(build_model("cnn_small", 10, 1))
    obj = Objective({"adv_l1": 1.0}) if g_steps else None
    cfg = SynthConfig(batch_size=8, g_steps=g_steps, **kw)
    ema = [EmaGenerator(generator, cfg.ema, cfg.ema_fraction, "cpu")] if cfg.ema > 0 else []
    return PersistentSynthesizer(generator, _ctx(cfg, obj, probe, 5, extensions=ema))


def _ctx(cfg, objective, probe, rounds, optim=SGD, **kw):
    return SynthContext(cfg, optim, objective, probe, nn.Identity(), nn.Identity(), rounds, torch.device("cpu"), **kw)


def test_ema_generator_follows_by_the_stated_fraction():
    synth = _synth(DCGANGenerator(nz=8, width=8, size=8, channels=1), ema=0.9)
    ema = synth.extension(EmaGenerator).generator
    before_ema = [p.detach().clone() for p in ema.parameters()]
    synth.synthesize(build_model("cnn_small", 10, 1))
    for p_ema, p_old, p_new in zip(ema.parameters(), before_ema, synth.generator.parameters()):
        torch.testing.assert_close(p_ema, 0.9 * p_old + 0.1 * p_new.detach())
    moved = sum((a - b).abs().sum() for a, b in zip(synth.generator.parameters(), before_ema))
    assert moved > 0  # the generator did take a step, so the check above is not vacuous
    for b_ema, b in zip(ema.buffers(), synth.generator.buffers()):
        assert torch.equal(b_ema, b)
    ema_ext = synth.extension(EmaGenerator)  # a component of its own: the EMA weights under its key
    assert ema_ext.key == "ema_generator" and ema_ext.per_rank and "ema_generator" not in synth.state_dict()


def test_student_batch_mixes_ema_and_current_samples():
    synth = _synth(DCGANGenerator(nz=8, width=8, size=8, channels=1), ema=0.5, ema_fraction=1.0)
    synth.synthesize(build_model("cnn_small", 10, 1))
    z = torch.randn(6, 8)
    synth.z = lambda n: z[:n]
    with torch.no_grad():
        torch.testing.assert_close(synth.sample(6), synth.extension(EmaGenerator).generator(z))
        assert not torch.allclose(synth.sample(6), synth.generator(z))
    synth.extension(EmaGenerator).fraction = 0.5
    assert synth.sample(6).shape == (6, 1, 8, 8)


def test_noise_source_is_gaussian_images_without_parameters():
    src = NoiseSource(size=4, channels=2)
    z = torch.randn(3, src.nz)
    assert torch.equal(src(z), z.view(3, 2, 4, 4)) and not list(src.parameters())
    synth = _synth(NoiseSource(size=8, channels=1), g_steps=0)
    batch, parts = synth.synthesize(build_model("cnn_small", 10, 1))
    assert batch.x.shape == (8, 1, 8, 8) and batch.t_logits.shape == (8, 10) and parts == {}
    with pytest.raises(DfkdError, match="no parameters to optimise"):
        _synth(NoiseSource(size=4, channels=1), g_steps=1)


def test_reinit_schedule_restarts_the_pixels_every_round_and_lowers_its_objective():
    from dfkd.generators.pixels import PixelSource
    from dfkd.synthesis.synthesizers import ReinitSynthesizer

    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    with torch.no_grad():
        teacher[1].weight.mul_(10)  # decisive logits, so CE towards a target can fall far
    probe = TeacherProbe(teacher)
    adam = OptimConfig(name="adam", lr=0.1, weight_decay=0.0, schedule="constant")
    source = PixelSource(8, 8, 1)
    synth = ReinitSynthesizer(source, _ctx(SynthConfig(batch_size=8, g_steps=15), Objective({"ce": 1.0}), probe, 2,
                                           optim=adam))
    targets = torch.arange(8)
    synth._targets = lambda: targets
    resets = []
    original_reset = source.reset_parameters
    source.reset_parameters = lambda: (resets.append(1), original_reset())
    with torch.no_grad():
        ce_fresh = torch.nn.functional.cross_entropy(teacher(torch.randn(8, 1, 8, 8)), targets).item()
    first, parts = synth.synthesize(build_model("cnn_small", 10, 1))
    optimizer1 = synth.optimizer
    assert parts["ce"].item() < 0.1 * ce_fresh  # 15 Adam steps drive the teacher to the targets
    assert (first.t_logits.argmax(1) == targets).all()
    second, _ = synth.synthesize(build_model("cnn_small", 10, 1))
    assert len(resets) == 2 and synth.optimizer is not optimizer1  # reset and a fresh optimizer per round
    assert not torch.allclose(first.x, second.x)


def _meta(meta, meta_lr=0.25, meta_step="plain"):
    from dfkd.synthesis.synthesizers import MetaSynthesizer

    torch.manual_seed(0)
    probe = TeacherProbe(build_model("cnn_small", 10, 1))
    cfg = SynthConfig(batch_size=8, g_steps=3, meta=meta, meta_lr=meta_lr, meta_step=meta_step)
    adam = OptimConfig(name="adam", lr=0.01, betas=[0.5, 0.999], weight_decay=0.0, schedule="constant")
    return MetaSynthesizer(DCGANGenerator(nz=8, width=8, size=8, channels=1),
                           _ctx(cfg, Objective({"adv_kl": 1.0, "bn": 1.0}), probe, 4, optim=adam))


def test_reptile_moves_the_shared_weights_toward_the_clone_by_the_stated_fraction():
    synth = _meta("reptile", 0.25)
    before = [p.detach().clone() for p in synth.shared.parameters()]
    clones = []
    original_end = synth.end_round
    synth.end_round = lambda: (clones.append([p.detach().clone() for p in synth.generator.parameters()]),
                                original_end())
    synth.synthesize(build_model("cnn_small", 10, 1))
    assert synth.generator is synth.shared  # the clone is dropped after the round
    moved = 0.0
    for p, old, adapted in zip(synth.shared.parameters(), before, clones[0]):
        torch.testing.assert_close(p, old + 0.25 * (adapted - old))
        moved += (adapted - old).abs().sum().item()
    assert moved > 0  # the clone did adapt, so the check is not vacuous
    assert synth.codes.shape == (8, 8)  # latent codes were optimised as parameters


def test_plain_fomaml_applies_the_clones_last_gradient():
    synth = _meta("fomaml", 0.1)
    before = [p.detach().clone() for p in synth.shared.parameters()]
    grads = []
    original_end = synth.end_round
    synth.end_round = lambda: (grads.append([None if p.grad is None else p.grad.clone()
                                              for p in synth.generator.parameters()]), original_end())
    synth.synthesize(build_model("cnn_small", 10, 1))
    for p, old, g in zip(synth.shared.parameters(), before, grads[0]):
        torch.testing.assert_close(p, old if g is None else old - 0.1 * g)


def _first_adam_step(g, lr, eps=1e-8):
    """Adam's first update of a parameter with gradient g: m̂ = g, v̂ = g², so -lr·g / (|g| + eps)."""
    return -lr * g / (g.abs() + eps)


def test_the_authors_fomaml_sums_the_rounds_gradients_into_the_shared_adam():
    """Fast (fast_meta.py): the clone's gradients of every inner step are summed into the shared
    generator's gradient, and its own Adam (lr = source lr x g_steps) takes one step per round."""
    synth = _meta("fomaml", meta_step="adam")
    assert synth.meta_optimizer.param_groups[0]["lr"] == pytest.approx(0.01 * 3)
    before = [p.detach().clone() for p in synth.shared.parameters()]
    per_step = []
    original_after = synth.after_step
    synth.after_step = lambda: (per_step.append([q.grad.detach().clone() for q in synth.generator.parameters()]),
                                original_after())
    synth.synthesize(build_model("cnn_small", 10, 1))
    assert len(per_step) == 3
    for k, (p, old) in enumerate(zip(synth.shared.parameters(), before)):
        total = sum(step[k] for step in per_step)
        torch.testing.assert_close(p, old + _first_adam_step(total, 0.03))
        assert not torch.allclose(total, per_step[-1][k])  # the sum, not the last step's gradient


def test_the_authors_reptile_steps_the_shared_adam_on_the_scaled_difference():
    synth = _meta("reptile", meta_step="adam")
    before = [p.detach().clone() for p in synth.shared.parameters()]
    clones = []
    original_end = synth.end_round
    synth.end_round = lambda: (clones.append([q.detach().clone() for q in synth.generator.parameters()]),
                                original_end())
    synth.synthesize(build_model("cnn_small", 10, 1))
    for p, old, q in zip(synth.shared.parameters(), before, clones[0]):
        torch.testing.assert_close(p, old + _first_adam_step(67.0 * (old - q), 0.03))
    assert "meta_optimizer" in synth.state_dict()


def test_reset_first_layer_redraws_the_generators_first_linear_and_batchnorm_once():
    from dfkd.synthesis.synthesizers import reset_first_layer

    torch.manual_seed(0)
    g = DCGANGenerator(nz=8, width=8, size=8, channels=1)
    later = g.block1[1].weight.detach().clone()
    reset_first_layer(g)
    assert g.fc.weight.std().item() == pytest.approx(0.02, rel=0.2) and torch.all(g.fc.bias == 0)
    assert g.bn0.weight.abs().max() < 0.1 and torch.all(g.bn0.bias == 0)  # N(0, 0.02): the authors' reset_l0
    assert torch.equal(g.block1[1].weight, later)


def test_warmup_turns_adversarial_terms_off_then_on():
    probe = TeacherProbe(build_model("cnn_small", 10, 1))
    cfg = SynthConfig(batch_size=4, g_steps=1, warmup=1)
    synth = PersistentSynthesizer(DCGANGenerator(nz=8, width=8, size=8, channels=1),
                                  _ctx(cfg, Objective({"adv_kl": 1.0, "oh": 1.0}), probe, 3))
    _, parts = synth.synthesize(build_model("cnn_small", 10, 1))
    assert synth.warming_up and set(parts) == {"oh", "loss"}
    _, parts = synth.synthesize(build_model("cnn_small", 10, 1))
    assert not synth.warming_up and set(parts) == {"adv_kl", "oh", "loss"}


def _contrast(teacher, **params):
    from dfkd.io.data import DatasetInfo
    from dfkd.objective.terms import resolve_params
    from dfkd.synthesis.contrast import Contrast

    p = resolve_params({"cmi": {"dim": 4, **params}})["cmi"]
    return Contrast(teacher, DatasetInfo(10, 1, 8, (0.0,), (1.0,), flip=False), p, 0.01, "cpu")


def test_contrast_bank_keeps_raw_local_and_global_embeddings_of_the_kept_batch_once_per_round():
    """CMI (contrastive.py): the bank holds [local | global] instance means of the round's kept batch,
    pushed once per round; each step reads `negatives` distinct rows and projects them anew."""
    torch.manual_seed(0)
    teacher = build_model("cnn_small", 10, 1)
    c = _contrast(teacher, bank=5, negatives=3)
    width = 8 + 8 + 16 + 16  # the BN inputs of cnn_small
    for i in range(3):
        c._step = torch.full((2, 2 * width), float(i))
        c.keep(None)
        c.end_round()
    assert len(c.bank) == 5 and sorted(c.bank.held()[:, 0].tolist()) == [0.0, 1.0, 1.0, 2.0, 2.0]
    rows = c.read_bank()
    assert rows.shape == (3, 2 * width) and len({tuple(r.tolist()) for r in c.bank.held()}) == 3
    from dfkd.objective.signals import Signals

    x = torch.randn(6, 1, 8, 8)
    c.before_probe()
    teacher(x)  # the probe's forward pass on the global view
    sig = Signals(x=x, t_logits=torch.zeros(6, 10))
    c.signals(sig, x, _ctx(SynthConfig(), None, TeacherProbe(teacher), 1))
    assert sig.embed_local.shape == sig.embed.shape == (6 + 3, 4)  # batch rows, then bank rows
    assert c._step.shape == (6, 2 * width)


def test_the_contrastive_head_has_its_own_optimizer_and_the_bank_fills_once_per_round():
    torch.manual_seed(0)
    teacher = build_model("cnn_small", 10, 1)
    contrast = _contrast(teacher, bank=32)
    synth = PersistentSynthesizer(DCGANGenerator(nz=8, width=8, size=8, channels=1),
                                  _ctx(SynthConfig(batch_size=8, g_steps=2), Objective({"cmi": 1.0}),
                                       TeacherProbe(teacher), 2, extensions=[contrast]))
    assert all(p not in {id(q) for g in synth.optimizer.param_groups for q in g["params"]}
               for p in map(id, contrast.parameters()))  # not trained by the source's optimizer
    head = [p.detach().clone() for p in contrast.parameters()]
    _, parts = synth.synthesize(build_model("cnn_small", 10, 1))
    assert parts["cmi"] > 0 and len(contrast.bank) == 8  # one batch per round, not one per step
    assert any(not torch.equal(a, b) for a, b in zip(head, contrast.parameters()))
    assert contrast.optimizer.state  # its Adam took the steps
    synth.synthesize(build_model("cnn_small", 10, 1))
    assert len(contrast.bank) == 16


def test_nayer_source_maps_each_block_of_classes_through_its_own_noisy_layer():
    """NLGenerator (tmtuan1307/NAYER): BN1d(embedding), then noisy layer i on the i-th block of K
    samples; new_round() re-draws every noisy layer from N(0, 1) with zero biases; no latent code."""
    from dfkd.generators.nayer import NayerSource

    torch.manual_seed(0)
    src = NayerSource(num_classes=4, nz=8, width=8, size=8, channels=1, embed_dim=6, batch_size=10)
    assert len(src.noisy) == 3  # ceil(10 / 4)
    src.new_round()
    w = torch.cat([layer.weight.flatten() for layer in src.noisy])
    assert abs(w.std().item() - 1.0) < 0.2 and all(torch.all(layer.bias == 0) for layer in src.noisy)
    labels = torch.arange(10) % 4
    src.eval()
    with torch.no_grad():
        x = src(torch.zeros(10, 8), labels)
        src.noisy[1].weight.add_(1.0)  # only the second block (samples 4-7) goes through it
        y = src(torch.randn(10, 8), labels)  # and z plays no part
    assert torch.equal(x[:4], y[:4]) and torch.equal(x[8:], y[8:]) and not torch.allclose(x[4:8], y[4:8])


def test_nayer_schedule_synthesizes_loops_per_round_and_reinitialises_every_n_rounds():
    from dfkd.generators.nayer import NayerSource
    from dfkd.synthesis.synthesizers import NayerSynthesizer

    torch.manual_seed(0)
    src = NayerSource(num_classes=10, nz=8, width=8, size=8, channels=1, embed_dim=6, batch_size=10)
    cfg = SynthConfig(batch_size=10, g_steps=2, loops=2, warmup_loops=3, warmup=2, reinit_every=2, targets="ordered")
    adam = OptimConfig(name="adam", lr=0.01, weight_decay=0.0, schedule="constant")
    synth = NayerSynthesizer(src, _ctx(cfg, Objective({"ce": 1.0, "bn": 1.0}), TeacherProbe(build_model("cnn_small", 10, 1)),
                                       4, optim=adam))
    resets = []
    original = synth.reset_source
    synth.reset_source = lambda: (resets.append(synth.round), original())
    assert torch.equal(synth._targets(), torch.arange(10))
    sizes = [synth.synthesize(build_model("cnn_small", 10, 1))[0].x.shape[0] for _ in range(4)]
    assert sizes == [30, 30, 20, 20]  # 3 batches in each warm-up round, 2 after
    assert resets == [1, 3]  # rounds 1, 3 (every 2)
    # the authors count both from the start and from the end of the warm-up (nayer.py): warm-up 1 and
    # every 2 re-initialise in every round
    synth.cfg.warmup, synth.round, resets[:] = 1, 0, []
    for _ in range(3):
        synth.synthesize(build_model("cnn_small", 10, 1))
    assert resets == [1, 2, 3]
    synth.batch_size = 12  # N mod K targets are drawn
    t = synth._targets()
    assert torch.equal(t[:10], torch.arange(10)) and len(t) == 12


@pytest.mark.parametrize("mode, expected", [("eval", [False] * 6), ("train_after_first", [False] * 2 + [True] * 4)])
def test_nayer_student_mode_train_after_first_is_the_authors_student_train(mode, expected):
    """nayer.py calls student.train() after each batch: from the second batch of a round on, the
    adversarial term runs the student on batch statistics and moves its BN running statistics."""
    from dfkd.generators.nayer import NayerSource
    from dfkd.synthesis.synthesizers import NayerSynthesizer

    torch.manual_seed(0)
    src = NayerSource(num_classes=10, nz=8, width=8, size=8, channels=1, embed_dim=6, batch_size=10)
    cfg = SynthConfig(batch_size=10, g_steps=2, loops=3, student_mode=mode)
    adam = OptimConfig(name="adam", lr=0.01, weight_decay=0.0, schedule="constant")
    synth = NayerSynthesizer(src, _ctx(cfg, Objective({"ce": 1.0, "adv_kl": 1.0}),
                                       TeacherProbe(build_model("cnn_small", 10, 1)), 4, optim=adam))
    student = build_model("cnn_small", 10, 1).eval()
    seen = []
    student.register_forward_pre_hook(lambda m, _: seen.append(m.training))
    before = [b.clone() for n, b in student.named_buffers() if n.endswith("running_mean")]
    synth.synthesize(student)
    assert seen == expected  # 2 steps in each of 3 batches
    after = [b for n, b in student.named_buffers() if n.endswith("running_mean")]
    moved = any(not torch.equal(a, b) for a, b in zip(before, after))
    assert before and moved == (mode != "eval")


def test_student_mode_train_after_first_needs_the_nayer_schedule():
    from dfkd.methods.configure import build_config

    with pytest.raises(DfkdError, match="train_after_first.*synth.schedule=nayer"):
        build_config(method="dfq", sets=["synth.student_mode=train_after_first"])
    assert build_config(method="nayer", sets=["synth.student_mode=train_after_first"]).synth.student_mode \
        == "train_after_first"


def test_nayer_embedding_file_is_checked(tmp_path):
    from dfkd.base.errors import DfkdError
    from dfkd.config.synthesis import SourceConfig
    from dfkd.generators import SOURCES

    good = tmp_path / "e.pt"
    torch.save(torch.randn(10, 5), good)
    src = SOURCES.get("nayer")(SourceConfig(embed=str(good), nz=8, width=8), 8, 1, 4, 10)
    assert torch.equal(src.embed, torch.load(good))
    bad = tmp_path / "bad.pt"
    torch.save(torch.randn(3, 5), bad)
    with pytest.raises(DfkdError, match=r"must hold a \(10, E\) tensor"):
        SOURCES.get("nayer")(SourceConfig(embed=str(bad)), 8, 1, 4, 10)
    with pytest.raises(DfkdError, match="not found"):
        SOURCES.get("nayer")(SourceConfig(embed=str(tmp_path / "none.pt")), 8, 1, 4, 10)


def test_meta_schedule_refreshes_a_new_round_source_in_its_clone():
    from dfkd.generators.nayer import NayerSource
    from dfkd.synthesis.synthesizers import MetaSynthesizer

    torch.manual_seed(0)
    src = NayerSource(num_classes=10, nz=8, width=8, size=8, channels=1, embed_dim=6, batch_size=10)
    synth = MetaSynthesizer(src, _ctx(SynthConfig(batch_size=10, g_steps=1), Objective({"ce": 1.0}),
                                      TeacherProbe(build_model("cnn_small", 10, 1)), 2))
    synth.begin_round()
    assert synth.generator is not synth.shared
    assert not torch.equal(synth.generator.noisy[0].weight, synth.shared.noisy[0].weight)  # refreshed in the clone
    torch.testing.assert_close(synth.generator.generator.to_image.weight, synth.shared.generator.to_image.weight)
