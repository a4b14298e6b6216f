"""The disagreement terms D(T(x), S(x)): what the student minimises, and their negations (`adv_*`)
that an adversarial source maximises (the game in docs/design.md). Registered in
`dfkd.objective.terms.TERMS` when `dfkd.objective` is imported; the loss functions are in
`dfkd.objective.losses`. Shapes: logits (N, K).
"""
from __future__ import annotations

from torch import Tensor

from dfkd.objective import losses
from dfkd.objective.signals import Signals
from dfkd.objective.terms import Param, term

_REDUCTION = Param("batchmean", "KL averaged over the batch ('batchmean': summed over classes, as Hinton KD) or "
                                "over batch and classes ('mean': batchmean / K, PyTorch's element-wise mean, as "
                                "ZSKT, ARD, RSLAD)", choices=("batchmean", "mean"))
term("kd_kl", "KL(T||S) at the objective's temperature, x T^2", "student", reduction=_REDUCTION)(
    lambda s, o, p: losses.kl_div(s.s_logits, s.t_logits, o.temperature, p["reduction"]))
term("kd_l1", "L1 between student and teacher logits (DFAD)", "student")(
    lambda s, o, p: losses.l1_logits(s.s_logits, s.t_logits))
term("adv_l1", "-L1(S, T) logits: maximises disagreement (DFAD)", "student")(
    lambda s, o, p: -losses.l1_logits(s.s_logits, s.t_logits))


def _adv_kl(s: Signals, o, p) -> Tensor:
    mask = losses.agree_mask(s.s_logits, s.t_logits) if p["mask"] == "agree" else None
    return -losses.kl_div(s.s_logits, s.t_logits, p["T"], p["reduction"], mask)


term("adv_kl", "-KL(T||S) at its own temperature: maximises disagreement (ZSKT, DFQ; with mask=agree only "
               "on samples where student and teacher agree: CMI, Fast, NAYER)", "student",
     T=Param(1.0, "softmax temperature (x T^2); the authors' generators all use 1", min=1e-6),
     mask=Param("none", "'agree': keep only samples whose student and teacher arg-max agree, averaged over "
                        "the whole batch (CMI, Fast, NAYER: 'decision adversarial distillation')",
                choices=("none", "agree")),
     reduction=_REDUCTION)(_adv_kl)
term("adv_js", "-JS(S, T) at its own temperature: ADI's competition term (1 - JS up to a constant)", "student",
     T=Param(3.0, "softmax temperature (ADI: 3)", min=1e-6),
     form=Param("exact", "'exact' JS; 'clamped': the authors' code, KL(m||p) on probabilities clamped to "
                         "[0.01, 0.99] (Fast-Datafree); 'capped': that, clamped to [0, 1] (NVlabs)",
                choices=("exact", "clamped", "capped")))(
    lambda s, o, p: -losses.js_div(s.s_logits, s.t_logits, p["T"], p["form"]))
term("at", "attention transfer on matched stage outputs (Zagoruyko & Komodakis 2017; ZSKT)",
      "student", "blocks")(
    lambda s, o, p: losses.attention_transfer(s.s_blocks, s.t_blocks))
term("kd_kl_clean", "KL(T||S) with the student on the clean batch (robust distillation: RSLAD)",
      "student", "clean", reduction=_REDUCTION)(
    lambda s, o, p: losses.kl_div(s.s_logits_clean, s.t_logits if s.t_logits_clean is None else s.t_logits_clean,
                                  o.temperature, p["reduction"]))


def _soft_ce(s_logits: Tensor, t_logits: Tensor, t: float) -> Tensor:
    if s_logits.shape[0] == 0:  # no sample (BSS: none attacked this batch)
        return s_logits.sum() * 0.0
    return losses.soft_cross_entropy(s_logits, t_logits, t)


term("kd_soft_ce", "soft-target cross-entropy -sum p_T log p_S at the objective's temperature, no T^2 "
                   "(BSS's KD form; its gradient is the KL's / T^2); 0 on an empty batch", "student")(
    lambda s, o, p: _soft_ce(s.s_logits, s.t_logits, o.temperature))
term("kd_soft_ce_clean", "the same with the student on the clean batch (BSS's KD on the real samples)",
     "student", "clean")(
    lambda s, o, p: _soft_ce(s.s_logits_clean, s.t_logits if s.t_logits_clean is None else s.t_logits_clean,
                             o.temperature))
term("kd_gd", "generalized distillation's imitation: CE of the student's softmax against the teacher's at the "
              "objective's temperature, the student not tempered (Lopez-Paz et al. 2016)", "student")(
    lambda s, o, p: losses.teacher_tempered_ce(s.s_logits, s.t_logits, o.temperature))
