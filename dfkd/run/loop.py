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
with `NonFiniteError` before anything non-finite is written. Checkpoints, resume, rollback and the
sample grid are `dfkd.run.state.RunState`; the parts of a run come as one `dfkd.run.parts.RunParts`,
built final (under torchrun too): the loop steps, saves and syncs its components by one contract
(dfkd/base/component.py), never by name.
"""
from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch import Tensor
from tqdm import tqdm

from dfkd.base.component import trained_by_owner
from dfkd.base.distributed import sync_buffers
from dfkd.base.runtime import Precision
from dfkd.config.schema import Config
from dfkd.io.tracking import Tracker, synth_progress
from dfkd.objective.guard import NonFiniteGuard, finite_averages, guarded_step
from dfkd.objective.hooks import BlockHooks, FeatureHook, classifier_layer
from dfkd.objective.losses import self_paced_weight
from dfkd.objective.optim import make_optimizer
from dfkd.objective.signals import Signals
from dfkd.run import memory
from dfkd.run.evaluate import accuracy, agreement
from dfkd.run.state import RunState
from dfkd.synthesis.perturb import Perturbation

SHOW_SYNTH_STEPS = 20  # rounds with this many source steps show them on the bar (a long round never looks hung)


class Distiller:
    def __init__(self, cfg: Config, parts, test_loader, tracker: Tracker, run_dir: Path, device: torch.device,
                 pool=None, teacher_sha256: str | None = None):
        self.cfg, self.test_loader, self.tracker, self.run_dir, self.device, self.pool = \
            cfg, test_loader, tracker, run_dir, device, pool
        self.student, self.synth, self.probe = parts.student.to(device).train(), parts.synth, parts.probe
        self.objective, self.view_t, self.view_s = parts.student_objective, parts.view_t, parts.view_s
        self.view_eval = parts.view_s if parts.view_eval is None else parts.view_eval  # what the test split is scored through
        self.components = parts.components or [parts.synth]  # every trainable part besides the student
        self.student_components = list(self.objective.components.values())  # stepped after each student step
        self.params = list(self.student.parameters()) + trained_by_owner(self.student_components)
        d = cfg.distill
        self.optimizer, self.scheduler = make_optimizer(self.params, cfg.student.optim,
                                                        max(1, d.rounds - cfg.synth.warmup) * d.kd_steps)
        world = parts.world
        self.main, self.rank, self.world_size = world.main, world.rank, world.size  # only the main process writes
        self.student_batch = (d.batch_size or cfg.synth.batch_size) // world.size  # this process's share
        self.blocks = BlockHooks(self.student, parts.student_blocks) if parts.student_blocks else None
        self.features = FeatureHook(classifier_layer(self.student), mode="input") \
            if "s_features" in self.objective.needs else None
        self.guard = parts.guard if parts.guard is not None else NonFiniteGuard(cfg.guard)  # the synthesizer's too
        self.precision = Precision("off", device) if parts.precision is None else parts.precision
        self.scaler = self.precision.scaler()
        # e.g. torch.compile(student) or its DDP wrapper: the weights (and checkpoints) stay in `student`
        self.student_forward = self.student if parts.student_forward is None else parts.student_forward
        # what the synthesizer scores with (never a DDP wrapper; `or` would ask a compiled module its len())
        self.synth_student = self.student_forward if parts.synth_student is None else parts.synth_student
        self.augment = parts.student_augment  # distill.augment: what student batches are read through
        self.perturb = Perturbation(cfg.synth, self.probe, self.view_t, self.view_s, self.objective.temperature) \
            if cfg.synth.perturb_eps > 0 else None
        self.teacher_sha256 = teacher_sha256  # recorded in checkpoints: a resume checks the teacher
        self.on_synth_step = None  # during run(): the progress bar's callback within a long round
        self.files = RunState(self)  # checkpoints, resume, rollback, samples
        # what goes from round to round (checkpointed); history: (round, score) at every evaluation
        self.state = {"round": 0, "acc": 0.0, "best": -1.0, "best_round": 0, "history": [], "sums": {},
                      "since_log": 0, "elapsed_s": 0.0, "synth_time_s": 0.0, "student_steps": 0}

    # ------------------------------------------------------------------ one student step
    @torch.no_grad()
    def teacher_signals(self, x: Tensor) -> Signals:
        """What the student objective needs from the frozen teacher on view_t(x)."""
        with self.precision.autocast():
            return self.probe(self.view_t(x), self.objective.needs)

    def student_step(self, x: Tensor, teacher: Signals) -> dict[str, Tensor]:
        with self.precision.autocast():
            clean = "clean" in self.objective.needs
            first = clean and self.cfg.distill.clean_first
            s_clean = self.student_forward(self.view_s(teacher.x_clean)) if first else None
            # no sample to learn on (BSS: none attacked in this batch): no forward pass
            s_logits = self.student_forward(self.view_s(x)) if len(x) else teacher.t_logits.new_zeros(teacher.t_logits.shape)
            if clean and not first:
                s_clean = self.student_forward(self.view_s(teacher.x_clean))
            sig = replace(teacher, x=x, s_logits=s_logits, s_blocks=self.blocks.values if self.blocks else [],
                          s_features=self.features.value if self.features else None, s_logits_clean=s_clean)
            loss, parts = self.objective(sig)
            if self.cfg.objective.self_paced:  # CuDFKD: the batch's loss weighted easy-to-hard
                lam0, rate = self.cfg.objective.self_paced
                parts["self_paced_v"] = v = self_paced_weight(loss, lam0 + rate * self.state["student_steps"])
                loss = loss * v
        self.state["student_steps"] += 1
        taken = guarded_step(loss, self.optimizer, self.scaler, self.guard, self.params, sync=self._sync,
                             clip=self.cfg.student.optim.clip_grad)
        self.scheduler.step()  # a skipped step is counted by the guard; the schedule still advances
        if not taken:
            return {}
        parts["loss"] = loss.detach()
        for c in self.student_components:  # their own steps (the critic's, against the student)
            parts.update(c.step(sig, self.objective))
        return parts

    def _sync(self, params) -> None:
        """Under torchrun: the mean over ranks of the gradients of the components the student's optimizer
        trains (DDP averages the student's own)."""
        for c in self.student_components:
            if c.optimizer is None:
                c.sync_gradients()

    def _student_inputs(self, batch):
        """(x, teacher signals) for each of the round's kd_steps, by `distill.batch`."""
        d = self.cfg.distill
        if d.batch == "reuse" and self.perturb is None and self.augment is None:  # one teacher pass serves every step
            cheap = self.objective.needs <= {"student", "targets", "clean"}  # the batch's teacher logits suffice
            seen = batch.x if batch.teacher_x is None else batch.teacher_x
            teacher = Signals(x=batch.x, t_logits=batch.t_logits) if cheap else self.teacher_signals(seen)
            teacher.targets, teacher.x_clean = batch.targets, batch.clean
            teacher.t_logits_clean = batch.t_logits_clean
            for _ in range(d.kd_steps):
                yield batch.x, teacher
            return
        draw = {"pool": lambda: self.pool.sample(self.student_batch), "reuse": lambda: batch.x,
                "fresh": lambda: self.synth.sample(self.student_batch)}[d.batch]
        if d.batch == "pool" and self.cfg.pool.sampling == "shuffled":  # a new pass each round
            reads = self.pool.passes(self.student_batch)
            draw = lambda: next(reads)  # noqa: E731
        for _ in range(d.kd_steps):
            x = draw() if self.augment is None else self.augment(draw())
            x = x if self.perturb is None else self.perturb(self.student, self.synth_student, x)
            yield x, self.teacher_signals(x)

    # ------------------------------------------------------------------ the loop
    def train_round(self) -> Tensor:
        """One round's work: synthesis, the pool, the student steps; losses added to the running sums.
        Returns the round's synthesized batch."""
        st, d = self.state, self.cfg.distill
        if d.order == "student_first" and self.synth.round >= self.cfg.synth.warmup:  # DFAD: students first
            self.student_steps(None)
        t0 = time.perf_counter()
        self.student.train(self.cfg.synth.student_mode == "train")  # the authors': eval while synthesizing
        try:
            batch, g_parts = self.synth.synthesize(self.synth_student, on_step=self.on_synth_step)
        finally:
            self.student.train()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        st["synth_time_s"] += time.perf_counter() - t0
        if self.pool is not None:
            self.pool.add(batch.x)
        _accumulate(st["sums"], g_parts, "gen/")
        if not self.synth.warming_up and d.order == "synth_first":
            self.student_steps(batch)
        return batch.x if len(batch.x) or batch.clean is None else batch.clean  # (BSS may attack none)

    def student_steps(self, batch) -> None:
        """The round's kd_steps student steps (on `batch`, the pool or fresh samples), losses summed."""
        self.objective.at_round(self.synth.round, self.cfg.distill.rounds)  # decaying and ramped terms (BSS)
        for x, teacher in self._student_inputs(batch):
            _accumulate(self.state["sums"], self.student_step(x, teacher), "student/",
                        scale=1.0 / self.cfg.distill.kd_steps)
        if self.world_size > 1:  # rank 0's BN running statistics everywhere: the next synthesis scores
            sync_buffers(self.student)  # with them (eval mode), and a checkpoint holds rank 0's

    def run(self, quiet: bool = False) -> dict:
        cfg, d, st = self.cfg, self.cfg.distill, self.state  # st: what goes from round to round (resumed)
        start = time.time() - st["elapsed_s"]
        bar = tqdm(range(st["round"] + 1, d.rounds + 1), desc=f"{cfg.method} {cfg.teacher.arch}->{cfg.student.arch}",
                   unit="round", disable=quiet, leave=False, initial=st["round"], total=d.rounds)
        post: dict[str, str] = {}  # the bar's fields: accuracy, and the synthesis step within a long round
        self.on_synth_step = synth_progress(bar, post) if not quiet and cfg.synth.g_steps >= SHOW_SYNTH_STEPS \
            else None
        if st["round"] == 0:
            self.files.keep_start()  # the rollback target until a checkpoint
        hang_at = int(os.environ.get(HANG_ENV, "0") or 0) if st["round"] == 0 else 0  # fresh runs only
        for rnd in bar:
            if rnd == hang_at:
                _hang()
            last_batch = self.train_round()
            st["since_log"] += 1
            if self.guard.tripped:
                self.files.roll_back(rnd)
            due = rnd % d.eval_every == 0 or rnd == d.rounds  # a checkpoint round (on every rank)
            if due:
                self.files.before_checkpoint(rnd)  # under torchrun: each rank's own state first
            evaluate = due and self.main
            if (rnd % cfg.tracking.log_every == 0 or evaluate) and self.main:
                metrics = finite_averages(st["sums"], st["since_log"], rnd)
                metrics["lr/student"] = self.optimizer.param_groups[0]["lr"]
                st["sums"], st["since_log"] = {}, 0
                if evaluate:
                    st["acc"] = acc = self._evaluate(metrics)
                    st["history"].append((rnd, acc))
                    if acc > st["best"]:
                        st["best"], st["best_round"] = acc, rnd
                    self.files.save_samples(last_batch, rnd)
                    post.update(acc=f"{acc:.2f}", best=f"{st['best']:.2f}")
                    bar.set_postfix(post)
                metrics["elapsed_s"] = time.time() - start
                self.tracker.log(metrics, step=rnd)
                if evaluate:  # after the log row, so a resumed run never misses one
                    st["round"], st["elapsed_s"] = rnd, time.time() - start
                    self.files.save()
                    memory.trim()  # the evaluation's blocks are not the rounds' sizes: give them back
            if due:
                self.files.after_checkpoint(rnd)
        scores = {"student_acc": st["acc"], "best_student_acc": st["best"]} if self.test_loader is not None else {
            "student_acc": None, "best_student_acc": None, "agreement": st["acc"], "best_agreement": st["best"],
            "agreement_kl": st.get("agreement_kl")}
        return {**scores, "best_round": st["best_round"], "skipped_steps": self.guard.skipped,
                "rollbacks": self.guard.rollbacks, "wall_time_s": round(time.time() - start, 2),
                "synth_time_s": round(st["synth_time_s"], 2),
                # the samples the teacher was asked about (every rank queries an equal share)
                "teacher_queries": self.probe.queries * self.world_size}

    def _evaluate(self, metrics: dict) -> float:
        """Test accuracy, or without labelled data the teacher-student agreement (dfkd.run.evaluate)."""
        metrics["teacher_queries"] = self.probe.queries * self.world_size
        if self.test_loader is not None:
            metrics["student_acc"] = accuracy(self.student, self.test_loader, self.device, transform=self.view_eval)
            return metrics["student_acc"]
        acc, kl = agreement(self.synth, self.probe, self.student, self.student_forward, self.view_t, self.view_s,
                            self.precision, self.cfg.synth.batch_size, self.device)
        metrics["agreement"] = acc
        metrics["agreement_kl"] = self.state["agreement_kl"] = kl
        return acc


# For kill-and-resume tests: a run started with DFKD_TEST_HANG_AT_ROUND=N stops at the start of round
# N and waits there to be killed, so a test kills it at a known point instead of racing the run; a
# resumed run never stops (a requeued task inherits the variable).
HANG_ENV = "DFKD_TEST_HANG_AT_ROUND"


def _hang() -> None:
    while True:
        time.sleep(3600)


def _accumulate(sums: dict[str, Tensor], parts: dict[str, Tensor], prefix: str, scale: float = 1.0) -> None:
    for k, v in parts.items():
        key = prefix + k
        sums[key] = sums[key] + v * scale if key in sums else v * scale
