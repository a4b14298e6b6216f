"""The Component contract (dfkd/base/component.py): what the loop, checkpoints and torchrun rely on."""
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from dfkd.base.component import Component, trained_by_owner
from dfkd.objective.critic import CriticTrainer
from dfkd.objective.hint import HintAdapter


def _rank(rank: int, world: int, out: str) -> None:
    # a file store, not a TCP port: nothing to race for
    dist.init_process_group("gloo", init_method=f"file://{out}/store", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)  # the same weights on both ranks, as DDP's broadcast leaves them
        adapter = HintAdapter(3, 4)
        for p in adapter.parameters():
            p.grad = torch.full_like(p, float(rank + 1))  # rank 0: 1, rank 1: 2
        adapter.sync_gradients()
        critic = CriticTrainer(3, lr=0.1, device="cpu")
        t = torch.tensor([[4.0, 0.0, 0.0]]).repeat(8, 1)
        s = torch.zeros(8, 3)
        s[:, 1] = 3.0 * rank  # each rank's own student logits (rank 0 uniform, rank 1 peaked)
        critic.train_step(t, s, 1.0)  # its own step, gradients averaged before Adam moves it
        torch.save({"grads": [p.grad for p in adapter.parameters()],
                    "critic": [p.grad for p in critic.parameters()]}, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_components_average_their_gradients_over_two_gloo_ranks(tmp_path):
    mp.spawn(_rank, args=(2, str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    for g0, g1 in zip(r0["grads"], r1["grads"]):
        assert torch.equal(g0, g1) and torch.allclose(g0, torch.full_like(g0, 1.5))  # (1 + 2) / 2
    # each rank's critic step saw its own student logits, and both applied the mean gradient
    assert all(torch.equal(a, b) and a.abs().sum() > 0 for a, b in zip(r0["critic"], r1["critic"]))


def test_sync_is_a_no_op_outside_torchrun_and_owner_trained_parameters_are_collected():
    adapter = HintAdapter(2, 5)
    for p in adapter.parameters():
        p.grad = torch.ones_like(p)
    adapter.sync_gradients()
    assert all(torch.equal(p.grad, torch.ones_like(p)) for p in adapter.parameters())
    critic = CriticTrainer(4, lr=0.1, device="cpu")  # its own optimizer: not the owner's to train
    assert [id(p) for p in trained_by_owner([adapter, critic])] == [id(p) for p in adapter.parameters()]
    base = Component()
    assert base.parameters() == [] and base.step(None, None) == {} and base.state_dict() is None
    state = adapter.state_dict()
    other = HintAdapter(2, 5)
    other.load_state_dict(state)
    assert torch.equal(other.conv.weight, adapter.conv.weight) and adapter.key == "hint" and not adapter.per_rank
