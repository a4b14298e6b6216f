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
        std_t = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        mean_t = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.eps, self.std = eps / std_t, std_t
        self.lo, self.hi = (0 - mean_t) / std_t, (1 - mean_t) / std_t
        if not bounded:
            self.lo, self.hi = torch.full_like(self.lo, -float("inf")), torch.full_like(self.hi, float("inf"))

    def start(self, x: Tensor, random: bool = True) -> Tensor:
        """δ (same shape as x): uniform in the ball (clipped to valid images), or zero."""
        if not random:
            return torch.zeros_like(x)
        delta = (torch.rand_like(x) * 2 - 1) * self.eps
        return self.project(x, delta)

    def project(self, x: Tensor, delta: Tensor) -> Tensor:
        """The nearest δ with |δ_c| ≤ ε_c and x + δ a valid image."""
        delta = torch.max(torch.min(delta, self.eps), -self.eps)
        return torch.max(torch.min(x + delta, self.hi), self.lo) - x

    def step(self, x: Tensor, delta: Tensor, grad: Tensor, size: float) -> Tensor:
        """One signed-gradient *descent* step of `size` (pixel units) on δ, then the projection."""
        return self.project(x, delta - (size / self.std) * grad.sign())


def pgd(loss_fn: Callable[[Tensor], Tensor], x: Tensor, ball: Ball, steps: int, size: float,
        random_start: bool = True, mask: Tensor | None = None) -> Tensor:
    """δ after `steps` signed-gradient steps that *minimise* loss_fn(x + δ) inside `ball` (pass a
    negated loss to maximise it); samples where `mask` (N,) is False keep δ = 0. Returns δ detached."""
    keep = None if mask is None else mask.view(-1, *([1] * (x.dim() - 1))).to(x.dtype)
    delta = ball.start(x, random_start)
    delta = delta if keep is None else delta * keep
    for _ in range(steps):
        delta.requires_grad_(True)
        grad, = torch.autograd.grad(loss_fn(x + delta), delta)
        delta = ball.step(x, delta.detach(), grad, size)
        delta = delta if keep is None else delta * keep
    return delta.detach()


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
