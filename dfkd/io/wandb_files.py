"""W&B's files and runs after the fact: the offline transaction log (`wandb_records`, waiting for its
exit record), offline folders and `dfkd sync` (`sync_commands`), model artifacts and their lineage
(`fetch_artifact`, `declare_inputs`), runs tagged outdated, and the table's own run (`log_table_run`).
The run-time side is `dfkd.io.tracking`."""
from __future__ import annotations

import json
import os
import re
import struct
import time
from pathlib import Path

from dfkd.base import log


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


def model_artifact(path: str | Path, name: str, metadata: dict):
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
    from dfkd.base.errors import DfkdError

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
    from dfkd.base.errors import DfkdError

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
