"""Setting up a data-free distillation run from a `Config`: teacher, its parts (dfkd/run/parts.py),
test loader, run directory and tracker, then the loop.

Everything that can be wrong with the input (names, checkpoint, dataset, incompatible terms) is
checked before the run directory is created, so a bad call leaves nothing behind.
"""
from __future__ import annotations

import time
from pathlib import Path

from dfkd.base import distributed
from dfkd.base.errors import DfkdError
from dfkd.base.runtime import isolated_globals, resolve_device, seed_everything, set_deterministic
from dfkd.config.load import dump_yaml, provenance_yaml, to_dict
from dfkd.config.schema import Config
from dfkd.io.checkpoint import atomic_write_text, read_run_checkpoint, save_model
from dfkd.io.data import dataset_info, load_split, make_loader
from dfkd.io.eval_sets import eval_split
from dfkd.io.tracking import NullTracker, Tracker
from dfkd.models import count_params
from dfkd.models.interface import unwrapped
from dfkd.run import memory
from dfkd.run.evaluate import accuracy
from dfkd.run.loop import Distiller
from dfkd.run.parts import RunParts, build_parts, build_pool
from dfkd.run.resolve import resolve_epochs, resolve_teacher
from dfkd.run.state import CHECKPOINT_FORMAT
from dfkd.synthesis.robust import Ball


def slug(name: str) -> str:
    """A model or dataset name as a piece of a folder name: 'path/to/net.py:Net' -> 'net.py-Net'."""
    import re

    head, sep, tail = name.rpartition(":")
    if sep and ("/" in head or "\\" in head):
        name = f"{Path(head).name}:{tail}"
    return re.sub(r"[^A-Za-z0-9_.+=-]+", "-", name).strip("-")[:60] or "model"


def make_run_dir(cfg: Config, teacher: str | None = None, student: str | None = None) -> Path:
    data = slug(cfg.data.name)
    name = cfg.run_name or (f"{cfg.method}-{data}-{slug(teacher or cfg.teacher.arch)}-"
                            f"{slug(student or cfg.student.arch)}-s{cfg.seed}-{time.strftime('%Y%m%d-%H%M%S')}")
    run_dir = Path(cfg.out) / name
    if run_dir.exists() and any(run_dir.iterdir()):
        raise DfkdError(f"run directory '{run_dir}' already exists and is not empty; choose another "
                        f"run_name or --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def make_distiller(cfg: Config, parts: RunParts, test_loader, tracker, run_dir: Path, device, pool,
                   teacher_sha256: str | None = None) -> Distiller:
    return Distiller(cfg, parts, test_loader, tracker, run_dir, device, pool, teacher_sha256)


def declare_teacher(tracker, cfg: Config, t) -> dict | None:
    """The teacher as the W&B run's input model (a file or a W&B artifact; an in-memory module or a
    built one has no artifact): named like the artifact train-teacher logs for a dfkd teacher."""
    spec = cfg.teacher.checkpoint[len("wandb:"):] if cfg.teacher.checkpoint.startswith("wandb:") else None
    if spec is not None:
        return tracker.use_model(None, spec.rsplit("/", 1)[-1].split(":")[0], {"sha256": t.sha256}, spec=spec)
    path = Path(t.source)
    if t.kind in ("module", "built", "pretrained") or not path.is_file():
        return None
    name = f"teacher-{path.parent.name}" if t.kind == "dfkd" else f"teacher-{path.stem}"
    return tracker.use_model(path, name, {"sha256": t.sha256})


def resume_state(run_dir: str | Path) -> tuple[Config, dict]:
    """(resolved config, checkpoint) of an interrupted run, or a DfkdError saying why it cannot resume."""
    from dfkd.methods.configure import build_config

    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise DfkdError(f"'{run_dir}' is not a run directory (no config.yaml)")
    if (run_dir / "summary.json").is_file():
        raise DfkdError(f"run '{run_dir}' already finished (it has a summary.json); nothing to resume")
    if not (run_dir / "checkpoint.pt").is_file():
        raise DfkdError(f"run '{run_dir}' stopped before its first checkpoint; start it again "
                        f"(dfkd distill --config {run_dir / 'config.yaml'} with another run_name)")
    cfg = build_config(str(run_dir / "config.yaml"))
    ckpt = read_run_checkpoint(run_dir / "checkpoint.pt")
    if ckpt.get("format") in ("dfkd-run-v1", "dfkd-run-v2"):
        raise DfkdError(f"'{run_dir / 'checkpoint.pt'}' was written by an earlier dfkd ({ckpt['format']}); resume "
                        f"it with that version, or start the run again")
    if ckpt.get("format") != CHECKPOINT_FORMAT or ckpt.get("config") != to_dict(cfg):
        raise DfkdError(f"'{run_dir / 'checkpoint.pt'}' does not belong to the config beside it; "
                        f"it cannot be resumed")
    return cfg, ckpt


@isolated_globals
def distill(cfg: Config | None = None, quiet: bool = False, resume: str | Path | None = None,
            teacher_module=None, student_module=None, eval_set=None) -> tuple[Path, dict]:
    """Run data-free distillation, or continue the interrupted run in directory `resume` exactly
    where its last checkpoint left it; returns (run directory, summary). `teacher_module`,
    `student_module` and `eval_set` are the in-memory objects of the Python API (`dfkd.distill`)."""
    ckpt_run = None
    if resume is not None:
        cfg, ckpt_run = resume_state(resume)
    cfg = resolve_epochs(cfg)  # real data: distill.epochs -> distill.rounds, once (saved in config.yaml)
    memory.apply(cfg.perf.fast_memory)  # before the run's first large allocation
    world, device_name = distributed.from_env(cfg.device)
    if ckpt_run is not None and ckpt_run.get("world_size", 1) != world.size:
        n = ckpt_run.get("world_size", 1)
        raise DfkdError(f"run '{resume}' ran on {n} process{'es' if n > 1 else ''}; resume it on as many "
                        f"(exact resume continues each process's own random streams and samples): "
                        + (f"torchrun --nproc_per_node {n} -m dfkd distill --resume {resume}" if n > 1
                           else f"dfkd distill --resume {resume}, without torchrun"))
    if world.active and cfg.synth.batch_size % world.size:
        raise DfkdError(f"synth.batch_size={cfg.synth.batch_size} must be divisible by the {world.size} "
                        f"processes of torchrun (each synthesizes its share)")
    device = resolve_device(device_name)
    info = dataset_info(cfg.data)
    # what the student is scored on: the test split (never trained on), or data.eval; with
    # source.name=real, build_parts also reads the train split
    test_split = cfg.data.eval == "" and cfg.data.name != "none"
    test_ds = load_split(cfg.data, "test") if test_split else eval_split(cfg.data, info, eval_set)
    if not world.main:
        distributed.barrier()  # rank 0 trains a missing teacher first
    seed_everything(cfg.seed)  # a teacher built by its architecture (teacher.checkpoint=none) is seeded too
    t = resolve_teacher(cfg, info, teacher_module, quiet or not world.main)
    teacher = t.model
    if world.main and world.active:
        distributed.barrier()
    set_deterministic(cfg.deterministic)
    seed_everything(cfg.seed)
    teacher = teacher.to(device)
    made = []  # the run directory, once made below (the extensions' disk pools go there at first use)
    parts = build_parts(cfg, teacher, info, device, world, student_module, lambda: made[0] if made else None)
    student, s_channels = parts.student, parts.student_channels
    test_loader = make_loader(test_ds, 512, False, cfg.data, device=device) if test_ds is not None else None
    if parts.probe.bn is not None:  # no BN statistics (or their all-reduce) while scoring the teacher;
        parts.probe.bn.enabled = False  # the probe switches the hook per call
    teacher_acc = None
    if test_loader is not None:
        teacher_acc = accuracy(teacher, test_loader, device)
        memory.trim()  # the evaluation's large blocks are not the rounds' sizes
        if world.main and not quiet:
            report_teacher(teacher_acc, info.num_classes, cfg.data.eval or f"the {cfg.data.name} test split")

    if ckpt_run is not None and ckpt_run["teacher_sha256"] != t.sha256:
        raise DfkdError(f"the teacher ({t.source}) is not the one run '{resume}' started with "
                        f"(sha256 differs); restore that teacher to resume")
    if world.main:
        run_dir = make_run_dir(cfg, t.name) if resume is None else Path(resume)
    run_dir = Path(distributed.broadcast(str(run_dir) if world.main else None))
    made.append(run_dir)
    pool = build_pool(cfg, info, device, run_dir if world.main else None)
    config = to_dict(cfg)
    if resume is None and world.main:
        atomic_write_text(run_dir / "config.yaml", dump_yaml(cfg))
        if cfg.provenance:  # where each value came from: default, recipe, preset, --config, --set
            atomic_write_text(run_dir / "provenance.yaml", provenance_yaml(cfg))
    tracker = Tracker(run_dir, cfg.tracking, config, name=run_dir.name, job_type="distill",
                      resume=(ckpt_run["round"], ckpt_run["wandb_run_id"]) if ckpt_run else None) \
        if world.main else NullTracker()
    teacher_input = declare_teacher(tracker, cfg, t)
    loop = make_distiller(cfg, parts, test_loader, tracker, run_dir, device, pool, t.sha256)
    if ckpt_run is not None:
        loop.files.resume(ckpt_run)
        if world.rank > 0:
            loop.files.resume_rank(world.rank, ckpt_run["round"])
    try:
        result = loop.run(quiet=quiet or not world.main)
    finally:
        if pool is not None:
            pool.close()
    if world.active:
        distributed.sync_buffers(student)
    if cfg.robust.eps > 0 and test_loader is not None:
        from dfkd.synthesis.robust import robust_accuracy

        r = cfg.robust
        result["robust_acc"] = robust_accuracy(student, test_loader, device, Ball(r.eps, info.mean, info.std, device),
                                               r.steps, r.step, transform=parts.view_eval)
    if world.active:
        result["ddp"] = {"world_size": world.size, "student_checksums": distributed.checksums(student),
                         # per rank: 1 where a 16 MiB block was served by its own mmap (0 proves fast memory holds there)
                         "large_blocks_mapped": distributed.gathered(int(bool(memory.large_blocks_are_mapped())))}
        if not world.main:
            return run_dir, result
    digest = save_model(run_dir / "student.pt", unwrapped(student), kind="student", arch=cfg.student.arch,
                        dataset=cfg.data.name, num_classes=info.num_classes, in_channels=s_channels,
                        image_size=info.image_size, mean=info.mean, std=info.std, config=config,
                        metrics={"test_acc": result["student_acc"], "agreement": result.get("agreement")})
    tracker.log_model(run_dir / "student.pt", f"student-{run_dir.name}", {
        "sha256": digest, "test_acc": result["student_acc"], "method": cfg.method, "teacher_sha256": t.sha256})
    summary = {
        "method": cfg.method, "label": cfg.label or cfg.method, "dataset": cfg.data.name, "teacher": t.name,
        "student": cfg.student.arch, "seed": cfg.seed, "teacher_acc": teacher_acc, **result,
        "teacher_black_box": cfg.teacher.black_box,
        "scored_on": describe_eval(cfg), "teacher_params": count_params(teacher),
        "student_params": count_params(student), "rounds": cfg.distill.rounds, "teacher_checkpoint": t.source,
        "teacher_source": t.kind, "teacher_sha256": t.sha256, "curve": loop.state["history"], "wandb_run_id": tracker.run_id,
        "cpu_memory": {"state": memory.state(), "large_blocks_mapped": memory.large_blocks_are_mapped()},
        "wandb_inputs": [teacher_input] if teacher_input else [],
    }
    if loop.state["history"]:
        from dfkd.io.plots import accuracy_curves

        row = {"label": cfg.label or cfg.method, "dataset": cfg.data.name, "teacher": t.name,
               "student": cfg.student.arch, "curves": [loop.state["history"]]}
        tracker.log_image("accuracy_curve", accuracy_curves([row], run_dir / "accuracy.png"), step=cfg.distill.rounds)
    tracker.finish(summary)
    return run_dir, summary


def describe_eval(cfg: Config) -> str:
    """What the summary's student score means."""
    e = cfg.data.eval
    if e == "none" or (e == "" and cfg.data.name == "none"):
        return "agreement: top-1 match with the teacher on held-out synthesized inputs (no labelled data)"
    if e == "in-memory":
        return "accuracy on the eval_set given from Python"
    return f"accuracy on the image folder {e}" if e else f"accuracy on the {cfg.data.name} test split"


def report_teacher(acc: float, num_classes: int, where: str) -> None:
    """The teacher's accuracy before distilling, on stderr; a warning when it is about chance, the
    sign of a wrong normalisation, input size or class order."""
    import sys

    chance = 100.0 / num_classes
    print(f"dfkd: teacher accuracy on {where}: {acc:.2f}%", file=sys.stderr)
    if acc < 1.5 * chance:
        from dfkd.base import log

        log.warn(f"the teacher scores {acc:.2f}%, about chance ({chance:.1f}%) or below, on {where}: "
                 f"check data.mean / data.std / data.image_size and the class order")
