"""Accuracy on the real test split."""
from __future__ import annotations

import torch
from torch import nn


@torch.inference_mode()
def accuracy(model: nn.Module, loader, device, transform=None) -> float:
    """Top-1 accuracy in percent (0–100). `transform` (e.g. the student's view) is applied to inputs.
    The model's train/eval mode is restored afterwards."""
    was_training = model.training
    model.eval()
    correct = total = 0
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if transform is not None:
            x = transform(x)
        correct += (model(x).argmax(1) == y).sum().item()
        total += y.numel()
    model.train(was_training)
    return 100.0 * correct / max(1, total)
