"""Tracking: plain local files always, Weights & Biases on top (offline by default).

Local files in the run directory: `metrics.jsonl` (one JSON object per logged step), `summary.json`
(written atomically at the end), images as PNG. W&B runs in the run directory; if it cannot start or
log, the run carries on with local files and says so once on stderr.
"""
from __future__ import annotations

import json
import math
import os
import re
import struct
import time
from pathlib import Path

from . import log
from .checkpoint import atomic_write_json, atomic_write_text
from .config import TrackingConfig


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
                self.wb.log_artifact(_model_artifact(path, name, metadata))
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
                self.wb.use_artifact(_model_artifact(path, name, metadata) if spec is None else spec)
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


def wandb_records(path: str | Path):
    """The records of an offline W&B log (`run-ID.wandb`), as W&B's protobuf `Record`s, in order.

    The log is LevelDB's log format under a 7-byte file header (`:W&B`, magic 0xBEE1, version): 32 KiB
    blocks of records, each with a 7-byte header (CRC32, length, type FULL=1 / FIRST=2 / MIDDLE=3 /
    LAST=4); a block's last < 7 bytes are zero. A record cut short at the end (the writer still
    writing) is left out."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    if len(data) < 7:
        return
    ident, magic, _ = struct.unpack("<4sHB", data[:7])
    if ident != b":W&B" or magic != 0xBEE1:
        raise ValueError(f"{path} is not a W&B transaction log")
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
        if len(chunk) < length:
            return
        parts = chunk if kind in (1, 2) else parts + chunk
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(parts)
            yield rec


def finish_run(run, mode: str) -> None:
    """`run.finish()`; offline, also wait for the log's last record: W&B's service writes the offline log
    after finish() returns, and a `wandb sync` (or `dfkd sync`, or a reader) started right after must
    find all of it."""
    log_file = Path(run.settings.sync_file) if mode == "offline" else None
    run.finish()
    if log_file is not None and not wait_for_exit_record(log_file):
        log.warn(f"W&B has not finished writing {log_file} yet; wait a moment before `dfkd sync`")


def wait_for_exit_record(path: str | Path, timeout_s: float = 60.0) -> bool:
    """Wait until the offline W&B log at `path` holds its `exit` record (the last one W&B writes);
    False if it still does not after `timeout_s` seconds."""
    deadline, pause = time.monotonic() + timeout_s, 0.02
    while True:
        try:
            if any(r.WhichOneof("record_type") == "exit" for r in wandb_records(path)):
                return True
        except (OSError, ValueError):
            pass  # not there yet, or its header not yet written
        if time.monotonic() >= deadline:
            return False
        time.sleep(pause)
        pause = min(2 * pause, 1.0)


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


def offline_runs(run_dir: str | Path) -> list[Path]:
    """The W&B offline folders of a run directory, oldest first: one per attempt, all with the run's
    W&B id (a resumed run continues the same id in a new folder)."""
    return sorted(Path(run_dir).glob("wandb/offline-run-*"), key=lambda p: p.name)


def sync_commands(run_dir: str | Path) -> list[list[str]]:
    """What uploads an offline run: `wandb sync` of its last folder per run id. A resumed attempt
    logs the rows of metrics.jsonl up to its checkpoint again before going on, so its folder is the
    whole record; an interrupted attempt's folder may be cut short (its writer is killed with it)."""
    last = {p.name.rsplit("-", 1)[1]: p for p in offline_runs(run_dir)}
    return [["wandb", "sync", str(p)] for p in last.values()]


def _model_artifact(path: str | Path, name: str, metadata: dict):
    """The file at `path` as a W&B model artifact `name` (W&B versions it by its content)."""
    import wandb

    art = wandb.Artifact(artifact_name(name), type="model", metadata=metadata)
    art.add_file(str(path), name=Path(path).name)
    return art


def artifact_name(name: str) -> str:
    """A W&B artifact name: letters, digits, '-', '_' and '.' only, at most 128 characters."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")[:128] or "model"


def fetch_artifact(spec: str, root: str | Path) -> Path:
    """The model file of W&B artifact `spec` (ENTITY/PROJECT/NAME:VERSION), downloaded under `root`
    (needs network and `wandb login`); a DfkdError saying why when it cannot."""
    from .errors import DfkdError

    try:
        import wandb

        art = wandb.Api().artifact(spec)
        folder = Path(art.download(root=str(Path(root) / artifact_name(spec))))
    except Exception as e:
        why = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise DfkdError(f"could not fetch the W&B artifact '{spec}' ({why}); check the name (ENTITY/PROJECT/"
                        f"NAME:VERSION), `wandb login` and the network, or download it and pass the file") from None
    files = sorted(p for p in folder.rglob("*") if p.suffix in (".pt", ".pth", ".safetensors", ".ckpt", ".bin"))
    if len(files) != 1:
        raise DfkdError(f"the W&B artifact '{spec}' holds {len(files)} model files ({', '.join(p.name for p in files)})"
                        f"; download it and pass one with teacher.checkpoint=PATH")
    return files[0]


def _run_summary(run_dir: Path) -> dict:
    path = Path(run_dir) / "summary.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _run_tracking(run_dir: Path) -> dict:
    import yaml

    path = Path(run_dir) / "config.yaml"
    return ((yaml.safe_load(path.read_text()) or {}).get("tracking") or {}) if path.is_file() else {}


def _wandb_project(api, tracking: dict) -> str:
    """ENTITY/PROJECT of a run from its tracking config (the login's default entity if none)."""
    return f"{tracking.get('entity') or api.default_entity}/{tracking.get('project', 'dfkd')}"


def pending_inputs(run_dir: str | Path) -> list[dict]:
    """The models an offline run used that W&B could not yet be told of (summary.json `wandb_inputs`)."""
    return [i for i in _run_summary(run_dir).get("wandb_inputs") or [] if not i.get("declared")]


def declare_inputs(run_dir: str | Path) -> list[str]:
    """After an offline run is uploaded: declare the models it used (`pending_inputs`) as its inputs
    through the public API, each matched to its logged version by dfkd's sha256. Returns what it
    declared, as lines."""
    from .errors import DfkdError

    pending = pending_inputs(run_dir)
    if not pending:
        return []
    import wandb

    summary = _run_summary(run_dir)
    api = wandb.Api()
    where = _wandb_project(api, _run_tracking(run_dir))
    run = api.run(f"{where}/{summary['wandb_run_id']}")
    done = []
    for item in pending:
        versions = [a for a in api.artifacts("model", f"{where}/{item['name']}")
                    if (a.metadata or {}).get("sha256") == item["sha256"]]
        if not versions:
            raise DfkdError(f"no version of the W&B artifact {where}/{item['name']} has sha256 {item['sha256'][:12]}; "
                            f"upload the run that logged it first (dfkd sync its run directory)")
        run.use_artifact(versions[0])
        done.append(f"{where}/{summary['wandb_run_id']} used {versions[0].name}")
    return done


def tag_outdated(run_dir: str | Path, uploaded: bool = False) -> bool:
    """Tag the W&B run of `run_dir` (a run the experiment runner moved to outdated/) 'outdated', so
    `dfkd table --wandb` leaves it out: online at once; an offline run when `dfkd sync` uploads it.
    `uploaded`: an offline run `dfkd sync` has just uploaded. Returns whether it was tagged (False:
    offline, disabled, or W&B unreachable, which is said)."""
    run_dir = Path(run_dir)
    tracking = _run_tracking(run_dir)
    run_id = _run_summary(run_dir).get("wandb_run_id")
    if not (uploaded or tracking.get("mode") == "online") or not run_id:
        return False
    try:
        import wandb

        api = wandb.Api(timeout=30)
        run = api.run(f"{_wandb_project(api, tracking)}/{run_id}")
        run.tags = sorted({*(run.tags or []), "outdated"})
        run.update()
        return True
    except Exception as e:
        log.warn(f"could not tag the W&B run of {run_dir} as outdated ({type(e).__name__}: {e}); "
                 f"`dfkd table --wandb` counts it until it is tagged")
        return False


def log_table_run(folder: str | Path, csv_text: str, images: list[Path], group: str, tags: list[str]) -> str | None:
    """One W&B run of job_type 'table' in the table's group: the table as a wandb.Table and its figures
    as images, under the tracking settings of the table's runs (none if they were not tracked)."""
    import csv
    import io

    folder = Path(folder)
    tracking = next((_run_tracking(p.parent) for p in sorted(folder.glob("*/config.yaml"))), {})
    if tracking.get("mode", "disabled") == "disabled":
        return None
    try:
        os.environ.setdefault("WANDB_SILENT", "true")
        import wandb

        rows = list(csv.reader(io.StringIO(csv_text)))
        run = wandb.init(mode=tracking["mode"], dir=str(folder), project=tracking.get("project", "dfkd"),
                         entity=tracking.get("entity"), group=group, job_type="table", name=f"table-{group}",
                         tags=tags, reinit="finish_previous")
        run.log({"table": wandb.Table(columns=rows[0], data=rows[1:]),
                 **{p.stem: wandb.Image(str(p)) for p in images if p.is_file()}})
        finish_run(run, tracking["mode"])
        return run.id
    except Exception as e:
        log.warn(f"W&B could not log the table ({type(e).__name__}: {e}); it is in {folder}")
        return None

