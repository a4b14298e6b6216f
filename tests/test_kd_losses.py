"""The data-driven KD losses against hand computations."""
import math

import pytest
import torch

from dfkd.objective.kd_losses import dkd, hint_mse, label_ce, rkd_angle, rkd_distance


def _huber(a, b):
    d = abs(a - b)
    return 0.5 * d * d if d < 1 else d - 0.5


def test_rkd_distance_matches_a_hand_computation_and_ignores_scale():
    t = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    s = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 1.0]])
    # teacher distances 1, 1, √2 (mean (2+√2)/3); student 2, 1, √5 (mean (3+√5)/3)
    mt, ms = (2 + math.sqrt(2)) / 3, (3 + math.sqrt(5)) / 3
    pairs = [(1 / mt, 2 / ms), (1 / mt, 1 / ms), (math.sqrt(2) / mt, math.sqrt(5) / ms)]
    expected = sum(_huber(b, a) for a, b in pairs) / 3  # each distinct pair appears twice: same mean
    assert rkd_distance(s, t).item() == pytest.approx(expected, rel=1e-5)
    assert rkd_distance(3 * t, t).item() == pytest.approx(0.0, abs=1e-6)


def test_rkd_angle_is_zero_for_a_scaled_rotated_copy_and_matches_a_right_angle_case():
    torch.manual_seed(0)
    t = torch.randn(5, 2)
    rot = torch.tensor([[0.0, -1.0], [1.0, 0.0]])
    assert rkd_angle(2.5 * t @ rot, t).item() == pytest.approx(0.0, abs=1e-6)
    # triangle with a right angle at point 0 (teacher) vs a 60° angle there (student, equilateral)
    t3 = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    s3 = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.5, math.sqrt(3) / 2]])
    # cosines at each vertex: teacher (0, √2/2, √2/2), student (1/2, 1/2, 1/2); each appears twice among
    # the 27 (i, j, k) entries (j ≠ k ≠ i); entries with j = k are 1 for both, with i = j or i = k 0 for both
    diffs = [0.5, 0.5 - math.sqrt(2) / 2, 0.5 - math.sqrt(2) / 2]
    expected = 2 * sum(0.5 * d * d for d in diffs) / 27
    assert rkd_angle(s3, t3).item() == pytest.approx(expected, rel=1e-5)


def test_dkd_against_its_definition_on_three_classes():
    s = torch.tensor([[2.0, 0.5, -1.0]])
    t = torch.tensor([[3.0, -0.5, 0.0]])
    y = torch.tensor([0])
    T = 2.0

    def softmax(v):
        e = [math.exp(x / T) for x in v]
        return [x / sum(e) for x in e]

    ps, pt = softmax(s[0].tolist()), softmax(t[0].tolist())
    tckd = sum(b * math.log(b / a) for a, b in [(ps[0], pt[0]), (1 - ps[0], 1 - pt[0])]) * T * T
    qs = [ps[1] / (1 - ps[0]), ps[2] / (1 - ps[0])]
    qt = [pt[1] / (1 - pt[0]), pt[2] / (1 - pt[0])]
    nckd = sum(b * math.log(b / a) for a, b in zip(qs, qt)) * T * T
    assert dkd(s, t, y, alpha=1.0, beta=8.0, temperature=T).item() == pytest.approx(tckd + 8 * nckd, rel=1e-5)
    assert dkd(t, t, y).item() == pytest.approx(0.0, abs=1e-6)


def test_dkd_gradient_pulls_the_student_toward_the_teacher():
    s = torch.tensor([[0.0, 0.0, 0.0]], requires_grad=True)
    t = torch.tensor([[4.0, 1.0, 0.0]])
    dkd(s, t, torch.tensor([0])).backward()
    assert s.grad[0, 0] < 0 and s.grad[0, 1] < s.grad[0, 2]  # raise the target, rank class 1 above 2


def test_hint_and_label_losses():
    a, b = torch.ones(2, 3, 4, 4), torch.zeros(2, 3, 4, 4)
    assert hint_mse(a, b).item() == 1.0
    assert label_ce(torch.tensor([[0.0, 0.0]]), torch.tensor([1])).item() == pytest.approx(math.log(2))
