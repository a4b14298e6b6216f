import os
from pathlib import Path

import pytest
import torch

from dfkd.base.errors import DfkdError
from dfkd.config.schema import DataConfig
from dfkd.io.data import dataset_info, load_split
from dfkd.models import MODELS, build_model, count_params


@pytest.mark.parametrize("name", MODELS.names())
def test_every_model_maps_images_to_logits(name):
    channels = 1 if name.startswith(("lenet", "cnn")) else 3
    model = build_model(name, num_classes=7, in_channels=channels).eval()
    with torch.no_grad():
        out = model(torch.randn(2, channels, 32, 32))
    assert out.shape == (2, 7)


@pytest.mark.parametrize("name, millions", [("resnet20", 0.27), ("resnet56", 0.86), ("wrn40_2", 2.2),
                                            ("wrn16_1", 0.17), ("resnet18", 11.2), ("lenet5", 0.062)])
def test_parameter_counts_match_the_papers(name, millions):
    assert count_params(build_model(name, 10, 1 if name.startswith("lenet") else 3)) / 1e6 == \
        pytest.approx(millions, rel=0.05)


def test_torchvision_models_by_name_and_clear_errors():
    assert build_model("torchvision:resnet18", 5, 3).eval()(torch.randn(1, 3, 32, 32)).shape == (1, 5)
    with pytest.raises(DfkdError, match="did you mean 'resnet18'"):
        build_model("torchvision:resnet81", 5, 3)
    with pytest.raises(DfkdError, match="3-channel"):
        build_model("torchvision:resnet18", 5, 1)
    with pytest.raises(DfkdError, match="unknown model"):
        build_model("resnet21", 5, 3)


def test_digits_split_is_fixed_stratified_and_normalised():
    cfg = DataConfig()
    train, test = load_split(cfg, "train"), load_split(cfg, "test")
    x, y = train.tensors
    assert x.shape == (1437, 1, 16, 16) and len(test) == 360
    assert torch.bincount(test.tensors[1]).tolist() == [36, 36, 35, 37, 36, 37, 36, 36, 35, 36]
    assert abs(x.mean().item()) < 0.05 and abs(x.std().item() - 1.0) < 0.15
    assert torch.equal(load_split(cfg, "test").tensors[0], test.tensors[0])  # deterministic
    small = load_split(DataConfig(image_size=8), "test").tensors[0]
    assert small.shape == (360, 1, 8, 8)


def test_missing_torchvision_dataset_names_the_place_and_the_fix(tmp_path):
    cfg = DataConfig(name="mnist", root=str(tmp_path))
    with pytest.raises(DfkdError, match=rf"not found under '{tmp_path}'.*--download"):
        load_split(cfg, "test")
    with pytest.raises(DfkdError, match="is not a directory"):
        dataset_info(DataConfig(name="imagefolder", root=str(tmp_path)))


def _shared_mnist() -> Path | None:
    for root in (os.environ.get("DFKD_DATA_ROOT"), Path(__file__).resolve().parents[2] / "shared/datasets/mnist"):
        if root and (Path(root) / "MNIST/raw/t10k-images-idx3-ubyte").exists():
            return Path(root)
    return None


@pytest.mark.skipif(_shared_mnist() is None, reason="real MNIST not found in ../shared/datasets/mnist")
def test_real_mnist_loads_at_32px_with_known_first_label():
    ds = load_split(DataConfig(name="mnist", root=str(_shared_mnist())), "test")
    x, y = ds[0]
    assert len(ds) == 10000 and x.shape == (1, 32, 32) and y == 7
    native = load_split(DataConfig(name="mnist", root=str(_shared_mnist()), image_size=28), "train")
    pixels = native.tensors[0] * 0.3081 + 0.1307  # back to [0, 1]
    assert len(native) == 60000 and native.tensors[1][0] == 5
    assert abs(pixels.mean().item() - 0.13066) < 1e-3 and abs(pixels.std().item() - 0.30811) < 1e-3


def test_standin_is_a_small_learnable_dataset_with_the_real_shape(tmp_path):
    from dfkd.io.data import available, dataset_info, load_split

    cfg = DataConfig(name="standin:cifar100", root=str(tmp_path))
    train, test = load_split(cfg, "train"), load_split(cfg, "test")
    x, y = train.tensors
    assert x.shape == (256, 3, 32, 32) and len(test) == 128 and int(y.max()) == 99
    assert abs(float(x.mean())) < 1e-5 and abs(float(x.std()) - 1) < 1e-4
    assert torch.equal(load_split(cfg, "train").tensors[0], x)  # deterministic
    assert dataset_info(cfg).num_classes == 100
    # learnable: nearest class mean on train classifies test far above chance (1%)
    means = torch.stack([x[y == k].mean(0) for k in range(100)]).flatten(1)
    xt, yt = test.tensors
    pred = torch.cdist(xt.flatten(1), means).argmin(1)
    assert (pred == yt).float().mean() > 0.5
    assert available(DataConfig(name="digits")) and not available(DataConfig(name="cifar10", root=str(tmp_path)))


def _jpeg_tree(root: Path, classes=("airplane", "cat"), per_class=3) -> dict:
    """A tiny cifar10-jpeg/{train,test}/CLASS/NNNN.jpg tree of flat-colour images; returns the pixels
    each file was made from (uint8, before JPEG)."""
    from PIL import Image

    made = {}
    for split in ("train", "test"):
        for k, c in enumerate(classes):
            d = root / "cifar10-jpeg" / split / c
            d.mkdir(parents=True)
            for i in range(per_class):
                img = torch.full((3, 32, 32), 40 * k + 10 * i + 20, dtype=torch.uint8)
                img[0] = 200 if split == "train" else 100  # the red channel tells the splits apart
                Image.fromarray(img.permute(1, 2, 0).numpy()).save(d / f"{i:04d}.jpg", quality=95)
                made[(split, c, i)] = img
    return made


def test_cifar10_jpeg_reads_the_tarball_and_the_folder_alike(tmp_path):
    import tarfile

    made = _jpeg_tree(tmp_path / "tree")
    with tarfile.open(tmp_path / "cifar10-jpeg.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "tree" / "cifar10-jpeg", arcname="cifar10-jpeg")
    from_tar = load_split(DataConfig(name="cifar10_jpeg", root=str(tmp_path)), "train")
    from_dir = load_split(DataConfig(name="cifar10_jpeg", root=str(tmp_path / "tree")), "train")
    assert all(torch.equal(a, b) for a, b in zip(from_tar.tensors, from_dir.tensors))
    x, y = from_tar.tensors
    assert x.shape == (6, 3, 32, 32) and y.tolist() == [0, 0, 0, 1, 1, 1]  # classes in sorted folder order
    mean, std = torch.tensor([0.4914, 0.4822, 0.4465]), torch.tensor([0.2470, 0.2435, 0.2616])
    pixels = (x * std.view(1, 3, 1, 1) + mean.view(1, 3, 1, 1)) * 255
    expected = torch.stack([made[("train", c, i)] for c in ("airplane", "cat") for i in range(3)]).float()
    assert (pixels - expected).abs().max() < 3  # flat colours survive JPEG q95 within a few levels
    test = load_split(DataConfig(name="cifar10_jpeg", root=str(tmp_path)), "test").tensors[0]
    assert abs(float((test[:, 0] * 0.2470 + 0.4914).mean()) * 255 - 100) < 3  # the test split, not train




def _shared_cifar10_jpeg() -> Path | None:
    root = Path(__file__).resolve().parents[2] / "shared/datasets"
    return root if (root / "cifar10-jpeg.tar.gz").is_file() else None


@pytest.mark.skipif(_shared_cifar10_jpeg() is None, reason="cifar10-jpeg.tar.gz not found in ../shared/datasets")
def test_real_cifar10_jpeg_test_split_is_balanced_and_normalised():
    x, y = load_split(DataConfig(name="cifar10_jpeg", root=str(_shared_cifar10_jpeg())), "test").tensors
    assert x.shape == (10000, 3, 32, 32) and y.bincount().tolist() == [1000] * 10
    assert x.mean((0, 2, 3)).abs().max() < 0.05 and (x.std((0, 2, 3)) - 1).abs().max() < 0.05
