"""The same deterministic run gives the very same student in a fresh process and twice in one process
after other runs, whatever torch settings the caller (a notebook, a test) left behind; and the
caller's settings are back after the run."""
import os
import subprocess
import sys

import torch

import dfkd
from dfkd.io.checkpoint import state_hash

RUN = {"tracking.mode": "disabled", "device": "cpu", "distill.rounds": 4, "distill.eval_every": 2,
       "synth.batch_size": 16, "source.width": 16, "seed": 0, "deterministic": True}


def test_a_run_in_process_after_other_runs_gives_the_fresh_process_student(digits_teacher, tmp_path):
    sets = {**RUN, "teacher.checkpoint": str(digits_teacher)}
    r = subprocess.run([sys.executable, "-m", "dfkd", "distill", "--method", "dfq", "--quiet", "--out",
                        str(tmp_path / "fresh"), *[a for k, v in sets.items() for a in ("--set", f"{k}={v}")]],
                       capture_output=True, text=True,  # as many threads as here: CPU sums depend on it
                       env={**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": str(torch.get_num_threads())})
    assert r.returncode == 0, r.stderr
    [fresh_dir] = (tmp_path / "fresh").iterdir()
    fresh = state_hash(dfkd.load_model(fresh_dir / "student.pt").state_dict())

    for method, seed in (("dfq", 1), ("fast2", 0)):  # other work first, in this process
        dfkd.distill(teacher=str(digits_teacher), method=method, set={**sets, "seed": seed, "deterministic": False},
                     out=tmp_path / "before", quiet=True)
    caller = (torch.get_default_dtype(), torch.get_float32_matmul_precision(),
              torch.are_deterministic_algorithms_enabled())
    torch.set_default_dtype(torch.float64)  # what a notebook may have set
    torch.set_float32_matmul_precision("medium")
    try:
        twice = [state_hash(dfkd.distill(teacher=str(digits_teacher), method="dfq", set=sets,
                                         out=tmp_path / f"again{i}", quiet=True).student.state_dict())
                 for i in range(2)]
        left = (torch.get_default_dtype(), torch.get_float32_matmul_precision(),
                torch.are_deterministic_algorithms_enabled())
    finally:
        torch.set_default_dtype(caller[0])
        torch.set_float32_matmul_precision(caller[1])
    assert twice == [fresh, fresh]
    assert left == (torch.float64, "medium", caller[2])  # the run's deterministic mode is not left on
