"""Scores of the student: accuracy on a labelled split, agreement with the teacher without one."""
from __future__ import annotations

import torch
from torch import nn


@torch.inference_mode()
def accuracy(model: nn.Module, loader, device, transform=None) -> float:
    """Top-1 accuracy in percent (0–100). `transform` (e.g. the student's view) is applied to inputs.
    The model's train/eval mode is restored afterwards."""
    was_training = model.training
    model.eval()
    correct = total = 0
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if transform is not None:
            x = transform(x)
        correct += (model(x).argmax(1) == y).sum().item()
        total += y.numel()
    model.train(was_training)
    return 100.0 * correct / max(1, total)


AGREEMENT_SAMPLES = 512
AGREEMENT_SEED = 20_240_601


@torch.no_grad()
def agreement(synth, probe, student: nn.Module, student_forward, view_t, view_s, precision, batch_size: int,
              device) -> tuple[float, float]:
    """(top-1 agreement in %, mean KL(T||S)) of student and teacher on a held-out batch of
    `AGREEMENT_SAMPLES` synthesized inputs: the schedule `synth` sampled with fixed random draws
    (the same latent codes at every evaluation), which the student never trains on; the global
    random streams are left untouched. A free-pixel source holds only its last round's batch,
    which is then what is scored. The score of a run without labelled data."""
    from dfkd.objective.losses import kl_div

    devices = [device] if device.type == "cuda" else []
    was = student.training
    student.eval()
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(AGREEMENT_SEED)
            xs, n = [], 0
            while n < AGREEMENT_SAMPLES:
                x = synth.sample(batch_size)
                xs.append(x)
                n += len(x)
                if getattr(synth.generator, "nz", None) == 1:  # free pixels: one fixed batch
                    break
        match, kl, total = 0.0, 0.0, 0
        for x in xs:
            with precision.autocast(), probe.uncounted():  # not the method's queries
                t = probe(view_t(x)).t_logits.float()
                s_logits = student_forward(view_s(x)).float()
            match += (t.argmax(1) == s_logits.argmax(1)).sum().item()
            kl += kl_div(s_logits, t, 1.0).item() * len(x)
            total += len(x)
    finally:
        student.train(was)
    return 100.0 * match / total, kl / total
