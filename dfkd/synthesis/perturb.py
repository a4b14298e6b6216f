"""Data-free adversarial samples (`synth.perturb_eps` > 0): every student batch x is moved to x + δ,
|δ| ≤ eps in normalised units, δ maximising KL(T || S) by PGD: the perturbation of the robust
real-data recipes (dfkd.synthesis.robust; RSLAD's attack) applied on top of synthesized samples."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from dfkd.config.synthesis import SynthConfig
from dfkd.objective.losses import kl_div
from dfkd.synthesis.robust import Ball, pgd


class Perturbation:
    def __init__(self, cfg: SynthConfig, probe, view_t: nn.Module, view_s: nn.Module, temperature: float):
        self.cfg, self.probe, self.view_t, self.view_s, self.temperature = cfg, probe, view_t, view_s, temperature

    def __call__(self, student: nn.Module, student_forward, x: Tensor) -> Tensor:
        """x + δ (N, C, H, W); `student` is in eval mode during the attack (its BN statistics stay)."""
        s = self.cfg
        ball = Ball(s.perturb_eps, (0.0,) * x.shape[1], (1.0,) * x.shape[1], x.device, bounded=False)
        was = student.training
        student.eval()
        try:
            with torch.enable_grad():
                delta = pgd(lambda xa: -kl_div(student_forward(self.view_s(xa)), self.probe(self.view_t(xa)).t_logits,
                                               self.temperature),
                            x, ball, s.perturb_steps, s.perturb_step)
        finally:
            student.train(was)
        return x + delta
