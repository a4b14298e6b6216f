"""Loss functions: small, pure, on tensors. Shapes: logits (N, C), features (N, D) or (N, C, H, W).

Every function returns a scalar tensor (mean over the batch) and is differentiable in all inputs
that carry gradients, so the same function serves the student step (minimised) and the source
step (where a term of the objective may be negated to maximise disagreement).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def kl_div(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0, reduction: str = "batchmean",
           mask: Tensor | None = None) -> Tensor:
    """KL(p_T || p_S) at temperature T, scaled by T² (Hinton et al. 2015); p = softmax(logits / T).

    reduction "batchmean": the per-sample KL (summed over the K classes) averaged over the batch N;
    "mean": averaged over the N·K entries, i.e. batchmean / K (PyTorch's element-wise
    `F.kl_div(reduction="mean")`, as ZSKT, ARD and RSLAD use). `mask` (N,) multiplies each sample's KL
    before the average over all N samples (CMI's and Fast's adversarial term keeps only the samples
    whose student and teacher arg-max agree). The T² factor keeps gradient magnitudes comparable
    across temperatures.
    """
    t = temperature
    log_p_s = F.log_softmax(student_logits / t, dim=1)
    log_p_t = F.log_softmax(teacher_logits / t, dim=1)
    per_sample = F.kl_div(log_p_s, log_p_t, reduction="none", log_target=True).sum(1)
    if mask is not None:
        per_sample = per_sample * mask
    value = per_sample.mean()
    if reduction == "mean":
        value = value / student_logits.shape[1]
    elif reduction != "batchmean":
        raise ValueError(f"reduction must be 'batchmean' or 'mean', not {reduction!r}")
    return value * (t * t)


def soft_cross_entropy(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0) -> Tensor:
    """-sum_c p_T log p_S at temperature T, summed over classes and averaged over the batch, without the
    T² factor (BSS, Heo et al. 2019): KL(p_T || p_S) plus the teacher's entropy, the KL's gradient / T²."""
    p_t = F.softmax(teacher_logits / temperature, dim=1).detach()
    return -(p_t * F.log_softmax(student_logits / temperature, dim=1)).sum(1).mean()


def prediction_entropy(logits: Tensor) -> Tensor:
    """-sum_c p_c log p_c of softmax(logits) per sample, averaged over the batch; logits (N, K)."""
    return -(F.softmax(logits, dim=1) * F.log_softmax(logits, dim=1)).sum(1).mean()


def teacher_tempered_ce(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """-sum_c softmax(t / T)_c log softmax(s)_c, averaged over the batch: generalized distillation's
    imitation loss (Lopez-Paz et al. 2016), which softens the teacher only; (N, K) each."""
    p_t = F.softmax(teacher_logits / temperature, dim=1).detach()
    return -(p_t * F.log_softmax(student_logits, dim=1)).sum(1).mean()


def agree_mask(student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
    """(N,) float: 1 where student and teacher arg-max agree, else 0 (no gradient)."""
    return (student_logits.argmax(1) == teacher_logits.argmax(1)).to(student_logits.dtype).detach()


def l1_logits(student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
    """Mean absolute difference of logits, mean over batch and classes (DFAD, Fang et al. 2019)."""
    return (student_logits - teacher_logits).abs().mean()


def one_hot_ce(teacher_logits: Tensor) -> Tensor:
    """Cross-entropy of the teacher against its own arg-max: low when the teacher is confident
    (the one-hot loss of DAFL, Chen et al. 2019)."""
    return F.cross_entropy(teacher_logits, teacher_logits.argmax(dim=1))


def class_balance(teacher_logits: Tensor, temperature: float = 1.0) -> Tensor:
    """Negative entropy of the batch-mean teacher prediction, sum_c p̄_c log p̄_c (natural log), with
    p̄ = mean_n softmax(logits_n / temperature); logits (N, K).

    Minimising it spreads the batch over the classes: DAFL's information-entropy loss. DAFL's code
    uses log10; a weight w there equals w / ln(10) here. CuDFKD's code takes it at the KD
    temperature (20 on CIFAR-10), where it is much weaker.
    """
    p_mean = F.softmax(teacher_logits / temperature if temperature != 1.0 else teacher_logits, dim=1).mean(dim=0)
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


def js_div(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0, form: str = "exact") -> Tensor:
    """Jensen-Shannon divergence between p_S and p_T at temperature T, mean over the batch (natural log):
    ADI's competition term (Yin et al. 2020). m = ½(p_S + p_T).

    form "exact": ½KL(p_S‖m) + ½KL(p_T‖m), so 0 <= JS <= ln 2.
    form "clamped": the authors' code, ½KL(m‖p_S) + ½KL(m‖p_T) (the arguments of PyTorch's
      `F.kl_div(log p, m)` read the other way round) on probabilities clamped to [0.01, 0.99], with m
      formed before clamping (zju-vipa/Fast-Datafree datafree/criterions.py `jsdiv`).
    form "capped": "clamped" then clamped to [0, 1] (NVlabs/DeepInversion cifar10/deepinversion_cifar10.py,
      which minimises 1 − that value: gradients vanish outside [0, 1]).
    """
    p_s = F.softmax(student_logits / temperature, dim=1)
    p_t = F.softmax(teacher_logits / temperature, dim=1)
    if form == "exact":
        log_m = (0.5 * (p_s + p_t)).clamp_min(1e-12).log()
        kl_s = (p_s * (p_s.clamp_min(1e-12).log() - log_m)).sum(1)
        kl_t = (p_t * (p_t.clamp_min(1e-12).log() - log_m)).sum(1)
        return (0.5 * (kl_s + kl_t)).mean()
    if form not in ("clamped", "capped"):
        raise ValueError(f"form must be 'exact', 'clamped' or 'capped', not {form!r}")
    m = (0.5 * (p_s + p_t)).clamp(0.01, 0.99)
    p_s, p_t = p_s.clamp(0.01, 0.99), p_t.clamp(0.01, 0.99)
    n = student_logits.shape[0]
    value = 0.5 * (m * (m.log() - p_s.log())).sum() / n + 0.5 * (m * (m.log() - p_t.log())).sum() / n
    return value.clamp(0.0, 1.0) if form == "capped" else value


def self_paced_weight(loss: Tensor, lam: float) -> Tensor:
    """CuDFKD's self-paced weight of a batch loss L (a 0-d tensor): v = (1 + e^-λ) / (1 + e^(L - λ)),
    detached; v = 1 at L = 0, near 1 while L << λ, and small for batches harder than λ (Li et al.,
    "Dynamic Data-Free Knowledge Distillation by Easy-to-Hard Learning Strategy", arXiv:2208.13648)."""
    with torch.no_grad():  # at least single precision (a half-precision loss under autocast), never less
        loss = loss.to(torch.promote_types(loss.dtype, torch.float32))
        return (1.0 + math.exp(-lam)) / (1.0 + torch.exp(loss - lam))


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


def total_variation_norm(x: Tensor) -> Tensor:
    """Sum of the L2 norms, each over the whole batch (not squared, not averaged), of the four
    neighbouring-pixel differences of (N, C, H, W): horizontal, vertical and both diagonals
    (NVlabs/DeepInversion cifar10/deepinversion_cifar10.py `loss_var`)."""
    d1 = x[:, :, :, :-1] - x[:, :, :, 1:]
    d2 = x[:, :, :-1, :] - x[:, :, 1:, :]
    d3 = x[:, :, 1:, :-1] - x[:, :, :-1, 1:]
    d4 = x[:, :, :-1, :-1] - x[:, :, 1:, 1:]
    return sum(torch.linalg.vector_norm(d) for d in (d1, d2, d3, d4))


def target_ce(teacher_logits: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy of the teacher against sampled target classes (DeepInversion)."""
    return F.cross_entropy(teacher_logits, targets)


def cmi_contrast(anchors: Tensor, keys: Tensor, n: int, tau: float = 0.1) -> Tensor:
    """CMI's contrastive loss (Fang et al. 2021; zju-vipa/CMI datafree/synthesis/contrastive.py): row i
    of `anchors` (n + M, D) — projected local views of the batch's n samples, then of M samples read
    from the memory bank — must pick key i among all `keys` (n + M, D), the projected global views,
    detached: a softmax at temperature tau over anchor·key. Vectors are L2-normalised. Returns the
    cross-entropy averaged over the batch's rows plus that averaged over the bank's rows (the
    authors' split, "to avoid too small gradients w.r.t. the generator"); a plain mean with no bank."""
    a = F.normalize(anchors, dim=1)
    k = F.normalize(keys, dim=1).detach()
    per_row = F.cross_entropy(a @ k.t() / tau, torch.arange(a.shape[0], device=a.device), reduction="none")
    if per_row.shape[0] > n:
        return per_row[:n].mean() + per_row[n:].mean()
    return per_row.mean()


def margin(logits: Tensor, to: Tensor, frm: Tensor) -> Tensor:
    """Mean over the batch of logits[i, to_i] − logits[i, from_i] (N, K logits; (N,) classes): the
    quantity a targeted attack toward class `to` raises (BSS, Heo et al. 2019)."""
    return (logits.gather(1, to[:, None]) - logits.gather(1, frm[:, None])).mean()
