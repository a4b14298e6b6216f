"""Losses of the data-driven KD baselines (the upper reference rows of the tables): small, pure,
on tensors, mean over the batch. Shapes: logits (N, K), labels (N,), embeddings (N, D).

- `hint_mse`: FitNets (Romero et al., ICLR 2015) — squared error between the teacher's hint layer
  and the student's guided layer after a learned adapter (the adapter lives with the student);
- `rkd_distance`, `rkd_angle`: relational KD (Park, Kim, Lu, Cho, CVPR 2019) — Huber loss between
  the normalised pairwise distances / the triplet angles of student and teacher embeddings;
- `dkd`: decoupled KD (Zhao, Cui, Song, Qiu, Liang, CVPR 2022) — α·TCKD + β·NCKD at temperature T;
- `label_ce`: cross-entropy of the student on the true labels (Hinton KD mixes it with the KL term).
Hinton KD itself is `dfkd.objective.losses.kl_div`; attention transfer is `dfkd.objective.losses.attention_transfer`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from dfkd.base.errors import DfkdError
from dfkd.base.runtime import full


def label_ce(student_logits: Tensor, labels: Tensor) -> Tensor:
    return F.cross_entropy(student_logits, labels)


def hint_mse(student_hint: Tensor, teacher_hint: Tensor) -> Tensor:
    """Mean squared difference of the adapted student feature and the teacher's hint (same shape)."""
    return F.mse_loss(student_hint, teacher_hint)


def _normalised_distances(e: Tensor) -> Tensor:
    d = torch.cdist(e, e)  # (N, N) Euclidean
    off = ~torch.eye(len(e), dtype=torch.bool, device=e.device)
    return d / d[off].mean().clamp_min(1e-12)


def rkd_distance(student_embed: Tensor, teacher_embed: Tensor) -> Tensor:
    """Huber (smooth L1) between pairwise distances, each divided by its mean over distinct pairs."""
    with torch.no_grad():
        t = _normalised_distances(teacher_embed.flatten(1))
    s = _normalised_distances(student_embed.flatten(1))
    off = ~torch.eye(len(s), dtype=torch.bool, device=s.device)
    return F.smooth_l1_loss(s[off], t[off])


def _angles(e: Tensor) -> Tensor:
    diff = F.normalize(e.unsqueeze(0) - e.unsqueeze(1), dim=2)  # (N, N, D): unit vector from i to j
    return torch.bmm(diff, diff.transpose(1, 2)).flatten()  # cos of angle at i between j and k


def rkd_angle(student_embed: Tensor, teacher_embed: Tensor) -> Tensor:
    """Huber between the cosines of every triplet angle ∠(x_j, x_i, x_k) of student and teacher."""
    with torch.no_grad():
        t = _angles(teacher_embed.flatten(1))
    return F.smooth_l1_loss(_angles(student_embed.flatten(1)), t)


def dkd(student_logits: Tensor, teacher_logits: Tensor, labels: Tensor, alpha: float = 1.0, beta: float = 8.0,
        temperature: float = 4.0) -> Tensor:
    """Decoupled KD: TCKD = KL over the binary (target, rest) split, NCKD = KL over the non-target
    classes renormalised among themselves, both × T²; returns α·TCKD + β·NCKD."""
    t = temperature
    target = F.one_hot(labels, student_logits.shape[1]).bool()
    p_s, p_t = F.softmax(student_logits / t, dim=1), F.softmax(teacher_logits / t, dim=1)

    def binary(p):
        pt = (p * target).sum(1, keepdim=True)
        return torch.cat([pt, 1 - pt], dim=1).clamp_min(1e-12)

    b_s, b_t = binary(p_s), binary(p_t)
    tckd = (b_t * (b_t.log() - b_s.log())).sum(1).mean() * t * t
    masked = -1e9 * target  # drop the target class from both softmaxes
    log_q_s = F.log_softmax(student_logits / t + masked, dim=1)
    log_q_t = F.log_softmax(teacher_logits / t + masked, dim=1)
    nckd = F.kl_div(log_q_s, log_q_t, reduction="batchmean", log_target=True) * t * t
    return alpha * tckd + beta * nckd


def check_width(d_student: int, d_teacher: int, project: str, term: str) -> None:
    """Refuse, in one line, student features of another width than the teacher's unless `project` maps them."""
    if d_student != d_teacher and project != "random":
        raise DfkdError(f"the {term} term compares penultimate features, and the teacher's are {d_teacher}-d, the "
                        f"student's {d_student}-d; set objective.params.{term}.project=random (the authors' fresh "
                        f"random map per step), pick a student of the teacher's width, or drop {term}")


def to_width(student_feat: Tensor, width: int, project: str, term: str) -> Tensor:
    """Student features (N, D_s) at the teacher's width: as they are when D_s equals it; with
    project='random', through a fresh nn.Linear(D_s, width) in PyTorch's default initialisation,
    drawn from the global random stream at every call (AdaDFKD's code, ljrprocc/DFKD adadfkd.py,
    _utils.py difficulty_mining); otherwise refused in one line."""
    if student_feat.shape[1] == width:
        return student_feat
    check_width(student_feat.shape[1], width, project, term)
    layer = torch.nn.Linear(student_feat.shape[1], width).to(student_feat.device, student_feat.dtype)
    return layer(student_feat)


def feature_infonce(teacher_feat: Tensor, student_feat: Tensor, tau: float = 0.07) -> Tensor:
    """AdaDFKD's in-batch InfoNCE on penultimate features (Li et al. 2024, "AdaDFKD: Exploring adaptive
    inter-sample relationship in data-free knowledge distillation", Neural Networks; ljrprocc/DFKD
    datafree/utils/_utils.py difficulty_mining): row i of the cosine matrix normalise(f_T) @
    normalise(f_S)^T (N, N), at temperature tau, must pick the student's feature of its own sample
    among the batch's: CE over the students, mean over the rows. Features (N, D), the same D
    (`to_width` first)."""
    d = F.normalize(full(teacher_feat), dim=1) @ F.normalize(full(student_feat), dim=1).t()
    return F.cross_entropy(d / tau, torch.arange(d.shape[0], device=d.device))
