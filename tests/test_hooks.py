import pytest
import torch
from torch import nn

from dfkd.models import build_model
from dfkd.objective.hooks import BNStatsHook, FeatureHook, classifier_layer


def test_bn_hook_matches_var_mean_of_each_bn_input():
    torch.manual_seed(0)
    model = build_model("cnn_small", 10, 1).eval()
    inputs = []
    handles = [m.register_forward_pre_hook(lambda m, a: inputs.append(a[0].detach().clone()))
               for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    hook = BNStatsHook(model)
    model(torch.randn(8, 1, 16, 16))
    assert len(hook.stats) == len(inputs) == 4
    for (mean, var, r_mean, r_var), x, bn in zip(hook.stats, inputs, hook.layers):
        ref_var, ref_mean = torch.var_mean(x, dim=(0, 2, 3), unbiased=False)
        torch.testing.assert_close(mean, ref_mean)
        torch.testing.assert_close(var, ref_var)
        assert r_mean is bn.running_mean and r_var is bn.running_var
    for h in handles:
        h.remove()


def test_bn_hook_works_on_batchnorm1d_and_can_be_disabled_and_removed():
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))
    hook = BNStatsHook(model)
    x = torch.randn(16, 4)
    model(x)
    h = model[0](x)
    torch.testing.assert_close(hook.stats[0][0], h.mean(0))
    torch.testing.assert_close(hook.stats[0][1], h.var(0, unbiased=False))
    hook.clear()
    hook.enabled = False
    model(x)
    assert hook.stats == []
    hook.enabled = True
    hook.remove()
    model(x)
    assert hook.stats == []


def test_bn_stats_carry_gradient_to_the_input():
    model = build_model("cnn_small", 10, 1).eval()
    hook = BNStatsHook(model)
    x = torch.randn(4, 1, 16, 16, requires_grad=True)
    model(x)
    sum(m.sum() + v.sum() for m, v, _, _ in hook.stats).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_feature_hook_takes_classifier_input():
    model = build_model("cnn", 10, 1).eval()
    hook = FeatureHook(classifier_layer(model), mode="input")
    x = torch.randn(3, 1, 16, 16)
    logits = model(x)
    assert hook.value.shape == (3, 64)
    torch.testing.assert_close(model.fc(hook.value), logits)


def test_stage_ends_are_found_by_resolution_on_any_model():
    from dfkd.objective.hooks import match_stages, stage_outputs

    assert stage_outputs(build_model("resnet20", 10, 3), (2, 3, 32, 32)) == \
        {32: "stages.0", 16: "stages.1", 8: "stages"}
    # pre-activation blocks re-use their ReLU on the previous stage's output: still the stage ends
    assert stage_outputs(build_model("wrn16_1", 10, 3), (2, 3, 32, 32)) == \
        {32: "stages.0", 16: "stages.1", 8: "stages"}
    assert stage_outputs(build_model("cnn", 10, 1), (2, 1, 16, 16)) == {16: "features.5", 8: "features.12"}
    t, s = match_stages(build_model("resnet18", 10, 3), build_model("resnet8", 10, 3), (2, 3, 32, 32),
                        (2, 3, 32, 32))
    assert t == ["stages.0", "stages.1", "stages.2"] and s == ["stages.0", "stages.1", "stages"]


def test_bn_momentum_blends_with_the_running_statistic_that_moves_once_per_commit():
    """Fast's momentum (fast_meta.py / hooks.py `update_mmt`): within a round every pass blends with a
    fixed running statistic; commit() moves it by the round's last batch."""
    model = nn.Sequential(nn.BatchNorm1d(1))
    hook = BNStatsHook(model, momentum=0.75)
    model(torch.tensor([[0.0], [2.0]]))  # mean 1, var 1: no running statistic yet, these alone
    assert hook.stats[0][0].item() == pytest.approx(1.0) and hook.stats[0][1].item() == pytest.approx(1.0)
    hook.clear()
    model(torch.tensor([[4.0], [8.0]]))  # mean 6, var 4: still the first round, nothing blended
    assert hook.stats[0][0].item() == pytest.approx(6.0) and hook.stats[0][1].item() == pytest.approx(4.0)
    hook.commit()  # the running statistic is the round's last batch: (6, 4)
    hook.clear()
    model(torch.tensor([[0.0], [2.0]]))  # mean 1, var 1, blended with (6, 4)
    assert hook.stats[0][0].item() == pytest.approx(0.75 * 6 + 0.25 * 1)
    assert hook.stats[0][1].item() == pytest.approx(0.75 * 4 + 0.25 * 1)
    hook.commit()  # moves by the last batch: 0.75 * 6 + 0.25 * 1
    assert hook.state_dict()[0][0].item() == pytest.approx(0.75 * 6 + 0.25 * 1)
    hook.clear()
    hook.reset_momentum()
    model(torch.tensor([[4.0], [8.0]]))
    assert hook.stats[0][0].item() == pytest.approx(6.0)


def test_instance_means_hook_concatenates_per_sample_bn_input_means():
    from dfkd.objective.hooks import InstanceMeansHook

    model = build_model("cnn_small", 10, 1).eval()
    inputs = []
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.register_forward_pre_hook(lambda m, a: inputs.append(a[0].detach()))
    hook = InstanceMeansHook(model)
    hook.enabled = True
    model(torch.randn(3, 1, 16, 16))
    value = hook.take()
    assert value.shape == (3, 8 + 8 + 16 + 16)
    torch.testing.assert_close(value, torch.cat([x.mean(dim=(2, 3)) for x in inputs], dim=1))


def test_bn_momentum_state_round_trips_so_a_resumed_run_blends_the_same():
    from dfkd.models import build_model

    torch.manual_seed(0)
    model = build_model("cnn_small", 10, 1).eval()
    a = BNStatsHook(model, momentum=0.9)
    model(torch.randn(8, 1, 16, 16))
    a.commit()
    state = a.state_dict()
    assert len(state) == len(a.layers) and all(s is not None for s in state)
    a.remove()
    resumed, plain = BNStatsHook(model, momentum=0.9), BNStatsHook(model)  # plain: this batch alone
    resumed.load_state_dict(state)
    model(torch.randn(8, 1, 16, 16))
    for (m, v, _, _), (bm, bv, _, _), (pm, pv) in zip(resumed.stats, plain.stats, state):
        assert torch.allclose(m, 0.9 * pm + 0.1 * bm) and torch.allclose(v, 0.9 * pv + 0.1 * bv)


def test_global_moments_of_equal_shards_equal_the_moments_of_the_whole_batch():
    """What the all-reduce in BNStatsHook computes, checked without a process group: mean of means,
    mean of (var + mean²) − mean²."""
    torch.manual_seed(0)
    x = torch.randn(8, 3)
    shards = x.chunk(2)
    var_means = [torch.var_mean(s, dim=0, correction=0) for s in shards]
    g_mean = sum(m for _, m in var_means) / 2
    g_var = sum(v + m * m for v, m in var_means) / 2 - g_mean * g_mean
    var, mean = torch.var_mean(x, dim=0, correction=0)
    assert torch.allclose(g_mean, mean, atol=1e-6) and torch.allclose(g_var, var, atol=1e-6)


def test_instance_means_hook_reads_named_modules_inputs():
    """CMI's ResNet-34 embedding: the inputs of named modules instead of every BN layer."""
    from dfkd.objective.hooks import InstanceMeansHook

    model = build_model("resnet8", 10, 3).eval()
    hook = InstanceMeansHook(model, ["stages.1", "stages.2"])
    hook.enabled = True
    model(torch.randn(2, 3, 32, 32))
    assert hook.take().shape == (2, 16 + 32)  # the inputs of the 2nd and 3rd stages
    with pytest.raises(KeyError):
        InstanceMeansHook(model, ["nope"])
