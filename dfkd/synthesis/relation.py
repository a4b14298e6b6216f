"""AdaDFKD's queue of student features for the `r2m` term (Li, Zhou, Li, Wang, Bu, Yu, "AdaDFKD:
Exploring adaptive inter-sample relationship in data-free knowledge distillation", Neural Networks
2024; ljrprocc/DFKD@cd281c4 datafree/synthesis/adadfkd.py, datafree/utils/_utils.py MoCo).

A FIFO queue (D, K) of the student's normalised penultimate features from earlier source steps
(started as random unit columns), and the window of negatives the term keeps: it slides from the
easiest (least similar) to the hardest as the run goes, hard = clip((1 - length)(e - floor(bE)) /
floor(E(e_end - b)), 0, 1 - length) for epoch e of E (an epoch: objective.ramp_every rounds).

An `Extension` (a `Component`, key `r2m`, each rank's own) of the schedule, built when the source
objective weights `r2m`: the term reads `keys(sig)` (the student's features at the teacher's
width), `after_step` enqueues them, `end_round` counts the rounds.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from dfkd.base.runtime import full
from dfkd.objective.hooks import classifier_layer
from dfkd.objective.relation import check_width, to_width
from dfkd.objective.terms import COMPONENTS
from dfkd.synthesis.schedule import Extension


class RelationQueue(Extension):
    key = "r2m"

    def __init__(self, width: int, params: dict, run_rounds: int, epoch_rounds: int, device):
        self.params, self.every = params, max(1, epoch_rounds)
        self.epochs = max(1, run_rounds // self.every)
        self.queue = nn.functional.normalize(torch.randn(width, params["bank"], device=device), dim=0)
        self.ptr, self.rounds_done = 0, 0
        self._keys: Tensor | None = None  # this step's keys, from the term (keys())

    @classmethod
    def build(cls, b) -> "RelationQueue":
        """The `r2m` term's factory (b: a `dfkd.objective.terms.ComponentBuild`)."""
        d_t, d_s = classifier_layer(b.teacher).in_features, classifier_layer(b.student).in_features
        check_width(d_s, d_t, b.params["project"], "r2m")  # at build time, before the run starts
        return cls(d_t, b.params, b.run_rounds, b.epoch_rounds, b.device)

    @property
    def hard(self) -> float:
        """Where this round's window of negatives starts, as a fraction of the queue."""
        p, length = self.params, self.params["length"]
        epoch = self.rounds_done // self.every
        start, span = int(self.epochs * p["begin"]), int(self.epochs * (p["end"] - p["begin"]))
        return min(max(0.0, (1 - length) * (epoch - start) / max(span, 1)), 1 - length)

    def keys(self, sig) -> Tensor:
        """This step's keys: the student's features (N, D_s), detached, at the teacher's width (through
        a fresh random map with project=random, as the authors); kept for the queue."""
        self._keys = to_width(sig.s_features.detach(), self.queue.shape[0], self.params["project"], "r2m")
        return self._keys

    def after_step(self, sig, schedule) -> None:
        keys = self._keys if self._keys is not None else sig.s_features.detach()
        self._keys = None
        keys = nn.functional.normalize(full(keys), dim=1)
        n, k = keys.shape[0], self.queue.shape[1]
        idx = (self.ptr + torch.arange(n, device=keys.device)) % k
        self.queue[:, idx] = keys.t().to(self.queue.dtype)
        self.ptr = (self.ptr + n) % k

    def end_round(self) -> None:
        self.rounds_done += 1

    def state_dict(self) -> dict:
        return {"queue": self.queue, "ptr": self.ptr, "rounds_done": self.rounds_done}

    def load_state_dict(self, state: dict) -> None:
        self.queue.copy_(state["queue"])
        self.ptr, self.rounds_done = state["ptr"], state["rounds_done"]

    def weights(self) -> list[Tensor]:
        return [self.queue]


COMPONENTS.register("r2m")(RelationQueue.build)  # the r2m term reads its queue (a source-side term)
