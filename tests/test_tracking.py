import json

import pytest

from dfkd.config.schema import TrackingConfig
from dfkd.io.tracking import Tracker


def test_local_files_without_wandb(tmp_path):
    t = Tracker(tmp_path, TrackingConfig(mode="disabled"), {"a": 1}, "run", "test")
    t.log({"loss": 0.5}, step=1)
    t.finish({"student_acc": 90.0})
    assert json.loads((tmp_path / "metrics.jsonl").read_text()) == {"step": 1, "loss": 0.5}
    assert json.loads((tmp_path / "summary.json").read_text()) == {"student_acc": 90.0}


def test_wandb_offline_needs_no_network(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    t = Tracker(tmp_path, TrackingConfig(mode="offline"), {"a": 1}, "run", "test")
    assert t.run_id
    t.log({"loss": 0.5}, step=1)
    t.finish({"student_acc": 90.0})
    assert list((tmp_path / "wandb").glob("offline-run-*"))


def test_a_failing_wandb_never_kills_the_run(tmp_path, monkeypatch, capsys):
    wandb = pytest.importorskip("wandb")

    def broken(**kw):
        raise RuntimeError("no network")

    monkeypatch.setattr(wandb, "init", broken)
    t = Tracker(tmp_path, TrackingConfig(mode="online"), {}, "run", "test")
    t.log({"loss": 1.0}, step=1)
    t.finish({"ok": True})
    err = capsys.readouterr().err
    assert err.count("W&B could not start") == 1 and "local files only" in err
    assert (tmp_path / "summary.json").exists()
