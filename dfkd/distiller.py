"""The one distillation loop every method runs (docs/design.md):

    for each round:
        synthesize: the synthesizer optimises its source for g_steps against the source objective
        remember:   with a replay pool, the round's batch is added to it
        distill:    kd_steps times, x = the round's batch ("reuse"), a fresh sample ("fresh") or a
                    draw from the pool ("pool");
                    the student minimises the student objective on student(view_s(x)) vs teacher(view_t(x))
        evaluate on the real test split, log, checkpoint

Losses stay on the device between log points (no host sync per step); they are averaged and checked
for NaN/Inf every `tracking.log_every` rounds and before every checkpoint, so a non-finite run stops
with `NonFiniteError` before anything non-finite is written.
"""
from __future__ import annotations

import copy
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch import Tensor, nn
from torchvision.utils import make_grid, save_image
from tqdm import tqdm

from . import memory
from .checkpoint import read_run_checkpoint, save_run_checkpoint
from .config import Config, to_dict
from .errors import NonFiniteError
from .evaluate import accuracy
from .guard import NonFiniteGuard, guarded_step
from .hooks import BlockHooks, FeatureHook, classifier_layer
from .objective import Objective, Signals
from .optim import make_optimizer
from .runtime import Precision, rng_state, set_rng_state
from .tracking import Tracker


class Distiller:
    def __init__(self, cfg: Config, student: nn.Module, synthesizer, probe, student_objective: Objective,
                 view_t: nn.Module, view_s: nn.Module, test_loader, tracker: Tracker, run_dir: Path,
                 device: torch.device, student_blocks: list[str] | None = None, pool=None,
                 precision: Precision | None = None, student_forward=None, view_eval: nn.Module | None = None):
        self.cfg, self.student, self.synth, self.probe = cfg, student.to(device).train(), synthesizer, probe
        self.objective, self.view_t, self.view_s = student_objective, view_t, view_s
        self.view_eval = view_s if view_eval is None else view_eval  # what the test split is scored through
        self.test_loader, self.tracker, self.run_dir, self.device = test_loader, tracker, run_dir, device
        d = cfg.distill
        self.heads = student_objective.heads  # trainable parts of student terms (FitNets' adapter)
        self.params = list(student.parameters()) + list(self.heads.parameters())
        self.optimizer, self.scheduler = make_optimizer(self.params, cfg.student.optim,
                                                        max(1, d.rounds - cfg.synth.warmup) * d.kd_steps)
        self.student_batch = cfg.synth.batch_size
        self.blocks = BlockHooks(student, student_blocks) if student_blocks else None
        self.features = FeatureHook(classifier_layer(student), mode="input") \
            if "s_features" in student_objective.needs else None
        self.pool = pool
        self.guard = NonFiniteGuard(cfg.guard)
        synthesizer.guard = self.guard
        self.precision = precision or Precision("off", device)
        self.scaler = self.precision.scaler()
        # e.g. torch.compile(student): the weights (and checkpoints) stay in `student`
        self.student_forward = student if student_forward is None else student_forward
        self.synth_student = self.student_forward  # what the synthesizer scores with (not DDP-wrapped)
        self.sync = None  # under torchrun: averages the heads' gradients (dfkd.distributed.data_parallel)
        self.main = True  # only the main process evaluates, writes and logs
        self.teacher_sha256: str | None = None
        self.state = {"round": 0, "acc": 0.0, "best": -1.0, "best_round": 0, "history": [], "sums": {},
                      "since_log": 0, "elapsed_s": 0.0, "synth_time_s": 0.0}

    @property
    def history(self) -> list[tuple[int, float]]:
        """(round, test accuracy) at every evaluation so far."""
        return self.state["history"]

    # ------------------------------------------------------------------ one student step
    @torch.no_grad()
    def teacher_signals(self, x: Tensor) -> Signals:
        """What the student objective needs from the frozen teacher on view_t(x)."""
        with self.precision.autocast():
            return self.probe(self.view_t(x), self.objective.needs)

    def student_step(self, x: Tensor, teacher: Signals) -> dict[str, Tensor]:
        with self.precision.autocast():
            s_clean = self.student_forward(self.view_s(teacher.x_clean)) if "clean" in self.objective.needs else None
            s_logits = self.student_forward(self.view_s(x))
            sig = replace(teacher, x=x, s_logits=s_logits, s_blocks=self.blocks.values if self.blocks else [],
                          s_features=self.features.value if self.features else None, s_logits_clean=s_clean)
            loss, parts = self.objective(sig)
        taken = guarded_step(loss, self.optimizer, self.scaler, self.guard, self.params, sync=self.sync)
        self.scheduler.step()  # a skipped step is counted by the guard; the schedule still advances
        if not taken:
            return {}
        parts["loss"] = loss.detach()
        critic = self.objective.critic
        if critic is not None:  # the critic's own step, against the student
            parts["critic"] = critic.step(teacher.t_logits, s_logits.detach(), self.objective.temperature)
        return parts

    def _perturbed(self, x: Tensor) -> Tensor:
        """x + δ, |δ| ≤ synth.perturb_eps, δ maximising KL(T || S) by PGD: the real-data perturbation
        source applied on top of synthesized samples (student in eval mode during the attack)."""
        from .losses import kl_div
        from .robust import Ball, pgd

        s = self.cfg.synth
        ball = Ball(s.perturb_eps, (0.0,) * x.shape[1], (1.0,) * x.shape[1], x.device, bounded=False)
        was = self.student.training
        self.student.eval()
        try:
            with torch.enable_grad():
                delta = pgd(lambda xa: -kl_div(self.synth_student(self.view_s(xa)),
                                               self.probe(self.view_t(xa)).t_logits, self.objective.temperature),
                            x, ball, s.perturb_steps, s.perturb_step)
        finally:
            self.student.train(was)
        return x + delta

    def _student_inputs(self, batch):
        """(x, teacher signals) for each of the round's kd_steps, by `distill.batch`."""
        d = self.cfg.distill
        if self.cfg.synth.perturb_eps > 0:  # each step on a fresh perturbation of its batch
            draw = {"pool": lambda: self.pool.sample(self.student_batch), "reuse": lambda: batch.x,
                    "fresh": lambda: self.synth.sample(self.student_batch)}[d.batch]
            for _ in range(d.kd_steps):
                x = self._perturbed(draw())
                yield x, self.teacher_signals(x)
            return
        if d.batch == "reuse":  # one teacher pass serves every student step on this batch
            cheap = self.objective.needs <= {"student", "targets", "clean"}  # the batch's teacher logits suffice
            seen = batch.x if batch.teacher_x is None else batch.teacher_x
            teacher = Signals(x=batch.x, t_logits=batch.t_logits) if cheap else self.teacher_signals(seen)
            teacher.targets, teacher.x_clean = batch.targets, batch.clean
            teacher.t_logits_clean = batch.t_logits_clean
            for _ in range(d.kd_steps):
                yield batch.x, teacher
            return
        draw = self.pool.sample if d.batch == "pool" else self.synth.sample
        for _ in range(d.kd_steps):
            x = draw(self.student_batch)
            yield x, self.teacher_signals(x)

    # ------------------------------------------------------------------ the loop
    def train_round(self) -> Tensor:
        """One round's work: synthesis, the pool, the student steps; losses added to the running sums.
        Returns the round's synthesized batch."""
        st, d = self.state, self.cfg.distill
        t0 = time.perf_counter()
        batch, g_parts = self.synth.synthesize(self.synth_student)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        st["synth_time_s"] += time.perf_counter() - t0
        if self.pool is not None:
            self.pool.add(batch.x)
        _accumulate(st["sums"], g_parts, "gen/")
        if not self.synth.warming_up:
            for term in self.cfg.objective.decay:  # linear decay of these terms' weights over the run (BSS)
                self.objective.factors[term] = max(0.0, 1.0 - (self.synth.round - 1) / self.cfg.distill.rounds)
            for x, teacher in self._student_inputs(batch):
                _accumulate(st["sums"], self.student_step(x, teacher), "student/", scale=1.0 / d.kd_steps)
        return batch.x

    def run(self, quiet: bool = False) -> dict:
        cfg, d = self.cfg, self.cfg.distill
        st = self.state  # everything the loop carries from round to round (restored on resume)
        start = time.time() - st["elapsed_s"]
        bar = tqdm(range(st["round"] + 1, d.rounds + 1), desc=f"{cfg.method} {cfg.teacher.arch}->{cfg.student.arch}",
                   unit="round", disable=quiet, leave=False, initial=st["round"], total=d.rounds)
        last_batch = None
        post: dict[str, str] = {}  # the bar's fields: accuracy, and the synthesis step within a long round
        if not quiet and cfg.synth.g_steps >= self.SHOW_SYNTH_STEPS:
            self.synth.on_step = self._synth_progress(bar, post)
        self._start = copy.deepcopy(self._models()) if st["round"] == 0 else None  # rollback target until a checkpoint
        for rnd in bar:
            last_batch = self.train_round()
            sums = st["sums"]
            st["since_log"] += 1
            if self.guard.tripped:
                self._roll_back(rnd)
            evaluate = (rnd % d.eval_every == 0 or rnd == d.rounds) and self.main
            if (rnd % cfg.tracking.log_every == 0 or evaluate) and self.main:
                metrics = self._averages(sums, st["since_log"], rnd)
                metrics["lr/student"] = self.optimizer.param_groups[0]["lr"]
                st["sums"], st["since_log"] = {}, 0
                if evaluate:
                    if self.test_loader is not None:
                        acc = accuracy(self.student, self.test_loader, self.device, transform=self.view_eval)
                        metrics["student_acc"] = acc
                    else:  # no labelled data: how closely the student follows the teacher
                        acc, st["agreement_kl"] = self.agreement()
                        metrics["agreement"], metrics["agreement_kl"] = acc, st["agreement_kl"]
                    st["acc"] = acc
                    st["history"].append((rnd, acc))
                    if acc > st["best"]:
                        st["best"], st["best_round"] = acc, rnd
                    self._save_samples(last_batch, rnd)
                    post.update(acc=f"{acc:.2f}", best=f"{st['best']:.2f}")
                    bar.set_postfix(post)
                metrics["elapsed_s"] = time.time() - start
                self.tracker.log(metrics, step=rnd)
                if evaluate:  # after the log row, so a resumed run never misses one
                    st["round"], st["elapsed_s"] = rnd, time.time() - start
                    self._checkpoint()
                    memory.trim()  # the evaluation's blocks are not the rounds' sizes: give them back
        scores = {"student_acc": st["acc"], "best_student_acc": st["best"]} if self.test_loader is not None else {
            "student_acc": None, "best_student_acc": None, "agreement": st["acc"], "best_agreement": st["best"],
            "agreement_kl": st.get("agreement_kl")}
        return {**scores, "best_round": st["best_round"],
                "skipped_steps": self.guard.skipped, "rollbacks": self.guard.rollbacks,
                "wall_time_s": round(time.time() - start, 2), "synth_time_s": round(st["synth_time_s"], 2)}

    SHOW_SYNTH_STEPS = 20  # rounds with this many source steps show them on the bar (a long round never looks hung)

    @staticmethod
    def _synth_progress(bar, post: dict, every_s: float = 0.5):
        """A callback for the synthesizer: 'synth i/n' on the bar, redrawn at most every `every_s` s."""
        last = [0.0]

        def show(step: int, total: int) -> None:
            now = time.monotonic()
            if now - last[0] >= every_s or step == 0:
                last[0] = now
                post["synth"] = f"{step + 1}/{total}"
                bar.set_postfix(post)

        return show

    AGREEMENT_SAMPLES = 512
    AGREEMENT_SEED = 20_240_601

    @torch.no_grad()
    def agreement(self) -> tuple[float, float]:
        """(top-1 agreement in %, mean KL(T||S)) of student and teacher on a held-out batch of
        `AGREEMENT_SAMPLES` synthesized inputs: the current source sampled with fixed random draws
        (the same latent codes at every evaluation), which the student never trains on; the global
        random streams are left untouched. A free-pixel source holds only its last round's batch,
        which is then what is scored. The score of a run without labelled data."""
        from .losses import kl_div

        devices = [self.device] if self.device.type == "cuda" else []
        was = self.student.training
        self.student.eval()
        try:
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(self.AGREEMENT_SEED)
                xs, n = [], 0
                while n < self.AGREEMENT_SAMPLES:
                    x = self.synth.sample(self.cfg.synth.batch_size)
                    xs.append(x)
                    n += len(x)
                    if getattr(self.synth.generator, "nz", None) == 1:  # free pixels: one fixed batch
                        break
            match, kl, total = 0.0, 0.0, 0
            for x in xs:
                with self.precision.autocast():
                    t = self.probe(self.view_t(x)).t_logits.float()
                    s_logits = self.student_forward(self.view_s(x)).float()
                match += (t.argmax(1) == s_logits.argmax(1)).sum().item()
                kl += kl_div(s_logits, t, 1.0).item() * len(x)
                total += len(x)
        finally:
            self.student.train(was)
        return 100.0 * match / total, kl / total

    def _averages(self, sums: dict[str, Tensor], rounds: int, rnd: int) -> dict[str, float]:
        out = {}
        for k, v in sums.items():
            value = (v / rounds).item()
            if not math.isfinite(value):
                raise NonFiniteError(
                    f"non-finite {k} ({value}) by round {rnd}; nothing was written after the last good "
                    f"checkpoint. Lower the learning rates (student.optim.lr, source.optim.lr) or the term weights")
            out[k] = value
        return out

    def _save_samples(self, x: Tensor, rnd: int) -> None:
        path = self.run_dir / "samples.png"
        tmp = path.with_name(".samples.png.tmp.png")
        x = x[:64].detach().float().cpu()
        if x.shape[-1] < 32:  # small tiles are unreadable; upscale by pixel repetition
            x = torch.nn.functional.interpolate(x, scale_factor=-(-32 // x.shape[-1]), mode="nearest")
        save_image(make_grid(x, nrow=8, normalize=True, scale_each=True), tmp)
        tmp.replace(path)
        self.tracker.log_image("samples", path, step=rnd)

    def _checkpoint(self) -> None:
        """Everything needed to continue exactly from the end of this round (`resume`); never written
        with non-finite weights (the run rolls back instead)."""
        models = self._models()
        weights = [t for sd in (models["student"], models["heads"], models["synthesizer"].get("generator", {}))
                   for t in sd.values()
                   if torch.is_tensor(t) and t.is_floating_point()]
        if not bool(torch.isfinite(torch.stack([w.abs().sum() for w in weights])).all()):
            self.guard.streak = self.cfg.guard.patience
            self._roll_back(self.state["round"])
            return
        save_run_checkpoint({
            "format": "dfkd-run-v2", "round": self.state["round"], "best_student_acc": self.state["best"],
            "best_round": self.state["best_round"], "loop": self.state, **models, "rng": rng_state(),
            "config": to_dict(self.cfg), "wandb_run_id": self.tracker.run_id, "teacher_sha256": self.teacher_sha256,
            "guard": self.guard.state_dict(),
        }, self.run_dir / "checkpoint.pt")

    def resume(self, ckpt: dict) -> None:
        """Continue from a checkpoint written by `_checkpoint` (the run's models are already built)."""
        self._load_models(ckpt)
        self.state = ckpt["loop"]
        self.guard.load_state_dict(ckpt["guard"])
        set_rng_state(ckpt["rng"])  # last: building the run above drew from the generators

    def _load_models(self, ckpt: dict) -> None:
        self.student.load_state_dict(ckpt["student"])
        self.heads.load_state_dict(ckpt.get("heads") or {})
        if self.objective.critic is not None:
            self.objective.critic.load_state_dict(ckpt["critic"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.synth.load_state_dict(ckpt["synthesizer"])
        if self.pool is not None:
            self.pool.load_state_dict(ckpt["pool"])

    def _models(self) -> dict:
        critic = self.objective.critic
        return {"student": self.student.state_dict(), "heads": self.heads.state_dict(),
                "critic": critic.state_dict() if critic is not None else None,
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "synthesizer": self.synth.state_dict(),
                "pool": self.pool.state_dict() if self.pool is not None else None}

    def _roll_back(self, rnd: int) -> None:
        """`guard.patience` steps in a row were non-finite: restore the student, source, optimizers
        and pool of the last good checkpoint (or of the start) and go on with fresh random draws; after
        `guard.max_rollbacks` rollbacks, stop (exit status 3) with the last good checkpoint intact."""
        g = self.guard
        if g.rollbacks >= g.cfg.max_rollbacks:
            raise NonFiniteError(
                f"non-finite losses or gradients in {g.streak} steps in a row by round {rnd} after {g.rollbacks} "
                f"rollbacks ({g.skipped} steps skipped in all); the last good checkpoint is intact. Lower the "
                f"learning rates (student.optim.lr, source.optim.lr) or the term weights")
        path = self.run_dir / "checkpoint.pt"
        self._load_models(read_run_checkpoint(path) if path.is_file() else self._start)
        g.rollbacks += 1
        g.streak = 0
        print(f"dfkd: warning: {self.cfg.guard.patience} non-finite steps in a row at round {rnd}; rolled back "
              f"to the last good state ({g.rollbacks}/{g.cfg.max_rollbacks})", file=sys.stderr)


def _accumulate(sums: dict[str, Tensor], parts: dict[str, Tensor], prefix: str, scale: float = 1.0) -> None:
    for k, v in parts.items():
        key = prefix + k
        sums[key] = sums[key] + v * scale if key in sums else v * scale
