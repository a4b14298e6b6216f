"""Discriminator-based adversarial KD: the critic's losses, who trains what, a short run."""
import math

import pytest
import torch

from dfkd.objective.critic import Critic, CriticTrainer, critic_loss, fool_loss


def test_losses_against_hand_computed_values():
    critic = Critic(3)
    for p in critic.parameters():
        torch.nn.init.zeros_(p)  # D = 0 everywhere: sigmoid 1/2
    probs = torch.full((4, 3), 1 / 3)
    assert fool_loss(critic, probs).item() == pytest.approx(math.log(2))
    assert critic_loss(critic, probs, probs).item() == pytest.approx(2 * math.log(2))


def test_the_critic_learns_to_tell_teacher_from_student_and_the_student_gradient_points_to_the_teacher():
    torch.manual_seed(0)
    t_logits = torch.tensor([[4.0, 0.0, 0.0]]).repeat(32, 1)
    s_logits = torch.zeros(32, 3)
    trainer = CriticTrainer(3, lr=1e-2, device="cpu")
    first = trainer.train_step(t_logits, s_logits, 1.0)
    for _ in range(100):
        last = trainer.train_step(t_logits, s_logits, 1.0)
    assert last < first and last < 0.2
    s = s_logits.clone().requires_grad_(True)
    fool_loss(trainer.critic, torch.softmax(s, 1)).backward()
    # descending the fooling loss raises the student's logit of the teacher's class relative to the rest
    g = s.grad.mean(0)
    assert g[0] < g[1] and g[0] < g[2]


def test_the_student_optimizer_never_holds_the_critic(digits_teacher, tmp_path):
    from dfkd.io.checkpoint import read_run_checkpoint
    from dfkd.methods.configure import build_config
    from dfkd.run.runner import distill

    cfg = build_config(method="advkd", sets=[f"teacher.checkpoint={digits_teacher}", f"out={tmp_path}",
                                             "distill.rounds=6", "distill.eval_every=3", "tracking.mode=disabled",
                                             "device=cpu"])
    run_dir, summary = distill(cfg, quiet=True)
    ckpt = read_run_checkpoint(run_dir / "checkpoint.pt")
    n_student = sum(1 for _ in ckpt["student"].values())
    critic = ckpt["components"]["critic"]
    assert critic is not None and len(critic["critic"]) == 6  # 3 linear layers
    student_params = sum(len(g["params"]) for g in ckpt["optimizer"]["param_groups"])
    assert student_params <= n_student  # the student optimizer owns student (and head) weights only
    assert len(critic["optimizer"]["state"]) == 6  # the critic stepped with its own Adam
