"""Class-activation maps for SpaceshipNet's multi-scale spatial activation region consistency (mSARC;
Yu, Chen, Han, Jiang, CVPR 2023; skgyu/SpaceshipNet@30a76b0 model_CFE_mSARC_base_V37.py
`train_S`, `gradcam_cope`, `cope_fclikeconv`): the student's activation regions are pulled toward
the teacher's, by class-activation maps of the last stage (CAM, Zhou et al. 2016) and Grad-CAMs of
every matched stage (Selvaraju et al. 2017), both raw (no ReLU, no normalisation) as the authors'.

Shapes: logits (N, K), a stage output A (N, C, H, W), a classifier weight W (K, C).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dfkd.base.component import Component
from dfkd.base.errors import DfkdError
from dfkd.base.runtime import full
from dfkd.objective.hooks import classifier_layer, stage_channels
from dfkd.objective.terms import term


def grad_cam(logits: Tensor, blocks: list[Tensor], classes: Tensor) -> list[Tensor]:
    """Grad-CAM of each stage output A for class `classes` (N,): w = mean over (H, W) of
    d(sum_i logits[i, classes_i]) / dA, a constant (no second-order graph); cam = sum_c w_c A_c,
    (N, H, W), differentiable through A. The graph of `logits` is kept for the caller's backward."""
    score = logits.gather(1, classes[:, None]).sum()
    grads = torch.autograd.grad(score, blocks, retain_graph=True)
    return [(g.detach().mean((2, 3), keepdim=True) * a).sum(1) for g, a in zip(grads, blocks)]


def gradcam_mse(s_logits: Tensor, s_blocks: list[Tensor], t_cams: list[Tensor], classes: Tensor) -> Tensor:
    """sum over stages of mean((Grad-CAM_S - Grad-CAM_T)^2), both for the teacher's classes."""
    s_cams = grad_cam(s_logits, s_blocks, classes)
    return sum(F.mse_loss(full(s), full(t.detach())) for s, t in zip(s_cams, t_cams))


def cam_mse(s_map: Tensor, t_map: Tensor, w_s: Tensor, w_t: Tensor) -> Tensor:
    """mean((CAM_S - CAM_T)^2) over (N, K, H, W), CAM = the classifier weight applied at every position
    of the last stage (no bias); the gradient reaches the student's map only, not its classifier."""
    cam_s = torch.einsum("kc,nchw->nkhw", w_s.detach(), s_map)
    cam_t = torch.einsum("kc,nchw->nkhw", w_t, t_map).detach()
    return F.mse_loss(full(cam_s), full(cam_t))


class Classifiers(Component):
    """The teacher's and the student's classifiers, which the `sarc_cam` term reads (nothing trained)."""

    key = "sarc_cam"

    def __init__(self, teacher: nn.Linear, student: nn.Linear):
        self.teacher, self.student = teacher, student

    @classmethod
    def build(cls, b) -> "Classifiers":
        """The `sarc_cam` term's factory (b: a `dfkd.objective.terms.ComponentBuild`): the last matched
        stage of each model must be what its classifier pools (as many channels as its input)."""
        pairs = (("teacher", b.teacher, b.t_blocks[-1], b.t_shape), ("student", b.student, b.s_blocks[-1], b.s_shape))
        fcs = []
        for who, model, stage, shape in pairs:
            fc = classifier_layer(model)
            c = stage_channels(model, stage, shape)
            if c != fc.in_features:
                raise DfkdError(f"the sarc_cam term applies the {who}'s classifier ({fc.in_features} inputs) to its "
                                f"last matched stage '{stage}' ({c} channels), which is not what it pools; set "
                                f"objective.student.sarc_cam=0")
            fcs.append(fc)
        return cls(*fcs)


term("sarc_cam", "SpaceshipNet's CAM consistency: MSE between student and teacher class-activation maps of the "
                 "last matched stage, every class (Yu et al. 2023)", "student", "blocks",
     component=Classifiers.build)(
    lambda s, o, p: cam_mse(s.s_blocks[-1], s.t_blocks[-1], o.components["sarc_cam"].student.weight,
                            o.components["sarc_cam"].teacher.weight))
term("sarc_gradcam", "SpaceshipNet's multi-scale Grad-CAM consistency: MSE between student and teacher "
                     "Grad-CAMs of every matched stage for the teacher's class, summed (Yu et al. 2023)",
     "student", "blocks", "gradcam")(
    lambda s, o, p: gradcam_mse(s.s_logits, s.s_blocks, s.t_gradcams, s.t_logits.argmax(1)))
