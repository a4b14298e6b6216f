"""The typed config of teacher training (`dfkd train-teacher`): a supervised run on the real training
split. The sections it shares with a distillation run are `dfkd.config.schema`'s."""
from __future__ import annotations

from dataclasses import dataclass

from dfkd.config.fields import OptimConfig, opt
from dfkd.config.schema import DataConfig, TrackingConfig


@dataclass
class TrainConfig:
    epochs: int = opt(30, "training epochs", min=1)
    batch_size: int = opt(64, "batch size", min=1)
    augment: bool = opt(True, "random crop (+ flip on natural images) during training")
    optim: OptimConfig = opt(OptimConfig(lr=0.05), "optimizer")


@dataclass
class TeacherTrainConfig:
    """Teacher training (`dfkd train-teacher`): a supervised run on the real training split."""

    seed: int = opt(0, "random seed")
    deterministic: bool = opt(False, "PyTorch deterministic algorithms (bitwise-repeatable training)")
    device: str = opt("auto", "cpu, cuda, cuda:N, or auto")
    out: str = opt("runs/teachers", "directory for the checkpoint and run files")
    data: DataConfig = opt(DataConfig(), "dataset")
    arch: str = opt("cnn", "architecture (see `dfkd list models`)")
    train: TrainConfig = opt(TrainConfig(), "training recipe")
    tracking: TrackingConfig = opt(TrackingConfig(), "tracking")
