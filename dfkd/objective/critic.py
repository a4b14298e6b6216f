"""A learned critic for discriminator-based adversarial KD (Belagiannis, Farshad, Galasso,
"Adversarial Network Compression", ECCV Workshops 2018, arXiv:1803.10750; Wang, Zhang, Wang,
"KDGAN: Knowledge Distillation with Generative Adversarial Networks", NeurIPS 2018).

A small MLP D reads output distributions (softmax of logits at the objective's temperature, (N, K))
and tells the teacher's (label 1) from the student's (label 0). After every student step it takes
one step of its own (Adam) on

    L_D = BCE(D(p_T), 1) + BCE(D(p_S.detach()), 0)

while the student's `adv_critic` term is the non-saturating generator loss BCE(D(p_S), 1): the
student learns to produce outputs the critic cannot tell from the teacher's. The critic is never
part of the student's optimizer.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dfkd.base.component import Component
from dfkd.objective.terms import Param, term


class Critic(nn.Module):
    def __init__(self, num_classes: int, hidden: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(num_classes, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden),
                                 nn.LeakyReLU(0.2), nn.Linear(hidden, 1))

    def forward(self, probs: Tensor) -> Tensor:
        """(N, K) probabilities -> (N,) logits of 'this came from the teacher'."""
        return self.net(probs).squeeze(1)


def fool_loss(critic: Critic, student_probs: Tensor) -> Tensor:
    """Non-saturating student loss: BCE(D(p_S), 1)."""
    d = critic(student_probs)
    return F.binary_cross_entropy_with_logits(d, torch.ones_like(d))


def critic_loss(critic: Critic, teacher_probs: Tensor, student_probs: Tensor) -> Tensor:
    """BCE(D(p_T), 1) + BCE(D(p_S), 0), the student's side detached."""
    dt, ds = critic(teacher_probs.detach()), critic(student_probs.detach())
    return (F.binary_cross_entropy_with_logits(dt, torch.ones_like(dt))
            + F.binary_cross_entropy_with_logits(ds, torch.zeros_like(ds)))


class CriticTrainer(Component):
    """The critic and its own optimizer, a `Component` of the student objective (the `adv_critic`
    term's): `step(sig, objective)` takes one critic step after each student step."""

    key = "critic"

    def __init__(self, num_classes: int, lr: float, device):
        self.critic = Critic(num_classes).to(device)
        self.optimizer = torch.optim.Adam(self.critic.parameters(), lr=lr, betas=(0.5, 0.999))

    @classmethod
    def build(cls, b) -> "CriticTrainer":
        """The `adv_critic` term's factory (b: a `dfkd.objective.terms.ComponentBuild`)."""
        return cls(b.num_classes, b.params["lr"], b.device)

    def parameters(self) -> list[nn.Parameter]:
        return list(self.critic.parameters())

    def step(self, sig, objective) -> dict[str, Tensor]:
        """One step on the teacher's and the (detached) student's logits of the student step."""
        return {"critic": self.train_step(sig.t_logits, sig.s_logits.detach(), objective.temperature)}

    def train_step(self, t_logits: Tensor, s_logits: Tensor, temperature: float) -> Tensor:
        loss = critic_loss(self.critic, F.softmax(t_logits.float() / temperature, 1),
                           F.softmax(s_logits.float() / temperature, 1))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.sync_gradients()
        self.optimizer.step()
        return loss.detach()

    def state_dict(self) -> dict:
        return {"critic": self.critic.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.critic.load_state_dict(state["critic"])
        self.optimizer.load_state_dict(state["optimizer"])


term("adv_critic", "fool a learned critic that tells teacher from student output distributions: "
      "BCE(D(p_S), 1) (Belagiannis et al. 2018; KDGAN)", "student",
      component=CriticTrainer.build,
      lr=Param(2e-4, "Adam learning rate of the critic (one step per student step)", min=0.0))(
    lambda s, o, p: fool_loss(o.components["critic"].critic,
                              F.softmax(s.s_logits.float() / o.temperature, dim=1)))
