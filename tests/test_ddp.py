"""torchrun with 2 CPU processes (gloo): every rank ends with the same student; only rank 0 writes."""
import json
import shutil
import os
import subprocess
import sys

import pytest


def _torchrun(cmd, env, fresh, timeout=600):
    """Run a 2-process torchrun job; one relaunch if the first fails (launches of the process group
    failed intermittently here, about 2 in 9 suite runs, cause not found; a real failure fails twice)."""
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if done.returncode != 0:
        sys.stderr.write("first torchrun launch failed; relaunching. Its stderr ends:\n" + done.stderr[-3000:])
        shutil.rmtree(fresh, ignore_errors=True)  # what the failed launch may have left
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    return done


@pytest.mark.parametrize("method, extra", [("dfq", ["synth.batch_size=32", "source.width=16"]),
                                           ("dfq", ["synth.batch_size=32", "source.width=16",
                                                    "objective.params.bn.all_reduce=true"]),
                                           ("kd", ["synth.batch_size=32"])])
def test_two_gloo_processes_end_with_identical_students(digits_teacher, tmp_path, method, extra):
    sets = [f"teacher.checkpoint={digits_teacher}", f"out={tmp_path}", "distill.rounds=6", "distill.eval_every=3",
            "tracking.mode=disabled", "device=cpu", "run_name=ddp", *extra]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "dfkd", "distill", "--method", method, "--quiet"] + [a for s in sets for a in ("--set", s)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    done = _torchrun(cmd, env, tmp_path / "ddp")
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    sums = summary["ddp"]["student_checksums"]
    assert summary["ddp"]["world_size"] == 2 and len(sums) == 2 and sums[0] == sums[1] and sums[0] > 0
    if summary["cpu_memory"]["state"] == "fast":  # glibc: every rank keeps large blocks in its heap
        assert summary["ddp"]["large_blocks_mapped"] == [0, 0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp"]  # one run directory, written by rank 0
    assert (tmp_path / "ddp" / "student.pt").is_file() and (tmp_path / "ddp" / "checkpoint.pt").is_file()


def test_a_batch_that_does_not_split_over_the_processes_is_refused(digits_teacher, tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "dfkd",
           "distill", "--method", "dfq", "--set", f"teacher.checkpoint={digits_teacher}", "--set", f"out={tmp_path}",
           "--set", "synth.batch_size=33", "--set", "tracking.mode=disabled", "--set", "device=cpu"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode != 0 and "must be divisible by the 2 processes" in done.stderr
    assert not any(tmp_path.iterdir())


def test_teacher_training_under_two_gloo_processes(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "dfkd",
           "train-teacher", "--quiet"] + [a for s in (f"out={tmp_path}", "train.epochs=3", "tracking.mode=disabled",
                                                      "device=cpu") for a in ("--set", s)]
    done = _torchrun(cmd, {**os.environ, "OMP_NUM_THREADS": "1"}, tmp_path / "digits16-cnn-s0")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("teacher cnn on digits") == 1  # rank 0 reports
    summary = json.loads((tmp_path / "digits16-cnn-s0" / "summary.json").read_text())
    a, b = summary["ddp"]["checksums"]
    assert a == b and summary["test_acc"] > 80.0  # 3 epochs of the digits recipe; chance is 10%
