"""L∞ perturbations of real batches: the ε-ball in normalised input space, projected gradient
steps, and PGD-k robust accuracy (Madry, Makelov, Schmidt, Tsipras, Vladu 2018, "Towards Deep
Learning Models Resistant to Adversarial Attacks", ICLR, arXiv:1706.06083).

ε and the step are given in pixel units ([0, 1] images, e.g. 8/255) and converted per channel to
the normalised space the models read: ε_c = ε / std_c; the perturbed image stays a valid image,
x + δ ∈ [(0 − mean_c) / std_c, (1 − mean_c) / std_c].
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Ball:
    """The L∞ ball of radius `eps` (pixel units) around a normalised batch, and its projection."""

    def __init__(self, eps: float, mean, std, device="cpu", bounded: bool = True):
        """`bounded=False`: no valid-image clipping (synthesized batches have no pixel range)."""
        std_t = torch.tensor(std, dtype=torch.get_default_dtype(), device=device).view(1, -1, 1, 1)
        mean_t = torch.tensor(mean, dtype=torch.get_default_dtype(), device=device).view(1, -1, 1, 1)
        self.eps, self.std = eps / std_t, std_t
        self.lo, self.hi = (0 - mean_t) / std_t, (1 - mean_t) / std_t
        if not bounded:
            self.lo, self.hi = torch.full_like(self.lo, -float("inf")), torch.full_like(self.hi, float("inf"))

    def start(self, x: Tensor, random: bool = True, noise: float = 0.0, clip: bool = True) -> Tensor:
        """δ (same shape as x): `noise`·N(0, 1) in pixel units when noise > 0 (RSLAD's start), else
        uniform in the ball, or zero; `clip`: projected to the ball and valid images (the training
        attacks of ARD and RSLAD start unclipped; the first step's projection clips)."""
        if noise > 0:
            return torch.randn_like(x) * (noise / self.std)
        if not random:
            return torch.zeros_like(x)
        delta = (torch.rand_like(x) * 2 - 1) * self.eps
        return self.project(x, delta) if clip else delta

    def project(self, x: Tensor, delta: Tensor) -> Tensor:
        """The nearest δ with |δ_c| ≤ ε_c and x + δ a valid image."""
        delta = torch.max(torch.min(delta, self.eps), -self.eps)
        return torch.max(torch.min(x + delta, self.hi), self.lo) - x

    def step(self, x: Tensor, delta: Tensor, grad: Tensor, size: float) -> Tensor:
        """One signed-gradient *descent* step of `size` (pixel units) on δ, then the projection."""
        return self.project(x, delta - (size / self.std) * grad.sign())


def pgd(loss_fn: Callable[[Tensor], Tensor], x: Tensor, ball: Ball, steps: int, size: float,
        random_start: bool = True, mask: Tensor | None = None, start_noise: float = 0.0,
        clip_start: bool = True) -> Tensor:
    """δ after `steps` signed-gradient steps that *minimise* loss_fn(x + δ) inside `ball` (pass a
    negated loss to maximise it); samples where `mask` (N,) is False keep δ = 0. Returns δ detached."""
    keep = None if mask is None else mask.view(-1, *([1] * (x.dim() - 1))).to(x.dtype)
    delta = ball.start(x, random_start, start_noise, clip_start)
    delta = delta if keep is None else delta * keep
    for _ in range(steps):
        delta.requires_grad_(True)
        grad, = torch.autograd.grad(loss_fn(x + delta), delta)
        delta = ball.step(x, delta.detach(), grad, size)
        delta = delta if keep is None else delta * keep
    return delta.detach()


def boundary_attack(logits_fn: Callable[[Tensor], Tensor], x: Tensor, target: Tensor, steps: int = 10,
                    step: float = 0.3, clamp: float = 2.5) -> Tensor:
    """BSS's attack (Heo et al. 2019; bhheo/BSS_distillation attacks/attack_BSS.py) on normalised inputs
    (N, C, H, W): from x itself, each step moves every sample that the model still gives its first
    class (its arg-max at the start) along the L2-normalised gradient of z[target] − z[first], by
    `step` × (z[first] − z[target] + 1e-4): a shrinking step that stops at the boundary; a sample
    stops once its class changes, the attack when all have; inputs clamped to ±`clamp`. Returns x'."""
    x_adv, first = x.detach().clone(), None
    for _ in range(steps):
        x_adv.requires_grad_(True)
        out = logits_fn(x_adv)
        if first is None:
            first = out.argmax(1).detach()
        tz, fz = out.gather(1, target[:, None]).squeeze(1), out.gather(1, first[:, None]).squeeze(1)
        grad, = torch.autograd.grad((tz - fz).sum(), x_adv)
        with torch.no_grad():
            alpha = step * (out.argmax(1) == first).to(x.dtype)
            if alpha.sum() == 0:
                break
            size = alpha * (fz - tz + 1e-4)
            norm = grad.flatten(1).norm(dim=1).clamp_min(1e-12)
            x_adv = (x_adv + (size / norm).view(-1, *([1] * (x.dim() - 1))) * grad).clamp(-clamp, clamp)
    return x_adv.detach()


def robust_accuracy(model: nn.Module, loader, device, ball: Ball, steps: int, size: float,
                    transform=None) -> float:
    """Top-1 accuracy (%) under a PGD-k attack maximising the model's cross-entropy on the true
    labels, from a random start; `transform` (the student's view) is applied after the perturbation.
    The model's train/eval mode is restored afterwards."""
    was_training = model.training
    model.eval()
    view = transform if transform is not None else (lambda t: t)
    correct = total = 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        with torch.enable_grad():
            delta = pgd(lambda xa: -F.cross_entropy(model(view(xa)), y), x, ball, steps, size)
        with torch.no_grad():
            correct += (model(view(x + delta)).argmax(1) == y).sum().item()
        total += y.numel()
    model.train(was_training)
    return 100.0 * correct / max(1, total)
