"""AdaDFKD's relation terms (Li, Zhou, Li, Wang, Bu, Yu, "AdaDFKD: Exploring adaptive inter-sample
relationship in data-free knowledge distillation", Neural Networks 2024; ljrprocc/DFKD@cd281c4
datafree/synthesis/adadfkd.py, datafree/utils/_utils.py): the source's relationship refinement
`r2m` (InfoNCE against a queue of earlier student features, `dfkd.synthesis.relation`) and the
student's in-batch `kd_nce`, with their loss functions. Registered in `dfkd.objective.terms.TERMS`
when `dfkd.objective` is imported. Shapes: features (N, D), a queue (D, K).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from dfkd.base.errors import DfkdError
from dfkd.base.runtime import full
from dfkd.objective.terms import Param, term


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


def relation_infonce(anchors: Tensor, keys: Tensor, queue: Tensor, hard: float, length: float,
                     tau: float = 0.07) -> Tensor:
    """AdaDFKD's relationship refinement (R2M; Li et al. 2024, Neural Networks; ljrprocc/DFKD
    datafree/utils/_utils.py MoCo.forward): anchors (N, D) — the teacher's penultimate features, with
    gradient — must pick keys (N, D) — the student's of the same samples, detached — against the
    negatives of a queue (D, K) of earlier keys, of which each row keeps only the window
    [floor(hard·K), floor((hard + length)·K)) of its negatives sorted by similarity, easiest first.
    Vectors are L2-normalised; CE with the positive first, at temperature tau, mean over the rows."""
    q = F.normalize(anchors, dim=1)
    k = F.normalize(keys, dim=1).detach()
    l_pos = (q * k).sum(1, keepdim=True)
    l_neg = q @ queue.to(q.dtype)
    k_all = queue.shape[1]
    window = l_neg.argsort(dim=1)[:, int(hard * k_all):int((hard + length) * k_all)]
    logits = torch.cat([l_pos, l_neg.gather(1, window)], dim=1) / tau
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))


_PROJECT = Param("none", "student features of another width than the teacher's: 'none' refuses them, 'random' "
                         "maps them through a fresh random nn.Linear at every step (AdaDFKD's code)",
                 choices=("none", "random"))
term("r2m", "AdaDFKD's relationship refinement: each sample's teacher feature must pick the student's against "
            "a window of earlier student features, sliding from easy to hard negatives (Li et al. 2024)",
     "student", "features", "s_features",
     tau=Param(0.07, "InfoNCE temperature", min=1e-6),
     bank=Param(6144, "student features kept in the queue (the authors': a multiple of the batch)", min=1),
     length=Param(0.9, "the window of negatives kept, as a fraction of the queue", min=0.0, max=1.0),
     begin=Param(0.25, "fraction of the run's epochs after which the window starts sliding", min=0.0, max=1.0),
     end=Param(0.75, "fraction at which it reaches the hardest negatives", min=0.0, max=1.0), project=_PROJECT)(
    lambda s, o, p: relation_infonce(s.t_features, o.components["r2m"].keys(s), o.components["r2m"].queue,
                                     o.components["r2m"].hard, p["length"], p["tau"]))
term("kd_nce", "in-batch InfoNCE: each teacher penultimate feature picks the student's of its own sample "
               "among the batch's (AdaDFKD, Li et al. 2024)", "student", "features", "s_features",
     tau=Param(0.07, "InfoNCE temperature (the authors' 0.07)", min=1e-6), project=_PROJECT)(
    lambda s, o, p: feature_infonce(
        s.t_features, to_width(s.s_features, s.t_features.shape[1], p["project"], "kd_nce"), p["tau"]))
