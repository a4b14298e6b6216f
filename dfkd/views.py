"""Views: differentiable transforms of the synthesized batch, one for the teacher (`view_t`) and
one for the student (`view_s`). Ordinary KD uses the identity for both; cross-modal KD gives the
student another modality. Each view is registered as `factory(in_channels) -> (module, out_channels)`.
"""
from __future__ import annotations

from torch import nn

from .registry import Registry

VIEWS = Registry("view")


@VIEWS.register("identity")
def identity(in_channels: int) -> tuple[nn.Module, int]:
    """x -> x."""
    return nn.Identity(), in_channels


def build_view(name: str, in_channels: int) -> tuple[nn.Module, int]:
    return VIEWS.get(name)(in_channels)
