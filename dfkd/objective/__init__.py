"""What is optimised and how one step is taken: the term registry and the weighted objective (`terms`),
what a forward pass gives them (`signals`), the loss functions (`losses`, `kd_losses`), hooks on any
nn.Module (`hooks`), the adversarial critic (`critic`), FitNets' adapter (`hint`), optimizers and
schedules (`optim`) and the non-finite guard (`guard`).

May import: `dfkd.base`, `dfkd.config`."""
