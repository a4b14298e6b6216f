import math

import pytest
import torch

from dfkd.base.errors import DfkdError
from dfkd.objective import losses
from dfkd.objective.signals import NEEDS, Signals
from dfkd.objective.terms import TERMS, Objective, Param, resolve_params, term


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
    # the adversarial KL has its own temperature: the objective's (the student's KD) does not reach it
    adv_kl, _ = Objective({"adv_kl": 1.0}, temperature=20.0, params={"adv_kl": {"T": 3.0}})(sig)
    assert adv_kl.item() == pytest.approx(-losses.kl_div(sig.s_logits, sig.t_logits, 3.0).item(), rel=1e-6)
    at_1, _ = Objective({"adv_kl": 1.0}, temperature=20.0)(sig)
    assert at_1.item() == pytest.approx(-losses.kl_div(sig.s_logits, sig.t_logits, 1.0).item(), rel=1e-6)


def test_masked_adversarial_kl_keeps_only_agreeing_samples_averaged_over_the_batch():
    """CMI / Fast / NAYER: -(KL_i * [argmax S_i == argmax T_i]).mean() over all N (contrastive.py)."""
    t = torch.tensor([[2.0, 0.0], [2.0, 0.0], [0.0, 2.0]])
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.5]])  # samples 0 and 2 agree, 1 does not
    sig = Signals(x=torch.zeros(3, 1, 2, 2), t_logits=t, s_logits=s)
    masked, _ = Objective({"adv_kl": 1.0}, params={"adv_kl": {"mask": "agree"}})(sig)

    def kl(si, ti):
        p, q = torch.softmax(ti, 0), torch.softmax(si, 0)
        return float((p * (p / q).log()).sum())
    assert masked.item() == pytest.approx(-(kl(s[0], t[0]) + kl(s[2], t[2])) / 3, rel=1e-6)
    mean, _ = Objective({"adv_kl": 1.0}, params={"adv_kl": {"reduction": "mean"}})(sig)
    assert mean.item() == pytest.approx(-(kl(s[0], t[0]) + kl(s[1], t[1]) + kl(s[2], t[2])) / 3 / 2, rel=1e-6)


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


def test_every_term_declares_known_needs_and_a_typo_is_refused_at_registration():
    for name in TERMS:
        assert TERMS.get(name).needs <= set(NEEDS), name
    with pytest.raises(ValueError, match="did you mean 'student'"):
        term("never_registered", "a typo'd signal", "studnet")(lambda s, o, p: s.x.sum())
    assert "never_registered" not in TERMS


def test_a_term_gets_its_own_parameters_with_their_defaults():
    sig = _signals()
    sig.targets = torch.tensor([0, 1, 2, 3])
    default, _ = Objective({"dkd": 1.0}, temperature=4.0)(sig)
    alpha2, _ = Objective({"dkd": 1.0}, temperature=4.0, params={"dkd": {"alpha": 2.0}})(sig)
    from dfkd.objective import kd_losses

    assert default.item() == pytest.approx(kd_losses.dkd(sig.s_logits, sig.t_logits, sig.targets, 1.0, 8.0, 4.0).item())
    assert alpha2.item() == pytest.approx(kd_losses.dkd(sig.s_logits, sig.t_logits, sig.targets, 2.0, 8.0, 4.0).item())
    assert alpha2.item() != pytest.approx(default.item())
    assert Objective({"dkd": 1.0}, params={"dkd": {"alpha": 2.0}}).params == {"dkd": {"alpha": 2.0, "beta": 8.0}}


def test_term_parameters_are_checked_like_config_keys():
    assert resolve_params({"cmi": {"tau": "0.2"}}) == {"cmi": {"tau": 0.2, "bank": 40960, "negatives": 4096,
                                                              "dim": 256, "hidden": 0, "lr": 0.0,
                                                              "layers": "bn"}}  # coerced, defaults filled in
    with pytest.raises(DfkdError, match=r"objective\.params\.adv_kl\.mask.*'agre'.*did you mean 'agree'"):
        resolve_params({"adv_kl": {"mask": "agre"}})
    with pytest.raises(DfkdError, match=r"objective\.params\.cmi\.tua'.*did you mean 'tau'"):
        resolve_params({"cmi": {"tua": 0.2}})
    with pytest.raises(DfkdError, match="unknown loss term 'cmii'.*did you mean 'cmi'"):
        resolve_params({"cmii": {"tau": 0.2}})
    with pytest.raises(DfkdError, match="the oh term has no parameters"):
        resolve_params({"oh": {"t": 1}})
    with pytest.raises(DfkdError, match=r"objective\.params\.cmi\.tau.*>= 1e-06"):
        resolve_params({"cmi": {"tau": 0.0}})
    with pytest.raises(DfkdError, match=r"objective\.params\.bn\.all_reduce.*true or false"):
        resolve_params({"bn": {"all_reduce": 3}})
    assert isinstance(Param(1.0, "x"), Param)


def test_a_recipe_config_holds_its_terms_parameters_and_an_old_key_says_where_it_moved():
    from dfkd.methods.configure import build_config

    cfg = build_config(method="fast")
    assert cfg.objective.params["bn"] == {"first": 1.0, "momentum": 0.9, "all_reduce": False}
    assert cfg.objective.params["adv_kl"] == {"T": 1.0, "mask": "agree", "reduction": "batchmean"}
    assert "cmi" not in cfg.objective.params  # only the weighted terms' parameters are filled in
    cfg = build_config(method="cmi", sets=["objective.params.cmi.tau=0.3"])
    assert cfg.objective.params["cmi"]["tau"] == 0.3
    with pytest.raises(DfkdError, match="'objective.contrast_tau' is now objective.params.cmi.tau"):
        build_config(method="cmi", sets=["objective.contrast_tau=0.3"])
