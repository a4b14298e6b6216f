"""DFME's zeroth-order source step: a generator trained against a teacher that only answers queries.

Truong, Maini, Walls, Papernot, "Data-Free Model Extraction", CVPR 2021, arXiv:2011.14779; as the
authors' code computes it (cake-lab/datafree-model-extraction@525b76c, dfme/approximate_gradients.py
`estimate_gradient_objective`, dfme/train.py `train`).

`synth.schedule=zeroth_order` is the persistent schedule (one generator kept across rounds) whose
source steps never differentiate through the teacher. Each step takes P = G(z) up to the generator's
last element-wise squashing (`pre_output`, then `finish`: before tanh for DFME's generator; the
output itself for a source without that split), shape (N, C, H, W), d = C·H·W, draws m =
`synth.zo_directions` directions u_ij uniform on the unit sphere of R^d per sample, and queries the
teacher and the student (no_grad, the student in `synth.student_mode`) on the N (m + 1) points
finish(P_i + ε u_ij) and finish(P_i), ε = `synth.zo_eps`. With ℓ_i the source objective of sample i
alone (`per_sample_losses`),

    ĝ_i = d / (ε m) · Σ_j (ℓ_i(P_i + ε u_ij) − ℓ_i(P_i)) u_ij / (K N)      (N, C, H, W)

(forward differences; the extra 1/K is the authors' code's), and the source's optimizer steps on
the surrogate Σ_i ⟨P_i, ĝ_i⟩, whose gradient is J_Gᵀ ĝ: `loss.backward()` reaches the generator
only. The logged loss is the objective at the unperturbed points. A step costs N (m + 1) teacher
queries (`TeacherProbe.queries`).

The source objective must be a mean over samples of what each sample's logits give (DFME's -L1 of
logits, -KL, one-hot CE, ...): batch-level terms (class balance `ie`, BN statistics, features) are
refused, as is a differentiable `synth.augment` (a fresh random view per point would swamp the
differences) and an extension.
"""
from __future__ import annotations

import torch
from torch import Tensor

from dfkd.base.errors import DfkdError
from dfkd.objective.signals import Signals
from dfkd.objective.terms import Objective
from dfkd.synthesis.schedule import SCHEDULES
from dfkd.synthesis.synthesizers import PersistentSynthesizer

BATCH_LEVEL = {"ie": "the class balance of the whole batch"}  # terms with no per-sample value


def check_separable(objective: Objective) -> None:
    """Refuses a source objective the estimate cannot split into per-sample losses."""
    for name in objective.weights:
        extra = objective.terms[name].needs - {"student"}
        if name in BATCH_LEVEL or extra:
            why = BATCH_LEVEL.get(name) or f"needs {', '.join(sorted(extra))}"
            raise DfkdError(f"synth.schedule=zeroth_order estimates the source's gradient from per-sample losses "
                            f"of the teacher's and student's outputs, and objective.generator.{name} ({why}) has "
                            f"none; set objective.generator.{name}=0")


def per_sample_losses(objective: Objective, x: Tensor, t_logits: Tensor, s_logits: Tensor) -> Tensor:
    """(P,): the weighted objective of each sample alone, x (P, C, H, W), logits (P, K); each term
    evaluated on a batch of one (torch.func.vmap), weighted as `Objective.__call__` weighs it."""
    def one(xi, ti, si):
        sig = Signals(x=xi[None], x_seen=xi[None], t_logits=ti[None], s_logits=si[None])
        return sum(w * value for _, w, value in objective.weighted_terms(sig))

    return torch.func.vmap(one)(x, t_logits, s_logits)


def unit_directions(n: int, m: int, d: int, device=None) -> Tensor:
    """(n, m, d): for each of n samples, m directions drawn uniformly on the unit sphere of R^d."""
    u = torch.randn(n, m, d, device=device)
    return u / u.norm(dim=2, keepdim=True)


def forward_difference_gradient(losses: Tensor, u: Tensor, eps: float, scale: float) -> Tensor:
    """(n, d): scale · d / (eps m) · Σ_j (losses[:, j] - losses[:, m]) u[:, j], from the losses (n, m + 1)
    at the m perturbed points and (last) the unperturbed one, and the directions u (n, m, d)."""
    m, d = u.shape[1], u.shape[2]
    diff = losses[:, :m] - losses[:, m:]
    return (diff[..., None] * u).mean(1) * (d / eps * scale)


@SCHEDULES.register("zeroth_order")
class ZerothOrderSynthesizer(PersistentSynthesizer):
    """The persistent schedule with DFME's zeroth-order gradient (module docstring)."""

    def __init__(self, source, ctx):
        super().__init__(source, ctx)
        if ctx.objective is not None:
            check_separable(ctx.objective)
        if ctx.augment is not None:
            raise DfkdError("synth.schedule=zeroth_order differences the objective at nearby points, and "
                            "synth.augment would view each point differently; set synth.augment=none")
        if self.extensions:
            names = ", ".join(type(e).__name__ for e in self.extensions)
            raise DfkdError(f"synth.schedule=zeroth_order takes no source extension ({names}); switch it off")
        self._surrogate: Tensor | None = None

    def draw_directions(self, n: int, m: int, d: int) -> Tensor:
        """(n, m, d) unit directions (a method: a reference trace injects the authors' draws)."""
        return unit_directions(n, m, d, self.device)

    def _split(self, z: Tensor, targets: Tensor | None):
        g = self.generator
        if hasattr(g, "pre_output") and hasattr(g, "finish") and not getattr(g, "conditional", False):
            return g.pre_output(z), g.finish
        return self.generate(z, targets), (lambda x: x)

    def forward(self, student, targets: Tensor | None) -> Signals:
        ctx, cfg = self.ctx, self.cfg
        self._last_z = z = self.z(self.batch_size)
        pre, finish = self._split(z, targets)
        n, shape, m = pre.shape[0], pre.shape[1:], cfg.zo_directions
        with torch.no_grad():
            u = self.draw_directions(n, m, pre[0].numel())
            points = pre.detach()[:, None] + cfg.zo_eps * torch.cat([u, u.new_zeros(n, 1, u.shape[2])], 1).view(
                n, m + 1, *shape)
            xs = finish(points.view(n * (m + 1), *shape))
            t_logits = self.probe(ctx.view_t(xs)).t_logits
            s_logits = student(ctx.view_s(xs))
            losses = per_sample_losses(self.objective, xs, t_logits, s_logits).view(n, m + 1)
            grad = forward_difference_gradient(losses, u, cfg.zo_eps, 1.0 / (ctx.num_classes * n))
        self._surrogate = (pre * grad.view_as(pre)).sum()
        last = slice(m, None, m + 1)  # every sample's unperturbed point
        x = xs[last]
        return Signals(x=x, x_seen=x, t_logits=t_logits[last], s_logits=s_logits[last], targets=targets)

    def step_loss(self, sig: Signals) -> tuple[Tensor, dict[str, Tensor]]:
        """The objective's value at the unperturbed points, with the surrogate's gradient."""
        loss, parts = self.objective(sig)
        return self._surrogate + (loss - self._surrogate.detach()), parts
