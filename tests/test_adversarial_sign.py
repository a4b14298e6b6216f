"""The game's two moves: the generator step increases teacher-student disagreement on its samples,
the student step decreases it; the generator step leaves the student's weights untouched."""
import pytest
import torch
from torch import nn

from dfkd.config.fields import OptimConfig
from dfkd.config.synthesis import SynthConfig
from dfkd.generators.dcgan import DCGANGenerator
from dfkd.methods.configure import build_config
from dfkd.models import build_model
from dfkd.objective import losses
from dfkd.objective.terms import Objective
from dfkd.run.loop import Distiller
from dfkd.run.parts import RunParts
from dfkd.synthesis.context import SynthContext, TeacherProbe
from dfkd.synthesis.synthesizers import PersistentSynthesizer


@pytest.fixture
def parts():
    torch.manual_seed(0)
    teacher = build_model("cnn", 10, 1)
    student = build_model("cnn_small", 10, 1).train()
    generator = DCGANGenerator(nz=16, width=16, size=16, channels=1)
    probe = TeacherProbe(teacher)
    sgd = OptimConfig(name="sgd", lr=0.05, momentum=0.0, weight_decay=0.0, schedule="constant")
    synth = PersistentSynthesizer(generator, SynthContext(SynthConfig(batch_size=32, g_steps=1), sgd,
                                                          Objective({"adv_l1": 1.0}), probe, nn.Identity(),
                                                          nn.Identity(), 10, torch.device("cpu")))
    z = torch.randn(32, 16)
    synth.z = lambda n: z
    return teacher, student, generator, synth, z


def _gap(teacher, student, x):
    with torch.no_grad():
        return losses.l1_logits(student(x), teacher(x)).item()


def test_generator_step_increases_disagreement_and_spares_the_student(parts):
    teacher, student, generator, synth, z = parts
    with torch.no_grad():
        before = _gap(teacher, student, generator(z))
    weights = [p.detach().clone() for p in student.parameters()]
    teacher_weights = [p.detach().clone() for p in teacher.parameters()]
    synth.synthesize(student)
    with torch.no_grad():
        after = _gap(teacher, student, generator(z))
    assert after > before
    assert all(torch.equal(a, p) for a, p in zip(weights, student.parameters()))
    assert all(p.grad is None for p in student.parameters())
    assert all(torch.equal(a, p) for a, p in zip(teacher_weights, teacher.parameters()))


def test_student_step_decreases_disagreement(parts):
    teacher, student, generator, synth, z = parts
    cfg = build_config(method="dfad", sets=["student.optim.lr=0.01", "student.optim.momentum=0",
                                            "student.optim.schedule=constant"])
    parts = RunParts(synth.probe, student, 1, nn.Identity(), nn.Identity(), None, Objective(cfg.objective.student),
                     None, synth, None, None)
    loop = Distiller(cfg, parts, None, None, None, torch.device("cpu"))
    x = synth.sample(32)
    before = _gap(teacher, student, x)
    loop.student_step(x, loop.teacher_signals(x))
    assert _gap(teacher, student, x) < before
    assert all(p.grad is None for p in teacher.parameters())
