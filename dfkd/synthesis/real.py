"""Real training data through the same loop: the `per_batch` schedule of the `real` source.

Data-driven KD (Hinton et al. 2015, FitNets, AT, RKD, DKD: the upper reference row of every table)
is the one loop with the synthesis step replaced by "draw the next real batch": each round yields
one batch of the training split with its labels (`SynthBatch.targets`), and the student takes
`distill.kd_steps` steps on it (`distill.batch=reuse`). A round is one batch, so
`distill.rounds = epochs × ⌊N / synth.batch_size⌋`.

With `source.eps` > 0 the source is "real batch + δ" (adversarial KD on real data, docs/design.md): δ
is re-initialised per batch (uniform in the L∞ ε-ball) and optimised for `synth.g_steps` projected
signed-gradient steps against the source objective (`dfkd.synthesis.robust`), which the objective's
adversarial terms turn into an attack: `adv_kl` on the student against the clean teacher (RSLAD),
`adv_ce` on the true labels (ARD). The student then sees x + δ* and, through the `*_clean` terms,
the clean batch.

With `source.name=unlabelled` the batches come from another dataset's training images
(`source.data`, normalised as the teacher's data) whose labels are never read: the teacher labels
them through the student objective; `source.select` keeps the teacher's most confident images
first (DFND's data collection, `most_confident`).

The order is a seeded permutation per epoch, kept as (epoch, position) in checkpoints, so a
resumed run sees exactly the batches the uninterrupted one would have; the last partial batch of
an epoch is dropped (every batch has `synth.batch_size` samples).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from dfkd.base.component import Component
from dfkd.base.errors import DfkdError
from dfkd.base.runtime import Precision, full
from dfkd.objective.guard import NonFiniteGuard
from dfkd.objective.signals import Signals
from dfkd.synthesis.context import SynthBatch, SynthContext
from dfkd.synthesis.robust import boundary_attack, pgd
from dfkd.synthesis.schedule import SCHEDULES


class UnlabelledFolder(Dataset):
    """Every image file under a folder (recursively: .png, .jpg, .jpeg, .bmp, .webp), in sorted order,
    as (C, size, size) tensors in the teacher's channels (grey or RGB) and normalisation; label -1."""

    SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}

    def __init__(self, root: str, info):
        from pathlib import Path

        self.files = sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in self.SUFFIXES)
        if not self.files:
            raise DfkdError(f"source.data: no image files (.png, .jpg, .jpeg, .bmp, .webp) under '{root}'")
        self.info = info
        self.mean = torch.tensor(info.mean).view(-1, 1, 1)
        self.std = torch.tensor(info.std).view(-1, 1, 1)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        from PIL import Image
        from torchvision.transforms.functional import pil_to_tensor

        img = Image.open(self.files[i]).convert("L" if self.info.in_channels == 1 else "RGB")
        img = img.resize((self.info.image_size, self.info.image_size), Image.BILINEAR)
        x = pil_to_tensor(img).float() / 255.0
        return ((x - self.mean) / self.std).to(torch.get_default_dtype()), -1


def unlabelled_split(data_cfg, source_data: str, info) -> Dataset:
    """The images of `source_data` (source.name=unlabelled): a folder of image files, or a dataset's
    training split, normalised as the teacher's data (`info`: its mean, std and image size); labels
    are never read."""
    from dataclasses import replace
    from pathlib import Path

    from dfkd.io.data import load_split

    if Path(source_data).is_dir():
        return UnlabelledFolder(source_data, info)
    other = replace(data_cfg, name=source_data, mean=list(info.mean), std=list(info.std), image_size=info.image_size)
    ds = load_split(other, "train")
    channels = ds[0][0].shape[0]
    if channels != info.in_channels:
        raise DfkdError(f"source.data={source_data} has {channels}-channel images and the teacher takes "
                        f"{info.in_channels}; pick a dataset of the teacher's input shape")
    return ds


@torch.no_grad()
def most_confident(ds: Dataset, n: int, teacher_logits, batch_size: int = 512) -> Dataset:
    """DFND's data collection (Chen et al., "Learning Student Networks in the Wild", CVPR 2021;
    huawei-noah/Efficient-Computing@225ddd2 DFND-train.py `identify_outlier`): the n samples of `ds`
    whose teacher cross-entropy against the teacher's own arg-max is lowest. `teacher_logits(x)`
    (B, C, H, W) -> (B, K) is the teacher's answer on a batch (a counted query)."""
    losses = []
    for x, _ in DataLoader(ds, batch_size=batch_size):
        t = teacher_logits(x)
        losses.append(torch.nn.functional.cross_entropy(t, t.argmax(1), reduction="none").float().cpu())
    keep = torch.cat(losses).topk(min(n, len(ds)), largest=False).indices.sort().values
    if isinstance(ds, TensorDataset):
        return TensorDataset(*(t[keep] for t in ds.tensors))
    return torch.utils.data.Subset(ds, keep.tolist())


class RealBatches:
    """Endless shuffled batches (x (B, C, H, W), y (B,)) of a dataset; in-memory tensor datasets are
    sliced, any other `Dataset` goes through a DataLoader with `num_workers` workers. Under torchrun
    every rank follows the same order and takes its own slice, `batch_size / world` samples, of each
    global batch of `batch_size`."""

    def __init__(self, ds: Dataset, batch_size: int, seed: int, device, num_workers: int = 0, rank: int = 0,
                 world: int = 1):
        self.ds, self.seed, self.device = ds, seed, device
        self.batch_size, self.rank, self.world = batch_size, rank, world
        self.num_workers = num_workers
        self.per_epoch = len(ds) // self.batch_size
        if self.per_epoch == 0:
            raise DfkdError(f"synth.batch_size={self.batch_size} is larger than the training split ({len(ds)} "
                            f"samples); lower synth.batch_size")
        self.tensors = [t.to(device) for t in ds.tensors] if isinstance(ds, TensorDataset) else None
        self.epoch, self.pos = 0, 0
        self._it = None

    def _order(self) -> Tensor:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return torch.randperm(len(self.ds), generator=g)[: self.per_epoch * self.batch_size]

    def _open(self) -> None:
        b = self.batch_size // self.world
        order = self._order()[self.pos * self.batch_size:].view(-1, self.world, b)[:, self.rank].reshape(-1)
        if self.tensors is not None:
            order = order.to(self.device)
            self._it = (tuple(t[order[i:i + b]] for t in self.tensors) for i in range(0, len(order), b))
        else:
            loader = DataLoader(self.ds, batch_size=b, sampler=order.tolist(),
                                num_workers=self.num_workers, pin_memory=str(self.device).startswith("cuda"))
            self._it = ((x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True))
                        for x, y in loader)

    def next(self) -> tuple[Tensor, Tensor]:
        if self.pos == self.per_epoch:
            self.epoch, self.pos, self._it = self.epoch + 1, 0, None
        if self._it is None:
            self._open()
        self.pos += 1
        return next(self._it)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.pos, self._it = state["epoch"], state["pos"], None


@SCHEDULES.register("per_batch")
class RealDataSynthesizer(Component):
    """Schedule `per_batch`: every round is the next real batch (optionally augmented by
    `synth.augment`), with the teacher's logits and the true labels; with a perturbation ball
    (`source.eps` > 0), x + δ* after `synth.g_steps` PGD steps on the source objective. Follows the
    contract of dfkd/synthesis/schedule.py with its own `synthesize` (there is no source to train);
    `ctx.extra` holds `batches` (RealBatches), `ball` (or None) and `source_cfg`."""

    def __init__(self, source: nn.Module, ctx: SynthContext):
        batches = ctx.extra.get("batches")
        if batches is None:
            raise DfkdError("the per_batch schedule needs the real training split (source.name=real)")
        self.source, self.cfg, self.probe, self.view_t, self.view_s = source, ctx.cfg, ctx.probe, ctx.view_t, ctx.view_s
        self.objective, self.ball, self.source_cfg = ctx.objective, ctx.extra.get("ball"), ctx.extra.get("source_cfg")
        self.batches, self.augment, self.device = batches, ctx.augment, ctx.device
        self.guard: NonFiniteGuard | None = ctx.guard
        self.precision = ctx.precision or Precision("off", ctx.device)
        self.round, self.rounds = 0, ctx.rounds
        self.warming_up = False

    key, per_rank = "synthesizer", True  # a Component: each rank reads its own slice

    def synthesize(self, student: nn.Module, on_step=None) -> tuple[SynthBatch, dict[str, Tensor]]:
        self.round += 1
        if self.objective is not None:  # ramped attack terms (objective.ramp)
            self.objective.at_round(self.round, self.rounds)
        x, y = self.batches.next()
        with torch.no_grad():
            if self.augment is not None:
                x = self.augment(x)
            x = self.source(x)
            with self.precision.autocast():
                t_logits = full(self.probe(self.view_t(x)).t_logits)
        if self.ball is None or self.cfg.g_steps == 0:
            return SynthBatch(x, t_logits, targets=y), {}
        return self._perturb(student, x, y, t_logits)

    def _perturb(self, student: nn.Module, x: Tensor, y: Tensor, t_clean: Tensor):
        """PGD on δ against the source objective (minimised: its adv_* terms are negated gaps), or BSS's
        boundary attack on the teacher (source.attack), with the student in the mode of
        synth.student_mode (set by the loop; eval: the attack does not move its BN statistics)."""
        sc, obj = self.source_cfg, self.objective
        clean_teacher = sc.teacher_input == "clean"
        parts: dict[str, Tensor] = {}
        mask = self._select(student, x, y, t_clean)
        attack = self._attack_targets(t_clean, mask) if "attack" in obj.needs or sc.attack == "boundary" else None
        if sc.attack == "boundary":  # BSS: only the selected samples, moved to the teacher's boundary
            idx = torch.arange(len(x), device=x.device) if mask is None else mask.nonzero().squeeze(1)
            with torch.enable_grad():
                xb = boundary_attack(lambda xa: self.probe(self.view_t(xa)).t_logits, x[idx], attack[idx],
                                     self.cfg.g_steps, sc.boundary_step, sc.boundary_clamp)
            with torch.no_grad():
                t_adv = full(self.probe(self.view_t(xb)).t_logits)
                if len(idx):
                    _, parts = obj(Signals(x=xb, t_logits=t_adv, targets=y[idx], attack_targets=attack[idx]))
            return SynthBatch(xb, t_adv, targets=y, clean=x, t_logits_clean=t_clean), parts

        # with the teacher on the clean batch, its logits are fixed: no teacher pass per PGD step
        # unless a term needs more of the teacher (BN statistics, features) on the perturbed batch
        teacher_fixed = clean_teacher and obj.needs <= {"student", "targets", "attack", "clean"}

        def loss_fn(xa: Tensor) -> Tensor:
            sig = Signals(x=xa, t_logits=t_clean) if teacher_fixed else self.probe(self.view_t(xa), obj.needs)
            if clean_teacher:
                sig.t_logits = t_clean
            sig.x, sig.targets, sig.x_clean, sig.attack_targets = xa, y, x, attack
            if "student" in obj.needs:
                sig.s_logits = student(self.view_s(xa))
            loss, step_parts = obj(sig)
            parts.update(step_parts)
            return loss

        delta = pgd(loss_fn, x, self.ball, self.cfg.g_steps, sc.step, sc.random_start, mask,
                    start_noise=sc.start_noise, clip_start=False)  # the authors' start: unclipped
        xa = x + delta
        if clean_teacher:
            return SynthBatch(xa, t_clean, targets=y, clean=x, teacher_x=x), parts
        with torch.no_grad():
            t_adv = full(self.probe(self.view_t(xa)).t_logits)
        return SynthBatch(xa, t_adv, targets=y, clean=x, t_logits_clean=t_clean), parts

    @torch.no_grad()
    def _select(self, student: nn.Module, x: Tensor, y: Tensor, t_clean: Tensor) -> Tensor | None:
        """(N,) bool: the samples to attack (source.attack_select, attack_fraction, attack_max), or None
        for all. 'kl': the largest per-sample KL(T || S), the student in eval mode; 'correct' (BSS,
        train_BSS_distillation.py): those teacher and student both classify right, the student's
        train-mode outputs (its BN statistics restored after), capped at attack_max by the largest
        squared probability gap over the other classes."""
        sc, n = self.source_cfg, len(x)
        cap = min(n, sc.attack_max) if sc.attack_max else n
        if sc.attack_select == "kl":
            k = max(1, round(sc.attack_fraction * n)) if sc.attack_fraction < 1.0 else n
            k = min(k, cap)
            if k == n:
                return None
            was = student.training
            s_clean = student.eval()(self.view_s(x))
            student.train(was)
            log_t = torch.log_softmax(t_clean, 1)
            gap = (log_t.exp() * (log_t - torch.log_softmax(s_clean, 1))).sum(1)
            mask = torch.zeros(n, dtype=torch.bool, device=x.device)
            mask[gap.topk(k).indices] = True
            return mask
        s_clean = _train_mode_outputs(student, self.view_s(x))
        mask = (t_clean.argmax(1) == y) & (s_clean.argmax(1) == y)
        if int(mask.sum()) > cap:
            idx = mask.nonzero().squeeze(1)
            diff = (torch.softmax(t_clean[idx], 1) - torch.softmax(s_clean[idx], 1)) ** 2
            score = diff.sum(1) - diff.gather(1, y[idx, None]).squeeze(1)
            mask = torch.zeros_like(mask)
            mask[idx[score.sort(descending=True)[1][:cap]]] = True
        return mask

    @torch.no_grad()
    def _attack_targets(self, t_clean: Tensor, mask: Tensor | None) -> Tensor:
        """(N,) a class per sample to move it toward: drawn from the teacher's probabilities over its
        classes ranked 2..K (BSS: u·Σ p, the first class whose cumulative probability reaches it; the
        teacher's second class if none does). One uniform draw per selected sample."""
        score, classes = torch.softmax(t_clean, 1).sort(dim=1, descending=True)
        score, classes = score[:, 1:], classes[:, 1:]
        idx = torch.arange(len(t_clean), device=t_clean.device) if mask is None else mask.nonzero().squeeze(1)
        out = classes[:, 0].clone()
        u = self.attack_draw(len(idx)).to(t_clean.device) * score[idx].sum(1)
        hit = score[idx].cumsum(1) >= u[:, None]
        chosen = classes[idx].gather(1, hit.float().argmax(1, keepdim=True)).squeeze(1)
        out[idx] = torch.where(hit.any(1), chosen, classes[idx, 0])
        return out

    def attack_draw(self, n: int) -> Tensor:
        """n uniform numbers in [0, 1) (the target classes' draw)."""
        return torch.rand(n)

    def sample(self, n: int) -> Tensor:
        raise DfkdError("the per_batch schedule serves one real batch per round; use distill.batch=reuse")

    def state_dict(self) -> dict:
        return {"round": self.round, "batches": self.batches.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.round = state["round"]
        self.batches.load_state_dict(state["batches"])


def _train_mode_outputs(model: nn.Module, x: Tensor) -> Tensor:
    """model(x) in train mode (batch statistics) with its buffers (BN running statistics) left as they were."""
    saved = [b.detach().clone() for b in model.buffers()]
    was = model.training
    try:
        return model.train()(x)
    finally:
        model.train(was)
        for b, v in zip(model.buffers(), saved):
            b.copy_(v)
