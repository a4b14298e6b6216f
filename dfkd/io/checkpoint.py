"""Atomic file writes and model checkpoints that carry their config, accuracy and a content hash.

A model checkpoint is a dict: kind ("teacher"/"student"), arch, dataset, num_classes, in_channels,
image_size, mean and std (the input normalisation it was trained under), state_dict, config,
metrics, sha256 (of the state dict). Loading recomputes the hash, so a truncated or
altered file is refused with a clear message instead of loading garbage.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from torch import nn

from dfkd.base.errors import DfkdError


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, fsync, then rename over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_torch_save(obj, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


RUN_MAGIC = b"DFKD-RUN-CHECKPOINT v2 sha256="


def save_run_checkpoint(obj: dict, path: str | Path) -> None:
    """A run checkpoint: one header line with the sha256 of the torch-serialised payload, then the
    payload; written atomically, so a kill leaves the previous good file in place."""
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    payload = buf.getvalue()
    atomic_write_bytes(path, RUN_MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)


def read_run_checkpoint(path: str | Path) -> dict:
    """Load a run checkpoint after checking its hash; DfkdError if missing, foreign, truncated or altered."""
    import io

    path = Path(path)
    if not path.is_file():
        raise DfkdError(f"no run checkpoint at '{path}'")
    data = path.read_bytes()
    head, _, payload = data.partition(b"\n")
    if not head.startswith(RUN_MAGIC):
        raise DfkdError(f"'{path}' is not a dfkd run checkpoint")
    if hashlib.sha256(payload).hexdigest().encode() != head[len(RUN_MAGIC):]:
        raise DfkdError(f"run checkpoint '{path}' is corrupt or truncated (its sha256 does not match); "
                        f"it cannot be resumed: start the run again")
    return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)


def state_hash(state_dict: dict) -> str:
    """sha256 over names, dtypes, shapes and raw bytes of every tensor, in sorted key order."""
    h = hashlib.sha256()
    for key in sorted(state_dict):
        t = state_dict[key]
        h.update(key.encode())
        if isinstance(t, torch.Tensor):
            t = t.detach().cpu().contiguous()
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        else:
            h.update(repr(t).encode())
    return h.hexdigest()


def save_model(path: str | Path, model: nn.Module, *, kind: str, arch: str, dataset: str, num_classes: int,
               in_channels: int, image_size: int, mean, std, config: dict, metrics: dict) -> str:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    digest = state_hash(state)
    atomic_torch_save({
        "format": "dfkd-model-v1", "kind": kind, "arch": arch, "dataset": dataset,
        "num_classes": num_classes, "in_channels": in_channels, "image_size": image_size,
        "mean": [float(m) for m in mean], "std": [float(v) for v in std], "state_dict": state,
        "config": config, "metrics": metrics, "sha256": digest,
    }, path)
    return digest


def read_model(path: str | Path) -> dict:
    """Load and verify a model checkpoint; DfkdError if missing, unreadable or altered."""
    path = Path(path)
    if not path.is_file():
        raise DfkdError(f"checkpoint '{path}' not found; train one with `dfkd train-teacher` "
                        f"or set teacher.checkpoint=auto")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a truncated or foreign file
        raise DfkdError(f"checkpoint '{path}' is unreadable or truncated ({type(e).__name__}); "
                        f"re-create it with `dfkd train-teacher`") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != "dfkd-model-v1":
        raise DfkdError(f"'{path}' is not a dfkd model checkpoint; make one with `dfkd train-teacher`")
    if state_hash(ckpt["state_dict"]) != ckpt.get("sha256"):
        raise DfkdError(f"checkpoint '{path}' is corrupt: its weights do not match their sha256; "
                        f"re-create it with `dfkd train-teacher`")
    return ckpt


def load_into(model: nn.Module, ckpt: dict, arch: str, path: str | Path, key: str = "arch") -> None:
    """Load a verified checkpoint into `model` built as `arch` (config key `key`), or say clearly
    why it does not fit."""
    if ckpt["arch"] != arch:
        raise DfkdError(f"checkpoint '{path}' holds a '{ckpt['arch']}' but the config asks for '{arch}'; "
                        f"set {key}={ckpt['arch']} or pass a {arch} checkpoint")
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError:
        raise DfkdError(f"checkpoint '{path}' ({ckpt['arch']}, {ckpt['num_classes']} classes, "
                        f"{ckpt['in_channels']} channels) does not fit the model the config builds; "
                        f"check the dataset and arch") from None
