"""Seeds and devices."""
from __future__ import annotations

import random

import numpy as np
import torch

from .errors import DfkdError


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


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
