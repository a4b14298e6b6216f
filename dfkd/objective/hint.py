"""FitNets' hint adapter (Romero, Ballas, Kahou, Chassang, Gatta, Bengio, "FitNets: Hints for Thin
Deep Nets", ICLR 2015): a 1x1 convolution, no bias, that maps the student's middle matched stage
(N, C_s, H, W) to the teacher's width (N, C_t, H, W) for the `hint` term.

A `Component` of the student objective, built by the `hint` term when it is weighted, with no
optimizer of its own: the student's optimizer trains it with the student.
"""
from __future__ import annotations

from torch import Tensor, nn

from dfkd.base.component import Component
from dfkd.objective.hooks import stage_channels
from dfkd.objective.kd_losses import hint_mse
from dfkd.objective.terms import term


class HintAdapter(Component):
    key = "hint"

    def __init__(self, c_student: int, c_teacher: int, device=None):
        self.conv = nn.Conv2d(c_student, c_teacher, kernel_size=1, bias=False).to(device)

    @classmethod
    def build(cls, b) -> "HintAdapter":
        """The `hint` term's factory (b: a `dfkd.objective.terms.ComponentBuild`): sized by one forward
        pass of zeros through the middle matched stage of each model."""
        mid = len(b.t_blocks) // 2
        return cls(stage_channels(b.student, b.s_blocks[mid], b.s_shape),
                   stage_channels(b.teacher, b.t_blocks[mid], b.t_shape), b.device)

    def __call__(self, s_block: Tensor) -> Tensor:
        return self.conv(s_block)

    def parameters(self) -> list[nn.Parameter]:
        return list(self.conv.parameters())

    def state_dict(self) -> dict:
        return self.conv.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.conv.load_state_dict(state)


term("hint", "FitNets hint: MSE between the teacher's middle matched stage and the student's through a "
      "learned 1x1-conv adapter (Romero et al. 2015)", "student", "blocks", component=HintAdapter.build)(
    lambda s, o, p: hint_mse(o.components["hint"](s.s_blocks[len(s.s_blocks) // 2]),
                             s.t_blocks[len(s.t_blocks) // 2]))
