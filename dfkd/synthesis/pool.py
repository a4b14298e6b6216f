"""A bounded in-memory replay pool of synthesized inputs (the data pool of CMI and Fast, Fang et al.
2021/2022), kept as one preallocated ring buffer: no PNG round trip, no growth past `capacity`.

Storage: "fp32" (exact), "fp16" (half the memory, ~3 decimal digits) or "uint8" (a quarter; each
sample is quantised to 256 levels between its own min and max, which are kept beside it in fp32).
With `path`, the buffer is a file memory-mapped with `torch.from_file` (spill to disk for pools
larger than RAM, e.g. ImageNet-scale runs): the operating system pages samples in and out, and the
file is deleted when the pool is.

    pool = ReplayPool(capacity=4096, shape=(3, 32, 32), storage="uint8")
    pool.add(x)            # (N, C, H, W) float; the oldest samples are overwritten once full
    xb = pool.sample(256)  # (256, C, H, W) float32, uniformly from what is held
    reads = pool.passes(256)  # or: shuffled passes without replacement; next(reads) is a batch
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor


class ReplayPool:
    @classmethod
    def placed(cls, capacity: int, shape: tuple[int, ...], storage: str, where: str, device,
               file: Path | None = None) -> "ReplayPool":
        """A pool placed as `pool.device` says (`where`): in RAM ('cpu'), on the run's `device` ('same'),
        or in the memory-mapped `file` ('disk'; in RAM when there is no file yet); read out on `device`."""
        return cls(capacity, shape, storage, device=device if where == "same" else "cpu", out_device=device,
                   path=file if where == "disk" else None)

    def __init__(self, capacity: int, shape: tuple[int, ...], storage: str = "fp16", device="cpu",
                 out_device=None, path: str | Path | None = None):
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        dtypes = {"fp64": torch.float64, "fp32": torch.float32, "fp16": torch.float16, "uint8": torch.uint8}
        if storage not in dtypes:
            raise ValueError("storage must be 'fp64', 'fp32', 'fp16' or 'uint8'")
        self.out_dtype = torch.float64 if storage == "fp64" else torch.float32
        self.capacity, self.storage = capacity, storage
        self.out_device = torch.device(out_device or device)
        dtype = dtypes[storage]
        self.path = Path(path) if path is not None else None
        if self.path is None:
            self.data = torch.empty((capacity, *shape), dtype=dtype, device=device)
        else:  # file-backed: a fresh sparse file of exactly the buffer's size
            numel = capacity * math.prod(shape)
            self.path.unlink(missing_ok=True)
            self.data = torch.from_file(str(self.path), shared=True, size=numel, dtype=dtype).view(capacity, *shape)
        self.lo = torch.zeros(capacity, device=device) if storage == "uint8" else None
        self.scale = torch.ones(capacity, device=device) if storage == "uint8" else None
        self.size = 0  # samples held
        self.head = 0  # next slot to write

    def __len__(self) -> int:
        return self.size

    def held(self) -> Tensor:
        """Everything held, in storage order (N, ...), as stored (no dequantisation)."""
        return self.data[: self.size]

    @torch.no_grad()
    def add(self, x: Tensor) -> None:
        x = x.detach()
        if x.shape[0] > self.capacity:
            x = x[-self.capacity:]
        n = x.shape[0]
        idx = ((self.head + torch.arange(n)) % self.capacity).to(self.data.device)
        x = x.to(self.data.device, self.out_dtype)
        if self.storage != "uint8":
            self.data[idx] = x.to(self.data.dtype)
        else:
            flat = x.flatten(1)
            lo, hi = flat.min(1).values, flat.max(1).values
            scale = (hi - lo).clamp_min(1e-8) / 255.0
            q = ((flat - lo[:, None]) / scale[:, None]).round().clamp_(0, 255)
            self.data[idx] = q.to(torch.uint8).view_as(x)
            self.lo[idx], self.scale[idx] = lo, scale
        self.head = (self.head + n) % self.capacity
        self.size = min(self.capacity, self.size + n)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """`n` samples drawn uniformly with replacement from what is held."""
        if self.size == 0:
            raise RuntimeError("sampling from an empty pool")
        return self._read(torch.randint(self.size, (n,), generator=generator))

    def passes(self, n: int, generator: torch.Generator | None = None):
        """Batches of at most `n`, read in shuffled passes over what is held (without replacement):
        a fresh permutation each pass, whose last batch is short when `n` does not divide the size,
        as a DataLoader(shuffle=True) over the pool reads it (CMI, Fast, NAYER). Endless."""
        if self.size == 0:
            raise RuntimeError("sampling from an empty pool")
        while True:
            perm = torch.randperm(self.size, generator=generator)
            for i in range(0, self.size, n):
                yield self._read(perm[i:i + n])

    @torch.no_grad()
    def _read(self, idx: Tensor) -> Tensor:
        idx = idx.to(self.data.device)
        x = self.data[idx].to(self.out_dtype)
        if self.storage == "uint8":
            shape = (len(idx),) + (1,) * (x.dim() - 1)
            x = x * self.scale[idx].view(shape) + self.lo[idx].view(shape)
        return x.to(self.out_device)

    def state_dict(self) -> dict:
        state = {"data": self.data[: self.size].clone(), "size": self.size, "head": self.head}
        if self.storage == "uint8":
            state.update(lo=self.lo[: self.size].clone(), scale=self.scale[: self.size].clone())
        return state

    def load_state_dict(self, state: dict) -> None:
        self.size, self.head = state["size"], state["head"]
        self.data[: self.size] = state["data"]
        if self.storage == "uint8":
            self.lo[: self.size], self.scale[: self.size] = state["lo"], state["scale"]

    def close(self) -> None:
        """Delete a disk pool's file (its samples also live in every checkpoint)."""
        if getattr(self, "path", None) is not None:
            self.data = None
            self.path.unlink(missing_ok=True)
            self.path = None

    __del__ = close
