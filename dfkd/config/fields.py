"""The config's building blocks: `opt`, a dataclass field with its help, range or choices (what
`dfkd options` documents), and the optimizer section that the student, the source and teacher
training share."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


def opt(default, help: str, *, min=None, max=None, choices=None):
    """A config field with its documentation and its allowed range or choices."""
    meta = {"help": help, "min": min, "max": max, "choices": choices}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    if dataclasses.is_dataclass(default):
        return field(default_factory=lambda d=default: dataclasses.replace(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class OptimConfig:
    name: str = opt("sgd", "optimizer", choices=["sgd", "adam"])
    lr: float = opt(0.1, "learning rate", min=0.0)
    momentum: float = opt(0.9, "SGD momentum", min=0.0, max=1.0)
    betas: list[float] = opt([0.9, 0.999], "Adam betas")
    weight_decay: float = opt(5e-4, "L2 weight decay", min=0.0)
    schedule: str = opt("cosine", "learning-rate schedule over the whole run",
                        choices=["cosine", "step", "constant"])
    milestones: list[float] = opt([0.5, 0.75], "step schedule: fractions of the run where lr is multiplied by gamma")
    gamma: float = opt(0.1, "step schedule: multiplier at each milestone", min=0.0)
    min_lr: float = opt(0.0, "cosine schedule: the learning rate it ends at (Fast-Datafree's student: 2e-4)", min=0.0)
    clip_grad: float = opt(0.0, "clip the gradients' global L2 norm to this before each step (ZSKT: 5); 0 = off",
                           min=0.0)
    horizon: float = opt(1.0, "length of the cosine or step schedule in multiples of the run: 1 ends it with the "
                              "run; 5 runs its first fifth, as the authors' fixed CosineAnnealingLR(T_max=200 "
                              "epochs) does in a 40-epoch run", min=1.0)
