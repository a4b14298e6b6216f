"""torchrun with 2 CPU processes (gloo): every rank ends with the same student; only rank 0 writes."""
import json
import os
import shutil
import subprocess
import sys

import pytest


def _torchrun(cmd, env, timeout=600):
    """Run a 2-process torchrun job, once: the intermittent failures of earlier launches were a rank
    aborting at exit (gloo work freed during interpreter shutdown), fixed in dfkd.cli.main."""
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


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
    done = _torchrun(cmd, env)
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
    done = _torchrun(cmd, {**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("teacher cnn on digits") == 1  # rank 0 reports
    summary = json.loads((tmp_path / "digits16-cnn-s0" / "summary.json").read_text())
    a, b = summary["ddp"]["checksums"]
    assert a == b and summary["test_acc"] > 80.0  # 3 epochs of the digits recipe; chance is 10%


def test_two_gloo_processes_killed_and_resumed_end_with_the_uninterrupted_students(digits_teacher, tmp_path):
    """--resume under torchrun: every rank continues from the last checkpoint with its own random
    streams and samples (ranks/rankR-roundN.pt), so the students end bitwise like an uninterrupted
    run's; a resume on another number of processes is refused in one line."""
    import hashlib

    import torch
    from test_resume import _kill_after_checkpoint

    def launch(*args):
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                "-m", "dfkd", "distill", "--quiet", *args]

    sets = [f"teacher.checkpoint={digits_teacher}", f"out={tmp_path}", "distill.rounds=8", "distill.eval_every=2",
            "tracking.mode=disabled", "device=cpu", "deterministic=true", "synth.batch_size=32", "source.width=16",
            "pool.capacity=256", "synth.warmup=2"]
    args = ["--method", "fast2"] + [a for s in sets for a in ("--set", s)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    full = subprocess.run(launch(*args, "--set", "run_name=full"), capture_output=True, text=True, timeout=600,
                          env=env)
    assert full.returncode == 0, full.stderr[-2000:]
    killed_at = _kill_after_checkpoint(launch(*args, "--set", "run_name=cut"), tmp_path / "cut", min_round=4,
                                       env=env)
    assert killed_at < 8 and not (tmp_path / "cut" / "summary.json").exists()
    assert (tmp_path / "cut" / "ranks" / f"rank1-round{killed_at}.pt").is_file()
    shutil.copytree(tmp_path / "cut", tmp_path / "other")
    one = subprocess.run([sys.executable, "-m", "dfkd", "distill", "--resume", str(tmp_path / "other")],
                         capture_output=True, text=True, env=env)
    assert one.returncode == 2 and one.stderr.count("\n") == 1 and "ran on 2 processes; resume it on as many" in \
        one.stderr and "torchrun --nproc_per_node 2" in one.stderr
    resumed = subprocess.run(launch("--resume", str(tmp_path / "cut")), capture_output=True, text=True,
                             timeout=600, env=env)
    assert resumed.returncode == 0, resumed.stderr[-2000:]

    def result(name):
        summary = json.loads((tmp_path / name / "summary.json").read_text())
        weights = torch.load(tmp_path / name / "student.pt", weights_only=True)["state_dict"]
        digest = hashlib.sha256(b"".join(v.numpy().tobytes() for _, v in sorted(weights.items()))).hexdigest()
        return summary["ddp"]["student_checksums"], summary["curve"], summary["student_acc"], digest

    assert result("cut") == result("full")
