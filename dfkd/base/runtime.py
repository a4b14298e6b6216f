"""Seeds, devices, and the process-wide torch settings a run sets for itself."""
from __future__ import annotations

import functools
import random

import numpy as np
import torch

from dfkd.base.errors import DfkdError


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Precision:
    """Mixed precision of one run: `autocast()` around forward passes, and `scaler()` — one
    GradScaler per optimizer, active for fp16 only (a disabled scaler passes everything through)."""

    def __init__(self, mode: str = "off", device: str | torch.device = "cpu"):
        self.mode, self.device_type = mode, torch.device(device).type
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mode)

    def autocast(self):
        import contextlib

        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def scaler(self):
        enabled = self.mode == "fp16"
        if hasattr(torch.amp, "GradScaler"):
            return torch.amp.GradScaler(self.device_type, enabled=enabled)
        return torch.cuda.amp.GradScaler(enabled=enabled and self.device_type == "cuda")  # torch < 2.3


def full(x: torch.Tensor) -> torch.Tensor:
    """x in full precision: half and bfloat16 (autocast) become float32; float32 and float64 stay."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def set_deterministic(on: bool) -> None:
    """Deterministic algorithms everywhere (errors on ops that have none), cuDNN autotuning off."""
    import os

    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(on)
    torch.backends.cudnn.benchmark = not on
    torch.backends.cudnn.deterministic = on


def isolated_globals(fn):
    """Run `fn` under a fresh process's torch settings and restore the caller's after it, so that a run
    in a notebook, or in a test after other work, gives the very student a fresh process gives and
    leaves nothing behind: the default dtype (float32), float32 matmul precision ('highest'), autograd
    on, and the deterministic-algorithms and cuDNN flags (which the run sets from `deterministic`).
    The thread count stays the caller's (`torch.set_num_threads`): it is a choice, not a leak."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        saved = (torch.get_default_dtype(), torch.get_float32_matmul_precision(), torch.is_grad_enabled(),
                 torch.are_deterministic_algorithms_enabled(),
                 torch.is_deterministic_algorithms_warn_only_enabled(),
                 torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
        torch.set_default_dtype(torch.float32)
        torch.set_float32_matmul_precision("highest")
        torch.set_grad_enabled(True)
        try:
            return fn(*args, **kwargs)
        finally:
            dtype, matmul, grad, det, warn_only, benchmark, cudnn_det = saved
            torch.set_default_dtype(dtype)
            torch.set_float32_matmul_precision(matmul)
            torch.set_grad_enabled(grad)
            torch.use_deterministic_algorithms(det, warn_only=warn_only)
            torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = benchmark, cudnn_det

    return wrapper


def rng_state() -> dict:
    """Every random generator a run draws from: python, numpy, torch (CPU) and CUDA."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),  # plain types: loadable with
             "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss]}  # weights_only
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise DfkdError(f"device '{name}' is not a device; use cpu, cuda, cuda:N or auto") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DfkdError(f"device '{name}' asked for but CUDA is not available here; use device=cpu or auto")
    return dev
