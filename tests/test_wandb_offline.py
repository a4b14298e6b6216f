"""W&B end to end, offline in a temporary directory (no network): a run killed after a checkpoint
and resumed leaves one offline folder per attempt under one run id; the resumed attempt's records
(read with W&B's own protobuf definitions) hold every logged row, the sample images and the final
summary, so `dfkd sync` uploads that folder alone."""
from __future__ import annotations

import json
import struct
import sys

import pytest

from dfkd.cli import main
from dfkd.runs import distill
from dfkd.tracking import sync_commands

from test_resume import _kill_after_checkpoint

pb = pytest.importorskip("wandb.proto.wandb_internal_pb2")


def _records(path):
    """The records of a .wandb file (W&B's LevelDB-style log: 7-byte file header, 32 KiB blocks,
    7-byte record headers: checksum, length, type FULL=1 / FIRST=2 / MIDDLE=3 / LAST=4)."""
    data = path.read_bytes()
    ident, magic, _ = struct.unpack("<4sHB", data[:7])
    assert ident == b":W&B" and magic == 0xBEE1
    pos, block, parts = 7, 32768, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 0:  # the zero tail of a block
            pos += block - pos % block if pos % block else 0
            continue
        parts = chunk if kind in (1, 2) else parts + chunk
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(parts)
            yield rec


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
    killed_at = _kill_after_checkpoint(cmd, run, min_round=2)
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
    assert capsys.readouterr().out.splitlines() == [f"wandb sync {second}"]
    assert main(["sync", str(tmp_path)]) == 2  # not a run directory with an offline run
    assert "holds no offline W&B run" in capsys.readouterr().err
