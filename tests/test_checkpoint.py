import pytest
import torch

from dfkd.base.errors import DfkdError
from dfkd.io.checkpoint import atomic_write_text, load_into, read_model, save_model, state_hash
from dfkd.models import build_model


def _save(path, arch="cnn_small"):
    model = build_model(arch, 10, 1)
    save_model(path, model, kind="teacher", arch=arch, dataset="digits", num_classes=10, in_channels=1,
               image_size=16, mean=[0.3], std=[0.3], config={"a": 1}, metrics={"test_acc": 50.0})
    return model


def test_round_trip_verifies_hash(tmp_path):
    model = _save(tmp_path / "m.pt")
    ckpt = read_model(tmp_path / "m.pt")
    assert ckpt["sha256"] == state_hash(model.state_dict()) and ckpt["config"] == {"a": 1}
    other = build_model("cnn_small", 10, 1)
    load_into(other, ckpt, "cnn_small", tmp_path / "m.pt")
    for a, b in zip(model.state_dict().values(), other.state_dict().values()):
        assert torch.equal(a, b)
    assert not list(tmp_path.glob(".*tmp*"))  # the temporary file was renamed away


def test_altered_truncated_and_foreign_files_are_refused(tmp_path):
    _save(tmp_path / "m.pt")
    ckpt = torch.load(tmp_path / "m.pt", weights_only=True)
    ckpt["state_dict"]["fc.bias"] += 1.0
    torch.save(ckpt, tmp_path / "altered.pt")
    with pytest.raises(DfkdError, match="corrupt"):
        read_model(tmp_path / "altered.pt")
    data = (tmp_path / "m.pt").read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(DfkdError, match="unreadable or truncated"):
        read_model(tmp_path / "trunc.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "foreign.pt")
    with pytest.raises(DfkdError, match="not a dfkd model checkpoint"):
        read_model(tmp_path / "foreign.pt")
    with pytest.raises(DfkdError, match="not found"):
        read_model(tmp_path / "nothing.pt")


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    _save(tmp_path / "m.pt", arch="cnn_small")
    ckpt = read_model(tmp_path / "m.pt")
    with pytest.raises(DfkdError,
                       match="holds a 'cnn_small' but the config asks for 'cnn'; set teacher.arch=cnn_small"):
        load_into(build_model("cnn", 10, 1), ckpt, "cnn", tmp_path / "m.pt", key="teacher.arch")


def test_atomic_write_replaces_whole_file(tmp_path):
    p = tmp_path / "s.json"
    atomic_write_text(p, "old")
    atomic_write_text(p, "new")
    assert p.read_text() == "new" and sorted(x.name for x in tmp_path.iterdir()) == ["s.json"]
