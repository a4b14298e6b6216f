"""What a run writes and restores around the loop (`Distiller`): the checkpoint to resume from, the
rollback to the last good state after repeated non-finite steps, and the grid of samples.

A checkpoint holds everything needed to continue exactly from the end of its round: the student,
its optimizer and schedule, every component's state under its key (`components`: the source's
schedule, the terms' trainable parts, the extensions; dfkd/base/component.py), the pool, the loop's
counters, the random streams, the guard and the config. It is never written with non-finite weights
(the run rolls back instead).
"""
from __future__ import annotations

import copy

import torch
from torch import Tensor
from torchvision.utils import make_grid, save_image

from dfkd.base import log
from dfkd.base.errors import DfkdError, NonFiniteError
from dfkd.base.runtime import rng_state, set_rng_state
from dfkd.config.load import to_dict
from dfkd.io.checkpoint import read_run_checkpoint, save_run_checkpoint

CHECKPOINT_FORMAT = "dfkd-run-v3"  # v3: every component's state under "components" (v2: by name)


def component_states(components) -> dict:
    """{key: state} of each component (what a checkpoint holds under "components")."""
    return {c.key: c.state_dict() for c in components}


def load_component_states(components, states: dict) -> None:
    for c in components:
        if states.get(c.key) is not None:
            c.load_state_dict(states[c.key])


class RunState:
    def __init__(self, loop):
        self.loop = loop
        self.start: dict | None = None  # the rollback target until the first checkpoint

    def keep_start(self) -> None:
        self.start = copy.deepcopy(self.models())

    def models(self) -> dict:
        lp = self.loop
        return {"student": lp.student.state_dict(), "optimizer": lp.optimizer.state_dict(),
                "scheduler": lp.scheduler.state_dict(), "components": component_states(lp.components),
                "pool": lp.pool.state_dict() if lp.pool is not None else None}

    def load_models(self, ckpt: dict) -> None:
        lp = self.loop
        lp.student.load_state_dict(ckpt["student"])
        lp.optimizer.load_state_dict(ckpt["optimizer"])
        lp.scheduler.load_state_dict(ckpt["scheduler"])
        load_component_states(lp.components, ckpt["components"])
        if lp.pool is not None:
            lp.pool.load_state_dict(ckpt["pool"])

    def save(self) -> None:
        """checkpoint.pt for the round just ended, or a rollback if any weight is non-finite."""
        lp, models = self.loop, self.models()
        weights = [t for t in models["student"].values() if torch.is_tensor(t) and t.is_floating_point()]
        weights += [w for c in lp.components for w in c.weights()]
        if not bool(torch.isfinite(torch.stack([w.abs().sum() for w in weights])).all()):
            lp.guard.streak = lp.cfg.guard.patience
            self.roll_back(lp.state["round"])
            return
        lp.state["teacher_queries"] = lp.probe.queries  # this process's, restored on resume
        save_run_checkpoint({
            "format": CHECKPOINT_FORMAT, "round": lp.state["round"], "best_student_acc": lp.state["best"],
            "best_round": lp.state["best_round"], "loop": lp.state, **models, "rng": rng_state(),
            "config": to_dict(lp.cfg), "wandb_run_id": lp.tracker.run_id, "teacher_sha256": lp.teacher_sha256,
            "guard": lp.guard.state_dict(), "world_size": lp.world_size,
        }, lp.run_dir / "checkpoint.pt")

    def resume(self, ckpt: dict) -> None:
        """Continue from a checkpoint written by `save` (the run's models are already built)."""
        self.load_models(ckpt)
        self.loop.state = ckpt["loop"]
        self.loop.probe.queries = ckpt["loop"].get("teacher_queries", 0)
        self.loop.guard.load_state_dict(ckpt["guard"])
        set_rng_state(ckpt["rng"])  # last: building the run above drew from the generators

    def roll_back(self, rnd: int) -> None:
        """`guard.patience` steps in a row were non-finite: restore the student, source, optimizers
        and pool of the last good checkpoint (or of the start) and go on with fresh random draws; after
        `guard.max_rollbacks` rollbacks, stop (exit status 3) with the last good checkpoint intact."""
        lp, g = self.loop, self.loop.guard
        if g.rollbacks >= g.cfg.max_rollbacks:
            raise NonFiniteError(
                f"non-finite losses or gradients in {g.streak} steps in a row by round {rnd} after {g.rollbacks} "
                f"rollbacks ({g.skipped} steps skipped in all); the last good checkpoint is intact. Lower the "
                f"learning rates (student.optim.lr, source.optim.lr) or the term weights")
        path = lp.run_dir / "checkpoint.pt"
        self.load_models(read_run_checkpoint(path) if path.is_file() else self.start)
        g.rollbacks += 1
        g.streak = 0
        log.warn(f"{lp.cfg.guard.patience} non-finite steps in a row at round {rnd}; rolled back "
                 f"to the last good state ({g.rollbacks}/{g.cfg.max_rollbacks})")

    # ------------------------------------------------------------------ under torchrun
    # Every rank but 0 has state of its own (random streams, the source's per-rank statistics, its
    # pool of its own samples): at each checkpoint round it writes ranks/rankR-roundN.pt before rank 0
    # writes checkpoint.pt, and drops its older files only after, so a kill at any point leaves the
    # files that the last checkpoint.pt needs.
    def rank_path(self, rank: int, rnd: int):
        return self.loop.run_dir / "ranks" / f"rank{rank}-round{rnd}.pt"

    def before_checkpoint(self, rnd: int) -> None:
        from dfkd.base import distributed

        lp = self.loop
        if lp.world_size > 1 and not lp.main:
            self.rank_path(lp.rank, rnd).parent.mkdir(exist_ok=True)
            save_run_checkpoint({"format": "dfkd-rank-v2", "round": rnd, "rank": lp.rank, "rng": rng_state(),
                                 "components": component_states([c for c in lp.components if c.per_rank]),
                                 "pool": lp.pool.state_dict() if lp.pool is not None else None},
                                self.rank_path(lp.rank, rnd))
        distributed.barrier()

    def after_checkpoint(self, rnd: int) -> None:
        from dfkd.base import distributed

        lp = self.loop
        distributed.barrier()
        if lp.world_size > 1 and not lp.main:
            for old in self.rank_path(lp.rank, rnd).parent.glob(f"rank{lp.rank}-round*.pt"):
                if int(old.stem.rsplit("round", 1)[1]) < rnd:
                    old.unlink()

    def resume_rank(self, rank: int, rnd: int) -> None:
        """This rank's own state at checkpoint round `rnd` (after `resume` loaded the shared one)."""
        path = self.rank_path(rank, rnd)
        if not path.is_file():
            raise DfkdError(f"'{path}' is missing: rank {rank}'s state at round {rnd}, which exact resume "
                            f"needs; the run cannot be resumed")
        state = read_run_checkpoint(path)
        load_component_states([c for c in self.loop.components if c.per_rank], state["components"])
        if self.loop.pool is not None:
            self.loop.pool.load_state_dict(state["pool"])
        set_rng_state(state["rng"])

    def save_samples(self, x: Tensor, rnd: int) -> None:
        """samples.png: the first 64 of the round's batch (small tiles upscaled), also to the tracker."""
        path = self.loop.run_dir / "samples.png"
        tmp = path.with_name(".samples.png.tmp.png")
        x = x[:64].detach().float().cpu()
        if x.shape[-1] < 32:  # small tiles are unreadable; upscale by pixel repetition
            x = torch.nn.functional.interpolate(x, scale_factor=-(-32 // x.shape[-1]), mode="nearest")
        save_image(make_grid(x, nrow=8, normalize=True, scale_each=True), tmp)
        tmp.replace(path)
        self.loop.tracker.log_image("samples", path, step=rnd)
