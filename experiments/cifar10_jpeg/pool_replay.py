"""Pool replay: one fixed student trainer over a recorded replay pool, round by round, to tell the
quality of a run's synthesized images apart from what its own student made of them.

    python experiments/cifar10_jpeg/pool_replay.py POOL --teacher TEACHER.pt --data-root DATA \
        [--seed 0] [--reads shuffled|replacement] [--rounds 24] [--kd-steps 20] [--threads 1]

POOL is either a dfkd run's `checkpoint.pt` (its replay pool, held in the run's normalised space,
is mapped back to pixels) or a folder of the authors' pool as Fast-Datafree's and NAYER's `ImagePool`
writes it (`ROUND-INDEX.png`, pixels in [0, 1] quantised to 8 bits). TEACHER is a dfkd model file
(`dfkd train-teacher`), DATA the folder that holds `cifar10-jpeg/`.

The trainer is the authors' student side of the `side_by_side.yaml` cells (Fast-Datafree
`datafree_kd.py`), re-stated here for both pools alike: before round r's 20 steps the student may read
the first r batches of the pool (`--per-round` images each, in the order they were added); a batch
of 128 is read in shuffled passes without replacement, a new pass each round (their DataLoader;
`--reads replacement`: uniform draws with replacement instead), through a random crop with 4 pixels
of black padding and a horizontal flip; the loss is the KL divergence to the teacher at T = 20
(batch mean × T²); SGD 0.1, momentum 0.9, weight decay 1e-4, a cosine from 0.1 to 2e-4 over 200
rounds stepped once per round (their `CosineAnnealingLR(200)`, of which the run sees the first
`--rounds`). The student is `resnet8`; it is scored on the 10,000 JPEG test images after every round.

Two pools replayed by the same trainer with the same seed see the same draws of everything but the
images: a difference in their scores is a difference in what the synthesis produced, not in how a
student was trained on it. It prints the pool's statistics as the teacher sees them, each round's
accuracy, and the mean over the last quarter of the rounds (the side-by-side table's column).
"""
from __future__ import annotations

import argparse
import math
import re
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dfkd.config.schema import DataConfig
from dfkd.io.checkpoint import read_model, read_run_checkpoint
from dfkd.io.data import dataset_info, load_split
from dfkd.models import build_model

AUTHORS_MEAN, AUTHORS_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)  # Fast-Datafree's CIFAR-10


def load_pool(path: Path, rounds: int, per_round: int) -> tuple[list[torch.Tensor], str]:
    """The pool's first `rounds` batches, each (per_round, 3, 32, 32) in pixels [0, 1], and what it was."""
    if path.is_file():
        ck = read_run_checkpoint(path)
        info = dataset_info(DataConfig(**ck["config"]["data"]))  # the run's normalisation, resolved
        mean, std = torch.tensor(info.mean).view(1, 3, 1, 1), torch.tensor(info.std).view(1, 3, 1, 1)
        x = ck["pool"]["data"].float() * std + mean  # stored in the run's normalised space
        kind = f"dfkd checkpoint ({len(x)} images)"
    else:
        from PIL import Image
        files = [(tuple(map(int, m.groups())), f) for f in path.glob("*.png")
                 if (m := re.fullmatch(r"(\d+)-(\d+)\.png", f.name))]
        if not files:
            raise SystemExit(f"pool_replay: no ROUND-INDEX.png images in {path}")
        x = torch.stack([torch.from_numpy(np.array(Image.open(f).convert("RGB"))).permute(2, 0, 1)
                         for _, f in sorted(files)]).float() / 255
        kind = f"PNG folder ({len(x)} images)"
    if len(x) < rounds * per_round:
        raise SystemExit(f"pool_replay: {path} holds {len(x)} images, fewer than {rounds} rounds of {per_round}")
    return [x[r * per_round:(r + 1) * per_round] for r in range(rounds)], kind


def crop_flip(x: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Per image: a random crop of the black-padded image (offsets 0..2·pad) and a flip with p = 1/2."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    i = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    j = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    rows = (i[:, None] + torch.arange(h))[:, None, :, None].expand(n, x.shape[1], h, w)
    cols = (j[:, None] + torch.arange(w))[:, None, None, :].expand(n, x.shape[1], h, w)
    out = padded[torch.arange(n)[:, None, None, None], torch.arange(x.shape[1])[None, :, None, None], rows, cols]
    flip = torch.rand(n, generator=gen) < 0.5
    out[flip] = out[flip].flip(3)
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("pool", type=Path)
    p.add_argument("--teacher", type=Path, required=True)
    p.add_argument("--data-root", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reads", choices=("shuffled", "replacement"), default="shuffled")
    p.add_argument("--rounds", type=int, default=24)
    p.add_argument("--per-round", type=int, default=128)
    p.add_argument("--kd-steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    rounds, kind = load_pool(a.pool, a.rounds, a.per_round)
    mean, std = torch.tensor(AUTHORS_MEAN).view(1, 3, 1, 1), torch.tensor(AUTHORS_STD).view(1, 3, 1, 1)
    norm = lambda x: (x - mean) / std  # noqa: E731

    teacher = build_model("resnet20", 10, 3)
    teacher.load_state_dict(read_model(a.teacher)["state_dict"])
    teacher.eval()
    test = load_split(DataConfig(name="cifar10_jpeg", root=a.data_root, mean=list(AUTHORS_MEAN),
                                 std=list(AUTHORS_STD)), "test")
    xt, yt = test.tensors

    pool = torch.cat(rounds)
    with torch.no_grad():
        probs = torch.cat([teacher(norm(pool[i:i + 512])) for i in range(0, len(pool), 512)]).softmax(1)
    hist = torch.bincount(probs.argmax(1), minlength=10).float() / len(pool)
    print(f"pool: {kind}, {a.rounds} rounds of {a.per_round}; pixel mean {pool.mean((0, 2, 3)).numpy().round(3)}, "
          f"std {pool.std((0, 2, 3)).numpy().round(3)}; teacher's top probability {probs.max(1).values.mean():.3f}, "
          f"entropy of its class histogram {-(hist * hist.clamp_min(1e-12).log()).sum():.3f} (max {math.log(10):.3f})")

    gen = torch.Generator().manual_seed(a.seed)
    torch.manual_seed(a.seed)
    student = build_model("resnet8", 10, 3)
    opt = torch.optim.SGD(student.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 200, eta_min=2e-4)
    T, accs, t0 = 20.0, [], time.time()
    for r in range(a.rounds):
        held = torch.cat(rounds[:r + 1])
        perm, k = torch.randperm(len(held), generator=gen), 0
        student.train()
        for _ in range(a.kd_steps):
            if a.reads == "replacement":
                idx = torch.randint(len(held), (a.batch,), generator=gen)
            else:  # a DataLoader(shuffle=True) pass: the last batch is short, then a new pass
                if k >= len(held):
                    perm, k = torch.randperm(len(held), generator=gen), 0
                idx, k = perm[k:k + a.batch], k + a.batch
            x = norm(crop_flip(held[idx], gen))
            with torch.no_grad():
                t = teacher(x)
            s = student(x)
            loss = F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1), reduction="batchmean") * T * T
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        student.eval()
        with torch.no_grad():
            correct = sum((student(xt[i:i + 1000]).argmax(1) == yt[i:i + 1000]).sum().item()
                          for i in range(0, len(xt), 1000))
        accs.append(100.0 * correct / len(xt))
        print(f"round {r + 1:3d}: accuracy {accs[-1]:6.2f}", flush=True)
    quarter = accs[-max(1, a.rounds // 4):]
    print(f"replay of {a.pool} (seed {a.seed}, {a.reads} reads): last quarter {np.mean(quarter):.2f}, "
          f"final {accs[-1]:.2f}, best {max(accs):.2f} ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
