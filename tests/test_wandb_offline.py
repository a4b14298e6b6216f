"""W&B end to end, offline in a temporary directory (no network): a run killed after a checkpoint
and resumed leaves one offline folder per attempt under one run id; the resumed attempt's records
(read with W&B's own protobuf definitions) hold every logged row, the sample images and the final
summary, so `dfkd sync` uploads that folder alone."""
from __future__ import annotations

import json
import os
import struct
import sys
from pathlib import Path

import pytest
from test_resume import _kill_after_checkpoint

from dfkd.base.errors import DfkdError
from dfkd.cli.main import main
from dfkd.io.wandb_files import sync_commands
from dfkd.io.wandb_files import wandb_records as _records
from dfkd.run.runner import distill

pytest.importorskip("wandb.proto.wandb_internal_pb2")


def _contents(folder):
    """(history steps, last summary as a dict of the keys it sets, run id) of one offline folder."""
    (log,) = folder.glob("run-*.wandb")
    steps, summary, run_id = [], {}, None
    for rec in _records(log):
        kind = rec.WhichOneof("record_type")
        if kind == "history":
            steps.append(rec.history.step.num)
        elif kind == "summary":
            summary.update({i.key: json.loads(i.value_json) for i in rec.summary.update if i.key})
        elif kind == "run":
            run_id = rec.run.run_id
    return steps, summary, run_id


def test_a_killed_and_resumed_offline_run_is_one_wandb_run_with_its_rows_images_and_summary(
        digits_teacher, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WANDB_SILENT", "true")
    sets = [f"teacher.checkpoint={digits_teacher}", f"out={tmp_path}", "run_name=cut", "distill.rounds=8",
            "distill.eval_every=2", "tracking.log_every=1", "synth.batch_size=32", "source.width=16",
            "tracking.mode=offline", "device=cpu"]
    cmd = [sys.executable, "-m", "dfkd", "distill", "--method", "dfq", "--quiet"] + [a for s in sets
                                                                                      for a in ("--set", s)]
    run = tmp_path / "cut"
    # its own W&B service, killed with it (as a killed CLI run's is): a WANDB_SERVICE inherited from
    # this process (set by any earlier in-process run) would outlive the kill and keep the run id busy
    env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
    killed_at = _kill_after_checkpoint(cmd, run, min_round=2, env=env)
    _, summary = distill(resume=run, quiet=True)

    first, second = sorted(run.glob("wandb/offline-run-*"))  # one folder per attempt, one run id
    assert first.name.rsplit("-", 1)[1] == second.name.rsplit("-", 1)[1] == summary["wandb_run_id"]
    steps, last, run_id = _contents(second)
    assert run_id == summary["wandb_run_id"]
    assert steps == list(range(1, 9))  # every round once: up to the checkpoint again, then the rest
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == steps and killed_at < 8
    assert last["student_acc"] == pytest.approx(summary["student_acc"]) and last["rounds"] == 8
    evaluations_after = len([r for r in range(killed_at + 1, 9) if r % 2 == 0])
    assert len(list(second.glob("files/media/images/samples_*.png"))) == evaluations_after >= 1

    assert sync_commands(run) == [["wandb", "sync", str(second)]]
    assert main(["sync", str(run), "--dry-run"]) == 0
    (teacher,) = summary["wandb_inputs"]  # offline: declared by dfkd sync after the upload
    assert capsys.readouterr().out.splitlines() == [
        f"wandb sync {second}", f"then declare input {teacher['name']} (sha256 {teacher['sha256'][:12]})"]
    assert main(["sync", str(tmp_path)]) == 2  # not a run directory with an offline run
    assert "holds no offline W&B run" in capsys.readouterr().err


def _tail(path, n: int = 3000) -> str:
    return path.read_text(errors="replace")[-n:] if path.is_file() else f"({path.name} missing)"


def _artifacts(folder) -> list[tuple[str, str, dict]]:
    """(name, type, metadata) of the artifacts an offline run logged."""
    (log,) = folder.glob("run-*.wandb")
    return [(r.artifact.name, r.artifact.type, json.loads(r.artifact.metadata or "{}"))
            for r in _records(log) if r.WhichOneof("record_type") == "artifact"]


def test_teacher_and_student_are_model_artifacts_linked_by_content(tmp_path, monkeypatch, capsys):
    """train-teacher logs the teacher; a distil run logs its student and names the teacher (by dfkd's
    sha256) as its input, which offline W&B cannot declare, so `dfkd sync` does after the upload."""
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "runs"
    assert main(["train-teacher", "--dataset", "digits", "--set", "train.epochs=1", "--out", str(out / "teachers"),
                 "--tracking", "offline", "--quiet"]) == 0
    teacher_dir = out / "teachers" / "digits16-cnn-s0"
    (teacher_log,) = teacher_dir.glob("wandb/offline-run-*")
    teacher_sha = json.loads((teacher_dir / "summary.json").read_text())["sha256"]
    logged = _artifacts(teacher_log)
    # seen twice in full-suite runs, not reproduced alone: no artifact record at all; keep what W&B said
    assert logged, f"no artifact record; stderr: {capsys.readouterr().err[-2000:]!r}; " \
                   f"debug log: {_tail(teacher_log / 'logs' / 'debug-internal.log')!r}"
    assert logged == [("teacher-digits16-cnn-s0", "model", {
        "sha256": teacher_sha, "test_acc": pytest.approx(json.loads((teacher_dir / "summary.json").read_text())[
            "test_acc"]), "dataset": "digits", "arch": "cnn", "seed": 0})]

    assert main(["distill", "--method", "dfad", "--quiet", f"teacher.checkpoint={teacher_dir / 'teacher.pt'}",
                 f"out={out}", "run_name=s", "distill.rounds=2", "distill.eval_every=2", "synth.batch_size=16",
                 "source.width=16", "--tracking", "offline"]) == 0
    summary = json.loads((out / "s" / "summary.json").read_text())
    assert summary["wandb_inputs"] == [{"name": "teacher-digits16-cnn-s0", "sha256": teacher_sha,
                                        "declared": False}]
    (student_log,) = (out / "s").glob("wandb/offline-run-*")
    ((name, kind, meta),) = _artifacts(student_log)
    assert (name, kind, meta["teacher_sha256"], meta["method"]) == ("student-s", "model", teacher_sha, "dfad")
    capsys.readouterr()
    assert main(["sync", str(out / "s"), "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"then declare input teacher-digits16-cnn-s0 (sha256 " \
                                                        f"{teacher_sha[:12]})"


def test_declare_inputs_links_the_version_with_the_teachers_sha256(tmp_path, monkeypatch):
    """The online half of `dfkd sync`, against a stand-in for wandb.Api (no network here)."""
    import types

    import wandb

    from dfkd.io.wandb_files import declare_inputs

    (tmp_path / "config.yaml").write_text("tracking: {project: p, entity: e}\n")
    (tmp_path / "summary.json").write_text(json.dumps({"wandb_run_id": "r1", "wandb_inputs": [
        {"name": "teacher-x", "sha256": "abc", "declared": False}]}))
    used = []
    versions = [types.SimpleNamespace(name="teacher-x:v0", metadata={"sha256": "old"}),
                types.SimpleNamespace(name="teacher-x:v1", metadata={"sha256": "abc"})]

    class Api:
        default_entity = "me"

        def run(self, path):
            assert path == "e/p/r1"
            return types.SimpleNamespace(use_artifact=used.append)

        def artifacts(self, kind, name):
            assert (kind, name) == ("model", "e/p/teacher-x")
            return versions

    monkeypatch.setattr(wandb, "Api", Api)
    assert declare_inputs(tmp_path) == ["e/p/r1 used teacher-x:v1"] and used == [versions[1]]
    versions.pop()
    with pytest.raises(DfkdError, match="no version of the W&B artifact e/p/teacher-x has sha256 abc"):
        declare_inputs(tmp_path)


def test_a_teacher_from_a_wandb_artifact_is_downloaded_and_a_missing_one_is_one_line(tmp_path, monkeypatch,
                                                                                    digits_teacher):
    import shutil
    import types

    import wandb

    from dfkd.io.data import dataset_info
    from dfkd.methods.configure import build_config
    from dfkd.run.resolve import resolve_teacher

    class Api:
        def artifact(self, spec):
            if spec != "e/p/teacher-digits16-cnn-s0:v3":
                raise ValueError(f"artifact '{spec}' not found")

            def download(root):
                Path(root).mkdir(parents=True)
                shutil.copy(digits_teacher, Path(root) / "teacher.pt")
                return root

            return types.SimpleNamespace(download=download)

    monkeypatch.setattr(wandb, "Api", Api)
    cfg = build_config(sets=["teacher.checkpoint=wandb:e/p/teacher-digits16-cnn-s0:v3", f"out={tmp_path}"])
    t = resolve_teacher(cfg, dataset_info(cfg.data), quiet=True)
    assert t.kind == "dfkd" and t.source == "wandb:e/p/teacher-digits16-cnn-s0:v3"
    assert (tmp_path / "artifacts").is_dir()
    cfg = build_config(sets=["teacher.checkpoint=wandb:e/p/nothing:v0", f"out={tmp_path}"])
    with pytest.raises(DfkdError, match="could not fetch the W&B artifact 'e/p/nothing:v0' .artifact 'e/p/nothing:v0' "
                                        "not found.; check the name"):
        resolve_teacher(cfg, dataset_info(cfg.data), quiet=True)


def test_a_table_is_one_wandb_run_of_job_type_table_with_its_figures(tmp_path, monkeypatch, digits_teacher):
    monkeypatch.setenv("WANDB_SILENT", "true")
    d = tmp_path / "tiny"
    d.mkdir()
    (d / "table.yaml").write_text("seeds: 1\ncells:\n  - {method: noise}\n  - {method: dfq, set: {source.width: 16}}\n"
                                  "scales:\n  smoke:\n    max: {distill.rounds: 2, distill.eval_every: 2}\n")
    out = tmp_path / "r"
    assert main(["experiment", str(d), "--scale", "smoke", "--out", str(out), "--quiet", "--tracking", "offline",
                 "--set", f"teacher.checkpoint={digits_teacher}", "--set", "synth.batch_size=16"]) == 0
    root = out / "tiny" / "smoke"
    (folder,) = root.glob("wandb/offline-run-*")  # the table's own run, beside the cells' run folders
    kinds, run = {}, None
    for rec in _records(next(folder.glob("run-*.wandb"))):
        kind = rec.WhichOneof("record_type")
        kinds[kind] = kinds.get(kind, 0) + 1
        if kind == "run":
            run = rec.run
        if kind == "history":
            logged = {i.key or "/".join(i.nested_key) for i in rec.history.item}
    assert (run.job_type, run.run_group, run.display_name) == ("table", "tiny-smoke", "table-tiny-smoke")
    assert {"table", "accuracy", "bars", "samples"} <= {k.split("/")[0] for k in logged}
    (table_file,) = folder.glob("files/media/table/table_*.table.json")
    data = json.loads(table_file.read_text())
    assert [row[0] for row in data["data"]] == ["noise", "dfq"] and data["columns"][0] == "label"


def test_dfkd_table_wandb_leaves_out_runs_tagged_outdated():
    import types

    from dfkd.tables.results import wandb_summaries

    def run(rid, acc, tags):
        return types.SimpleNamespace(id=rid, url=rid, tags=tags, summary={
            "method": "dfq", "dataset": "digits", "teacher": "cnn", "student": "cnn_small", "student_acc": acc,
            "seed": 0})

    api = types.SimpleNamespace(runs=lambda project, filters=None: [run("a", 90.0, ["outdated"]), run("b", 95.0, [])])
    assert [s["student_acc"] for s in wandb_summaries("e/p", "g", api=api)] == [95.0]


def _leveldb_log(payloads: list[bytes], cut: int = 0) -> bytes:
    """A W&B transaction log of `payloads`, written by hand in LevelDB's log format (records split
    across 32 KiB blocks as FIRST / MIDDLE / LAST, a block's last < 7 bytes zero), `cut` bytes off."""
    out, block = bytearray(struct.pack("<4sHB", b":W&B", 0xBEE1, 0)), 32768
    for data in payloads:
        first = True
        while True:
            left = block - len(out) % block
            if left < 7:
                out += bytes(left)
                continue
            chunk, data = data[:left - 7], data[left - 7:]
            kind = (1 if not data else 2) if first else (4 if not data else 3)
            out += struct.pack("<IHB", 0, len(chunk), kind) + chunk
            first = False
            if not data:
                break
    return bytes(out[:len(out) - cut])


def test_the_offline_log_reader_joins_records_across_blocks_and_drops_a_cut_tail(tmp_path):
    """A history row bigger than a block comes back whole; a record cut short (the writer still
    writing) is left out, so a wait for the exit record does not end before it is there."""
    import wandb.proto.wandb_internal_pb2 as pb

    from dfkd.io.wandb_files import wait_for_exit_record

    big = pb.Record()
    big.history.step.num = 7
    item = big.history.item.add()
    item.key, item.value_json = "table", json.dumps("x" * 70000)  # spans three blocks
    small, end = pb.Record(), pb.Record()
    small.history.step.num = 8
    end.exit.exit_code = 0
    payloads = [small.SerializeToString(), big.SerializeToString(), end.SerializeToString()]

    whole = tmp_path / "run-x.wandb"
    whole.write_bytes(_leveldb_log(payloads))
    recs = list(_records(whole))
    assert [r.WhichOneof("record_type") for r in recs] == ["history", "history", "exit"]
    assert recs[1].history.step.num == 7 and json.loads(recs[1].history.item[0].value_json) == "x" * 70000
    assert wait_for_exit_record(whole, timeout_s=0)

    cut = tmp_path / "run-y.wandb"
    cut.write_bytes(_leveldb_log(payloads, cut=3))
    assert [r.WhichOneof("record_type") for r in _records(cut)] == ["history", "history"]
    assert not wait_for_exit_record(cut, timeout_s=0.1)
