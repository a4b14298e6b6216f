"""Methods are named recipes: configuration of the shared parts (source, schedule, objective terms,
views), never a new loop. A recipe is a dict of config values laid over the defaults; a recipe may
carry per-dataset presets (the authors' settings for MNIST or CIFAR, the measured settings of the
digits table), laid over the recipe when the run's dataset matches; the user's layers (a base such
as the quickstart's, the YAML file, each `--set`) are laid over those. Every resolved value's origin
is kept (`Config.provenance`, `provenance.yaml` in the run directory, `dfkd options --method M
--dataset D`).

Objective weights merge key by key: to drop a recipe's term, set its weight to 0
(`--set objective.generator.adv_l1=0`).

`registry` holds METHODS and the recipe mechanism, `presets` what the data-free recipes share,
`generative`, `inversion` and `real` the recipes, `configure` the resolved config (`build_config`)
and its checks across keys. Importing this package registers every recipe.

May import: `dfkd.base`, `dfkd.config`, `dfkd.models`, `dfkd.generators`, `dfkd.io`, `dfkd.objective`,
`dfkd.synthesis`."""
from dfkd.methods import generative, inversion, real  # noqa: F401,E402  (registering, in this order)
