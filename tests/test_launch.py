"""`dfkd experiment --launcher`: the table's runs as submitit tasks (the local executor here; a real
Slurm in tests/cluster, when `sbatch` is on the PATH), preemption by requeue, `--status`."""
from pathlib import Path

import pytest
import torch

from dfkd.base.errors import DfkdError
from dfkd.io.checkpoint import read_model
from dfkd.tables import launch
from dfkd.tables.experiment import run_table
from dfkd.tables.launch import read_launcher, run_status

pytest.importorskip("submitit")

BASE = """
data: {name: digits}
teacher: {arch: cnn, checkpoint: none}
student: {arch: cnn_small}
synth: {batch_size: 32}
distill: {rounds: 8, eval_every: 2}
tracking: {mode: disabled}
"""
TABLE = """
doc: two cells x two seeds on digits, a random teacher (no training), 8 rounds
base: base.yaml
seeds: 2
cells:
  - {method: dfq, set: {distill.kd_steps: 2}}
  - {method: dfad, set: {distill.kd_steps: 2}}
"""


@pytest.fixture()
def table(tmp_path):
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "table.yaml").write_text(TABLE)
    (tmp_path / "tiny" / "base.yaml").write_text(BASE)
    return str(tmp_path / "tiny" / "table.yaml")


def _students(root: Path) -> dict:
    return {d.name: read_model(d / "student.pt")["state_dict"] for d in sorted(root.glob("*-s*"))}


def test_the_submitit_table_is_the_local_table_bit_for_bit(table, tmp_path, capsys):
    local, _ = run_table(table, out=str(tmp_path / "local"), quiet=True)
    remote, _ = run_table(table, out=str(tmp_path / "remote"), quiet=True, launcher=read_launcher("submitit_local"))
    a, b = _students(local), _students(remote)
    assert sorted(a) == ["dfad-s0", "dfad-s1", "dfq-s0", "dfq-s1"] and sorted(b) == sorted(a)
    assert all(torch.equal(a[r][k], b[r][k]) for r in a for k in a[r])
    assert set(launch.read_state(remote)["runs"]) == set(a)  # every task's job id kept for --status
    capsys.readouterr()
    run_table(table, out=str(tmp_path / "remote"), quiet=True, status=True)
    rows = capsys.readouterr().out.splitlines()
    assert len(rows) == 4 and all(r.startswith("done") for r in rows)


def test_a_task_signalled_to_time_out_requeues_and_ends_like_the_uninterrupted_run(table, tmp_path, monkeypatch):
    full, _ = run_table(table, out=str(tmp_path / "full"), only=["dfq"], seeds=1, quiet=True)
    submitted = []
    real_submit = launch.submit
    monkeypatch.setattr(launch, "submit", lambda *a: submitted.extend(real_submit(*a)) or submitted)
    monkeypatch.setenv("DFKD_TEST_HANG_AT_ROUND", "6")  # a fresh attempt waits at round 6 (a resumed one never)
    # a 1-minute limit whose pre-timeout signal comes after 15 s: the waiting attempt is signalled,
    # checkpointed and requeued, and the requeued attempt resumes its run directory
    launcher = read_launcher("submitit_local", ["time_min=1", "signal_delay_s=45"])
    run_table(table, out=str(tmp_path / "cut"), only=["dfq"], seeds=1, quiet=True, launcher=launcher, wait=False)
    (label, run_dir, job), = submitted
    summary = job.result()
    log = (job.stderr() or "") + (job.stdout() or "")
    assert summary["rounds"] == 8 and "Requeued" in log, log[-2000:]
    a, b = _students(full)["dfq-s0"], read_model(Path(run_dir) / "student.pt")["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_bad_launcher_input_is_one_line_and_submits_nothing(table, tmp_path, monkeypatch):
    with pytest.raises(DfkdError, match="did you mean 'partition'"):
        read_launcher("slurm", ["partiton=gpu"])
    with pytest.raises(DfkdError, match="unknown launcher 'slrum'"):
        read_launcher("slrum")
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    with pytest.raises(DfkdError, match="no sbatch on the PATH"):
        run_table(table, out=str(tmp_path / "x"), quiet=True, launcher=read_launcher("slurm"))
    monkeypatch.setitem(__import__("sys").modules, "submitit", None)
    with pytest.raises(DfkdError, match=r'pip install "dfkd\[slurm\]"'):
        run_table(table, out=str(tmp_path / "y"), quiet=True, launcher=read_launcher("submitit_local"))
    assert not list(tmp_path.glob("x*")) and not list(tmp_path.glob("y*"))  # refused before any work


def test_status_of_runs_never_submitted_is_pending(table, tmp_path):
    rows = run_status(tmp_path, [tmp_path / "dfq-s0"])
    assert rows == [("dfq-s0", "pending", "-", "")]
