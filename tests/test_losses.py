"""Each loss against values computed by hand (formulas written out, not via the library)."""
import math

import pytest
import torch

from dfkd.objective import losses


def test_kl_div_at_t1_matches_hand_value():
    s = torch.tensor([[0.0, 0.0]])
    t = torch.tensor([[math.log(3.0), 0.0]])  # p_T = (3/4, 1/4), p_S = (1/2, 1/2)
    expected = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert losses.kl_div(s, t, 1.0).item() == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(0.1308121, abs=1e-6)


def test_kl_div_temperature_scales_logits_and_multiplies_by_t_squared():
    s = torch.tensor([[0.0, 0.0]])
    t = torch.tensor([[math.log(3.0), 0.0]])
    a = math.sqrt(3.0)  # exp(ln3 / 2)
    p = (a / (a + 1), 1 / (a + 1))
    expected = 4.0 * (p[0] * math.log(p[0] / 0.5) + p[1] * math.log(p[1] / 0.5))
    assert losses.kl_div(s, t, 2.0).item() == pytest.approx(expected, abs=1e-6)


def test_kl_div_is_mean_over_batch_and_zero_for_equal_logits():
    t = torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0]])
    s = torch.zeros(2, 2)
    one = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    assert losses.kl_div(s, t).item() == pytest.approx(one / 2, abs=1e-6)
    assert losses.kl_div(t, t).item() == pytest.approx(0.0, abs=1e-7)


def test_l1_logits_mean_over_all_entries():
    s = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    t = torch.tensor([[0.0, 0.0], [0.0, 8.0]])
    assert losses.l1_logits(s, t).item() == pytest.approx((1 + 2 + 3 + 4) / 4)


def test_one_hot_ce_uses_teacher_argmax():
    t = torch.tensor([[math.log(3.0), 0.0], [0.0, math.log(4.0)]])
    expected = (-math.log(0.75) - math.log(0.8)) / 2
    assert losses.one_hot_ce(t).item() == pytest.approx(expected, abs=1e-6)


def test_class_balance_is_negative_entropy_of_mean_prediction():
    balanced = torch.tensor([[50.0, -50.0], [-50.0, 50.0]])  # mean prediction (1/2, 1/2)
    assert losses.class_balance(balanced).item() == pytest.approx(math.log(0.5), abs=1e-6)
    collapsed = torch.tensor([[50.0, -50.0], [50.0, -50.0]])  # all on class 0: entropy 0
    assert losses.class_balance(collapsed).item() == pytest.approx(0.0, abs=1e-6)
    mixed = torch.tensor([[math.log(3.0), 0.0]])
    expected = 0.75 * math.log(0.75) + 0.25 * math.log(0.25)
    assert losses.class_balance(mixed).item() == pytest.approx(expected, abs=1e-6)


def test_activation_norm_is_negative_mean_abs():
    f = torch.tensor([[1.0, -2.0], [3.0, -4.0]])
    assert losses.activation_norm(f).item() == pytest.approx(-2.5)


def test_bn_stat_distance_sums_l2_norms_over_layers():
    layer1 = (torch.tensor([1.0, 2.0]), torch.tensor([1.0, 1.0]), torch.zeros(2), torch.tensor([1.0, 2.0]))
    layer2 = (torch.tensor([3.0]), torch.tensor([5.0]), torch.tensor([0.0]), torch.tensor([1.0]))
    expected = (math.sqrt(5.0) + 1.0) + (3.0 + 4.0)
    assert losses.bn_stat_distance([layer1, layer2]).item() == pytest.approx(expected, abs=1e-6)
    with pytest.raises(ValueError):
        losses.bn_stat_distance([])


def test_kl_gradient_pushes_student_toward_teacher():
    s = torch.zeros(1, 3, requires_grad=True)
    t = torch.tensor([[2.0, 0.0, 0.0]])
    losses.kl_div(s, t).backward()
    assert s.grad[0, 0] < 0 < s.grad[0, 1]  # descent raises the teacher's top class


def test_attention_transfer_hand_values():
    s = torch.tensor([[[[1.0, 0.0]]]])  # (1, 1, 1, 2): attention (1, 0)
    t = torch.tensor([[[[0.0, 2.0]]]])  # attention (0, 4) -> normalised (0, 1)
    assert losses.attention_transfer([s], [t]).item() == pytest.approx(1.0)
    s2 = torch.ones(1, 2, 1, 2)  # channel mean of squares (1, 1) -> (1/√2, 1/√2)
    t2 = torch.tensor([[[[3.0, 0.0]]]])  # (9, 0) -> (1, 0)
    expected = ((1 / math.sqrt(2) - 1) ** 2 + 0.5) / 2  # = 1 − 1/√2
    assert losses.attention_transfer([s2], [t2]).item() == pytest.approx(expected, abs=1e-6)
    assert losses.attention_transfer([s, s2], [t, t2]).item() == pytest.approx(1.0 + expected, abs=1e-6)
    assert losses.attention_transfer([t], [t * 5]).item() == pytest.approx(0.0, abs=1e-7)  # scale-free
    with pytest.raises(ValueError):
        losses.attention_transfer([s], [])


def test_js_div_hand_value_and_bounds():
    s = torch.tensor([[0.0, 0.0]])
    t = torch.tensor([[math.log(3.0), 0.0]])  # p_S = (1/2, 1/2), p_T = (3/4, 1/4), m = (5/8, 3/8)
    kl_s = 0.5 * math.log(0.5 / 0.625) + 0.5 * math.log(0.5 / 0.375)
    kl_t = 0.75 * math.log(0.75 / 0.625) + 0.25 * math.log(0.25 / 0.375)
    assert losses.js_div(s, t).item() == pytest.approx(0.5 * (kl_s + kl_t), abs=1e-6)
    assert losses.js_div(s, t).item() == pytest.approx(losses.js_div(t, s).item(), abs=1e-7)  # symmetric
    far = losses.js_div(torch.tensor([[60.0, -60.0]]), torch.tensor([[-60.0, 60.0]])).item()
    assert far == pytest.approx(math.log(2), abs=1e-5)


def test_total_variation_and_l2_prior_hand_values():
    x = torch.tensor([[[[0.0, 1.0], [3.0, 7.0]]]])  # vertical diffs (3, 6), horizontal (1, 4)
    assert losses.total_variation(x, 1).item() == pytest.approx(4.5 + 2.5)
    assert losses.total_variation(x, 2).item() == pytest.approx(22.5 + 8.5)
    assert losses.l2_prior(x).item() == pytest.approx((0 + 1 + 9 + 49) / 4)


def test_target_ce_and_first_bn_layer_weight():
    t = torch.tensor([[math.log(3.0), 0.0]])
    assert losses.target_ce(t, torch.tensor([1])).item() == pytest.approx(-math.log(0.25), abs=1e-6)
    layer1 = (torch.tensor([1.0, 2.0]), torch.tensor([1.0, 1.0]), torch.zeros(2), torch.tensor([1.0, 2.0]))
    layer2 = (torch.tensor([3.0]), torch.tensor([5.0]), torch.tensor([0.0]), torch.tensor([1.0]))
    assert losses.bn_stat_distance([layer1, layer2], first_weight=10.0).item() == \
        pytest.approx(10 * (math.sqrt(5.0) + 1.0) + 7.0, abs=1e-5)


def test_cmi_contrast_hand_value_and_split_average():
    # unit vectors: local anchor 0 matches global key 0 and is orthogonal to key 1
    anchors = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    keys = torch.tensor([[2.0, 0.0], [0.0, 3.0], [0.0, -1.0]])  # normalised to the anchors
    tau = 0.5
    # row logits / tau: row 0 (1, 0, 0), row 1 (0, 1, -1), row 2 (0, -1, 1)
    row0 = -math.log(math.exp(2) / (math.exp(2) + 1 + 1))
    row1 = -math.log(math.exp(2) / (1 + math.exp(2) + math.exp(-2)))
    row2 = row1
    # two batch rows, one bank row: mean of the batch's rows + mean of the bank's rows
    assert losses.cmi_contrast(anchors, keys, 2, tau).item() == pytest.approx((row0 + row1) / 2 + row2, abs=1e-6)
    # no bank: a plain mean
    no_bank = -math.log(math.exp(2) / (math.exp(2) + 1))
    assert losses.cmi_contrast(anchors[:2], keys[:2], 2, tau).item() == pytest.approx(no_bank, abs=1e-6)


def test_cmi_contrast_trains_only_the_anchors():
    a = torch.randn(4, 3, requires_grad=True)
    k = torch.randn(4, 3, requires_grad=True)
    losses.cmi_contrast(a, k, 2).backward()
    assert a.grad.abs().sum() > 0 and k.grad is None  # the keys (global views) are detached
