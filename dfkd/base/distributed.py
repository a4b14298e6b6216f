"""Data-parallel runs under torchrun: `torchrun --nproc_per_node N -m dfkd distill ...`.

Every rank builds the same student and source (same seed, then DDP's broadcast from rank 0), then
draws from its own random stream, so each rank synthesizes (or reads) its own share of the batch:
`synth.batch_size` is the global batch, split evenly. The student is wrapped in
`DistributedDataParallel`; a source's gradients are averaged by one all-reduce per step, as DDP
would (some schedules re-create the source every round, where a DDP wrapper would cost a
broadcast each time); the frozen teacher is not wrapped. BN-statistics terms use each rank's own
batch statistics, as in the papers. Skip decisions of the non-finite guard are agreed across ranks.
Only rank 0 writes the run directory, checkpoints and summaries and logs to W&B; its summary
records a checksum of every rank's final student weights (`ddp.student_checksums`).

Backend: NCCL on CUDA, gloo on the CPU.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1


SINGLE = World()


def from_env(device_name: str) -> tuple[World, str]:
    """The torchrun world (process group initialised) and the device this rank uses; a plain run
    (no WORLD_SIZE > 1 in the environment) is `SINGLE` on `device_name`."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return SINGLE, device_name
    world = World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))
    device = device_of(world, device_name)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    if device.startswith("cuda"):
        torch.cuda.set_device(world.local_rank)
    return world, device


def device_of(world: World, device_name: str) -> str:
    """This rank's device under torchrun: its local GPU, or the CPU."""
    cuda = device_name.startswith("cuda") or (device_name == "auto" and torch.cuda.is_available())
    return f"cuda:{world.local_rank}" if cuda else "cpu"


def average_gradients(params) -> None:
    """All-reduce the gradients of `params` and divide by the world size (what DDP does)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads or not dist.is_initialized():
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def agree(ok: torch.Tensor) -> torch.Tensor:
    """True only where every rank says True (a 0-d bool tensor)."""
    if not dist.is_initialized():
        return ok
    flag = ok.to(torch.int32).reshape(1)
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return flag[0].bool()


def broadcast(value):
    """Rank 0's `value` on every rank (any picklable object)."""
    if not dist.is_initialized():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def checksums(model: nn.Module) -> list[float]:
    """Every rank's sum of |weights| of `model` (a float64 scalar per rank), gathered everywhere."""
    with torch.no_grad():
        mine = torch.stack([p.detach().double().abs().sum() for p in model.state_dict().values()
                            if p.is_floating_point()]).sum()
    return [v.item() for v in _all_gather(mine)]


def gathered(value: int) -> list[int]:
    """Every rank's `value`, gathered everywhere (a one-element list outside torchrun)."""
    return [int(v) for v in _all_gather(torch.tensor(value, dtype=torch.int64))]


def _all_gather(mine: torch.Tensor) -> list[torch.Tensor]:
    """Every rank's scalar `mine` in rank order ([mine] outside torchrun)."""
    if not dist.is_initialized():
        return [mine]
    out = [torch.zeros_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(out, mine)
    return out


def sync_buffers(model: nn.Module) -> None:
    """Rank 0's buffers (BN running statistics) on every rank: DDP broadcasts them before each
    forward pass, so after the last one they still differ."""
    if dist.is_initialized():
        for b in model.buffers():
            dist.broadcast(b, src=0)


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()
