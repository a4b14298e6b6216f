"""Forward hooks that read what a loss needs from *any* `nn.Module`: BN-input statistics and
intermediate features. No model needs a special forward signature.

    bn = BNStatsHook(teacher)        # every BatchNorm layer
    feats = FeatureHook(teacher.fc, mode="input")   # e.g. penultimate features
    teacher(x); bn.stats  -> [(mean, var, running_mean, running_var), ...]; feats.value -> tensor
    bn.remove(); feats.remove()

Hooks can be switched off (`enabled = False`) so a forward pass that needs nothing costs nothing.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm


class BNStatsHook:
    """Records, for each BatchNorm layer, the batch mean and biased variance of its *input* per
    channel (one `torch.var_mean` pass), next to the layer's running statistics.

    `stats` is a list in forward order of (mean (C,), var (C,), running_mean (C,), running_var (C,)).
    """

    def __init__(self, model: nn.Module):
        self.layers = [m for m in model.modules() if isinstance(m, _BatchNorm)]
        self.stats: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []
        self.enabled = True
        self._handles = [m.register_forward_hook(self._hook) for m in self.layers]

    def _hook(self, module: _BatchNorm, inputs, output) -> None:
        if not self.enabled:
            return
        x = inputs[0]
        dims = [0] + list(range(2, x.dim()))
        var, mean = torch.var_mean(x, dim=dims, correction=0)
        self.stats.append((mean, var, module.running_mean, module.running_var))

    def clear(self) -> None:
        self.stats = []

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []


class FeatureHook:
    """Keeps the input or output of one module from the last forward pass in `value`."""

    def __init__(self, module: nn.Module, mode: str = "output"):
        if mode not in ("input", "output"):
            raise ValueError("mode must be 'input' or 'output'")
        self.mode = mode
        self.value: Tensor | None = None
        self.enabled = True
        self._handle = module.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output) -> None:
        if self.enabled:
            self.value = inputs[0] if self.mode == "input" else output

    def remove(self) -> None:
        self._handle.remove()


def classifier_layer(model: nn.Module) -> nn.Linear:
    """The last `nn.Linear` of a model in registration order: its input is the penultimate feature."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layer to take penultimate features from")
    return linears[-1]


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, _BatchNorm) for m in model.modules())
