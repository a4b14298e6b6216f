"""Plumbing of the speed options on the CPU: mixed precision, channels-last, torch.compile."""
import pytest
import torch

from dfkd.base.runtime import Precision
from dfkd.io.checkpoint import read_model
from dfkd.methods.configure import build_config
from dfkd.run.runner import distill


def _run(teacher, tmp_path, method, *sets):
    cfg = build_config(method=method, sets=[
        f"teacher.checkpoint={teacher}", f"out={tmp_path}", "distill.rounds=3", "distill.eval_every=3",
        "synth.batch_size=16", "source.width=16", "tracking.mode=disabled", "device=cpu", *sets])
    return distill(cfg, quiet=True)


@pytest.mark.parametrize("method, sets", [
    ("dfq", ["perf.amp=bf16"]),
    ("fast2", ["perf.amp=fp16", "synth.warmup=1", "pool.capacity=64"]),
    ("zskt", ["perf.channels_last=true"]),
    ("dfq", ["perf.compile=true", "perf.compile_backend=eager"]),
])
def test_speed_options_run_end_to_end_and_keep_weights_finite_fp32(digits_teacher, tmp_path, method, sets):
    run_dir, summary = _run(digits_teacher, tmp_path, method, *sets)
    assert 0 <= summary["student_acc"] <= 100 and summary["skipped_steps"] == 0
    state = read_model(run_dir / "student.pt")["state_dict"]
    assert all(t.dtype == torch.float32 and torch.isfinite(t).all() for t in state.values() if t.is_floating_point())
    assert not any(k.startswith("_orig_mod") for k in state)  # compiled forward, plain weights


def test_autocast_runs_matmuls_in_bf16_and_the_scaler_only_for_fp16():
    lin = torch.nn.Linear(4, 4)
    with Precision("bf16", "cpu").autocast():
        assert lin(torch.randn(2, 4)).dtype == torch.bfloat16
    with Precision("off", "cpu").autocast():
        assert lin(torch.randn(2, 4)).dtype == torch.float32
    assert Precision("fp16", "cpu").scaler().is_enabled() and not Precision("bf16", "cpu").scaler().is_enabled()
