"""A weighted objective of named loss terms, built from config, reporting every term.

    obj = Objective({"adv_l1": 1.0, "bn": 0.1}, temperature=1.0)
    total, parts = obj(signals)        # parts: {"adv_l1": tensor, "bn": tensor} (detached)

Terms live in the `TERMS` registry; each declares which signals it needs ("student" logits,
teacher "bn" statistics, teacher penultimate "features", the source's sampled "targets", CMI's
"contrast" embeddings, the student's penultimate "s_features"), so the loop runs the student forward
and the hooks only when some weighted term asks for them ("blocks": matched teacher and student stage
outputs, for student terms). A term with parameters (FitNets' adapter) keeps them in
`Objective.heads`, trained by the objective's owner. Sign convention: every term is *minimised*
by whoever owns the objective; adversarial terms (`adv_*`) are negated disagreements, so the source
minimising them maximises the teacher-student gap.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch.nn.functional as F
from torch import Tensor, nn

from . import critic, kd_losses, losses
from .errors import DfkdError
from .registry import Registry


@dataclass
class Signals:
    """What one forward pass produced. Shapes: x (N, C, H, W), logits (N, K), features (N, D)."""

    x: Tensor
    t_logits: Tensor
    s_logits: Tensor | None = None
    bn_stats: list = field(default_factory=list)
    t_features: Tensor | None = None
    t_blocks: list = field(default_factory=list)  # teacher stage outputs, paired with s_blocks
    s_blocks: list = field(default_factory=list)
    targets: Tensor | None = None  # (N,) sampled classes (DeepInversion), or true labels of a real batch
    s_features: Tensor | None = None  # (N, D) student penultimate features (RKD)
    x_clean: Tensor | None = None  # the real batch before its perturbation (robust distillation)
    attack_targets: Tensor | None = None  # (N,) classes a targeted attack moves each sample toward (BSS)
    s_logits_clean: Tensor | None = None  # (N, K) student on view_s(x_clean)
    t_logits_clean: Tensor | None = None  # (N, K) teacher on the clean batch, when it scored the perturbed one
    embed: Tensor | None = None  # (N, D) projected teacher instance embedding, global view (CMI)
    embed_local: Tensor | None = None  # (N, D) the same for a local (random resized crop) view
    bank: Tensor | None = None  # (M, D) earlier embeddings: contrastive negatives


@dataclass(frozen=True)
class Term:
    fn: Callable[[Signals, "Objective"], Tensor]  # (signals, objective: its options) -> scalar
    needs: frozenset[str]
    doc: str


TERMS = Registry("loss term")


def _term(name: str, doc: str, *needs: str):
    def add(fn):
        TERMS.register(name)(Term(fn, frozenset(needs), doc))
        return fn

    return add


_term("kd_kl", "KL(T||S) at the objective's temperature, x T^2", "student")(
    lambda s, o: losses.kl_div(s.s_logits, s.t_logits, o.temperature))
_term("kd_l1", "L1 between student and teacher logits (DFAD)", "student")(
    lambda s, o: losses.l1_logits(s.s_logits, s.t_logits))
_term("adv_l1", "-L1(S, T) logits: maximises disagreement (DFAD)", "student")(
    lambda s, o: -losses.l1_logits(s.s_logits, s.t_logits))
_term("adv_kl", "-KL(T||S): maximises disagreement (ZSKT)", "student")(
    lambda s, o: -losses.kl_div(s.s_logits, s.t_logits, o.temperature))
_term("adv_js", "-JS(S, T) at the objective's temperature: ADI's competition term (1 - JS up to a "
      "constant)", "student")(
    lambda s, o: -losses.js_div(s.s_logits, s.t_logits, o.temperature))
_term("oh", "one-hot CE of the teacher on its arg-max (DAFL)")(
    lambda s, o: losses.one_hot_ce(s.t_logits))
_term("ce", "CE of the teacher on the source's sampled target classes (DeepInversion)", "targets")(
    lambda s, o: losses.target_ce(s.t_logits, s.targets))
_term("ie", "class balance: negative entropy of the mean teacher prediction (DAFL)")(
    lambda s, o: losses.class_balance(s.t_logits))
_term("act", "-mean|penultimate teacher features| (DAFL)", "features")(
    lambda s, o: losses.activation_norm(s.t_features))
_term("at", "attention transfer on matched stage outputs (Zagoruyko & Komodakis 2017; ZSKT)",
      "student", "blocks")(
    lambda s, o: losses.attention_transfer(s.s_blocks, s.t_blocks))
_term("cmi", "InfoNCE between global- and local-view teacher embeddings of each sample, negatives "
      "from the batch and a memory bank (CMI)", "contrast")(
    lambda s, o: losses.info_nce(s.embed, s.embed_local, s.bank, o.contrast_tau))
_term("bn", "distance of batch statistics to the teacher's BN running statistics (first layer x bn_first)",
      "bn")(
    lambda s, o: losses.bn_stat_distance(s.bn_stats, o.bn_first))
_term("label_ce", "CE of the student on the batch's true labels (data-driven KD; real data only)",
      "student", "targets")(
    lambda s, o: kd_losses.label_ce(s.s_logits, s.targets))
_term("dkd", "decoupled KD, dkd_alpha x TCKD + dkd_beta x NCKD at the objective's temperature "
      "(Zhao et al. 2022; real data only)", "student", "targets")(
    lambda s, o: kd_losses.dkd(s.s_logits, s.t_logits, s.targets, o.dkd_alpha, o.dkd_beta, o.temperature))
_term("hint", "FitNets hint: MSE between the teacher's middle matched stage and the student's through a "
      "learned 1x1-conv adapter (Romero et al. 2015)", "student", "blocks")(
    lambda s, o: kd_losses.hint_mse(o.heads["hint"](s.s_blocks[len(s.s_blocks) // 2]),
                                     s.t_blocks[len(s.t_blocks) // 2]))
_term("rkd_d", "RKD distance: Huber between normalised pairwise distances of penultimate features "
      "(Park et al. 2019)", "student", "features", "s_features")(
    lambda s, o: kd_losses.rkd_distance(s.s_features, s.t_features))
_term("rkd_a", "RKD angle: Huber between triplet-angle cosines of penultimate features (Park et al. 2019)",
      "student", "features", "s_features")(
    lambda s, o: kd_losses.rkd_angle(s.s_features, s.t_features))
_term("kd_kl_clean", "KL(T||S) with the student on the clean batch (robust distillation: RSLAD)",
      "student", "clean")(
    lambda s, o: losses.kl_div(s.s_logits_clean, s.t_logits if s.t_logits_clean is None else s.t_logits_clean,
                               o.temperature))
_term("label_ce_clean", "CE of the student on the clean batch's true labels (robust distillation: ARD)",
      "student", "clean", "targets")(
    lambda s, o: kd_losses.label_ce(s.s_logits_clean, s.targets))
_term("adv_ce", "-CE of the student on the true labels: the perturbation maximises it (ARD's attack)",
      "student", "targets")(
    lambda s, o: -kd_losses.label_ce(s.s_logits, s.targets))
_term("adv_critic", "fool a learned critic that tells teacher from student output distributions: "
      "BCE(D(p_S), 1) (Belagiannis et al. 2018; KDGAN)", "student")(
    lambda s, o: critic.fool_loss(o.critic.critic, F.softmax(s.s_logits.float() / o.temperature, dim=1)))
_term("bss", "-(z_T[attack target] - z_T[label]): moves real samples toward the teacher's decision boundary "
      "(boundary-supporting samples, Heo et al. 2019)", "targets", "attack")(
    lambda s, o: -losses.margin(s.t_logits, s.attack_targets, s.targets))
_term("tv_l1", "L1 total variation of the synthesized input (DeepInversion)")(
    lambda s, o: losses.total_variation(s.x, 1))
_term("tv_l2", "squared total variation of the synthesized input (DeepInversion)")(
    lambda s, o: losses.total_variation(s.x, 2))
_term("l2", "mean squared value of the synthesized input (DeepInversion)")(
    lambda s, o: losses.l2_prior(s.x))


class Objective:
    """Weighted sum of registered terms; zero-weighted terms are dropped."""

    def __init__(self, weights: dict[str, float], temperature: float = 1.0, owner: str = "objective",
                 bn_first: float = 1.0, contrast_tau: float = 0.1, dkd_alpha: float = 1.0,
                 dkd_beta: float = 8.0):
        self.weights = {k: float(w) for k, w in weights.items() if w != 0}
        self.terms = {k: TERMS.get(k) for k in self.weights}
        self.temperature, self.bn_first, self.contrast_tau = temperature, bn_first, contrast_tau
        self.dkd_alpha, self.dkd_beta = dkd_alpha, dkd_beta
        self.heads = nn.ModuleDict()  # parameters of terms (FitNets' adapter), trained with the owner
        self.critic = None  # adv_critic: a CriticTrainer, trained against the owner (dfkd.critic)
        self.factors: dict[str, float] = {}  # per-term multipliers set by the loop (objective.decay)
        self.needs = frozenset().union(*(t.needs for t in self.terms.values()))
        if not self.weights:
            raise DfkdError(f"the {owner} objective has no term with a non-zero weight; "
                            f"set e.g. objective.{owner}.kd_kl=1 (see `dfkd list terms`)")

    def __call__(self, sig: Signals) -> tuple[Tensor, dict[str, Tensor]]:
        total = None
        parts = {}
        for name, w in self.weights.items():
            value = self.terms[name].fn(sig, self)
            parts[name] = value.detach()
            w = w * self.factors.get(name, 1.0)
            total = w * value if total is None else total + w * value
        return total, parts

    def without(self, prefix: str) -> "Objective | None":
        """The same objective minus the terms whose names start with `prefix` (None if nothing is left)."""
        kept = {k: w for k, w in self.weights.items() if not k.startswith(prefix)}
        if not kept:
            return None
        return Objective(kept, self.temperature, bn_first=self.bn_first, contrast_tau=self.contrast_tau,
                         dkd_alpha=self.dkd_alpha, dkd_beta=self.dkd_beta)

    def __repr__(self) -> str:
        return " + ".join(f"{w:g}*{k}" for k, w in self.weights.items())
