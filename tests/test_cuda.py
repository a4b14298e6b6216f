"""The speed options and the loop on a CUDA device: skipped where there is none (CI has none).

On a GPU machine: `python -m pytest tests/test_cuda.py`. Each run is short; what they check is that
mixed precision, channels-last and an inductor-compiled student train as well on the GPU as in fp32
on the CPU (same accuracy floor), with fp32 weights and no skipped steps.
"""
import pytest
import torch

from dfkd.io.checkpoint import read_model
from dfkd.methods.configure import build_config
from dfkd.run.runner import distill

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _run(teacher, tmp_path, method, *sets):
    cfg = build_config(method=method, sets=[
        f"teacher.checkpoint={teacher}", f"out={tmp_path}", "tracking.mode=disabled", "device=cuda", *sets])
    return distill(cfg, quiet=True)


@pytest.mark.parametrize("sets", [
    [], ["perf.amp=bf16"], ["perf.amp=fp16"], ["perf.channels_last=true", "perf.amp=bf16"],
    ["perf.compile=true"],
])
def test_kd_on_cuda_learns_as_on_the_cpu_with_every_speed_option(digits_teacher, tmp_path, sets):
    run_dir, summary = _run(digits_teacher, tmp_path, "kd", "distill.rounds=150", "distill.eval_every=150", *sets)
    assert summary["student_acc"] > 90.0 and summary["skipped_steps"] == 0  # the CPU test's floor
    state = read_model(run_dir / "student.pt")["state_dict"]
    assert all(t.dtype == torch.float32 and torch.isfinite(t).all() for t in state.values() if t.is_floating_point())


@pytest.mark.parametrize("method, sets", [
    ("dfq", ["perf.amp=bf16"]),
    ("fast2", ["perf.amp=fp16", "synth.warmup=1", "pool.capacity=64", "pool.device=same"]),
    ("zskt", ["perf.channels_last=true"]),
    ("dafl", ["perf.compile=true"]),
    ("dfad", ["perf.amp=bf16", "perf.channels_last=true"]),
])
def test_data_free_methods_run_on_cuda_with_speed_options(digits_teacher, tmp_path, method, sets):
    run_dir, summary = _run(digits_teacher, tmp_path, method, "distill.rounds=20", "distill.eval_every=10",
                            "synth.batch_size=64", *sets)
    assert summary["skipped_steps"] == 0 and 0 <= summary["student_acc"] <= 100
    assert summary["teacher_acc"] > 90.0  # the CPU-trained teacher scores the same on the GPU
    state = read_model(run_dir / "student.pt")["state_dict"]
    assert all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point())


def test_cuda_peak_memory_of_a_pool_on_the_device_is_counted(digits_teacher, tmp_path):
    torch.cuda.reset_peak_memory_stats()
    _run(digits_teacher, tmp_path, "fast2", "distill.rounds=3", "distill.eval_every=3", "synth.batch_size=64",
         "synth.warmup=1", "pool.capacity=4096", "pool.device=same", "pool.storage=fp32")
    assert torch.cuda.max_memory_allocated() >= 4096 * 16 * 16 * 4  # the pool itself lives on the GPU
