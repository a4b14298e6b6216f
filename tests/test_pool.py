import pytest
import torch

from dfkd.synthesis.pool import ReplayPool


def test_pool_never_holds_more_than_its_capacity_and_overwrites_oldest_first():
    pool = ReplayPool(capacity=5, shape=(1, 2, 2), storage="fp16")
    for i in range(4):  # 4 batches of 2, values = batch index
        pool.add(torch.full((2, 1, 2, 2), float(i)))
    assert len(pool) == 5 and pool.data.shape[0] == 5
    held = sorted(pool.data[:, 0, 0, 0].float().tolist())
    assert held == [1.0, 2.0, 2.0, 3.0, 3.0]  # the oldest 3 samples (batch 0, half of batch 1) are gone
    pool.add(torch.zeros(12, 1, 2, 2))  # a batch larger than the pool keeps only its last samples
    assert len(pool) == 5


@pytest.mark.parametrize("storage, tol", [("fp32", 0.0), ("fp16", 2e-3), ("uint8", None)])
def test_round_trip_precision(storage, tol):
    torch.manual_seed(0)
    x = torch.randn(64, 3, 4, 4) * 2
    pool = ReplayPool(capacity=64, shape=(3, 4, 4), storage=storage)
    pool.add(x)
    back = pool.sample(64, generator=torch.Generator().manual_seed(1))
    assert back.dtype == torch.float32 and back.shape == (64, 3, 4, 4)
    stored = pool.data.float() if storage != "uint8" else pool.data.float() * pool.scale.view(-1, 1, 1, 1) + \
        pool.lo.view(-1, 1, 1, 1)
    err = (stored - x).abs()
    if storage == "uint8":  # at most half a quantisation step of each sample's own range
        step = (x.flatten(1).max(1).values - x.flatten(1).min(1).values) / 255
        assert (err.flatten(1).max(1).values <= step / 2 + 1e-5).all()
    else:
        assert err.max() <= tol * x.abs().max()


def test_state_round_trip_and_empty_pool():
    pool = ReplayPool(capacity=4, shape=(1, 1, 1), storage="uint8")
    with pytest.raises(RuntimeError):
        pool.sample(1)
    pool.add(torch.arange(3.0).view(3, 1, 1, 1))
    other = ReplayPool(capacity=4, shape=(1, 1, 1), storage="uint8")
    other.load_state_dict(pool.state_dict())
    assert len(other) == 3 and torch.equal(other.data[:3], pool.data[:3]) and other.head == 3


def test_disk_pool_is_a_memory_mapped_file_that_behaves_like_the_ram_pool(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(6, 1, 3, 3)
    ram = ReplayPool(capacity=4, shape=(1, 3, 3), storage="fp32")
    disk = ReplayPool(capacity=4, shape=(1, 3, 3), storage="fp32", path=tmp_path / "pool.bin")
    path = tmp_path / "pool.bin"
    assert path.stat().st_size == 4 * 9 * 4  # capacity x sample numel x 4 bytes, allocated up front
    for pool in (ram, disk):
        pool.add(x[:3])
        pool.add(x[3:])
    assert torch.equal(ram.data, disk.data)
    on_file = torch.from_file(str(path), size=36, dtype=torch.float32).view(4, 1, 3, 3)
    assert torch.equal(on_file, ram.data)  # the samples really are on disk
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(ram.sample(5, generator=g1), disk.sample(5, generator=g2))
    disk.close()
    assert not path.exists()


@pytest.mark.parametrize("storage", ["fp32", "uint8"])
def test_shuffled_passes_read_every_sample_once_per_pass_with_a_short_last_batch(storage):
    """The authors' DataLoader(shuffle=True) over their pool: 5 samples in batches of 2 read as 2, 2, 1,
    each sample once per pass, the next pass in another order; uniform draws repeat samples instead."""
    pool = ReplayPool(capacity=8, shape=(1, 1, 1), storage=storage)
    pool.add(torch.arange(5.0).view(5, 1, 1, 1))
    reads = pool.passes(2, generator=torch.Generator().manual_seed(0))
    passes = []
    for _ in range(4):
        batches = [next(reads).flatten().round().tolist() for _ in range(3)]
        assert [len(b) for b in batches] == [2, 2, 1]
        order = [v for b in batches for v in b]
        assert sorted(order) == [0.0, 1.0, 2.0, 3.0, 4.0]
        passes.append(order)
    assert len({tuple(p) for p in passes}) > 1  # a fresh permutation each pass
    uniform = pool.sample(5, generator=torch.Generator().manual_seed(0)).flatten().tolist()
    assert len(set(uniform)) < 5  # with replacement (this seed repeats a sample)
    with pytest.raises(RuntimeError):
        next(ReplayPool(capacity=2, shape=(1,), storage=storage).passes(2))
