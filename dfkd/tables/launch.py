"""Where a table's runs execute: in this process (`local`, `--jobs N` for several processes) or as the
tasks of one Slurm job array through submitit (`slurm`; `submitit_local` runs the same tasks as local
processes, which is how the tests exercise it).

    dfkd experiment digits --launcher slurm --launcher-set partition=gpu --launcher-set time_min=120
    dfkd experiment digits --launcher slurm --status      # each run: pending / queued / running / done / failed
    dfkd experiment digits --launcher slurm --wait        # block, then write the table as a local run does

A launcher's settings come from `experiments/launchers/NAME.yaml` (or any YAML path, or just the kind)
and `--launcher-set key=value`, checked against `LauncherConfig` (unknown keys rejected with a
suggestion). The runner decides before submitting, as it does locally: finished runs are skipped,
interrupted ones resumed, outdated ones set aside. Each task (`RunTask`) is checkpointable: on Slurm's
pre-timeout or preemption signal submitit requeues it with the same arguments, and the requeued task
resumes its run directory from its last checkpoint, bit for bit (dfkd's exact resume). The job ids
are kept in the table's folder (`launcher.json`) for `--status`.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from dfkd.base.errors import DfkdError
from dfkd.config.fields import opt
from dfkd.config.load import from_dict

STATE = "launcher.json"


def _launcher_dirs() -> list[Path]:
    """./experiments/launchers, then the shipped experiments' (dfkd.tables.spec.SHIPPED)."""
    from dfkd.tables.spec import SHIPPED

    return [Path("experiments") / "launchers", *(root / "launchers" for root in SHIPPED)]


@dataclass
class LauncherConfig:
    kind: str = opt("local", "local (this machine), slurm (a job array through submitit) or submitit_local (the "
                             "same tasks as local processes)", choices=["local", "slurm", "submitit_local"])
    partition: str | None = opt(None, "slurm: the partition (sbatch --partition)")
    account: str | None = opt(None, "slurm: the account (sbatch --account)")
    time_min: int = opt(60, "the time limit of each run, in minutes; a run that needs more is requeued at the "
                            "pre-timeout signal and resumes from its last checkpoint", min=1)
    gpus_per_task: int = opt(0, "GPUs per run", min=0)
    cpus_per_task: int = opt(2, "CPU cores per run", min=1)
    mem_gb: float = opt(8.0, "memory per run, GB", min=0.0)
    array_parallelism: int = opt(64, "slurm: runs of the array at once", min=1)
    signal_delay_s: int = opt(120, "seconds before the time limit at which a task is signalled to checkpoint "
                                   "and requeue itself", min=0)
    sbatch: dict = opt({}, "slurm: more sbatch options, e.g. {constraint: a100, qos: high}")


def read_launcher(name: str, sets: list[str] = ()) -> LauncherConfig:
    """The launcher `name` (a kind, experiments/launchers/NAME.yaml or a YAML path) with `key=value` sets."""
    data: dict = {}
    path = Path(name)
    if path.suffix not in (".yaml", ".yml"):  # a name: a file of experiments/launchers, if there is one
        path = next((d / f"{name}.yaml" for d in _launcher_dirs() if (d / f"{name}.yaml").is_file()), None)
    if name in ("local", "slurm", "submitit_local"):
        data = {"kind": name}
    elif path is not None:
        if not path.is_file():
            raise DfkdError(f"launcher file '{path}' not found")
        data = yaml.safe_load(path.read_text()) or {}
    else:
        known = sorted({p.stem for d in _launcher_dirs() for p in d.glob("*.yaml")})
        raise DfkdError(f"unknown launcher '{name}'; give local, slurm, submitit_local, a YAML file or one of "
                        f"experiments/launchers: {', '.join(known) or '(none)'}")
    for s in sets:
        key, sep, value = s.partition("=")
        if not sep:
            raise DfkdError(f"--launcher-set '{s}' is not KEY=VALUE")
        data[key.strip()] = yaml.safe_load(value)
    return from_dict(LauncherConfig, data, prefix="launcher.")


def check(cfg: LauncherConfig) -> None:
    """Raises the one-line error of a launcher that cannot submit here (before any work is done)."""
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise DfkdError(f'--launcher {cfg.kind} submits through submitit, which is not installed; '
                        f'pip install "dfkd[slurm]"') from None
    if cfg.kind == "slurm" and shutil.which("sbatch") is None:
        raise DfkdError("--launcher slurm: no sbatch on the PATH (is this a Slurm login node?); use --launcher "
                        "local, or submitit_local to try the tasks as local processes")


def executor(cfg: LauncherConfig, folder: Path):
    """The submitit executor of `cfg` (one line and nothing submitted when it cannot be built)."""
    check(cfg)
    import submitit
    params = {"timeout_min": cfg.time_min, "cpus_per_task": cfg.cpus_per_task, "mem_gb": cfg.mem_gb,
              "gpus_per_node": cfg.gpus_per_task, "tasks_per_node": 1, "nodes": 1, "name": "dfkd"}
    if cfg.kind == "submitit_local":  # the same pre-timeout signal and requeue, as local processes
        ex = submitit.LocalExecutor(folder=str(folder))
        ex.update_parameters(**params, signal_delay_s=cfg.signal_delay_s)
        return ex
    ex = submitit.AutoExecutor(folder=str(folder), cluster="slurm")
    params.update(slurm_array_parallelism=cfg.array_parallelism, slurm_signal_delay_s=cfg.signal_delay_s,
                  slurm_additional_parameters=dict(cfg.sbatch))
    if cfg.partition:
        params["slurm_partition"] = cfg.partition
    if cfg.account:
        params["slurm_account"] = cfg.account
    ex.update_parameters(**params)
    return ex


class RunTask:
    """One (cell, seed) run as a submitit task: runs the config into its run directory, or resumes
    that directory from its last checkpoint when there is one (an interrupted run the runner chose to
    resume, whose config is None; a requeue after the pre-timeout signal or a preemption); returns
    the run's summary. Checkpointable: submitit requeues it with the same arguments."""

    def __call__(self, cfg, run_dir: str) -> dict:
        from dfkd.run.runner import distill

        run_dir = Path(run_dir)
        if (run_dir / "summary.json").is_file():
            return json.loads((run_dir / "summary.json").read_text())
        if (run_dir / "checkpoint.pt").is_file():
            return distill(resume=run_dir, quiet=True)[1]
        if run_dir.exists():  # an attempt stopped before its first checkpoint: start again
            run_dir.rename(run_dir.with_name(f"{run_dir.name}-interrupted-{time.strftime('%Y%m%d-%H%M%S')}"))
        return distill(cfg, quiet=True)[1]

    def checkpoint(self, *args, **kwargs):
        import submitit

        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)  # resumes from the run's checkpoint


def submit(work, cfg: LauncherConfig, root: Path) -> list:
    """Submit each (label, config or None, run directory to resume or None) of `work` as a task of one
    job array; records the job ids in ROOT/launcher.json; returns [(label, run_dir, job)]."""
    ex = executor(cfg, root / "slurm")
    dirs, cfgs, labels = [], [], []
    for label, run_cfg, resume in work:  # a run to resume needs no config: its checkpoint has one
        run_dir = Path(resume) if resume is not None else Path(run_cfg.out) / run_cfg.run_name
        dirs.append(str(run_dir))
        cfgs.append(run_cfg)
        labels.append(label)
    jobs = ex.map_array(RunTask(), cfgs, dirs) if cfgs else []
    state = read_state(root)
    for label, d, job in zip(labels, dirs, jobs):
        state["runs"][Path(d).name] = {"label": label, "job_id": job.job_id, "kind": cfg.kind}
    state["folder"] = str(root / "slurm")
    (root / STATE).write_text(json.dumps(state, indent=1, sort_keys=True) + "\n")
    return list(zip(labels, dirs, jobs))


def read_state(root: Path) -> dict:
    f = root / STATE
    return json.loads(f.read_text()) if f.is_file() else {"runs": {}}


def wait(submitted) -> tuple[list, list[str]]:
    """Block until every submitted task ends: ([(label, summary)], [one line per failed run])."""
    done, failed = [], []
    for label, run_dir, job in submitted:
        try:
            done.append((label, job.result()))
        except Exception as e:  # submitit re-raises the task's error (or its own) with the task's output
            failed.append(f"{label}: {last_line(str(e))} (logs: {job.paths.stderr})")
    return done, failed


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "(no message)"


def run_status(root: Path, run_dirs: list[Path]) -> list[tuple[str, str, str, str]]:
    """(run, status, job id, detail) of each planned run directory: done (summary.json), else its task's
    state: queued / running / failed (with its error's last line) / done; pending when never submitted."""
    state = read_state(root)
    rows = []
    for d in run_dirs:
        entry = state["runs"].get(d.name)
        if (d / "summary.json").is_file():
            rows.append((d.name, "done", entry["job_id"] if entry else "-", ""))
            continue
        if entry is None:
            rows.append((d.name, "pending", "-", "interrupted, has a checkpoint" if (d / "checkpoint.pt").is_file()
                         else ""))
            continue
        rows.append((d.name, *job_status(entry, Path(state["folder"]))))
    return rows


def job_status(entry: dict, folder: Path) -> tuple[str, str, str]:
    """(status, job id, detail) of a submitted task: from its result file once it has one (done, or
    failed with its error's last line), else from the scheduler (squeue, then sacct, on Slurm)."""
    import subprocess

    import submitit
    from submitit.core.utils import pickle_load

    cls = submitit.SlurmJob if entry["kind"] == "slurm" else submitit.LocalJob
    job = cls(folder=folder, job_id=entry["job_id"])
    if job.paths.result_pickle.exists():
        outcome, value = pickle_load(job.paths.result_pickle)
        return ("done", entry["job_id"], "") if outcome == "success" else \
            ("failed", entry["job_id"], last_line(str(value)))
    st = ""
    if entry["kind"] == "slurm" and shutil.which("squeue"):
        out = subprocess.run(["squeue", "-h", "-j", str(entry["job_id"]), "-o", "%T"], capture_output=True, text=True)
        st = out.stdout.strip().splitlines()[0].upper() if out.returncode == 0 and out.stdout.strip() else ""
    st = st or job.state.upper()
    if st in ("PENDING", "REQUEUED", "CONFIGURING"):
        return "queued", entry["job_id"], ""
    if st in ("RUNNING", "COMPLETING"):
        return "running", entry["job_id"], ""
    if st in ("COMPLETED", "FINISHED", "DONE"):
        return "done", entry["job_id"], ""
    if st.startswith("UNKNOWN") and not job.paths.stderr.exists():
        return "queued", entry["job_id"], ""
    err = job.paths.stderr.read_text() if job.paths.stderr.exists() else ""
    return "failed", entry["job_id"], last_line(err) if err else st.lower()
