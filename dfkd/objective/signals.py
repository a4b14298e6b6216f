"""What one forward pass gives the loss terms (`Signals`, shapes in its fields) and the checked
vocabulary of what a term may need (`NEEDS`): the loop computes a signal only when a weighted term
names it."""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

# what a term may need; the loop computes a signal only when a weighted term names it
NEEDS = {
    "student": "the student's logits on the batch (s_logits)",
    "bn": "per-layer batch statistics at the teacher's BatchNorm inputs, with its running statistics (bn_stats)",
    "s_bn": "the same at the student's BatchNorm inputs, during a source step (s_bn_stats)",
    "features": "the teacher's penultimate features: the input of its last nn.Linear (t_features)",
    "s_features": "the student's penultimate features (s_features)",
    "blocks": "matched teacher and student stage outputs of equal spatial size (t_blocks, s_blocks)",
    "gradcam": "the teacher's Grad-CAMs of its matched stages for its arg-max class (t_gradcams)",
    "targets": "the batch's class targets: sampled by the source, or true labels of real data (targets)",
    "contrast": "CMI's projected teacher embeddings of the local and global views, batch then bank rows "
                "(embed_local, embed)",
    "clean": "the real batch before its perturbation, and the student on it (x_clean, s_logits_clean)",
    "attack": "a class per sample that a targeted attack moves it toward (attack_targets)",
}


@dataclass
class Signals:
    """What one forward pass produced. Shapes: x (N, C, H, W), logits (N, K), features (N, D)."""

    x: Tensor
    t_logits: Tensor
    x_seen: Tensor | None = None  # (N, C, H, W) the augmented view the teacher scored, in a source step
    s_logits: Tensor | None = None
    bn_stats: list = field(default_factory=list)
    s_bn_stats: list = field(default_factory=list)  # the student's, in a source step (adv_sbn)
    t_features: Tensor | None = None
    t_blocks: list = field(default_factory=list)  # teacher stage outputs, paired with s_blocks
    s_blocks: list = field(default_factory=list)
    t_gradcams: list = field(default_factory=list)  # (N, H, W) per matched teacher stage, for its arg-max class
    targets: Tensor | None = None  # (N,) sampled classes (DeepInversion), or true labels of a real batch
    s_features: Tensor | None = None  # (N, D) student penultimate features (RKD)
    x_clean: Tensor | None = None  # the real batch before its perturbation (robust distillation)
    attack_targets: Tensor | None = None  # (N,) classes a targeted attack moves each sample toward (BSS)
    s_logits_clean: Tensor | None = None  # (N, K) student on view_s(x_clean)
    t_logits_clean: Tensor | None = None  # (N, K) teacher on the clean batch, when it scored the perturbed one
    embed: Tensor | None = None  # (N + M, D) projected teacher instance embeddings, global view: the batch's N, then M from CMI's bank
    embed_local: Tensor | None = None  # (N + M, D) the same for the local (random resized crop) view: the anchors
