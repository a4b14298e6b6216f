"""Losses of the data-driven KD baselines (the upper reference rows of the tables): small, pure,
on tensors, mean over the batch. Shapes: logits (N, K), labels (N,), embeddings (N, D).

- `hint_mse`: FitNets (Romero et al., ICLR 2015) — squared error between the teacher's hint layer
  and the student's guided layer after a learned adapter (the adapter lives with the student);
- `rkd_distance`, `rkd_angle`: relational KD (Park, Kim, Lu, Cho, CVPR 2019) — Huber loss between
  the normalised pairwise distances / the triplet angles of student and teacher embeddings;
- `dkd`: decoupled KD (Zhao, Cui, Song, Qiu, Liang, CVPR 2022) — α·TCKD + β·NCKD at temperature T;
- `label_ce`: cross-entropy of the student on the true labels (Hinton KD mixes it with the KL term).
Their terms (and ARD's and BSS's attack terms) are declared here, registered in
`dfkd.objective.terms.TERMS` when `dfkd.objective` is imported.
Hinton KD itself is `dfkd.objective.losses.kl_div`; attention transfer is `dfkd.objective.losses.attention_transfer`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from dfkd.objective.losses import margin
from dfkd.objective.terms import Param, term


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


term("label_ce", "CE of the student on the batch's true labels (data-driven KD; real data only)",
      "student", "targets")(
    lambda s, o, p: label_ce(s.s_logits, s.targets))
term("label_ce_clean", "CE of the student on the clean batch's true labels (robust distillation: ARD)",
      "student", "clean", "targets")(
    lambda s, o, p: label_ce(s.s_logits_clean, s.targets))
term("adv_ce", "-CE of the student on the true labels: the perturbation maximises it (ARD's attack)",
      "student", "targets")(
    lambda s, o, p: -label_ce(s.s_logits, s.targets))
term("dkd", "decoupled KD, alpha x TCKD + beta x NCKD at the objective's temperature "
      "(Zhao et al. 2022; real data only)", "student", "targets",
      alpha=Param(1.0, "weight of target-class KD (TCKD)", min=0.0),
      beta=Param(8.0, "weight of non-target-class KD (NCKD)", min=0.0))(
    lambda s, o, p: dkd(s.s_logits, s.t_logits, s.targets, p["alpha"], p["beta"], o.temperature))
term("rkd_d", "RKD distance: Huber between normalised pairwise distances of penultimate features "
      "(Park et al. 2019)", "student", "features", "s_features")(
    lambda s, o, p: rkd_distance(s.s_features, s.t_features))
term("rkd_a", "RKD angle: Huber between triplet-angle cosines of penultimate features (Park et al. 2019)",
      "student", "features", "s_features")(
    lambda s, o, p: rkd_angle(s.s_features, s.t_features))
term("bss", "-(z_T[attack target] - z_T[label]): moves real samples toward the teacher's decision boundary "
      "(boundary-supporting samples, Heo et al. 2019)", "targets", "attack")(
    lambda s, o, p: -margin(s.t_logits, s.attack_targets, s.targets))
