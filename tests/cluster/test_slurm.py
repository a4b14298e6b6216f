"""A real single-node Slurm (tests/cluster/slurm-up.sh, as root): a table submitted as a job array
gives the local runner's students bit for bit, and a run given a 1-minute limit is signalled,
requeued and resumed to the uninterrupted student. Skipped where no Slurm answers (`sinfo`)."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_launch import _students, table  # noqa: E402,F401  (the tiny table fixture)

from dfkd.tables import launch  # noqa: E402
from dfkd.tables.experiment import run_table  # noqa: E402
from dfkd.tables.launch import read_launcher  # noqa: E402


def _slurm_up() -> bool:
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return False
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        return False
    return out.returncode == 0 and any(s in out.stdout for s in ("idle", "mix", "alloc"))


pytestmark = pytest.mark.skipif(not _slurm_up(), reason="no running Slurm here (tests/cluster/slurm-up.sh)")


def test_a_slurm_job_array_gives_the_local_table_and_a_timed_out_run_resumes_bitwise(table, tmp_path, monkeypatch,
                                                                                   capsys):
    local, _ = run_table(table, out=str(tmp_path / "local"), quiet=True)
    monkeypatch.setenv("DFKD_TEST_HANG_AT_ROUND", "6")  # fresh attempts wait at round 6 until signalled
    slurm = read_launcher("slurm", ["time_min=1", "signal_delay_s=40", "cpus_per_task=1", "mem_gb=2"])
    submitted = []
    real_submit = launch.submit
    monkeypatch.setattr(launch, "submit", lambda *a: submitted.extend(real_submit(*a)) or submitted)
    remote, _ = run_table(table, out=str(tmp_path / "slurm"), quiet=True, launcher=slurm)  # waits
    a, b = _students(local), _students(remote)
    assert sorted(b) == sorted(a) == ["dfad-s0", "dfad-s1", "dfq-s0", "dfq-s1"]
    assert all(torch.equal(a[r][k], b[r][k]) for r in a for k in a[r])
    logs = "".join((job.stdout() or "") + (job.stderr() or "") for _, _, job in submitted)
    assert logs.count("Requeued") >= 4  # every task waited at round 6 and was requeued at its signal
    capsys.readouterr()
    run_table(table, out=str(tmp_path / "slurm"), quiet=True, status=True)
    rows = capsys.readouterr().out.splitlines()
    assert len(rows) == 4 and all(r.split()[0] == "done" for r in rows), rows
