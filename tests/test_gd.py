"""Generalized distillation (Lopez-Paz et al. 2016): the imitation loss and the recipe's views."""
import math

import pytest
import torch

from dfkd.methods.configure import build_config
from dfkd.objective.losses import teacher_tempered_ce
from dfkd.objective.terms import Objective


def test_the_imitation_loss_softens_the_teacher_only():
    # T = 2 and teacher logits (2 log 3, 0): p_T = (3/4, 1/4); the student's (log 3, 0): p_S = (3/4, 1/4)
    t = torch.tensor([[2 * math.log(3.0), 0.0]])
    s = torch.tensor([[math.log(3.0), 0.0]])
    entropy = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert teacher_tempered_ce(s, t, 2.0).item() == pytest.approx(entropy, rel=1e-6)
    # a uniform student pays log 2 whatever the teacher says
    assert teacher_tempered_ce(torch.zeros(1, 2), t, 2.0).item() == pytest.approx(math.log(2.0))
    # the gradient pulls the student's logit of the teacher's favourite class up
    s = torch.zeros(1, 2, requires_grad=True)
    teacher_tempered_ce(s, t, 2.0).backward()
    assert s.grad[0, 0] < 0 < s.grad[0, 1]


def test_the_gd_recipe_weighs_labels_and_imitation_and_restricts_the_student_view():
    cfg = build_config(method="gd", sets=["data.name=digits"])
    assert cfg.objective.student == {"label_ce": 0.5, "kd_gd": 0.5} and cfg.objective.temperature == 2.0
    assert (cfg.view.teacher, cfg.view.student) == ("identity", "lowres") and cfg.view.lowres_factor == 4
    obj = Objective(cfg.objective.student, cfg.objective.temperature)
    assert obj.needs == {"student", "targets"}


def test_train_per_class_keeps_that_many_of_each_class_drawn_by_the_seed():
    from torch.utils.data import TensorDataset

    from dfkd.io.data import per_class_subset

    labels = torch.tensor([0] * 7 + [1] * 3 + [2] * 5)
    ds = TensorDataset(torch.arange(15.0)[:, None], labels)
    sub = per_class_subset(ds, 4, seed=0)
    got = [int(ds[i][1]) for i in sub.indices]
    assert sorted(got) == [0] * 4 + [1] * 3 + [2] * 4  # a class with fewer keeps them all
    assert sub.indices == per_class_subset(ds, 4, seed=0).indices  # the seed fixes the draw
    assert any(per_class_subset(ds, 4, seed=s).indices != sub.indices for s in range(1, 5))
