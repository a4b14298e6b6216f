import math

import pytest
import torch

from dfkd import losses
from dfkd.errors import DfkdError
from dfkd.objective import TERMS, Objective, Signals


def _signals():
    torch.manual_seed(0)
    return Signals(x=torch.randn(4, 1, 8, 8), t_logits=torch.randn(4, 10), s_logits=torch.randn(4, 10),
                   t_features=torch.randn(4, 16))


def test_weighted_sum_and_parts():
    sig = _signals()
    obj = Objective({"kd_l1": 2.0, "oh": 0.5, "act": 0.0}, temperature=1.0)
    total, parts = obj(sig)
    l1 = losses.l1_logits(sig.s_logits, sig.t_logits)
    oh = losses.one_hot_ce(sig.t_logits)
    assert total.item() == pytest.approx(2.0 * l1.item() + 0.5 * oh.item(), rel=1e-6)
    assert set(parts) == {"kd_l1", "oh"}  # zero-weighted terms are dropped
    assert obj.needs == {"student"}


def test_adversarial_terms_are_negated_disagreements():
    sig = _signals()
    adv_l1, _ = Objective({"adv_l1": 1.0})(sig)
    kd_l1, _ = Objective({"kd_l1": 1.0})(sig)
    assert adv_l1.item() == pytest.approx(-kd_l1.item())
    adv_kl, _ = Objective({"adv_kl": 1.0}, temperature=3.0)(sig)
    assert adv_kl.item() == pytest.approx(-losses.kl_div(sig.s_logits, sig.t_logits, 3.0).item(), rel=1e-6)


def test_dafl_weights_equal_log10_entropy_of_the_paper():
    sig = _signals()
    ours, _ = Objective({"ie": 5.0 / math.log(10)})(sig)
    p = torch.softmax(sig.t_logits, 1).mean(0)
    paper = 5.0 * (p * torch.log10(p)).sum()
    assert ours.item() == pytest.approx(paper.item(), rel=1e-5)


def test_unknown_term_and_empty_objective_are_user_errors():
    with pytest.raises(DfkdError, match="did you mean 'kd_kl'"):
        Objective({"kd_kll": 1.0})
    with pytest.raises(DfkdError, match="no term with a non-zero weight"):
        Objective({"kd_kl": 0.0}, owner="student")


def test_every_term_declares_known_needs():
    for name in TERMS:
        known = {"student", "bn", "features", "blocks", "targets", "contrast", "s_features", "clean", "attack"}
        assert TERMS.get(name).needs <= known, name
