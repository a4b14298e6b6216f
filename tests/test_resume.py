"""Exact resume: a run killed with SIGKILL and resumed ends where an uninterrupted run ends."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dfkd.base.errors import DfkdError
from dfkd.cli.main import main
from dfkd.io.checkpoint import read_model, read_run_checkpoint
from dfkd.methods.configure import build_config
from dfkd.run.runner import distill

SETS = ["distill.rounds=12", "distill.eval_every=2", "tracking.log_every=1", "synth.batch_size=32",
        "source.width=16", "tracking.mode=disabled", "device=cpu", "deterministic=true"]


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (Linux /proc): torchrun's workers live in process groups of their own."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _kill_tree(proc) -> None:
    """SIGKILL `proc`, its process group and every process below it, at once (a kill -9 of the job)."""
    for pid in [proc.pid, *_descendants(proc.pid)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _logged(run_dir, step) -> bool:
    path = run_dir / "metrics.jsonl"
    return path.is_file() and any(f'"step": {step},' in line for line in path.read_text().splitlines())


def _kill_after_checkpoint(cmd, run_dir, min_round, timeout=240, env=None, hang_at=None, logged=None):
    """Start `cmd` so that it stops at the start of round `hang_at` (default `min_round` + 1; it waits
    there, DFKD_TEST_HANG_AT_ROUND), SIGKILL it (and its process group) once its checkpoint has reached
    `min_round` (and metrics.jsonl holds step `logged`), and return the checkpoint's round. The run
    cannot pass `hang_at`, so the kill lands at a known point however slowly this process is scheduled
    (it raced the run before)."""
    from dfkd.run.loop import HANG_ENV

    hang_at = min_round + 1 if hang_at is None else hang_at
    env = {**(os.environ if env is None else env), HANG_ENV: str(hang_at)}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True, env=env)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            ck = run_dir / "checkpoint.pt"
            if ck.is_file():
                try:
                    rnd = read_run_checkpoint(ck)["round"]
                except DfkdError:
                    rnd = 0  # being replaced: the rename is atomic, so this cannot happen; be safe
                if rnd >= min_round and (logged is None or _logged(run_dir, logged)):
                    _kill_tree(proc)
                    return rnd
            if proc.poll() is not None:
                pytest.fail(f"the run ended before it could be killed: {proc.stderr.read().decode()[-500:]}")
            time.sleep(0.02)
        pytest.fail("the run never wrote a checkpoint")
    finally:
        if proc.poll() is None:
            _kill_tree(proc)


@pytest.mark.parametrize("method, extra", [("dfq", []), ("fast2", ["synth.warmup=3", "pool.capacity=128"]),
                                           ("spaceshipnet", ["synth.g_steps=2", "distill.kd_steps=3"]),
                                           ("dfme", ["synth.batch_size=32"]),
                                           ("mosaickd", ["objective.params.patch_gan.ndf=8", "synth.batch_size=32"])])
def test_killed_and_resumed_run_ends_bitwise_like_an_uninterrupted_one(digits_teacher, tmp_path, method, extra):
    sets = [f"teacher.checkpoint={digits_teacher}", f"out={tmp_path}", *SETS, *extra]
    full_dir, full = distill(build_config(sets=sets + ["run_name=full"], method=method), quiet=True)

    cmd = [sys.executable, "-m", "dfkd", "distill", "--method", method, "--quiet"]
    for s in sets + ["run_name=cut"]:
        cmd += ["--set", s]
    killed_at = _kill_after_checkpoint(cmd, tmp_path / "cut", min_round=4, hang_at=6, logged=5)
    assert killed_at == 4 and not (tmp_path / "cut" / "summary.json").exists()  # row 5 logged, then dropped

    cut_dir, resumed = distill(resume=tmp_path / "cut", quiet=True)
    assert killed_at < 12 and resumed["rounds"] == 12
    for key in ("student_acc", "best_student_acc", "best_round", "curve", "teacher_queries"):
        assert resumed[key] == full[key], key
    a, b = read_model(full_dir / "student.pt"), read_model(cut_dir / "student.pt")
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    steps = [json.loads(line)["step"] for line in (cut_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 13))  # rows written after the checkpoint were dropped and logged again


def test_resume_refuses_what_it_cannot_continue(digits_teacher, tmp_path, capsys):
    sets = [f"teacher.checkpoint={digits_teacher}", f"out={tmp_path}", *SETS, "distill.rounds=2", "run_name=done"]
    run_dir, _ = distill(build_config(sets=sets, method="dfq"), quiet=True)
    assert main(["distill", "--resume", str(run_dir)]) == 2
    assert "already finished" in capsys.readouterr().err
    (run_dir / "summary.json").unlink()
    ck = run_dir / "checkpoint.pt"
    data = ck.read_bytes()
    ck.write_bytes(data[: len(data) // 2])  # truncated
    assert main(["distill", "--resume", str(run_dir)]) == 2
    assert "corrupt or truncated" in capsys.readouterr().err
    ck.unlink()
    assert main(["distill", "--resume", str(run_dir)]) == 2
    assert "before its first checkpoint" in capsys.readouterr().err
    assert main(["distill", "--resume", str(tmp_path / "nowhere")]) == 2
    assert "not a run directory" in capsys.readouterr().err
    assert main(["distill", "--resume", str(run_dir), "--set", "seed=3"]) == 2
    assert "drop --config" in capsys.readouterr().err
