"""The one contract for the trainable parts of a run besides the student (docs/design.md, "Components").

A `Component` is something a run trains, checkpoints and keeps in step across torchrun ranks: the
source's schedule, CMI's projection head and memory bank, MAD's EMA generator, the adversarial critic,
FitNets' hint adapter. The loop does the same with each, by looping over the run's components:

    parameters()           what it trains; by its own `optimizer`, or, when that is None, by the
                           optimizer of its owner (the student's or the source's)
    step(sig, objective)   its own step, after each step of its owner (default: none); returns the
                           losses to log ({name: 0-d tensor})
    state_dict() / load_state_dict(state)
                           everything the next step depends on; a checkpoint holds it under `key`
    sync_gradients()       averages its gradients over the ranks (a no-op outside torchrun)
    weights()              what must be finite before a checkpoint is written (default: parameters())

`per_rank`: its state differs from rank to rank (each rank's own samples or statistics), so every
rank writes it into its own file at a checkpoint, not only rank 0.

A term that owns a component declares a factory for it (`dfkd.objective.terms.term(component=...)`),
and the run builds it when the term is weighted: nothing else in the run names it.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from dfkd.base.distributed import average_gradients


class Component:
    key: str = ""  # its entry in a checkpoint's "components"
    optimizer: torch.optim.Optimizer | None = None  # its own; None: its owner's optimizer trains parameters()
    per_rank: bool = False  # its state differs per rank (saved in each rank's file too)

    def parameters(self) -> list[nn.Parameter]:
        return []

    def step(self, sig, objective) -> dict[str, Tensor]:
        """Its own step, after a step of its owner (on that step's signals)."""
        return {}

    def state_dict(self) -> dict | None:
        return None

    def load_state_dict(self, state: dict) -> None:
        pass

    def weights(self) -> list[Tensor]:
        """What must be finite before a checkpoint is written (default: its parameters)."""
        return [p.detach() for p in self.parameters()]

    def sync_gradients(self) -> None:
        """The mean of its gradients over the torchrun ranks (what DDP does for the student)."""
        average_gradients(self.parameters())


def trained_by_owner(components) -> list[nn.Parameter]:
    """The parameters of `components` that their owner's optimizer trains (those without their own)."""
    return [p for c in components if c.optimizer is None for p in c.parameters()]
