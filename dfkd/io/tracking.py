"""Tracking: plain local files always, Weights & Biases on top (offline by default).

Local files in the run directory: `metrics.jsonl` (one JSON object per logged step), `summary.json`
(written atomically at the end), images as PNG. W&B runs in the run directory; if it cannot start or
log, the run carries on with local files and says so once on stderr.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

from dfkd.base import log
from dfkd.config.schema import TrackingConfig
from dfkd.io.checkpoint import atomic_write_json, atomic_write_text
from dfkd.io.wandb_files import artifact_name, finish_run, model_artifact


def _plain(v):
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


def _step(line: str) -> int | None:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None  # a line cut short by a kill


class Tracker:
    def __init__(self, run_dir: str | Path, cfg: TrackingConfig, config: dict, name: str, job_type: str,
                 resume: tuple[int, str | None] | None = None):
        """`resume=(step, wandb_run_id)` continues a run: metrics.jsonl keeps its rows up to `step`
        (later ones were written after the checkpoint and are logged again) and W&B continues the run."""
        self.run_dir = Path(run_dir)
        self.cfg = cfg
        path = self.run_dir / "metrics.jsonl"
        kept = []  # the rows up to the checkpoint of a resumed run
        if resume is not None and path.is_file():
            lines = [line for line in path.read_text(encoding="utf-8").splitlines(keepends=True)
                     if _step(line) is not None and _step(line) <= resume[0]]
            atomic_write_text(path, "".join(lines))
            kept = [json.loads(line) for line in lines]
        self._metrics = open(path, "a", encoding="utf-8")
        self.wb = None
        self.run_id = None
        if os.environ.get("WANDB_SWEEP_ID") and cfg.mode != "online":
            log.warn(f"a W&B sweep agent started this run, but tracking.mode={cfg.mode}: the sweep will never see "
                     f"its result; add tracking.mode=online to the sweep's command")
        if cfg.mode != "disabled":
            try:
                os.environ.setdefault("WANDB_SILENT", "true")
                import wandb

                wb_resume = {"id": resume[1], "resume": "allow"} if resume and resume[1] else {}
                self.wb = wandb.init(mode=cfg.mode, dir=str(self.run_dir), project=cfg.project, **wb_resume,
                                     entity=cfg.entity, group=cfg.group, tags=list(cfg.tags) or None,
                                     name=name, job_type=cfg.job_type or job_type, config=config,
                                     reinit="finish_previous")
                self.run_id = self.wb.id
                if cfg.mode == "offline":  # this attempt's folder gets the rows up to the checkpoint too, so
                    for row in kept:  # it is the whole record (a killed attempt's writer may not have flushed)
                        self.wb.log({k: v for k, v in row.items() if k != "step"}, step=row["step"])
            except Exception as e:  # tracking must never kill a run
                self._warn(f"W&B could not start ({type(e).__name__}: {e}); logging to local files only")

    def _warn(self, msg: str) -> None:
        if self.wb is not None or not getattr(self, "_warned", False):
            log.warn(msg)
        self._warned = True
        self.wb = None

    def log(self, metrics: dict, step: int) -> None:
        row = {"step": step, **{k: _plain(v) for k, v in metrics.items()}}
        self._metrics.write(json.dumps(row) + "\n")
        self._metrics.flush()
        if self.wb is not None:
            try:
                self.wb.log({k: v for k, v in row.items() if k != "step"}, step=step)
            except Exception as e:
                self._warn(f"W&B logging failed ({type(e).__name__}: {e}); logging to local files only")

    def log_image(self, key: str, path: str | Path, step: int) -> None:
        if self.wb is not None:
            try:
                import wandb

                self.wb.log({key: wandb.Image(str(path))}, step=step)
            except Exception as e:
                self._warn(f"W&B image logging failed ({type(e).__name__}: {e})")

    def log_model(self, path: str | Path, name: str, metadata: dict) -> None:
        """`path` as this run's output: a W&B model artifact `name` (offline too; W&B versions it by content)."""
        if self.wb is not None:
            try:
                self.wb.log_artifact(model_artifact(path, name, metadata))
            except Exception as e:
                self._warn(f"W&B could not log the model artifact {name} ({type(e).__name__}: {e})")

    def use_model(self, path: str | Path | None, name: str, metadata: dict, spec: str | None = None) -> dict | None:
        """Declare a model (the teacher) as this run's input, linking it to the run that logged it: online
        at once (`use_artifact`: the W&B artifact `spec`, or `path` with the content of the logged
        version); offline W&B cannot, so `dfkd sync` declares it after the upload (the returned record,
        kept in summary.json as `wandb_inputs`, says which: name and dfkd's sha256)."""
        if self.wb is None:
            return None
        record = {"name": artifact_name(name), "sha256": metadata.get("sha256"), "declared": False}
        if self.cfg.mode == "online":
            try:
                self.wb.use_artifact(model_artifact(path, name, metadata) if spec is None else spec)
                record["declared"] = True
            except Exception as e:
                self._warn(f"W&B could not declare the input {name} ({type(e).__name__}: {e})")
        return record

    def finish(self, summary: dict) -> None:
        atomic_write_json(self.run_dir / "summary.json", summary)
        self._metrics.close()
        if self.wb is not None:
            try:
                self.wb.summary.update(summary)
                finish_run(self.wb, self.cfg.mode)
            except Exception as e:
                self._warn(f"W&B could not finish ({type(e).__name__}: {e})")


class NullTracker:
    """What a non-main process of a torchrun job logs to: nothing (rank 0 writes and logs)."""

    run_id = None

    def log_model(self, path, name: str, metadata: dict) -> None:
        pass

    def use_model(self, path, name: str, metadata: dict, spec: str | None = None) -> None:
        return None

    def log(self, metrics: dict, step: int) -> None:
        pass

    def log_image(self, key: str, path, step: int):
        return path

    def finish(self, summary: dict) -> None:
        pass


def synth_progress(bar, post: dict, every_s: float = 0.5):
    """A schedule's `on_step` callback: 'synth i/n' on the tqdm bar, redrawn at most every `every_s`
    seconds, so a round with many source steps never looks hung."""
    import time

    last = [0.0]

    def show(step: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= every_s or step == 0:
            last[0] = now
            post["synth"] = f"{step + 1}/{total}"
            bar.set_postfix(post)

    return show
