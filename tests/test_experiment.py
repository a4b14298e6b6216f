"""The experiment runner: every (cell, seed) of a table, skipping finished runs, redoing interrupted ones."""
import json
from pathlib import Path

import pytest

from dfkd.base.errors import DfkdError
from dfkd.cli.main import main
from dfkd.tables.experiment import run_table
from dfkd.tables.results import load_summaries
from dfkd.tables.spec import read_table

TABLE = """
doc: a two-cell test table
base: base.yaml
seeds: 2
cells:
  - {method: noise}
  - {method: dfq, name: dfq_small, set: {source.width: 16}}
scales:
  smoke:
    max: {distill.rounds: 2, distill.eval_every: 2, distill.kd_steps: 1, synth.g_steps: 1}
    teacher_set: {train.epochs: 1}
"""


@pytest.fixture
def table(tmp_path):
    d = tmp_path / "tiny"
    d.mkdir()
    (d / "table.yaml").write_text(TABLE)
    (d / "base.yaml").write_text("synth: {batch_size: 16}\ndevice: cpu\ntracking: {mode: disabled}\n"
                                 "distill: {rounds: 50}\n")
    (d / "published.yaml").write_text("cells: []\n")
    return d


def test_runs_every_cell_and_seed_at_the_smoke_scale_then_skips_finished_runs(table, tmp_path, capsys):
    root, cells = run_table(str(table), scale="smoke", out=str(tmp_path / "runs"), quiet=True)
    assert cells == ["noise", "dfq_small"]
    runs = sorted(p.name for p in root.iterdir() if p.name != "teachers")
    assert runs == ["dfq_small-s0", "dfq_small-s1", "noise-s0", "noise-s1"]
    s = json.loads((root / "dfq_small-s1" / "summary.json").read_text())
    assert s["label"] == "dfq_small" and s["seed"] == 1 and s["rounds"] == 2  # capped from 50 by the scale
    cfg = (root / "dfq_small-s1" / "config.yaml").read_text()
    assert "width: 16" in cfg and "group: tiny-smoke" in cfg and "job_type: dfq_small" in cfg  # W&B: table, cell
    assert "- seed1" in cfg and "- dfq" in cfg  # tagged by method and seed
    teacher = json.loads((root / "teachers" / "digits16-cnn-s0" / "summary.json").read_text())
    assert teacher["test_acc"] > 10  # trained once, for 1 epoch (the scale's teacher_set)
    capsys.readouterr()

    (root / "noise-s1" / "summary.json").unlink()  # as if killed after its last checkpoint: resumed
    (root / "dfq_small-s0" / "summary.json").unlink()  # killed before any checkpoint: run again
    (root / "dfq_small-s0" / "checkpoint.pt").unlink()
    run_table(str(table), scale="smoke", out=str(tmp_path / "runs"), quiet=True)
    out = capsys.readouterr()
    assert "2 runs done, 2 already finished" in out.out and "resumed it from its last checkpoint" in out.err
    assert (root / "noise-s1" / "summary.json").is_file() and (root / "dfq_small-s0" / "summary.json").is_file()
    aside = [p.name for p in root.iterdir() if "interrupted" in p.name]
    assert len(aside) == 1 and aside[0].startswith("dfq_small-s0")  # kept aside, never overwritten


def test_an_interrupted_run_whose_cell_changed_since_is_run_again_not_resumed(table, tmp_path, capsys):
    root, _ = run_table(str(table), scale="smoke", seeds=1, out=str(tmp_path / "runs"), quiet=True)
    (root / "dfq_small-s0" / "summary.json").unlink()  # interrupted after its last checkpoint...
    (table / "table.yaml").write_text(TABLE.replace("source.width: 16", "source.width: 8"))  # ...then edited
    capsys.readouterr()
    run_table(str(table), scale="smoke", seeds=1, out=str(tmp_path / "runs"), quiet=True)
    err = capsys.readouterr().err
    assert "the table's config changed since it started: source.width: 16 -> 8" in err
    assert "width: 8" in (root / "dfq_small-s0" / "config.yaml").read_text()
    assert (root / "dfq_small-s0" / "summary.json").is_file()
    aside = [p for p in root.iterdir() if p.name.startswith("dfq_small-s0-interrupted")]
    assert len(aside) == 1 and "width: 16" in (aside[0] / "config.yaml").read_text()


def test_a_finished_run_is_redone_only_when_what_it_computes_changed(table, tmp_path, capsys):
    out = str(tmp_path / "runs")
    root, _ = run_table(str(table), scale="smoke", seeds=1, out=out, quiet=True)
    run_table(str(table), scale="smoke", seeds=1, out=out, quiet=True, sets=["tracking.mode=offline"])
    assert "0 runs done, 2 already finished" in capsys.readouterr().out  # where/how it is tracked: same cell
    (table / "table.yaml").write_text(TABLE.replace("source.width: 16", "source.width: 8"))
    run_table(str(table), scale="smoke", seeds=1, out=out, dry_run=True)
    assert "outdated" in capsys.readouterr().out and (root / "dfq_small-s0" / "summary.json").is_file()
    run_table(str(table), scale="smoke", seeds=1, out=out, quiet=True)
    cap = capsys.readouterr()
    assert "1 runs done, 1 already finished" in cap.out
    assert "finished under another config (the table's config changed since it started: source.width: 16 -> 8)" \
        in cap.err
    assert "width: 8" in (root / "dfq_small-s0" / "config.yaml").read_text()
    assert [p.name for p in (root / "outdated").iterdir()][0].startswith("dfq_small-s0-")
    rows = [r for r in load_summaries([root]) if r["label"] == "dfq_small"]
    assert len(rows) == 1 and rows[0]["run_dir"] == str(root / "dfq_small-s0")  # the old run is not a seed


def test_cli_prints_the_table_in_cell_order(table, tmp_path, capsys):
    assert main(["experiment", str(table), "--scale", "smoke", "--seeds", "1", "--out", str(tmp_path / "r"),
                 "--quiet"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert [line.split(" | ")[0] for line in lines[1:]] == ["| noise", "| dfq_small"]
    root = tmp_path / "r" / "tiny" / "smoke"
    assert (root / "table.csv").read_text().count("\n") == 3 and (root / "table.tex").is_file()
    for png in ("accuracy.png", "bars.png", "samples.png"):  # the runner's figures
        assert (root / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("text, message", [
    ("cells: [{method: dfq, sets: {}}]", "unknown config key 'cells\\[0\\].sets' \\(did you mean 'set'"),
    ("cells: []", "'cells' is empty"),
    ("cells: [{method: dfq}, {method: dfq}]", "cell names must be unique"),
    ("cells: [{method: dfq, set: {distill.round: 3}}]", "distill.round"),
])
def test_bad_tables_are_refused_before_any_run(tmp_path, text, message):
    d = tmp_path / "bad"
    d.mkdir()
    (d / "table.yaml").write_text(text)
    with pytest.raises(DfkdError, match=message):
        read_table(str(d))
        run_table(str(d), out=str(tmp_path / "runs"), quiet=True)
    assert not (tmp_path / "runs").exists()


def test_unknown_table_scale_and_cell_are_one_line_errors(table, tmp_path, capsys):
    assert main(["experiment", "no_such_table", "--out", str(tmp_path)]) == 2
    assert "no table 'no_such_table'" in capsys.readouterr().err
    assert main(["experiment", str(table), "--scale", "smok", "--out", str(tmp_path)]) == 2
    assert "did you mean 'smoke'" in capsys.readouterr().err
    assert main(["experiment", str(table), "--only", "dfq", "--out", str(tmp_path)]) == 2
    assert "no cell 'dfq'" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["digits", "digits_variants", "mnist", "cifar10", "cifar100", "crd_cifar100"])
def test_every_shipped_table_and_its_published_file_are_valid(name, tmp_path, capsys):
    from dfkd.tables.results import read_published
    from dfkd.tables.spec import published_file

    path, spec = read_table(name)
    assert path.parent.name == name and "smoke" in spec.scales
    run_table(name, scale="smoke", out=str(tmp_path), dry_run=True)  # builds and checks every cell's config
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == len(spec.cells) * spec.seeds and all(line.startswith("todo") for line in listed)
    assert not any(tmp_path.iterdir())  # a dry run writes nothing
    pub = published_file(name)
    if pub:
        cells = read_published(pub)
        assert all(isinstance(c["acc"], float) and 0 < c["acc"] < 100 for c in cells.values())


def test_cifar_smoke_runs_on_a_generated_standin_when_the_data_is_absent(tmp_path, capsys):
    root, _ = run_table("cifar10", scale="smoke", seeds=1, out=str(tmp_path), quiet=True,
                        only=["fast2-wrn402-wrn161"],
                        sets=[f"data.root={tmp_path / 'no_data'}", "tracking.mode=disabled", "device=cpu"])
    assert "generated stand-in (standin:cifar10)" in capsys.readouterr().err
    s = json.loads((root / "fast2-wrn402-wrn161-s0" / "summary.json").read_text())
    assert s["dataset"] == "standin:cifar10" and s["teacher"] == "wrn40_2" and s["student"] == "wrn16_1"


def test_table_by_name_reads_the_runners_folder_in_cell_order(table, tmp_path, capsys):
    run_table(str(table), scale="smoke", seeds=1, out=str(tmp_path / "r"), quiet=True)
    capsys.readouterr()
    assert main(["table", str(table), "--scale", "smoke", "--out", str(tmp_path / "r")]) == 0
    rows = [line.split(" | ")[0] for line in capsys.readouterr().out.splitlines()[2:]]
    assert rows == ["| noise", "| dfq_small"]
    assert main(["table", str(tmp_path / "nothing_here")]) == 2
    assert "is not a run directory, and no table" in capsys.readouterr().err


def test_parallel_jobs_give_the_same_runs_as_one_at_a_time(table, tmp_path, capsys):
    """--jobs 2 runs (cell, seed) pairs in spawned processes; each run is seeded, so its result
    matches the sequential runner's."""
    a, _ = run_table(str(table), scale="smoke", out=str(tmp_path / "seq"), quiet=True, only=["noise"])
    b, _ = run_table(str(table), scale="smoke", out=str(tmp_path / "par"), quiet=True, only=["noise"], jobs=2)
    out = capsys.readouterr().out
    assert "noise seed 0: student" in out and "noise seed 1: student" in out and "2 runs done" in out
    for run in ("noise-s0", "noise-s1"):
        sa = json.loads((a / run / "summary.json").read_text())
        sb = json.loads((b / run / "summary.json").read_text())
        assert sa["seed"] == sb["seed"] and sa["curve"] == sb["curve"] and sa["student_acc"] == sb["student_acc"]
        if sb["cpu_memory"]["state"] != "fast":
            assert sb["cpu_memory"]["state"].startswith("n/a")  # not glibc: nothing to switch
        else:  # the spawned worker keeps large blocks in its heap
            assert sb["cpu_memory"]["large_blocks_mapped"] is False
    with pytest.raises(DfkdError, match="--jobs must be >= 1"):
        run_table(str(table), scale="smoke", out=str(tmp_path / "bad"), quiet=True, jobs=0)


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_killing_the_runner_ends_its_parallel_runs(table, tmp_path, digits_teacher):
    """A runner killed outright (SIGKILL) must not leave workers writing into run directories that the
    next runner would resume."""
    import os
    import signal
    import subprocess
    import sys
    import time

    code = ("from dfkd.tables.experiment import run_table; run_table(%r, out=%r, quiet=True, only=['noise'], jobs=2, "
            "sets=['distill.rounds=100000', 'distill.eval_every=100000', 'teacher.checkpoint=%s'])"
            % (str(table), str(tmp_path / "runs"), digits_teacher))
    runner = subprocess.Popen([sys.executable, "-c", code])
    root = tmp_path / "runs" / "tiny" / "paper"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(root.glob("noise-s*/metrics.jsonl"))) < 2:
        time.sleep(0.5)
    children = [int(c) for c in Path(f"/proc/{runner.pid}/task/{runner.pid}/children").read_text().split()]
    assert len(children) >= 2, "the two runs did not start"
    runner.send_signal(signal.SIGKILL)
    runner.wait()
    deadline = time.time() + 30
    alive = children
    while alive and time.time() < deadline:
        time.sleep(0.5)
        alive = [c for c in alive if os.path.exists(f"/proc/{c}") and "Z" not in _state(c)]
    assert not alive, f"workers {alive} outlived their runner"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def test_a_failing_parallel_run_stops_the_table_with_its_own_error(table, tmp_path, capsys):
    """A run that fails in a worker (here: a teacher checkpoint that does not exist) raises the same
    DfkdError as one at a time, and the runs not yet started are cancelled."""
    with pytest.raises(DfkdError, match="no-such-teacher.pt"):
        run_table(str(table), scale="smoke", out=str(tmp_path / "runs"), quiet=True, jobs=2,
                  sets=[f"teacher.checkpoint={tmp_path / 'no-such-teacher.pt'}"])
    assert not list((tmp_path / "runs").glob("*/smoke/*/summary.json"))


def test_cells_get_their_own_trained_teachers_seeds_and_ensembles(table, tmp_path):
    """auto:SEED teachers (one cell's teacher, or an ensemble's members) are trained once each, with the
    scale's teacher settings, and every cell is distilled from the teachers it names."""
    (table / "table.yaml").write_text(TABLE.replace("seeds: 2", "seeds: 1").replace(
        "  - {method: dfq, name: dfq_small, set: {source.width: 16}}",
        "  - {method: dfq, name: one, set: {teacher.checkpoint: 'auto:1'}}\n"
        "  - {method: dfq, name: ens, set: {teacher.members: ['auto:0', 'auto:1']}}"))
    root, _ = run_table(str(table), scale="smoke", out=str(tmp_path / "runs"), quiet=True)
    sha = {c: json.loads((root / f"{c}-s0" / "summary.json").read_text())["teacher_sha256"]
           for c in ("noise", "one", "ens")}
    assert len(set(sha.values())) == 3  # seed 0, seed 1, and the two as one ensemble
    assert sorted(p.name for p in (root / "teachers").iterdir()) == ["digits16-cnn-s0", "digits16-cnn-s1"]
    assert "digits16-cnn-s1" in (root / "one-s0" / "config.yaml").read_text()
    ens = (root / "ens-s0" / "config.yaml").read_text()
    assert "digits16-cnn-s0/teacher.pt" in ens and "digits16-cnn-s1/teacher.pt" in ens
