"""Dataset registry: the embedded digits, torchvision benchmarks and any ImageFolder.

Every split goes through `load_split(cfg, split)`, the one place real data is read. Data-free runs
call it for the "test" split only (evaluation); tests assert that.

Images come out normalised with fixed per-dataset constants: (N, C, H, W) float tensors and integer
labels. The torchvision benchmarks are held in memory as tensors (resized and normalised once), so
a batch is a slice; ImageFolder trees are decoded per sample by a DataLoader. Missing torchvision
datasets raise `DfkdError` naming where they were looked for; they are downloaded only when `data.download` is true.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset

from dfkd.base.errors import DfkdError
from dfkd.base.registry import Registry
from dfkd.config.schema import DataConfig

DATASETS = Registry("dataset")


@dataclass(frozen=True)
class DatasetInfo:
    num_classes: int
    in_channels: int
    image_size: int  # default resolution (data.image_size overrides)
    mean: tuple[float, ...]
    std: tuple[float, ...]
    flip: bool  # horizontal flips are label-preserving (natural images, not digits)


@dataclass(frozen=True)
class DatasetEntry:
    info: DatasetInfo
    load: object  # (cfg: DataConfig, split: str, size: int, info: DatasetInfo) -> Dataset
    doc: str


def _register(name: str, info: DatasetInfo, doc: str):
    def add(load):
        DATASETS.register(name)(DatasetEntry(info, load, doc))
        return load

    return add


STANDIN = "standin:"


def get_entry(name: str) -> DatasetEntry:
    """The registry entry of `name`; `standin:NAME` is a small generated dataset shaped like NAME."""
    if name.startswith(STANDIN):
        base = DATASETS.get(name[len(STANDIN):])
        return DatasetEntry(base.info, _standin, f"generated stand-in shaped like {base}")
    return DATASETS.get(name)


def data_root(cfg: DataConfig) -> Path:
    return Path(cfg.root or os.environ.get("DFKD_DATA_ROOT") or "data").expanduser()


def dataset_info(cfg: DataConfig) -> DatasetInfo:
    """The dataset's shape facts, with `image_size`, `mean`, `std` and classes from the config
    (for every dataset: a teacher from elsewhere brings its own input convention)."""
    if cfg.name == NONE:
        return _spec_info(cfg)
    entry = get_entry(cfg.name)
    info = entry.info
    size = cfg.image_size or info.image_size
    mean = tuple(cfg.mean) if cfg.mean else info.mean
    std = tuple(cfg.std) if cfg.std else info.std
    classes = cfg.num_classes or info.num_classes
    if cfg.name.startswith(STANDIN):
        classes = classes or 10
    elif cfg.name == "imagefolder" and not cfg.num_classes:
        classes = _count_class_dirs(data_root(cfg) / "train")
    if len(mean) != info.in_channels or len(std) != info.in_channels:
        raise DfkdError(f"data.mean and data.std need {info.in_channels} values for {cfg.name}")
    flip = info.flip if cfg.flip is None else cfg.flip
    return DatasetInfo(classes, info.in_channels, size, mean, std, flip)


def load_split(cfg: DataConfig, split: str) -> Dataset:
    """The `split` ("train" or "test") of the configured dataset, normalised."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    entry = get_entry(cfg.name)
    info = dataset_info(cfg)
    return entry.load(cfg, split, info)


def per_class_subset(ds: Dataset, per_class: int, seed: int) -> Dataset:
    """At most `per_class` samples of each class of `ds`, drawn without replacement by a generator
    seeded with `seed` (labels from `ds.targets` when it has them, else by reading every sample)."""
    from torch.utils.data import Subset

    targets = getattr(ds, "targets", None)
    if targets is None and isinstance(ds, TensorDataset):
        targets = ds.tensors[1]
    labels = torch.as_tensor(targets if targets is not None else [int(ds[i][1]) for i in range(len(ds))])
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    keep = torch.cat([order[labels[order] == c][:per_class] for c in labels.unique()])
    return Subset(ds, keep.sort().values.tolist())


def available(cfg: DataConfig) -> bool:
    """Whether the dataset's test split can be read here (without downloading)."""
    from dataclasses import replace

    try:
        load_split(replace(cfg, download=False), "test")
    except DfkdError:
        return False
    return True


def _standin(cfg: DataConfig, split: str, info: DatasetInfo) -> TensorDataset:
    """A small generated dataset with the real one's shape and class count, for checking a pipeline
    where the data is absent (`--scale smoke` of a table): each class is a fixed random low-frequency
    pattern plus noise (learnable, meaningless), 256 train / 128 test images, normalised."""
    k, c, s = info.num_classes, info.in_channels, info.image_size
    n = 256 if split == "train" else 128
    protos = torch.randn(k, c, 4, 4, generator=torch.Generator().manual_seed(1234))  # shared by both splits
    labels = torch.arange(n) % k
    noise = torch.randn(n, c, s, s, generator=torch.Generator().manual_seed(0 if split == "train" else 1))
    x = F.interpolate(protos[labels], size=(s, s), mode="bilinear", align_corners=False) + 0.5 * noise
    return TensorDataset((x - x.mean()) / x.std(), labels)


# ----------------------------------------------------------------------------- no data

NONE = "none"


def _spec_info(cfg: DataConfig) -> DatasetInfo:
    """data.name=none: the inputs described by the config alone (`dfkd.InputSpec`)."""
    missing = [k for k in ("channels", "image_size", "num_classes") if getattr(cfg, k) is None]
    if missing:
        raise DfkdError(f"data.name=none describes the teacher's inputs by data.channels, data.image_size and "
                        f"data.num_classes; set {', '.join('data.' + k for k in missing)}")
    c = cfg.channels
    mean = tuple(cfg.mean) if cfg.mean else (0.0,) * c
    std = tuple(cfg.std) if cfg.std else (1.0,) * c
    if len(mean) != c or len(std) != c:
        raise DfkdError(f"data.mean and data.std need {c} values (data.channels={c})")
    if any(v <= 0 for v in std):
        raise DfkdError(f"data.std must be positive, got {list(std)}")
    return DatasetInfo(cfg.num_classes, c, cfg.image_size, mean, std, flip=bool(cfg.flip))


@_register(NONE, DatasetInfo(0, 0, 0, (), (), flip=False),
           "no data at all: a data-free run described by data.channels, data.image_size, data.num_classes "
           "(and data.mean / data.std); scored on data.eval if given, else by teacher-student agreement")
def _no_data(cfg: DataConfig, split: str, info: DatasetInfo) -> Dataset:
    raise DfkdError(f"data.name=none has no {split} split; data-free methods need none (a data-driven method "
                    f"needs a dataset), and scoring uses data.eval")


# ----------------------------------------------------------------------------- digits


@_register("digits", DatasetInfo(10, 1, 16, (0.3054,), (0.3190,), flip=False),
           "scikit-learn's bundled handwritten digits: 1,797 8×8 images, no download; "
           "fixed stratified split 1,437 train / 360 test; upsampled to data.image_size (16); "
           "mean/std measured on the 16px training split")
def _digits(cfg: DataConfig, split: str, info: DatasetInfo) -> Dataset:
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    index = np.arange(len(d.target))
    train_idx, test_idx = train_test_split(index, test_size=0.2, stratify=d.target, random_state=0)
    idx = np.sort(train_idx if split == "train" else test_idx)
    x = torch.tensor(d.images[idx] / 16.0, dtype=torch.float32).unsqueeze(1)
    if info.image_size != 8:
        x = F.interpolate(x, size=(info.image_size, info.image_size), mode="bilinear", align_corners=False)
    x = (x - info.mean[0]) / info.std[0]
    return TensorDataset(x, torch.tensor(d.target[idx], dtype=torch.long))


@_register("digits_mosaic", DatasetInfo(10, 1, 16, (0.3054,), (0.3190,), flip=False),
           "out-of-domain images made from the bundled digits, for source.name=unlabelled: each 8×8 image "
           "assembled from four 4×4 quarters of four random digits of the split (seeded; each quarter "
           "keeps its place), 1,437 train / 360 test; no labels (-1); normalised as digits")
def _digits_mosaic(cfg: DataConfig, split: str, info: DatasetInfo) -> Dataset:
    from dataclasses import replace

    x = _digits(replace(cfg, name="digits"), split, replace(info, image_size=8)).tensors[0]  # (N, 1, 8, 8)
    n = len(x)
    g = torch.Generator().manual_seed(7 if split == "train" else 8)
    out = torch.empty_like(x)
    for qi, (r, c) in enumerate(((0, 0), (0, 4), (4, 0), (4, 4))):  # each quarter from its own shuffle
        src = torch.randperm(n, generator=g)
        out[:, :, r:r + 4, c:c + 4] = x[src, :, r:r + 4, c:c + 4]
    if info.image_size != 8:
        out = F.interpolate(out * info.std[0] + info.mean[0], size=(info.image_size, info.image_size),
                            mode="bilinear", align_corners=False)
        out = (out - info.mean[0]) / info.std[0]
    return TensorDataset(out, torch.full((n,), -1, dtype=torch.long))


# ----------------------------------------------------------------------------- torchvision


def _to_tensors(images, labels, info: DatasetInfo) -> TensorDataset:
    """uint8 images (N, H, W) or (N, C, H, W) -> normalised float (N, C, size, size), held in memory,
    so batches are slices (no per-sample decoding or PIL transforms)."""
    x = torch.as_tensor(images)
    x = x.unsqueeze(1) if x.dim() == 3 else x
    x = x.float().div_(255.0)
    if x.shape[-1] != info.image_size:
        x = F.interpolate(x, size=(info.image_size, info.image_size), mode="bilinear", align_corners=False,
                          antialias=True)
    mean = torch.tensor(info.mean).view(1, -1, 1, 1)
    std = torch.tensor(info.std).view(1, -1, 1, 1)
    return TensorDataset((x - mean) / std, torch.as_tensor(labels, dtype=torch.long))


def _torchvision(cfg: DataConfig, split: str, info: DatasetInfo, cls_name: str) -> TensorDataset:
    import torchvision.datasets as D

    root = data_root(cfg)
    cls = getattr(D, cls_name)
    kw = {"split": split} if cls_name == "SVHN" else {"train": split == "train"}
    try:
        ds = cls(root=str(root), download=cfg.download, **kw)
    except RuntimeError as e:
        if "not found" in str(e).lower() or "download" in str(e).lower():
            raise DfkdError(f"dataset '{cfg.name}' ({split} split) not found under '{root}'; pass "
                            f"--data-root DIR (or set DFKD_DATA_ROOT) where it lives, or --download "
                            f"to fetch it") from None
        raise
    except OSError as e:
        raise DfkdError(f"could not read or download dataset '{cfg.name}' under '{root}' ({e}); "
                        f"check --data-root and the network") from None
    images = ds.data
    if cls_name.startswith("CIFAR"):  # (N, H, W, C) numpy
        images = torch.from_numpy(images).permute(0, 3, 1, 2)
    labels = ds.labels if cls_name == "SVHN" else ds.targets
    return _to_tensors(images, labels, info)


_NATURAL = dict(flip=True)


@_register("mnist", DatasetInfo(10, 1, 32, (0.1307,), (0.3081,), flip=False),
           "MNIST via torchvision (28×28, resized to 32 as in DAFL/DFAD)")
def _mnist(cfg, split, info):
    return _torchvision(cfg, split, info, "MNIST")


@_register("fashion_mnist", DatasetInfo(10, 1, 32, (0.2860,), (0.3530,), flip=False),
           "Fashion-MNIST via torchvision (28×28, resized to 32)")
def _fashion(cfg, split, info):
    return _torchvision(cfg, split, info, "FashionMNIST")


@_register("svhn", DatasetInfo(10, 3, 32, (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970), flip=False),
           "SVHN via torchvision (32×32)")
def _svhn(cfg, split, info):
    return _torchvision(cfg, split, info, "SVHN")


@_register("cifar10", DatasetInfo(10, 3, 32, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), **_NATURAL),
           "CIFAR-10 via torchvision (32×32)")
def _cifar10(cfg, split, info):
    return _torchvision(cfg, split, info, "CIFAR10")


@_register("cifar100", DatasetInfo(100, 3, 32, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), **_NATURAL),
           "CIFAR-100 via torchvision (32×32)")
def _cifar100(cfg, split, info):
    return _torchvision(cfg, split, info, "CIFAR100")


CIFAR10_JPEG = "cifar10-jpeg"


@_register("cifar10_jpeg", DatasetInfo(10, 3, 32, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), **_NATURAL),
           "CIFAR-10 re-encoded as JPEG (q75, 4:2:0; 50,000/10,000 images, 32×32), read from "
           "DATA_ROOT/cifar10-jpeg.tar.gz as is or from its extracted cifar10-jpeg/{train,test}/CLASS/*.jpg; "
           "lossy, so a teacher scores about 10 points below true CIFAR-10: report it as 'CIFAR-10 (JPEG q75)'. "
           "Never downloaded")
def _cifar10_jpeg(cfg, split, info):
    root = data_root(cfg)
    candidates = [root / f"{CIFAR10_JPEG}.tar.gz", root / CIFAR10_JPEG, root]
    source = next((c for c in candidates if c.is_file() or (c / "train").is_dir()), None)
    if source is None:
        how = " (it is not downloadable: it is a JPEG copy, not the torchvision dataset)" if cfg.download else ""
        raise DfkdError(f"dataset 'cifar10_jpeg' not found: looked for {candidates[0]}, {candidates[1]}/train and "
                        f"{candidates[2]}/train; pass --data-root DIR holding cifar10-jpeg.tar.gz or its extracted "
                        f"folder{how}")
    images, labels = _jpeg_split(str(source.resolve()), split)
    return _to_tensors(images, labels, info)


@functools.lru_cache(maxsize=2)
def _jpeg_split(source: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 images (N, 3, H, W), labels) of one split of an ImageFolder tree of JPEGs, from a folder
    or a .tar.gz of it (read as a stream, no extraction); classes are the sorted folder names."""
    import io
    import tarfile

    import numpy as np
    from PIL import Image

    blobs: list[tuple[str, str, bytes]] = []  # (class, file name, bytes), sorted below
    if source.endswith(".tar.gz"):
        with tarfile.open(source, "r:gz") as tar:
            for m in tar:
                parts = m.name.split("/")
                if m.isfile() and len(parts) >= 3 and parts[-3] == split and parts[-1].lower().endswith(".jpg"):
                    blobs.append((parts[-2], parts[-1], tar.extractfile(m).read()))
    else:
        for f in sorted(Path(source, split).glob("*/*.jpg")):
            blobs.append((f.parent.name, f.name, f.read_bytes()))
    if not blobs:
        raise DfkdError(f"no {split} images (*.jpg under {split}/CLASS/) in '{source}'")
    blobs.sort()
    classes = sorted({c for c, _, _ in blobs})
    index = {c: i for i, c in enumerate(classes)}
    images = torch.from_numpy(np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for _, _, b in blobs]))
    return images.permute(0, 3, 1, 2).contiguous(), torch.tensor([index[c] for c, _, _ in blobs])


def _count_class_dirs(path: Path) -> int:
    if not path.is_dir():
        raise DfkdError(f"imagefolder: '{path}' is not a directory; data.root must hold train/ and test/ "
                        f"(or val/) folders with one sub-folder per class")
    return sum(1 for p in path.iterdir() if p.is_dir())


@_register("imagefolder", DatasetInfo(0, 3, 32, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), **_NATURAL),
           "any ImageFolder tree: DATA_ROOT/{train,test or val}/CLASS/*.jpg (RGB, resized to data.image_size)")
def _imagefolder(cfg, split, info):
    import torchvision.datasets as D
    import torchvision.transforms as T

    root = data_root(cfg)
    folder = root / "train" if split == "train" else next(
        (root / s for s in ("test", "val") if (root / s).is_dir()), root / "test")
    _count_class_dirs(folder)
    tf = T.Compose([T.Resize((info.image_size, info.image_size)), T.ToTensor(), T.Normalize(info.mean, info.std)])
    return D.ImageFolder(str(folder), transform=tf)


# ----------------------------------------------------------------------------- loaders


class TensorLoader:
    """Batches of an in-memory `TensorDataset` by slicing (no per-sample collate); reshuffled
    every epoch from its own generator when `shuffle`."""

    def __init__(self, ds: TensorDataset, batch_size: int, shuffle: bool, seed: int = 0, device="cpu"):
        self.tensors = [t.to(device) for t in ds.tensors]
        self.batch_size, self.shuffle = batch_size, shuffle
        self.gen = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return -(-len(self.tensors[0]) // self.batch_size)

    def __iter__(self):
        n = len(self.tensors[0])
        order = torch.randperm(n, generator=self.gen) if self.shuffle else torch.arange(n)
        order = order.to(self.tensors[0].device)
        for i in range(0, n, self.batch_size):
            idx = order[i:i + self.batch_size]
            yield tuple(t[idx] for t in self.tensors)


def make_loader(ds: Dataset, batch_size: int, shuffle: bool, cfg: DataConfig, seed: int = 0, device="cpu"):
    if isinstance(ds, TensorDataset):
        return TensorLoader(ds, batch_size, shuffle, seed, device)
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, num_workers=cfg.num_workers,
                      generator=torch.Generator().manual_seed(seed) if shuffle else None,
                      pin_memory=str(device).startswith("cuda"))
