"""Unlabelled out-of-domain images as the student's inputs (source.name=unlabelled) and DFND's
selection of the teacher's most confident ones (Chen et al. 2021)."""
from dataclasses import replace

import pytest
import torch
from torch.utils.data import TensorDataset

from dfkd.base.errors import DfkdError
from dfkd.io.data import load_split
from dfkd.methods.configure import build_config
from dfkd.synthesis.real import most_confident


def test_most_confident_keeps_the_lowest_self_cross_entropy_in_dataset_order():
    # the "teacher" answers the logits stored in the image: sample i has margin m_i for class i % 2
    margins = torch.tensor([0.0, 5.0, 1.0, 9.0, 3.0])
    x = torch.zeros(5, 2, 1, 1)
    x[torch.arange(5), torch.arange(5) % 2, 0, 0] = margins
    ds = TensorDataset(x, torch.full((5,), -1))
    asked = []

    def teacher(b):
        asked.append(len(b))
        return b.flatten(1)

    kept = most_confident(ds, 3, teacher, batch_size=2)
    assert torch.equal(kept.tensors[0], x[[1, 3, 4]])  # margins 5, 9, 3: the three most confident, in order
    assert asked == [2, 2, 1]  # one pass over all five


def test_digits_mosaic_is_made_of_quarters_of_training_digits():
    cfg = build_config(method="labels", sets=["data.name=digits", "data.image_size=8"])
    digits = load_split(cfg.data, "train").tensors[0]
    mosaic, labels = load_split(replace(cfg.data, name="digits_mosaic"), "train").tensors
    assert mosaic.shape == digits.shape and bool((labels == -1).all())
    for r, c in ((0, 0), (0, 4), (4, 0), (4, 4)):
        quarters = digits[:, :, r:r + 4, c:c + 4].flatten(1)
        for img in mosaic[:20]:
            q = img[:, r:r + 4, c:c + 4].flatten()
            assert (quarters - q).abs().amax(1).min() < 1e-6  # this quarter of some training digit
    whole = (digits[None].flatten(2) - mosaic[:20, None].flatten(2)).abs().amax(2).min(1).values
    assert (whole > 1e-3).float().mean() > 0.9  # and almost never a whole training digit


def test_the_unlabelled_source_needs_a_dataset_and_no_label_term():
    with pytest.raises(DfkdError, match="set source.data"):
        build_config(method="dfnd", sets=["data.name=digits", "source.data="])
    with pytest.raises(DfkdError, match="objective.student.label_ce reads true labels"):
        build_config(method="dfnd", sets=["data.name=digits", "objective.student.label_ce=1"])
    with pytest.raises(DfkdError, match="unknown dataset"):
        build_config(method="dfnd", sets=["data.name=digits", "source.data=digit_mosaic"])
    cfg = build_config(method="dfnd", sets=["data.name=digits"])
    assert (cfg.source.name, cfg.source.data, cfg.source.select) == ("unlabelled", "digits_mosaic", 720)


def test_a_folder_of_images_is_an_unlabelled_source(tmp_path):
    from PIL import Image

    from dfkd.io.data import dataset_info
    from dfkd.synthesis.real import unlabelled_split

    (tmp_path / "a" / "b").mkdir(parents=True)
    Image.new("RGB", (8, 8), (255, 255, 255)).save(tmp_path / "a" / "white.png")
    Image.new("L", (20, 10), 0).save(tmp_path / "a" / "b" / "black.jpg")
    (tmp_path / "notes.txt").write_text("not an image")
    cfg = build_config(method="dfnd", sets=["data.name=digits", f"source.data={tmp_path}"])
    info = dataset_info(cfg.data)
    ds = unlabelled_split(cfg.data, cfg.source.data, info)
    assert len(ds) == 2
    (black, y0), (white, y1) = ds[0], ds[1]  # sorted paths: a/b/black.jpg, a/white.png
    assert black.shape == white.shape == (1, 16, 16) and y0 == y1 == -1
    assert torch.allclose(white, torch.full_like(white, (1 - info.mean[0]) / info.std[0]), atol=1e-5)
    assert torch.allclose(black, torch.full_like(black, (0 - info.mean[0]) / info.std[0]), atol=1e-5)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DfkdError, match="no image files"):
        unlabelled_split(cfg.data, str(tmp_path / "empty"), info)
