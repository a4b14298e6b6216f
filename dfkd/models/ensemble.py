"""An ensemble of teachers seen as one teacher (`teacher.members`): multi-teacher distillation (Hinton
et al. 2015, §3; You et al., "Learning from Multiple Teacher Networks", KDD 2017) and the data-free
distillation of an ensemble that one-shot federated learning performs (DENSE: Zhang et al., "DENSE:
Data-Free One-Shot Federated Learning", NeurIPS 2022, whose server distils the clients' averaged
logits).

    teacher = TeacherEnsemble([m1, m2, m3], combine="logits")   # (N, C, H, W) -> (N, K)

`combine="logits"`: the mean of the members' logits (DENSE); `"probs"`: the log of the mean of their
softmax probabilities, so that softmax(teacher(x)) is the averaged prediction (at temperature 1).
Every member sees the same input. The members are its sub-modules, so the hooks of the loss terms
reach all of them: the BN-statistics term sums over every member's BatchNorm layers (each member's
own running statistics), and terms on penultimate features read the input of the last nn.Linear,
i.e. the last member's.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class TeacherEnsemble(nn.Module):
    def __init__(self, members: list[nn.Module], combine: str = "logits"):
        super().__init__()
        if combine not in ("logits", "probs"):
            raise ValueError(f"combine must be 'logits' or 'probs', not {combine!r}")
        if len(members) < 2:
            raise ValueError("an ensemble needs at least two members")
        self.members = nn.ModuleList(members)
        self.combine = combine

    def forward(self, x: Tensor) -> Tensor:
        logits = torch.stack([m(x) for m in self.members])  # (M, N, K)
        if self.combine == "logits":
            return logits.mean(0)
        return torch.logsumexp(torch.log_softmax(logits, dim=-1), dim=0) - math.log(len(self.members))
