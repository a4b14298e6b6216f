"""What a student is scored on (`data.eval`): a labelled image folder, a Dataset given from Python
(checked against the run's input shape), the dataset's test split, or nothing."""
from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from dfkd.base.errors import DfkdError
from dfkd.config.schema import DataConfig
from dfkd.io.data import NONE, DatasetInfo, load_split


def eval_folder(path: str | Path, info: DatasetInfo) -> Dataset:
    """A labelled image folder PATH/CLASS/*.{png,jpg,...} for scoring, resized to the run's size,
    converted to its channels and normalised with its mean/std. Labels: the folder names when all
    are integers (the teacher's class indices), else their sorted order."""
    import torchvision.datasets as D
    import torchvision.transforms as T

    root = Path(path).expanduser()
    if not root.is_dir():
        raise DfkdError(f"data.eval: '{root}' is not a folder; give a folder with one sub-folder of images per "
                        f"class, 'none', or leave it empty for the dataset's test split")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise DfkdError(f"data.eval: '{root}' has no class sub-folders (CLASS/*.png)")
    numeric = all(c.isdigit() for c in classes)
    index = {c: int(c) for c in classes} if numeric else {c: i for i, c in enumerate(classes)}
    if max(index.values()) >= info.num_classes:
        raise DfkdError(f"data.eval: '{root}' has class {max(index, key=index.get)!r} -> label "
                        f"{max(index.values())}, but the teacher has {info.num_classes} classes")
    colour = T.Grayscale(1) if info.in_channels == 1 else T.Lambda(lambda im: im.convert("RGB"))
    tf = T.Compose([colour, T.Resize((info.image_size, info.image_size)), T.ToTensor(),
                    T.Normalize(info.mean, info.std)])

    class _Folder(D.ImageFolder):
        def find_classes(self, directory):
            return classes, index

    try:
        return _Folder(str(root), transform=tf)
    except (FileNotFoundError, RuntimeError) as e:
        raise DfkdError(f"data.eval: '{root}': {e}") from None


def eval_split(cfg: DataConfig, info: DatasetInfo, given: Dataset | None = None) -> Dataset | None:
    """What the student is scored on (`data.eval`): a Dataset given from Python, an image folder, the
    dataset's test split, or None (no labelled data)."""
    if cfg.eval == "in-memory":
        if given is None:
            raise DfkdError("this run was scored on a Dataset given from Python; pass it again: "
                            "dfkd.distill(..., eval_set=the_dataset, resume=RUN_DIR)")
        return _checked(given, info)
    if cfg.eval == "none" or (cfg.eval == "" and cfg.name == NONE):
        return None
    if cfg.eval:
        return eval_folder(cfg.eval, info)
    return load_split(cfg, "test")


def _checked(ds: Dataset, info: DatasetInfo) -> Dataset:
    try:
        x, y = ds[0][:2]
    except Exception as e:
        raise DfkdError(f"eval_set[0] failed ({type(e).__name__}); eval_set must be a Dataset of "
                        f"(image tensor, label) pairs") from None
    want = (info.in_channels, info.image_size, info.image_size)
    if not torch.is_tensor(x) or tuple(x.shape) != want:
        got = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        raise DfkdError(f"eval_set items must be (tensor of shape {want}, label) pairs, normalised as the teacher "
                        f"expects; the first is {got}")
    return ds
