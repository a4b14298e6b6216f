"""CMI's contrastive machinery (Fang, Song, Wang, Shen, Wang, Song, "Contrastive Model Inversion for
Data-Free Knowledge Distillation", IJCAI 2021), around the frozen teacher:

- instance embedding h(x): per-sample channel means of every teacher BN input, concatenated (N, ΣC);
- a projection head (MLP ΣC -> 256 -> dim) trained with the source, as in the paper;
- a local view: random resized crop (scale 0.25-1) of the batch the teacher saw;
- a bounded memory bank of earlier (detached) global-view embeddings, the extra negatives.

An `Extension` of the schedule (dfkd/schedule.py), switched on when the source objective weights
the `cmi` term (its parameters: `objective.params.cmi.tau/bank/dim`): `capture()` before the
teacher's forward pass on the global view makes that same pass record the instance embedding;
`views(seen)` then returns (global embedding, local embedding, bank) for the `cmi` term, running
the teacher once more, on the local view only; `remember(e)` pushes the step's global embeddings
into the bank. The head trains with the source.
"""
from __future__ import annotations

from torch import Tensor, nn

from .errors import DfkdError
from .hooks import InstanceMeansHook
from .pool import ReplayPool
from .schedule import Extension


class Contrast(Extension):
    state_key = "contrast"

    def __init__(self, teacher: nn.Module, image_size: int, dim: int, bank_size: int, device):
        import kornia.augmentation as K

        self.teacher = teacher
        self.hook = InstanceMeansHook(teacher)
        if not self.hook.layers:
            raise DfkdError("the cmi term embeds samples by the teacher's BatchNorm inputs, and this teacher "
                            "has no BatchNorm layer; set objective.generator.cmi=0")
        self.head = nn.Sequential(nn.Linear(self.hook.dim, 256), nn.ReLU(inplace=True),
                                  nn.Linear(256, dim)).to(device)
        self.local = K.RandomResizedCrop((image_size, image_size), scale=(0.25, 1.0)).to(device)
        self.bank = ReplayPool(bank_size, (dim,), storage="fp32", device=device) if bank_size > 0 else None

    def parameters(self) -> list[nn.Parameter]:
        return list(self.head.parameters())

    # the schedule's hooks
    def before_probe(self) -> None:
        self.capture()

    def signals(self, sig, seen: Tensor, ctx) -> None:
        sig.embed, sig.embed_local, sig.bank = self.views(ctx.view_t(seen))

    def after_step(self, sig, schedule) -> None:
        if sig.embed is not None:
            self.remember(sig.embed)

    def _embed(self, x: Tensor) -> Tensor:
        self.hook.enabled = True
        try:
            self.teacher(x)
        finally:
            self.hook.enabled = False
        return self.head(self.hook.take())

    def capture(self) -> None:
        """Let the next teacher forward pass (the probe's, on the global view) record embeddings."""
        self.hook.enabled = True

    def views(self, seen: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        self.hook.enabled = False
        global_ = self.head(self.hook.take())  # recorded by the forward pass after capture()
        bank = self.bank.held() if self.bank is not None else None
        return global_, self._embed(self.local(seen)), bank

    def remember(self, embed: Tensor) -> None:
        if self.bank is not None:
            self.bank.add(embed)

    def state_dict(self) -> dict:
        return {"head": self.head.state_dict(), "bank": self.bank.state_dict() if self.bank is not None else None}

    def load_state_dict(self, state: dict) -> None:
        self.head.load_state_dict(state["head"])
        if self.bank is not None and state["bank"] is not None:
            self.bank.load_state_dict(state["bank"])
