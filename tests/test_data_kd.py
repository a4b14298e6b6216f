"""Data-driven KD through the same loop: the real-data source, its terms, its recipes."""
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

import dfkd.run.parts
import dfkd.run.runner
from dfkd.base.errors import DfkdError
from dfkd.methods.configure import build_config
from dfkd.objective.signals import Signals
from dfkd.objective.terms import Objective
from dfkd.run.runner import distill
from dfkd.synthesis.real import RealBatches


def _ds(n=10):
    return TensorDataset(torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1), torch.arange(n))


def test_real_batches_visit_each_sample_once_per_epoch_and_drop_the_partial_batch():
    b = RealBatches(_ds(10), batch_size=3, seed=0, device="cpu")
    epoch0 = [b.next() for _ in range(3)]
    seen = torch.cat([y for _, y in epoch0])
    assert len(seen) == 9 and len(set(seen.tolist())) == 9  # 3 full batches, the 10th sample dropped
    assert all(torch.equal(x.flatten(), y.float()) for x, y in epoch0)  # images stay with their labels
    epoch1 = torch.cat([b.next()[1] for _ in range(3)])
    assert not torch.equal(seen, epoch1)  # reshuffled
    assert b.state_dict() == {"epoch": 1, "pos": 3}


def test_real_batches_resume_exactly_and_depend_on_the_seed():
    a = RealBatches(_ds(20), 4, seed=1, device="cpu")
    for _ in range(7):  # into the second epoch
        a.next()
    b = RealBatches(_ds(20), 4, seed=1, device="cpu")
    b.load_state_dict(a.state_dict())
    for _ in range(6):
        assert torch.equal(a.next()[1], b.next()[1])
    c = RealBatches(_ds(20), 4, seed=2, device="cpu")
    assert not torch.equal(RealBatches(_ds(20), 4, seed=1, device="cpu").next()[1], c.next()[1])


def test_batch_larger_than_the_split_is_a_config_error():
    with pytest.raises(DfkdError, match="synth.batch_size"):
        RealBatches(_ds(5), 8, seed=0, device="cpu")


def test_label_terms_against_hand_computed_values():
    s_logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    t_logits = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    y = torch.tensor([0, 0])
    sig = Signals(x=torch.zeros(2, 1, 1, 1), t_logits=t_logits, s_logits=s_logits, targets=y)
    total, parts = Objective({"label_ce": 1.0})(sig)
    # CE: -log softmax: sample 0: log(1 + e^-2); sample 1: log(1 + e^1)
    expected = (torch.log1p(torch.exp(torch.tensor(-2.0))) + torch.log1p(torch.exp(torch.tensor(1.0)))) / 2
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    # with two classes there is no non-target distribution: DKD is TCKD alone, the binary KL x T^2
    dkd, _ = Objective({"dkd": 1.0}, temperature=1.0, params={"dkd": {"alpha": 2.0, "beta": 8.0}})(sig)
    kl = F.kl_div(F.log_softmax(s_logits, 1), F.softmax(t_logits, 1), reduction="batchmean")
    assert dkd.item() == pytest.approx(2.0 * kl.item(), rel=1e-5)


def test_rkd_terms_see_student_and_teacher_features():
    torch.manual_seed(0)
    t = torch.randn(6, 5)
    sig = Signals(x=torch.zeros(6, 1, 1, 1), t_logits=torch.zeros(6, 3), s_logits=torch.zeros(6, 3),
                  t_features=t, s_features=2 * t)  # a scaled copy has the same relations
    total, parts = Objective({"rkd_d": 1.0, "rkd_a": 1.0})(sig)
    assert total.item() == pytest.approx(0.0, abs=1e-6)
    sig.s_features = torch.randn(6, 4)  # another embedding size is fine
    assert Objective({"rkd_d": 1.0})(sig)[0].item() > 0


@pytest.mark.parametrize("sets, match", [
    (["source.name=real"], "per_batch"),
    (["synth.schedule=per_batch"], "per_batch"),
    (["source.name=real", "synth.schedule=per_batch", "distill.batch=fresh"], "distill.batch=reuse"),
    (["source.name=real", "synth.schedule=per_batch", "distill.batch=reuse", "synth.g_steps=1"], "g_steps=0"),
    (["objective.student.label_ce=1"], "true labels"),
])
def test_inconsistent_real_data_configs_are_refused(sets, match):
    with pytest.raises(DfkdError, match=match):
        build_config(method="dfad", sets=sets)


def _run(teacher, out, method, *extra):
    cfg = build_config(method=method, sets=[
        f"teacher.checkpoint={teacher}", f"out={out}", "distill.rounds=60", "distill.eval_every=60",
        "tracking.mode=disabled", "device=cpu", *extra])
    return distill(cfg, quiet=True)


def test_kd_learns_from_the_training_split_and_beats_the_noise_floor(digits_teacher, tmp_path, monkeypatch):
    splits = []
    real = dfkd.run.runner.load_split
    for module in (dfkd.run.runner, dfkd.run.parts):  # the run reads the test split, its parts the training split
        monkeypatch.setattr(module, "load_split", lambda cfg, split: splits.append(split) or real(cfg, split))
    _, summary = _run(digits_teacher, tmp_path, "kd", "distill.rounds=150", "distill.eval_every=150")
    assert sorted(splits) == ["test", "train"]
    # 150 steps of batch 64 (under 7 epochs of the 1,437 training digits); chance is 10%, the
    # data-free noise control reaches about 35% after 1,000 steps
    assert summary["student_acc"] > 90.0


def test_fitnet_trains_its_adapter_and_checkpoints_it(digits_teacher, tmp_path):
    from dfkd.io.checkpoint import read_run_checkpoint

    run_dir, summary = _run(digits_teacher, tmp_path, "fitnet", "distill.rounds=4", "distill.eval_every=2")
    adapter = read_run_checkpoint(run_dir / "checkpoint.pt")["components"]["hint"]
    (name, w), = adapter.items()
    assert name == "weight" and w.dim() == 4 and w.shape[2:] == (1, 1)
    fresh = torch.nn.Conv2d(w.shape[1], w.shape[0], 1, bias=False).weight
    assert w.shape == fresh.shape and bool(torch.isfinite(w).all())


def test_ranks_take_disjoint_slices_of_the_same_global_batches():
    ranks = [RealBatches(_ds(12), 6, seed=0, device="cpu", rank=r, world=2) for r in range(2)]
    single = RealBatches(_ds(12), 6, seed=0, device="cpu")
    for _ in range(4):  # two epochs of two global batches of 6
        a, b, whole = ranks[0].next()[1], ranks[1].next()[1], single.next()[1]
        assert torch.equal(torch.cat([a, b]), whole)


def test_epochs_give_a_real_data_run_its_rounds_once(tmp_path):
    from dfkd.run.resolve import resolve_epochs

    cfg = build_config(method="kd", sets=["distill.epochs=1.5", f"out={tmp_path}"])
    out = resolve_epochs(cfg)
    per_epoch = 1437 // cfg.synth.batch_size  # the digits' 1,437 training images
    assert out.distill.rounds == round(1.5 * per_epoch) and out.distill.rounds != cfg.distill.rounds
    assert out.provenance["distill.rounds"] == f"distill.epochs (1.5 x {per_epoch} batches)"
    assert resolve_epochs(out).distill.rounds == out.distill.rounds  # a resumed run's config resolves the same
    assert resolve_epochs(build_config(method="kd")).distill.rounds == build_config(method="kd").distill.rounds
    with pytest.raises(DfkdError, match="distill.epochs counts passes over the real training split"):
        build_config(method="dfq", sets=["distill.epochs=2"])
