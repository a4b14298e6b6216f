"""Forward hooks that read what a loss needs from *any* `nn.Module`: BN-input statistics and
intermediate features. No model needs a special forward signature.

    bn = BNStatsHook(teacher)        # every BatchNorm layer
    feats = FeatureHook(teacher.fc, mode="input")   # e.g. penultimate features
    teacher(x); bn.stats  -> [(mean, var, running_mean, running_var), ...]; feats.value -> tensor
    bn.remove(); feats.remove()

Hooks can be switched off (`enabled = False`) so a forward pass that needs nothing costs nothing.
"""
from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm


class BNStatsHook:
    """Records, for each BatchNorm layer, the batch mean and biased variance of its *input* per
    channel (one `torch.var_mean` pass), next to the layer's running statistics.

    `stats` is a list in forward order of (mean (C,), var (C,), running_mean (C,), running_var (C,)).

    With `momentum` m > 0 (Fast, Fang et al. 2022) each recorded statistic is blended with a running
    statistic of earlier rounds, s = m·s_prev + (1 − m)·s_batch (s_prev detached; the batch statistics
    alone while there is none). `commit()`, once per round, moves the running statistic by the last
    batch seen: s_prev <- m·s_prev + (1 − m)·s_last (s_last at first), as the authors'
    `DeepInversionHook.update_mmt` (zju-vipa/Fast-Datafree datafree/hooks.py). `reset_momentum()` forgets.
    """

    def __init__(self, model: nn.Module, momentum: float = 0.0):
        self.all_reduce = False  # under torchrun: statistics of the global batch (all ranks), differentiably
        self.layers = [m for m in model.modules() if isinstance(m, _BatchNorm)]
        self.stats: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []
        self.enabled = True
        self.momentum = momentum
        self._previous: dict[int, tuple[Tensor, Tensor]] = {}
        self._last: dict[int, tuple[Tensor, Tensor]] = {}
        self._handles = [m.register_forward_hook(self._hook) for m in self.layers]

    def _hook(self, module: _BatchNorm, inputs, output) -> None:
        if not self.enabled:
            return
        x = inputs[0]
        dims = [0] + list(range(2, x.dim()))
        x = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x  # fp32 under autocast too
        var, mean = torch.var_mean(x, dim=dims, correction=0)
        if self.all_reduce:
            mean, var = _global_moments(mean, var)
        if self.momentum > 0:
            self._last[id(module)] = (mean.detach(), var.detach())
            prev = self._previous.get(id(module))
            if prev is not None:
                m = self.momentum
                mean, var = m * prev[0] + (1 - m) * mean, m * prev[1] + (1 - m) * var
        self.stats.append((mean, var, module.running_mean, module.running_var))

    def commit(self) -> None:
        """Move the running statistics of `momentum` by the last recorded batch (once per round)."""
        m = self.momentum
        for key, (mean, var) in self._last.items():
            prev = self._previous.get(key)
            self._previous[key] = (mean, var) if prev is None else (m * prev[0] + (1 - m) * mean,
                                                                    m * prev[1] + (1 - m) * var)
        self._last = {}

    def reset_momentum(self) -> None:
        self._previous, self._last = {}, {}

    def state_dict(self) -> list:
        """The blended statistics carried to the next pass, per layer in order (None where none yet)."""
        return [self._previous.get(id(m)) for m in self.layers]

    def load_state_dict(self, state: list) -> None:
        if len(state) != len(self.layers):
            raise ValueError(f"BN momentum state has {len(state)} layers, the model {len(self.layers)}")
        self._previous = {id(m): tuple(s) for m, s in zip(self.layers, state) if s is not None}

    def clear(self) -> None:
        self.stats = []

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []


def _global_moments(mean: Tensor, var: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and biased variance over every rank's (equal-sized) batch, from each rank's own, through
    a differentiable all-reduce: E[x] = mean of means, Var = mean of (var + mean²) − E[x]²."""
    import torch.distributed as dist
    from torch.distributed.nn.functional import all_reduce

    if not dist.is_initialized():
        return mean, var
    w = dist.get_world_size()
    both = all_reduce(torch.cat([mean, var + mean * mean])) / w
    g_mean, g_sq = both[: len(mean)], both[len(mean):]
    return g_mean, g_sq - g_mean * g_mean


class InstanceMeansHook:
    """Per-sample channel means of the input of every BatchNorm layer (or of the modules named in
    `names`), concatenated: (N, ΣC) from `take()` after a forward pass while `enabled` — the teacher
    instance embedding of CMI (Fang et al. 2021). A missing name raises KeyError."""

    def __init__(self, model: nn.Module, names: list[str] | None = None):
        if names:
            modules = dict(model.named_modules())
            self.layers = [modules[n] for n in names]
        else:
            self.layers = [m for m in model.modules() if isinstance(m, _BatchNorm)]
        self._means: list[Tensor] = []
        self.enabled = False
        self._handles = [m.register_forward_hook(self._hook) for m in self.layers]

    def _hook(self, module, inputs, output) -> None:
        if self.enabled:
            x = inputs[0]
            x = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
            self._means.append(x.mean(dim=list(range(2, x.dim()))) if x.dim() > 2 else x)

    def take(self) -> Tensor:
        value, self._means = torch.cat(self._means, dim=1), []
        return value

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


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


class BlockHooks:
    """Keeps the outputs of named sub-modules from the last forward pass, in the given order:
    `values` -> list of tensors."""

    def __init__(self, model: nn.Module, names: list[str]):
        modules = dict(model.named_modules())
        self.names = list(names)
        self._out: dict[str, torch.Tensor] = {}
        self.enabled = True
        self._handles = [modules[n].register_forward_hook(self._make(n)) for n in self.names]

    def _make(self, name: str):
        def hook(module, inputs, output):
            if self.enabled:
                self._out[name] = output
        return hook

    @property
    def values(self) -> list[torch.Tensor]:
        return [self._out[n] for n in self.names]

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


@torch.no_grad()
def stage_outputs(model: nn.Module, input_shape: tuple[int, ...]) -> dict[int, str]:
    """{spatial size: module name}: for each size of 4-D output map (1×1 left out), the module that
    ends that resolution stage — among modules called once per forward, the one spanning the most
    sub-modules (a stage container beats the layers inside it), the last to finish on ties.
    Found by one forward pass of zeros with temporary hooks, so it works on any model; sizes come
    in forward order."""
    calls: dict[str, list[tuple[int, int]]] = {}  # name -> [(output size, completion index)] per call
    order = itertools.count()

    def recorder(name: str):
        def hook(module, inputs, output):
            if isinstance(output, torch.Tensor) and output.dim() == 4:
                calls.setdefault(name, []).append((output.shape[-1], next(order)))
        return hook

    handles = [m.register_forward_hook(recorder(name)) for name, m in model.named_modules() if name]
    was_training = model.training
    model.eval()
    try:
        model(torch.zeros(*input_shape, device=next(model.parameters()).device))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    span = {name: sum(1 for _ in m.modules()) for name, m in model.named_modules()}
    best: dict[int, tuple[int, int, str]] = {}
    for name, seen in calls.items():
        if len(seen) != 1 or seen[0][0] <= 1:
            continue
        size, order = seen[0]
        if size not in best or (span[name], order) > best[size][:2]:
            best[size] = (span[name], order, name)
    ordered = sorted(best.items(), key=lambda kv: kv[1][1])
    return {size: name for size, (_, _, name) in ordered}


def match_stages(teacher: nn.Module, student: nn.Module, t_shape, s_shape) -> tuple[list[str], list[str]]:
    """Teacher and student stage ends paired by spatial size, in forward order."""
    t, s = stage_outputs(teacher, t_shape), stage_outputs(student, s_shape)
    common = [size for size in t if size in s]
    return [t[k] for k in common], [s[k] for k in common]


def classifier_layer(model: nn.Module) -> nn.Linear:
    """The last `nn.Linear` of a model in registration order: its input is the penultimate feature."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layer to take penultimate features from")
    return linears[-1]


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, _BatchNorm) for m in model.modules())


@torch.no_grad()
def stage_channels(model: nn.Module, name: str, shape) -> int:
    """Channels of stage `name`'s output on a batch of zeros of `shape`, in eval mode (the model's
    mode and buffers kept)."""
    hook = BlockHooks(model, [name])
    was_training = model.training
    try:
        model.eval()(torch.zeros(*shape, device=next(model.parameters()).device))
        return hook.values[0].shape[1]
    finally:
        model.train(was_training)
        hook.remove()
