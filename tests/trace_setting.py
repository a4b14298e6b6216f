"""The setting of the reference traces (tests/test_reference_traces.py, tests/golden/reference.json).

A reference trace is a few rounds of a method run by its authors' code at a tiny size, recorded term
by term; dfkd must reproduce it. For the two codes to be comparable step by step they start from the
same weights and consume the same random draws, both defined here and nowhere else:

- `models()`: teacher, student (dfkd `resnet8`, 3 x 32 x 32, 10 classes) and generator (dfkd's
  DCGANGenerator with the authors' sigmoid output, nz 16, width 16), each built from its own seed;
  the teacher's BatchNorm running statistics are drawn too, so that BN-statistics terms have
  something to match.
- `draw(kind, *index, ...)`: every random quantity a method consumes (latent codes, target classes,
  augmentation parameters, pool and memory-bank indices, the seed before a re-initialisation), as a
  function of its kind and its (round, step, ...) index, not of the order of the calls. Each side
  injects them where it would have drawn its own: the authors' code through a harness kept outside
  the repository (it is never copied here: only its numbers are, with the commit and command that
  produced them), dfkd through `tests/test_reference_traces.py`.
- `crop_flip(x, kind, r, i)` / `resized_crop_flip` / `roll_flip`: the augmentations with injected
  parameters, applied in [0, 1] pixel space (as the authors' kornia pipelines are) by both sides.

Learning-rate schedules are held constant in the traces (their shapes are tested on their own).
"""
from __future__ import annotations

import hashlib

import torch
from torch import Tensor

N = 8  # synthesis and student batch
NZ, WIDTH, SIZE, CHANNELS, CLASSES = 16, 16, 32, 3, 10
MEAN = (0.4914, 0.4822, 0.4465)  # the authors' CIFAR-10 normalisation (Fast-Datafree registry.py)
STD = (0.2023, 0.1994, 0.2010)
PAD = 4


def _seed(*key) -> int:
    return int.from_bytes(hashlib.sha256(repr(key).encode()).digest()[:8], "little") % (2 ** 63)


def generator_for(*key) -> torch.Generator:
    return torch.Generator().manual_seed(_seed(*key))


def generator(output: str = "sigmoid", width: int = WIDTH, bn_eps: float = 1e-5, taper: str = "late"):
    """The trace's generator: dfkd's DCGANGenerator in the authors' variant (`output`: sigmoid for
    Fast-Datafree / CMI, tanh_bn for DAFL / DFAD, bn for ZSKT; DAFL's and ZSKT's are 128 wide; `taper`
    early for CuDFKD / AdaDFKD: width, width/2, width/4), from one seed whatever the variant (the
    layers are created in the same order)."""
    from dfkd.generators.dcgan import DCGANGenerator

    state = torch.random.get_rng_state()
    torch.manual_seed(_seed("generator"))
    try:
        return DCGANGenerator(nz=NZ, width=width, size=SIZE, channels=CHANNELS, output=output, mean=MEAN, std=STD,
                              bn_eps=bn_eps, taper=taper).train()
    finally:
        torch.random.set_rng_state(state)


def embedding(dim: int) -> Tensor:
    """NAYER's class embedding (K, dim) for the trace (the authors' is CLIP's)."""
    return torch.randn(CLASSES, dim, generator=generator_for("embedding"))


def reset_head(head: torch.nn.Module) -> None:
    """CMI's projection head at its trace weights: each nn.Linear's default initialisation, in module
    order, from one seed (both codes build their head elsewhere, from whatever their RNG holds)."""
    torch.manual_seed(_seed("head"))
    for m in head.modules():
        if isinstance(m, torch.nn.Linear):
            m.reset_parameters()


def models(**gen):
    """(teacher, student, generator) at their initial weights; the teacher in eval mode; `gen`: the
    generator's variant (see `generator`)."""
    from dfkd.models import build_model

    torch.manual_seed(_seed("teacher"))
    teacher = build_model("resnet8", CLASSES, CHANNELS)
    g = generator_for("teacher-bn")
    with torch.no_grad():
        for m in teacher.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(0.2 * torch.randn(m.num_features, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
    torch.manual_seed(_seed("student"))
    student = build_model("resnet8", CLASSES, CHANNELS)
    return teacher.eval(), student.train(), generator(**gen)


def normalize(x: Tensor) -> Tensor:
    return (x - torch.tensor(MEAN).view(1, -1, 1, 1)) / torch.tensor(STD).view(1, -1, 1, 1)


def unnormalize(x: Tensor) -> Tensor:
    return x * torch.tensor(STD).view(1, -1, 1, 1) + torch.tensor(MEAN).view(1, -1, 1, 1)


def draw(kind: str, *index, shape=(N, NZ)) -> Tensor:
    """The random quantity `kind` at `index`:

    z:        (N, NZ) ~ N(0, 1)                     targets: (N,) uniform classes (int64)
    crop:     (n, 2) offsets in [0, 2 PAD] (int64)  flip:    (n,) bool, p = 1/2   (n = shape[0], N by default)
    rrc:      (N, 4) resized-crop boxes (x0, y0, w, h) in pixels (int64), scale 0.25-1, ratio 3/4-4/3
    roll:     (3,) int64: dy, dx in [-shift, shift], flipped (0/1) — `shape` = (shift,)
    index:    `shape` = (n, size): n indices drawn uniformly from range(size), with replacement
    subset:   `shape` = (k, size): k distinct indices of range(size), in drawn order
    seed:     () int64, a seed to put torch's global generator at (before a re-initialisation)
    images:   (N, C, H, W) uniform in [0, 1]: a real batch   labels: (N,) its classes (int64)
    uniform:  `shape`, uniform in [0, 1)                      normal: `shape`, N(0, 1)
    queue:    `shape` = (D, K), N(0, 1): a memory queue's initial columns, before their normalisation
              (AdaDFKD's relation queue)
    """
    g = generator_for(kind, *index)
    if kind == "images":
        return torch.rand(N, CHANNELS, SIZE, SIZE, generator=g)
    if kind == "labels":
        return torch.randint(CLASSES, (N,), generator=g)
    if kind == "uniform":
        return torch.rand(*shape, generator=g)
    if kind in ("normal", "queue"):
        return torch.randn(*shape, generator=g)
    if kind == "z":
        return torch.randn(*shape, generator=g)
    if kind == "targets":
        return torch.randint(CLASSES, (N,), generator=g)
    if kind == "crop":  # for shape[0] samples (N by default)
        return torch.randint(0, 2 * PAD + 1, (shape[0], 2), generator=g)
    if kind == "flip":
        return torch.rand(shape[0], generator=g) < 0.5
    if kind == "rrc":
        out = []
        for _ in range(N):
            while True:
                area = SIZE * SIZE * (0.25 + 0.75 * torch.rand((), generator=g).item())
                ratio = torch.exp(torch.empty(()).uniform_(float(torch.log(torch.tensor(3 / 4))),
                                                          float(torch.log(torch.tensor(4 / 3))), generator=g)).item()
                w, h = round((area * ratio) ** 0.5), round((area / ratio) ** 0.5)
                if 0 < w <= SIZE and 0 < h <= SIZE:
                    x0 = torch.randint(0, SIZE - w + 1, (), generator=g).item()
                    y0 = torch.randint(0, SIZE - h + 1, (), generator=g).item()
                    out.append([x0, y0, w, h])
                    break
        return torch.tensor(out)
    if kind == "roll":
        shift, = shape
        d = torch.randint(-shift, shift + 1, (2,), generator=g)
        return torch.cat([d, (torch.rand(1, generator=g) < 0.5).long()])
    if kind == "index":
        n, size = shape
        return torch.randint(size, (n,), generator=g)
    if kind == "subset":
        k, size = shape
        return torch.randperm(size, generator=g)[:k]
    if kind == "seed":
        return torch.randint(2 ** 62, (), generator=g)
    raise ValueError(f"unknown draw kind {kind!r}")


def crop_flip(x: Tensor, *index, flip: bool = True) -> Tensor:
    """x (N, C, H, W) in [0, 1] -> a PAD-padded (black) crop per sample, then a per-sample horizontal
    flip: kornia RandomCrop(padding=4) + RandomHorizontalFlip with injected parameters."""
    off, flips = draw("crop", *index, shape=(len(x),)), draw("flip", *index, shape=(len(x),))
    padded = torch.nn.functional.pad(x, (PAD, PAD, PAD, PAD))
    out = torch.stack([padded[k, :, dy:dy + SIZE, dx:dx + SIZE] for k, (dy, dx) in enumerate(off.tolist())])
    if flip:
        out = torch.where(flips.view(-1, 1, 1, 1), out.flip(3), out)
    return out


def resized_crop_flip(x: Tensor, *index) -> Tensor:
    """kornia RandomResizedCrop(size, scale=(0.25, 1)) + RandomHorizontalFlip with injected boxes
    (bilinear resize of each box to SIZE x SIZE, align_corners=True as kornia's default)."""
    boxes, flips = draw("rrc", *index), draw("flip", "rrc", *index)
    out = []
    for k, (x0, y0, w, h) in enumerate(boxes.tolist()):
        crop = x[k:k + 1, :, y0:y0 + h, x0:x0 + w]
        out.append(torch.nn.functional.interpolate(crop, size=(SIZE, SIZE), mode="bilinear", align_corners=True)[0])
    out = torch.stack(out)
    return torch.where(flips.view(-1, 1, 1, 1), out.flip(3), out)


def roll_flip(x: Tensor, shift: int, flip: bool, *index) -> Tensor:
    """DeepInversion's jitter with an injected (dy, dx, flip): one circular shift of the whole batch."""
    dy, dx, f = draw("roll", *index, shape=(shift,)).tolist()
    x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
    return x.flip(3) if flip and f else x


def norms(model: torch.nn.Module, start: dict | None = None) -> dict:
    """{'norm': ||θ||, 'moved': ||θ − θ_start||} over the floating parameters (not buffers)."""
    params = [p.detach().double() for p in model.parameters()]
    out = {"norm": float(torch.sqrt(sum((p * p).sum() for p in params)))}
    if start is not None:
        ref = [start[n].detach().double() for n, _ in model.named_parameters()]
        out["moved"] = float(torch.sqrt(sum(((p - q) ** 2).sum() for p, q in zip(params, ref))))
    return out
