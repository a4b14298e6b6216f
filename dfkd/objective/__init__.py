"""What is optimised and how one step is taken: the term registry and the weighted objective (`terms`),
what a forward pass gives them (`signals`), the loss functions (`losses`, `kd_losses`), hooks on any
nn.Module (`hooks`), optimizers and schedules (`optim`) and the non-finite guard (`guard`).

Every term is declared by the module of its role, beside its loss or its trainable part, and
registered in `terms.TERMS` when this package is imported: the disagreements D (`disagreement`),
the priors R on a synthesized batch (`priors`), the data-driven KD baselines' (`kd_losses`),
FitNets' hint (`hint`), the adversarial critic (`critic`), SpaceshipNet's activation maps (`cam`)
and AdaDFKD's relations (`relation`). A new method's term goes in a module of its own, imported
below; nothing else in the package changes.

May import: `dfkd.base`, `dfkd.config`."""
# registering
from dfkd.objective import cam, critic, disagreement, hint, kd_losses, priors, relation  # noqa: F401,E402
