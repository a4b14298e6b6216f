"""Teacher training (`dfkd train-teacher`): a supervised recipe per dataset, so every table row can
be rebuilt from nothing. The checkpoint records its config, test accuracy and a sha256 of its weights.

Run directory: OUT/DATASET{SIZE}-ARCH-sSEED/ with teacher.pt, config.yaml, metrics.jsonl, summary.json.
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from dfkd.base.errors import DfkdError
from dfkd.base.runtime import isolated_globals, resolve_device, seed_everything, set_deterministic
from dfkd.config.load import deep_merge, dump_yaml, from_dict, to_dict, user_layers
from dfkd.config.schema import Config
from dfkd.config.teacher import TeacherTrainConfig
from dfkd.io.checkpoint import atomic_write_text, read_model, save_model
from dfkd.io.data import dataset_info, load_split, make_loader
from dfkd.io.tracking import NullTracker, Tracker
from dfkd.models import build_model, count_params
from dfkd.models.interface import check_io
from dfkd.objective.optim import make_optimizer
from dfkd.run.evaluate import accuracy
from dfkd.synthesis.augment import crop_flip

# Per-dataset defaults; the user's YAML and --set go on top.
RECIPES: dict[str, dict] = {
    "digits": {"arch": "cnn", "train": {"epochs": 30, "batch_size": 64, "augment": True,
                                        "optim": {"name": "sgd", "lr": 0.05, "weight_decay": 5e-4}}},
    # DAFL's MNIST teacher: LeNet-5, Adam 1e-3 (≈ 98.9%).
    "mnist": {"arch": "lenet5", "train": {"epochs": 20, "batch_size": 256, "augment": False,
                                          "optim": {"name": "adam", "lr": 1e-3, "weight_decay": 0.0}}},
    "fashion_mnist": {"arch": "lenet5", "train": {"epochs": 30, "batch_size": 256, "augment": False,
                                                  "optim": {"name": "adam", "lr": 1e-3, "weight_decay": 0.0}}},
    "svhn": {"arch": "resnet20", "train": {"epochs": 40, "batch_size": 128, "augment": True,
                                           "optim": {"name": "sgd", "lr": 0.05, "weight_decay": 5e-4}}},
    # The CIFAR protocol of the DFKD papers: SGD 0.1, momentum 0.9, wd 5e-4, 200 epochs, crop + flip.
    "cifar10": {"arch": "resnet34", "train": {"epochs": 200, "batch_size": 128, "augment": True,
                                              "optim": {"name": "sgd", "lr": 0.1, "weight_decay": 5e-4}}},
    "cifar10_jpeg": {"arch": "resnet34", "train": {"epochs": 200, "batch_size": 128, "augment": True,
                                                   "optim": {"name": "sgd", "lr": 0.1, "weight_decay": 5e-4}}},
    "cifar100": {"arch": "resnet34", "train": {"epochs": 200, "batch_size": 128, "augment": True,
                                               "optim": {"name": "sgd", "lr": 0.1, "weight_decay": 5e-4}}},
    "imagefolder": {"arch": "resnet18", "train": {"epochs": 100, "batch_size": 128, "augment": True}},
}


def build_teacher_config(config_file=None, sets=(), base: dict | None = None) -> TeacherTrainConfig:
    """defaults <- dataset recipe <- base <- YAML <- --set (the dataset is read first to pick the recipe)."""
    raw = user_layers(config_file, sets, base)
    data = raw.get("data")
    dataset = data.get("name", "digits") if isinstance(data, dict) else "digits"
    recipe = RECIPES.get(str(dataset).removeprefix("standin:"), {})  # a stand-in trains like the real data
    cfg = from_dict(TeacherTrainConfig, deep_merge(deep_merge(to_dict(TeacherTrainConfig()), recipe), raw))
    dataset_info(cfg.data)  # validates the dataset name
    return cfg


def auto_teacher_config(cfg: Config, seed: int = 0) -> TeacherTrainConfig:
    """The teacher `teacher.checkpoint=auto` stands for: the dataset's recipe, seed 0 (`auto:SEED`: that
    seed), under OUT/teachers."""
    base = {"data": to_dict(cfg.data), "arch": cfg.teacher.arch, "out": str(Path(cfg.out) / "teachers"),
            "device": cfg.device, "seed": seed, "tracking": to_dict(cfg.tracking)}
    return build_teacher_config(base=base)


def auto_seed(spec: str) -> int | None:
    """The seed of the trained teacher a teacher spec stands for ('auto' -> 0, 'auto:SEED' -> SEED), or None
    for anything else (a file, 'none', ...)."""
    if spec == "auto":
        return 0
    if not spec.startswith("auto:"):
        return None
    try:
        return int(spec[len("auto:"):])
    except ValueError:
        raise DfkdError(f"teacher checkpoint '{spec}': write auto:SEED with an integer seed, e.g. auto:1") from None


def teacher_dir(cfg: TeacherTrainConfig) -> Path:
    size = dataset_info(cfg.data).image_size
    return Path(cfg.out) / f"{cfg.data.name.replace(':', '-')}{size}-{cfg.arch}-s{cfg.seed}"


def teacher_path(cfg: TeacherTrainConfig) -> Path:
    """Where the checkpoint of the teacher `cfg` trains is (or will be) written."""
    return teacher_dir(cfg) / "teacher.pt"


@isolated_globals
def train_teacher(cfg: TeacherTrainConfig, quiet: bool = False, world=None) -> tuple[Path, float]:
    """Train, evaluate and save a teacher; returns (checkpoint path, test accuracy in %).
    Refuses to overwrite an existing checkpoint. Under torchrun (`world` from
    `dfkd.base.distributed.from_env`) the model is wrapped in DDP, each rank trains on its slice of every
    batch of `train.batch_size` (the global batch), and rank 0 alone evaluates and writes."""
    from dfkd.base import distributed
    from dfkd.run import memory

    memory.apply()  # fast CPU memory unless DFKD_FAST_MEMORY=0 (dfkd/run/memory.py)
    world = world or distributed.SINGLE
    ckpt_path = teacher_path(cfg)
    run_dir = ckpt_path.parent
    if ckpt_path.exists():
        raise DfkdError(f"a teacher already exists at '{ckpt_path}'; use it as teacher.checkpoint, "
                        f"or choose another --out or seed")
    device = resolve_device(cfg.device if not world.active else distributed.device_of(world, cfg.device))
    set_deterministic(cfg.deterministic)
    seed_everything(cfg.seed)
    info = dataset_info(cfg.data)
    train_ds, test_ds = load_split(cfg.data, "train"), load_split(cfg.data, "test")
    train = make_loader(train_ds, cfg.train.batch_size, True, cfg.data, cfg.seed, device)
    test = make_loader(test_ds, 512, False, cfg.data, device=device)
    model = build_model(cfg.arch, info.num_classes, info.in_channels)
    check_io(model, info.in_channels, info.image_size, info.num_classes, "teacher", arch=cfg.arch,
             pick="an architecture (--arch)")
    model = model.to(device)
    opt, sched = make_optimizer(model.parameters(), cfg.train.optim, cfg.train.epochs * len(train))
    aug = crop_flip(info.image_size, info.flip).to(device) if cfg.train.augment else None
    forward = model
    if world.active:
        from torch.nn.parallel import DistributedDataParallel as DDP

        forward = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
        seed_everything(cfg.seed + 7919 * world.rank)  # own augmentation draws; the data order is shared

    config = to_dict(cfg)
    if world.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "config.yaml", dump_yaml(cfg))
    tracker = Tracker(run_dir, cfg.tracking, config, name=run_dir.name, job_type="train-teacher") \
        if world.main else NullTracker()
    start = time.time()
    bar = tqdm(range(cfg.train.epochs), desc=f"teacher {cfg.arch} on {cfg.data.name}", disable=quiet,
               unit="epoch", leave=False)
    acc = 0.0
    for epoch in bar:
        model.train()
        total = torch.zeros((), device=device)
        for x, y in train:
            if world.active:  # this rank's slice of the global batch (a batch too small to split is skipped)
                if len(y) < world.size:
                    continue
                x, y = x.chunk(world.size)[world.rank], y.chunk(world.size)[world.rank]
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if aug is not None:
                x = aug(x)
            loss = F.cross_entropy(forward(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.detach()
        train_loss = (total / len(train)).item()
        if not math.isfinite(train_loss):
            raise DfkdError(f"teacher training diverged (loss {train_loss}) in epoch {epoch + 1}; "
                            f"lower train.optim.lr")
        last = epoch + 1 == cfg.train.epochs
        if world.main and ((epoch + 1) % max(1, cfg.train.epochs // 10) == 0 or last):
            acc = accuracy(model, test, device)
            tracker.log({"epoch": epoch + 1, "train_loss": train_loss, "test_acc": acc}, step=epoch + 1)
            bar.set_postfix(loss=f"{train_loss:.3f}", acc=f"{acc:.2f}")
    ddp = {}
    if world.active:
        distributed.sync_buffers(model)
        ddp = {"ddp": {"world_size": world.size, "checksums": distributed.checksums(model)}}
        if not world.main:
            distributed.barrier()  # rank 0 writes the checkpoint
            return ckpt_path, acc
    digest = save_model(ckpt_path, model, kind="teacher", arch=cfg.arch, dataset=cfg.data.name,
                        num_classes=info.num_classes, in_channels=info.in_channels, image_size=info.image_size,
                        mean=info.mean, std=info.std,
                        config=config, metrics={"test_acc": acc})
    tracker.log_model(ckpt_path, f"teacher-{ckpt_path.parent.name}", {  # distil runs link to it by content
        "sha256": digest, "test_acc": acc, "dataset": cfg.data.name, "arch": cfg.arch, "seed": cfg.seed})
    tracker.finish({"dataset": cfg.data.name, "arch": cfg.arch, "seed": cfg.seed, "test_acc": acc,
                    "params": count_params(model), "wall_time_s": round(time.time() - start, 2),
                    "checkpoint": str(ckpt_path), "sha256": digest, "wandb_run_id": tracker.run_id, **ddp})
    if world.active:
        distributed.barrier()
    return ckpt_path, acc


def ensure_teacher(cfg: TeacherTrainConfig, quiet: bool = False) -> tuple[Path, dict]:
    """The checkpoint for `cfg`, trained first if it does not exist yet: (path, verified checkpoint)."""
    path = teacher_path(cfg)
    if not path.exists():
        print(f"dfkd: no teacher at '{path}'; training one ({cfg.arch} on {cfg.data.name}, "
              f"{cfg.train.epochs} epochs)", file=sys.stderr)
        path, _ = train_teacher(cfg, quiet=quiet)
    return path, read_model(path)
