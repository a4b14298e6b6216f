"""CMI's contrastive machinery (Fang, Song, Wang, Shen, Wang, Song, "Contrastive Model Inversion for
Data-Free Knowledge Distillation", IJCAI 2021), as the authors' code runs it (zju-vipa/CMI
datafree/synthesis/contrastive.py, the same in zju-vipa/Fast-Datafree):

- instance embedding h(x) (N, D): per-sample channel means of the inputs of the teacher's BatchNorm
  layers (or of the named modules, `objective.params.cmi.layers`), concatenated;
- two views of each synthesized sample: the global view is the batch the teacher scores for the
  other terms (`synth.augment`, crop + flip), the local view an independent random resized crop
  (scale 0.25-1, plus a flip on natural images) of the raw batch, scored by one more teacher pass;
- a projection head, Linear(D, hidden) - ReLU - Linear(hidden, dim), with its own Adam (default
  betas) kept across rounds: the authors' `MLPHead` and `optimizer_head`;
- a memory bank of raw [local | global] embeddings, one round's batch at a time (the batch the round
  keeps, `synth.keep`), `bank` rows in a ring; every step reads `negatives` rows of it without
  replacement and projects them with the current head.

An `Extension` (a `Component`) of the schedule (dfkd/synthesis/schedule.py), switched on when the
source objective weights the `cmi` term: `before_probe()` lets the probe's teacher pass record the
global embedding, `signals()` adds the local one and the bank's rows and projects them all
(`sig.embed_local`: the anchors, local views; `sig.embed`: the keys, global views), `keep()` and
`end_round()` fill the bank.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from dfkd.base.errors import DfkdError
from dfkd.objective.hooks import InstanceMeansHook
from dfkd.objective.terms import COMPONENTS
from dfkd.synthesis.pool import ReplayPool
from dfkd.synthesis.schedule import Extension


class Contrast(Extension):
    key = "contrast"

    def __init__(self, teacher: nn.Module, info, params: dict, source_lr: float, device):
        import kornia.augmentation as K

        self.teacher = teacher
        layers = [n.strip() for n in params["layers"].split(",") if n.strip()] if params["layers"] != "bn" else None
        try:
            self.hook = InstanceMeansHook(teacher, layers)
        except KeyError as e:
            raise DfkdError(f"objective.params.cmi.layers names {e}, which is not a module of the teacher") from None
        if not self.hook.layers:
            raise DfkdError("the cmi term embeds samples by the teacher's BatchNorm inputs, and this teacher "
                            "has no BatchNorm layer; set objective.generator.cmi=0 (or name its layers in "
                            "objective.params.cmi.layers)")
        d = self._width(info, device)
        hidden = params["hidden"] or d
        self.head = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, params["dim"])).to(device)
        self.optimizer = torch.optim.Adam(self.head.parameters(), lr=params["lr"] or source_lr)
        size = info.image_size
        ops = [K.RandomResizedCrop((size, size), scale=(0.25, 1.0))] + ([K.RandomHorizontalFlip()] if info.flip else [])
        self.local = nn.Sequential(*ops).to(device)
        self.negatives = params["negatives"]
        storage = "fp64" if torch.get_default_dtype() == torch.float64 else "fp32"
        self.bank = ReplayPool(params["bank"], (2 * d,), storage=storage, device=device) if params["bank"] > 0 else None
        self._step: Tensor | None = None  # this step's raw [local | global] embeddings (N, 2D)
        self._kept: Tensor | None = None  # the round's kept batch's, for the bank

    @classmethod
    def build(cls, b) -> "Contrast":
        """The `cmi` term's factory (b: a `dfkd.objective.terms.ComponentBuild`)."""
        return cls(b.teacher, b.info, b.params, b.source_lr, b.device)

    @torch.no_grad()
    def _width(self, info, device) -> int:
        """D, the embedding's width, from one forward pass of zeros (the teacher's modes kept)."""
        self.hook.enabled = True
        try:
            self.teacher(torch.zeros(1, info.in_channels, info.image_size, info.image_size, device=device))
        finally:
            self.hook.enabled = False
        return self.hook.take().shape[1]

    def parameters(self) -> list[nn.Parameter]:
        return list(self.head.parameters())

    # the schedule's hooks
    def before_probe(self) -> None:
        self.hook.enabled = True  # the probe's teacher pass, on the global view, records h(global)

    def signals(self, sig, seen: Tensor, ctx) -> None:
        self.hook.enabled = False
        f_global = self.hook.take()
        self.hook.enabled = True
        try:
            self.teacher(ctx.view_t(self.local(sig.x)))
        finally:
            self.hook.enabled = False
        f_local = self.hook.take()
        self._step = torch.cat([f_local, f_global], dim=1).detach()
        cached = self.read_bank()
        if cached is not None:
            c_local, c_global = cached.chunk(2, dim=1)
            f_local, f_global = torch.cat([f_local, c_local]), torch.cat([f_global, c_global])
        n = f_local.shape[0]
        projected = self.head(torch.cat([f_local, f_global]))  # one pass of the current head, as the authors
        sig.embed_local, sig.embed = projected[:n], projected[n:]

    def read_bank(self) -> Tensor | None:
        """`negatives` rows of the bank, drawn without replacement (None while it is empty)."""
        if self.bank is None or len(self.bank) == 0:
            return None
        held = self.bank.held()
        k = min(self.negatives, len(held))
        return held[torch.randperm(len(held), device=held.device)[:k]]

    def keep(self, sig) -> None:
        self._kept = self._step

    def end_round(self) -> None:
        if self.bank is not None and self._kept is not None:
            self.bank.add(self._kept)
        self._kept = None

    def state_dict(self) -> dict:
        return {"head": self.head.state_dict(), "optimizer": self.optimizer.state_dict(),
                "bank": self.bank.state_dict() if self.bank is not None else None}

    def load_state_dict(self, state: dict) -> None:
        self.head.load_state_dict(state["head"])
        if state.get("optimizer") is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        if self.bank is not None and state["bank"] is not None:
            self.bank.load_state_dict(state["bank"])


COMPONENTS.register("cmi")(Contrast.build)  # the cmi term reads its embeddings (a source-side term)
