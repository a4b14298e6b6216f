"""Experiment tables: run every cell of a table over seeds, then print it with `dfkd.tables.results`.

A table is a folder `experiments/NAME/` holding `table.yaml` (schema: `dfkd.tables.spec.TableSpec`), the
config files its cells share and `published.yaml` (the published numbers, with their source).

    dfkd experiment digits --seeds 3 --scale smoke      # or: python experiments/run.py digits ...

For each (cell, seed) the run directory is `OUT/NAME/SCALE/CELL-sSEED`: a finished run (it has a
summary.json) is skipped, an interrupted one is resumed exactly from its last checkpoint (or, if it
has none, moved aside to `…-interrupted-TIME` and run again), so the command can simply be repeated
until the table is complete. A run, finished or not, whose saved config differs from the one the
table now gives (in anything but where and how fast it runs: see `_WHERE`) is moved aside (to
`outdated/CELL-sSEED-TIME`, which tables skip, or `…-interrupted-TIME`) and run again, so an edited
table never mixes old results in.
Teachers are trained first (once per dataset and architecture, under `OUT/NAME/SCALE/teachers`)
with the dataset's recipe and the scale's `teacher_set` overrides. The scale's `max` caps any
numeric key of every cell: `smoke` shrinks budgets so a whole table runs on a CPU in minutes (it
checks the pipeline, not the numbers).
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path

from dfkd.base.errors import DfkdError
from dfkd.base.registry import suggest
from dfkd.config.load import flatten, to_dict
from dfkd.config.schema import Config
from dfkd.io.wandb_files import tag_outdated
from dfkd.tables.spec import Scale, cell_config, config_sets, read_table, table_name


def run_table(table: str, seeds: int | None = None, scale: str = "paper", out: str = "runs",
              only=(), sets=(), dry_run: bool = False, quiet: bool = False, jobs: int = 1, launcher=None,
              wait: bool = True, status: bool = False) -> tuple[Path, list[str]]:
    """Run every missing (cell, seed) of `table` at `scale`; returns (the table's run folder, cell names).

    `jobs` > 1 runs that many (cell, seed) runs at once, each in its own process (spawned; missing
    teachers are trained first, in this process): on a GPU whose small networks leave it mostly idle,
    or a many-core CPU (each process then gets cores // jobs threads). `launcher` (a
    dfkd.tables.launch.LauncherConfig of kind slurm or submitit_local) submits them as one job array
    instead, and with `wait` blocks until they end; `status` prints each run's state and runs nothing."""
    from dfkd.methods.configure import build_config
    from dfkd.run.teacher import auto_seed, auto_teacher_config, build_teacher_config, ensure_teacher, teacher_path

    path, spec = read_table(table)
    name = table_name(path)
    scales = spec.scales or {}
    if scale != "paper" and scale not in scales:
        raise DfkdError(f"{path}: no scale '{scale}'{suggest(scale, scales)}; scales: paper, {', '.join(scales)}")
    sc = scales.get(scale, Scale())
    cells = [c for c in spec.cells if not only or (c.name or c.method) in only]
    unknown = set(only) - {c.name or c.method for c in spec.cells}
    if unknown:
        u = sorted(unknown)[0]
        raise DfkdError(f"no cell '{u}' in {name}{suggest(u, [c.name or c.method for c in spec.cells])}")
    root = Path(out) / name / scale
    n_seeds = seeds or spec.seeds
    # validate every cell before any work starts
    for c in spec.cells:
        for k in c.scale_set or {}:
            if k != "paper" and k not in scales:
                raise DfkdError(f"{path}: cell '{c.name or c.method}' has scale_set for an unknown scale "
                                f"'{k}'{suggest(k, scales)}; scales: paper, {', '.join(scales)}")
    plans = [(c, s, cell_config(path, spec, c, sc, s, sets, scale)) for c in cells for s in range(n_seeds)]
    if sc.standin:
        plans = _standins(plans, scale)
    group = [f"tracking.group={name}-{scale}"]
    teachers: dict[tuple, object] = {}  # the auto-trained teachers (auto, auto:SEED) the cells name, by key

    def auto_key(cfg, member: str) -> tuple:
        return cfg.data.name, cfg.data.image_size, cfg.teacher.arch, auto_seed(member)

    for cell, seed, cfg in plans:
        for member in cfg.teacher.members or [cfg.teacher.checkpoint]:
            if auto_seed(member) is None or auto_key(cfg, member) in teachers:
                continue
            tcfg = auto_teacher_config(dataclasses.replace(cfg, out=str(root)), auto_seed(member))
            tcfg = build_teacher_config(base=to_dict(tcfg), sets=config_sets(sc.teacher_set))
            teachers[auto_key(cfg, member)] = tcfg
    if jobs < 1:
        raise DfkdError(f"--jobs must be >= 1, got {jobs}")
    remote = launcher is not None and launcher.kind != "local"  # runs submitted as a job array
    if remote and not (dry_run or status):
        from dfkd.tables.launch import check

        check(launcher)  # submitit and sbatch, before a teacher is trained or a run set aside
    if status:
        from dfkd.tables.launch import run_status

        for run, st, job, detail in run_status(root, [root / f"{c.name or c.method}-s{s}" for c, s, _ in plans]):
            print(f"{st:<8} {job:<12} {run}" + (f"  {detail}" if detail else ""))
        return root, [c.name or c.method for c in spec.cells]
    done = skipped = 0
    work = []  # (label, config or None, run directory to resume or None)
    for cell, seed, cfg in plans:
        cell_name = cell.name or cell.method
        run_dir = root / f"{cell_name}-s{seed}"
        label = f"{cell_name} seed {seed}"
        extra = [f"out={root}", f"run_name={run_dir.name}", f"label={cell_name}", *group,
                 f"tracking.job_type={cell_name}", f"tracking.tags={[name, scale, cfg.method, f'seed{seed}']}"]
        needed = [teachers[auto_key(cfg, s)] for s in cfg.teacher.members or [cfg.teacher.checkpoint]
                  if auto_seed(s) is not None]
        if cfg.teacher.members:  # each auto member by its trained file
            members = [str(teacher_path(teachers[auto_key(cfg, s)])) if auto_seed(s) is not None else s
                       for s in cfg.teacher.members]
            extra.append(f"teacher.members=[{', '.join(members)}]")
        elif needed:
            extra.append(f"teacher.checkpoint={teacher_path(needed[0])}")
        planned = build_config(None, extra, base=to_dict(cfg), base_origin=cfg.provenance)
        status = "done" if (run_dir / "summary.json").is_file() else "interrupted" if run_dir.exists() else "todo"
        why = outdated(run_dir, planned) if status == "done" else None
        if why:
            status = "outdated"
        if dry_run:
            print(f"{status:<11} {run_dir}  ({cfg.method}, {cfg.teacher.arch}->{cfg.student.arch}, "
                  f"{cfg.distill.rounds} rounds)" + (f"  [{why}]" if why else ""))
            continue
        if status == "done":
            skipped += 1
            continue
        if status == "outdated":
            aside = root / "outdated" / f"{run_dir.name}-{time.strftime('%Y%m%d-%H%M%S')}"
            aside.parent.mkdir(exist_ok=True)
            run_dir.rename(aside)  # kept, out of the table (dfkd table skips outdated/)
            tag_outdated(aside)  # and out of `dfkd table --wandb`
            print(f"dfkd: {run_dir} finished under another config ({why}); moved to outdated/{aside.name} "
                  f"and running it again", file=sys.stderr)
        if status == "interrupted":
            why = not_resumable(run_dir, planned)
            if why is None:
                print(f"dfkd: {run_dir} was interrupted; resumed it from its last checkpoint", file=sys.stderr)
                work.append((label, None, run_dir))
                continue
            aside = run_dir.with_name(f"{run_dir.name}-interrupted-{time.strftime('%Y%m%d-%H%M%S')}")
            run_dir.rename(aside)  # no checkpoint yet, an unusable one or an outdated config: keep it aside
            print(f"dfkd: {run_dir} was interrupted and cannot be resumed ({why}); moved to {aside.name} "
                  f"and running it again", file=sys.stderr)
        for tcfg in needed:
            ensure_teacher(tcfg, quiet=quiet)  # trained once, before the first run that needs it
        work.append((label, planned, None))
    if remote:
        from dfkd.tables import launch

        submitted = launch.submit(work, launcher, root)
        print(f"{name} ({scale}): {len(submitted)} runs submitted ({launcher.kind}), {skipped} already finished; "
              f"job ids in {root / launch.STATE}", file=sys.stderr)
        if not wait:
            return root, [c.name or c.method for c in spec.cells]
        finished, failed = launch.wait(submitted)
        for line in failed:
            print(f"dfkd: failed: {line}", file=sys.stderr)
        if failed:
            raise DfkdError(f"{len(failed)} of {len(submitted)} runs failed (above); run the table again to "
                            f"resume or repeat them")
    for label, summary in (finished if remote else _run_all(work, jobs, quiet)):
        done += 1
        score = summary["student_acc"] if summary["student_acc"] is not None else summary.get("agreement", 0.0)
        print(f"{label}: student {score:.2f}% ({summary['wall_time_s']:.0f} s)")
    if not dry_run:
        print(f"{name} ({scale}): {done} runs done, {skipped} already finished; results under {root}")
    return root, [c.name or c.method for c in spec.cells]


def not_resumable(run_dir: Path, planned=None) -> str | None:
    """Why the interrupted run in `run_dir` cannot be continued by `distill(resume=...)`, or None.
    With `planned` (the config the table would run now), a run started under another config (the
    table's YAML edited since) is not resumed either: its result would not be the cell's."""
    from dfkd.run.runner import resume_state

    try:
        saved, _ = resume_state(run_dir)
    except DfkdError as e:
        return str(e)
    return config_change(saved, planned) if planned is not None else None


def outdated(run_dir: Path, planned: Config) -> str | None:
    """Why the finished run in `run_dir` is not the cell `planned` describes (its config differs), or None."""
    from dfkd.methods.configure import build_config

    try:
        saved = build_config(str(run_dir / "config.yaml"))
    except DfkdError as e:
        return f"its config.yaml no longer reads: {e}"
    return config_change(saved, planned)


# Keys that say where or how fast a run goes, not what it computes: a run may differ in them and
# still be the cell's (e.g. resumed with another --data-root, or tracked online this time).
_WHERE = ("device", "out", "data.root", "data.download", "data.num_workers", "pool.device", "perf.", "tracking.")


def _is_where(key: str) -> bool:
    """`key` is one of `_WHERE`, or lies in one of its sections (the entries ending in '.')."""
    return any(key == w or (w.endswith(".") and key.startswith(w)) for w in _WHERE)


def config_change(saved: Config, planned: Config) -> str | None:
    """The keys (at most three shown) in which a run's saved config differs from the planned one, or None."""
    old, new = flatten(to_dict(saved)), flatten(to_dict(planned))
    changed = sorted(k for k in old.keys() | new.keys()
                     if old.get(k) != new.get(k) and not _is_where(k))
    if not changed:
        return None
    shown = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed[:3])
    more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
    return f"the table's config changed since it started: {shown}{more}"


def _run_one(cfg, resume, quiet: bool) -> dict:
    from dfkd.run.runner import distill

    _, summary = distill(cfg, quiet=quiet, resume=resume)
    return summary


def _init_worker(threads: int) -> None:
    """A worker of `--jobs`: its share of the cores, and on Linux it ends with the runner, so a
    killed runner leaves no run still writing into a directory the next runner would resume."""
    import torch

    torch.set_num_threads(threads)
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        try:
            ctypes.CDLL(None).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def _run_all(work, jobs: int, quiet: bool):
    """Yield (label, summary) for each (label, config, resume) of `work`, `jobs` at a time."""
    if jobs == 1 or len(work) <= 1:
        for label, cfg, resume in work:
            yield (f"{label} (resumed)" if resume else label), _run_one(cfg, resume, quiet)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    threads = max(1, (os.cpu_count() or 1) // jobs)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                             initargs=(threads,)) as pool:
        futures = {pool.submit(_run_one, cfg, resume, True): (f"{label} (resumed)" if resume else label)
                   for label, cfg, resume in work}
        try:
            for fut in as_completed(futures):
                yield futures[fut], fut.result()
        except BaseException:  # a failed run stops the table, as it does one run at a time: start no more
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _standins(plans, scale: str):
    """Replace each dataset that cannot be read here by its generated stand-in, and say so."""
    from dfkd.io.data import STANDIN, available

    missing: dict[str, bool] = {}
    out = []
    for cell, seed, cfg in plans:
        name = cfg.data.name
        if name not in missing:
            missing[name] = not name.startswith(STANDIN) and not available(cfg.data)
            if missing[name]:
                print(f"dfkd: dataset '{name}' is not available here; the {scale} scale uses a generated "
                      f"stand-in ({STANDIN}{name}): it checks the pipeline, its numbers mean nothing",
                      file=sys.stderr)
        if missing[name]:
            cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, name=STANDIN + name))
        out.append((cell, seed, cfg))
    return out
