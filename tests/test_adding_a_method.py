"""docs/adding-a-method.md, run exactly as printed: its code blocks register a term with a parameter,
a schedule and a recipe, then a term with a trainable component and its recipe; the new methods run
end to end through the CLI's config layering."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from dfkd.base.errors import DfkdError
from dfkd.methods.configure import build_config
from dfkd.methods.registry import METHODS
from dfkd.objective.signals import Signals
from dfkd.objective.terms import COMPONENTS, TERMS, Objective
from dfkd.run.runner import distill
from dfkd.synthesis.schedule import SCHEDULES

DOC = Path(__file__).resolve().parents[1] / "docs" / "adding-a-method.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


@pytest.fixture
def walkthrough(monkeypatch):
    """The page's code, registered into copies of the registries (restored after the test)."""
    for registry in (TERMS, COMPONENTS, SCHEDULES, METHODS):
        monkeypatch.setattr(registry, "_items", dict(registry._items))
    ns: dict = {}
    for block in _blocks():
        exec(compile(block, str(DOC), "exec"), ns)
    return ns


def test_the_walkthrough_is_three_blocks_of_at_most_60_lines_then_two_for_the_stateful_term():
    blocks = _blocks()
    assert len(blocks) == 5  # term, schedule, recipe: one file each; then the stateful term, its recipe
    assert sum(1 for b in blocks[:3] for line in b.splitlines() if line.strip()) <= 60
    assert sum(1 for b in blocks[3:] for line in b.splitlines() if line.strip()) <= 45


def test_the_new_term_computes_its_hinge_with_its_parameter(walkthrough):
    t = torch.tensor([[3.0, 1.0, 0.0], [0.0, 0.0, 5.0]])  # margins 2 and 5
    sig = Signals(x=torch.zeros(2, 1, 4, 4), t_logits=t)
    default, _ = Objective({"margin": 1.0})(sig)
    assert default.item() == pytest.approx(0.0)  # gap 2: relu(2 - 2), relu(2 - 5)
    wider, _ = Objective({"margin": 1.0}, params={"margin": {"gap": 3.0}})(sig)
    assert wider.item() == pytest.approx(0.5)  # (relu(3 - 2) + relu(3 - 5)) / 2


def test_the_new_method_runs_end_to_end_and_restarts_its_generator(walkthrough, monkeypatch, tmp_path):
    restarts = []
    make_optimizer = walkthrough["make_optimizer"]

    def spy(*args, **kw):
        restarts.append(1)
        return make_optimizer(*args, **kw)

    monkeypatch.setitem(walkthrough, "make_optimizer", spy)
    monkeypatch.setattr(walkthrough["RestartSynthesizer"], "EVERY", 2)
    cfg = build_config(method="margin", sets=[
        "teacher.checkpoint=none", "teacher.arch=cnn", "student.arch=cnn_small", "distill.rounds=5",
        "distill.eval_every=5", "distill.kd_steps=2", "tracking.log_every=1", "synth.batch_size=16",
        "source.width=16", "tracking.mode=disabled", "device=cpu", f"out={tmp_path}", "run_name=margin"])
    assert cfg.synth.schedule == "restart" and cfg.objective.params["margin"] == {"gap": 3.0}
    assert cfg.synth.batch_size == 16 and cfg.preset[0] == "preset margin/digits"  # the user's value wins
    run_dir, summary = distill(cfg, quiet=True)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert all("gen/margin" in r and r["gen/margin"] >= 0 for r in rows if "step" in r)
    assert len(restarts) == 2  # rounds 3 and 5 start from a re-initialised generator
    assert 0 <= summary["student_acc"] <= 100
    with pytest.raises(DfkdError, match=r"objective\.params\.margin\.gp'.*did you mean 'gap'"):
        build_config(method="margin", sets=["objective.params.margin.gp=1"])


def test_the_stateful_term_trains_and_checkpoints_its_component_with_the_student(walkthrough, digits_teacher,
                                                                                tmp_path):
    from dfkd.io.checkpoint import read_run_checkpoint
    from dfkd.models import build_model

    cfg = build_config(method="adapted", sets=[f"teacher.checkpoint={digits_teacher}", "distill.rounds=60",
                                               "distill.eval_every=30", "tracking.mode=disabled", "device=cpu",
                                               f"out={tmp_path}"])
    run_dir, summary = distill(cfg, quiet=True)
    ckpt = read_run_checkpoint(run_dir / "checkpoint.pt")
    w = ckpt["components"]["logit_adapter"]["weight"]
    assert w.shape == (10, 10) and not torch.equal(w, torch.eye(10))  # trained, from the identity
    student = sum(1 for _ in build_model(cfg.student.arch, 10, 1).parameters())
    assert sum(len(g["params"]) for g in ckpt["optimizer"]["param_groups"]) == student + 1  # with the student
    assert summary["student_acc"] > 30.0  # learns through the map: 47.8% after 60 batches (chance: 10%)
