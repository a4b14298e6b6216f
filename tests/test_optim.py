"""Learning-rate schedules: the cosine ends at min_lr as PyTorch's CosineAnnealingLR(eta_min) does,
and a schedule stepped after a skipped first update (the fp16 scaler's or the guard's) says nothing."""
import math
import warnings

import pytest
import torch

from dfkd.config.fields import OptimConfig
from dfkd.objective.optim import make_optimizer


def _lrs(opt, sched, n):
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        sched.step()
    return out + [opt.param_groups[0]["lr"]]


@pytest.mark.parametrize("min_lr", [0.0, 2e-4])
def test_cosine_ends_at_min_lr_like_cosine_annealing(min_lr):
    opt, sched = make_optimizer([torch.nn.Parameter(torch.zeros(1))],
                                OptimConfig(name="sgd", lr=0.1, schedule="cosine", min_lr=min_lr), 10)
    ours = _lrs(opt, sched, 10)
    ref_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    ref = torch.optim.lr_scheduler.CosineAnnealingLR(ref_opt, 10, eta_min=min_lr)
    theirs = []
    for _ in range(10):
        theirs.append(ref_opt.param_groups[0]["lr"])
        ref_opt.step()
        ref.step()
    theirs.append(ref_opt.param_groups[0]["lr"])
    assert ours == pytest.approx(theirs, abs=1e-15)
    assert ours[5] == pytest.approx(min_lr + (0.1 - min_lr) / 2) and ours[-1] == pytest.approx(min_lr)


def test_a_skipped_first_update_still_advances_the_schedule_without_a_warning():
    p = torch.nn.Parameter(torch.zeros(1))
    opt, sched = make_optimizer([p], OptimConfig(name="sgd", lr=0.1, schedule="cosine"), 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sched.step()  # the first update was skipped: no optimizer.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi / 4)))


def test_a_horizon_runs_the_first_part_of_a_longer_cosine():
    """horizon=5 over 40 updates: the first 40 values of CosineAnnealingLR(T_max=200, eta_min), as the
    authors' fixed 200-epoch schedule runs in a 40-epoch side-by-side run; the rate ends far from min_lr."""
    opt, sched = make_optimizer([torch.nn.Parameter(torch.zeros(1))],
                                OptimConfig(name="sgd", lr=0.2, schedule="cosine", min_lr=2e-4, horizon=5.0), 40)
    ours = _lrs(opt, sched, 40)
    ref_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.2)
    ref = torch.optim.lr_scheduler.CosineAnnealingLR(ref_opt, 200, eta_min=2e-4)
    theirs = []
    for _ in range(41):
        theirs.append(ref_opt.param_groups[0]["lr"])
        ref_opt.step()
        ref.step()
    assert ours == pytest.approx(theirs, abs=1e-15)
    assert ours[-1] == pytest.approx(2e-4 + (0.2 - 2e-4) * 0.5 * (1 + math.cos(math.pi * 40 / 200)))
    assert ours[-1] > 0.18
