"""Loss functions: small, pure, on tensors. Shapes: logits (N, C), features (N, D) or (N, C, H, W).

Every function returns a scalar tensor (mean over the batch) and is differentiable in all inputs
that carry gradients, so the same function serves the student step (minimised) and the source
step (where a term of the objective may be negated to maximise disagreement).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def kl_div(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0) -> Tensor:
    """KL(p_T || p_S) at temperature T, averaged over the batch and scaled by T² (Hinton et al. 2015).

    p = softmax(logits / T). The T² factor keeps gradient magnitudes comparable across temperatures.
    """
    t = temperature
    log_p_s = F.log_softmax(student_logits / t, dim=1)
    log_p_t = F.log_softmax(teacher_logits / t, dim=1)
    return F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True) * (t * t)


def l1_logits(student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
    """Mean absolute difference of logits, mean over batch and classes (DFAD, Fang et al. 2019)."""
    return (student_logits - teacher_logits).abs().mean()


def one_hot_ce(teacher_logits: Tensor) -> Tensor:
    """Cross-entropy of the teacher against its own arg-max: low when the teacher is confident
    (the one-hot loss of DAFL, Chen et al. 2019)."""
    return F.cross_entropy(teacher_logits, teacher_logits.argmax(dim=1))


def class_balance(teacher_logits: Tensor) -> Tensor:
    """Negative entropy of the batch-mean teacher prediction, sum_c p̄_c log p̄_c (natural log).

    Minimising it spreads the batch over the classes: DAFL's information-entropy loss. DAFL's code
    uses log10; a weight w there equals w / ln(10) here.
    """
    p_mean = F.softmax(teacher_logits, dim=1).mean(dim=0)
    return (p_mean * torch.log(p_mean.clamp_min(1e-12))).sum()


def activation_norm(features: Tensor) -> Tensor:
    """Negative mean absolute activation of (penultimate) features: −mean |f| (DAFL).

    Minimising it asks for inputs that excite the teacher's features strongly."""
    return -features.abs().mean()


def bn_stat_distance(stats: Sequence[tuple[Tensor, Tensor, Tensor, Tensor]], first_weight: float = 1.0) -> Tensor:
    """Sum over BN layers of ||μ − running_mean||₂ + ||σ² − running_var||₂
    (DeepInversion, Yin et al. 2020; DFQ; CMI). The first layer's distance is multiplied by
    `first_weight` (DeepInversion uses 10).

    `stats` holds (batch_mean, batch_var, running_mean, running_var) per BN layer, each (C,).
    """
    if len(stats) == 0:
        raise ValueError("bn_stat_distance needs at least one BatchNorm layer's statistics")
    total = stats[0][0].new_zeros(())
    for i, (mean, var, r_mean, r_var) in enumerate(stats):
        d = torch.linalg.vector_norm(mean - r_mean) + torch.linalg.vector_norm(var - r_var)
        total = total + (first_weight * d if i == 0 else d)
    return total


def attention_map(features: Tensor) -> Tensor:
    """Spatial attention of a feature map (N, C, H, W): the channel mean of squared activations,
    flattened and L2-normalised per sample -> (N, H·W) (Zagoruyko & Komodakis 2017)."""
    return F.normalize(features.pow(2).mean(dim=1).flatten(1), dim=1)


def attention_transfer(student_feats: Sequence[Tensor], teacher_feats: Sequence[Tensor]) -> Tensor:
    """Sum over matched pairs of mean((a_S − a_T)²) of attention maps (Zagoruyko & Komodakis 2017,
    "Paying More Attention to Attention", ICLR; used by ZSKT with weight 250). Each pair must share
    its spatial size; channel counts may differ."""
    if len(student_feats) != len(teacher_feats) or not student_feats:
        raise ValueError("attention_transfer needs the same, non-zero number of student and teacher maps")
    total = student_feats[0].new_zeros(())
    for s, t in zip(student_feats, teacher_feats):
        total = total + (attention_map(s) - attention_map(t)).pow(2).mean()
    return total


def js_div(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0) -> Tensor:
    """Jensen-Shannon divergence ½KL(p_S‖m) + ½KL(p_T‖m), m = ½(p_S + p_T), at temperature T,
    mean over the batch (natural log, so 0 <= JS <= ln 2). ADI's competition term (Yin et al. 2020)."""
    p_s = F.softmax(student_logits / temperature, dim=1)
    p_t = F.softmax(teacher_logits / temperature, dim=1)
    log_m = (0.5 * (p_s + p_t)).clamp_min(1e-12).log()
    kl_s = (p_s * (p_s.clamp_min(1e-12).log() - log_m)).sum(1)
    kl_t = (p_t * (p_t.clamp_min(1e-12).log() - log_m)).sum(1)
    return (0.5 * (kl_s + kl_t)).mean()


def total_variation(x: Tensor, p: int = 2) -> Tensor:
    """Mean over neighbouring-pixel differences of |Δ|^p (p = 1: L1, p = 2: squared), horizontal and
    vertical, on (N, C, H, W): the TV image prior of DeepInversion (Yin et al. 2020)."""
    dh = x[..., 1:, :] - x[..., :-1, :]
    dw = x[..., :, 1:] - x[..., :, :-1]
    if p == 1:
        return dh.abs().mean() + dw.abs().mean()
    return dh.pow(2).mean() + dw.pow(2).mean()


def l2_prior(x: Tensor) -> Tensor:
    """Mean squared pixel value, the L2 image prior of DeepInversion (on (N, C, H, W))."""
    return x.pow(2).mean()


def target_ce(teacher_logits: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy of the teacher against sampled target classes (DeepInversion)."""
    return F.cross_entropy(teacher_logits, targets)


def info_nce(anchor: Tensor, positive: Tensor, negatives: Tensor | None = None, tau: float = 0.1) -> Tensor:
    """InfoNCE (van den Oord et al. 2018) as used by CMI (Fang et al. 2021): for each anchor i (N, D),
    the key positive_i must win a softmax at temperature tau over all keys — every positive_j (the
    other samples act as negatives) and the rows of `negatives` (M, D), e.g. a memory bank.
    Vectors are L2-normalised first; returns the mean cross-entropy."""
    a = F.normalize(anchor, dim=1)
    keys = F.normalize(positive, dim=1)
    if negatives is not None and len(negatives):
        keys = torch.cat([keys, F.normalize(negatives, dim=1)])
    logits = a @ keys.t() / tau
    return F.cross_entropy(logits, torch.arange(a.shape[0], device=a.device))


def margin(logits: Tensor, to: Tensor, frm: Tensor) -> Tensor:
    """Mean over the batch of logits[i, to_i] − logits[i, from_i] (N, K logits; (N,) classes): the
    quantity a targeted attack toward class `to` raises (BSS, Heo et al. 2019)."""
    return (logits.gather(1, to[:, None]) - logits.gather(1, frm[:, None])).mean()
