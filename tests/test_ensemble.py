"""An ensemble of teachers as one teacher (`teacher.members`, a list in `dfkd.distill`): the combine
rules against hand-computed values, the BN-statistics hooks reaching every member, members from
files, 'ARCH=FILE' and auto-trained seeds, and one-line errors for what cannot be an ensemble."""
import math

import pytest
import torch

import dfkd
from dfkd.base.errors import DfkdError
from dfkd.io.data import dataset_info
from dfkd.methods.configure import build_config
from dfkd.models import build_model
from dfkd.models.ensemble import TeacherEnsemble
from dfkd.objective.hooks import BNStatsHook
from dfkd.run.resolve import resolve_teacher

TINY = ["distill.rounds=2", "distill.kd_steps=2", "distill.eval_every=2", "synth.batch_size=16", "source.width=16",
        "tracking.mode=disabled", "device=cpu"]


class Fixed(torch.nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.logits = torch.tensor(logits)

    def forward(self, x):
        return self.logits.expand(x.shape[0], -1)


def test_the_combine_rules_against_hand_computed_values():
    a, b = [0.0, math.log(3.0)], [math.log(3.0), 0.0]  # softmax: (1/4, 3/4) and (3/4, 1/4)
    x = torch.zeros(2, 1)
    assert torch.allclose(TeacherEnsemble([Fixed(a), Fixed(b)], "logits")(x), torch.full((2, 2), math.log(3) / 2))
    probs = TeacherEnsemble([Fixed(a), Fixed([math.log(3.0), math.log(1.0)]), Fixed(a)], "probs")(x).softmax(1)
    want = (2 * torch.tensor([0.25, 0.75]) + torch.tensor([0.75, 0.25])) / 3
    assert torch.allclose(probs, want.expand(2, 2), atol=1e-6)
    with pytest.raises(ValueError, match="at least two"):
        TeacherEnsemble([Fixed(a)])


def test_bn_statistics_hooks_reach_every_member():
    members = [build_model("cnn", 10, 1).eval() for _ in range(3)]
    ensemble = TeacherEnsemble(members)
    hook = BNStatsHook(ensemble)
    x = torch.randn(4, 1, 8, 8)
    ensemble(x)
    stats = list(hook.stats)
    hook.remove()
    per_member = []
    for m in members:
        one = BNStatsHook(m)
        m(x)
        per_member += one.stats
        one.remove()
    assert len(stats) == len(per_member) > 3  # the bn term sums over every member's layers
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[2], b[2]) for a, b in zip(stats, per_member))


def test_members_from_files_and_auto_seeds_resolve_to_one_ensemble(tmp_path):
    files = []
    for i in range(2):
        torch.manual_seed(i)
        files.append(tmp_path / f"t{i}.pt")
        torch.save(build_model("cnn", 10, 1).state_dict(), files[-1])
    cfg = build_config(method="dfq", sets=[*TINY, f"out={tmp_path}", f"teacher.members=[{files[0]}, cnn={files[1]}]"])
    info = dataset_info(cfg.data)
    t = resolve_teacher(cfg, info)
    assert isinstance(t.model, TeacherEnsemble) and len(t.model.members) == 2 and t.kind == "ensemble"
    for m, f in zip(t.model.members, files):
        want = torch.load(f)
        assert all(torch.equal(m.state_dict()[k], want[k]) for k in want)
    again = resolve_teacher(cfg, info)
    assert again.sha256 == t.sha256  # what a resume checks
    swapped = build_config(method="dfq", sets=[*TINY, f"out={tmp_path}", f"teacher.members=[{files[1]}, {files[0]}]"])
    assert resolve_teacher(swapped, info).sha256 != t.sha256
    for bad, msg in ((f"[{files[0]}]", "needs at least two"), ("[auto:x, auto:1]", "auto:SEED with an integer seed")):
        with pytest.raises(DfkdError, match=msg):
            resolve_teacher(build_config(method="dfq", sets=[*TINY, f"out={tmp_path}", f"teacher.members={bad}"]), info)
    with pytest.raises(DfkdError, match="set one of them"):
        resolve_teacher(build_config(method="dfq", sets=[*TINY, f"out={tmp_path}", f"teacher.checkpoint={files[0]}",
                                                         f"teacher.members=[{files[0]}, {files[1]}]"]), info)


def test_an_ensemble_of_modules_distils_through_the_api(tmp_path):
    torch.manual_seed(0)
    members = [build_model("cnn", 10, 1) for _ in range(2)]
    run = dfkd.distill(members, student="cnn_small", method="dfq", data="digits", out=tmp_path, quiet=True,
                       set={"distill.rounds": 2, "distill.eval_every": 2, "synth.batch_size": 16,
                            "tracking.mode": "disabled", "teacher.combine": "probs"})
    assert run.summary["rounds"] == 2 and math.isfinite(run.summary["student_acc"])
    with pytest.raises(DfkdError, match="all nn.Modules or all weights files"):
        dfkd.distill([members[0], "x.pt"], data="digits", out=tmp_path, quiet=True)
