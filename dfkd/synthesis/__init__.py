"""Where the student's inputs come from and how they are optimised: the schedule contract
(`schedule`) and its data-free (`synthesizers`) and real-data (`real`) schedules, the replay pool,
views, augmentation, perturbations and robust attacks, CMI's contrastive extension, AdaDFKD's
queue of student features.

Importing this package registers every schedule in `dfkd.synthesis.schedule.SCHEDULES`, every
source extension in `EXTENSIONS` (MAD's EMA generator, SpaceshipNet's feature exchange), and the
`cmi` term's component (its head and bank) and the `r2m` term's (its queue) in
`dfkd.objective.terms.COMPONENTS`.

May import: `dfkd.base`, `dfkd.config`, `dfkd.models`, `dfkd.generators`, `dfkd.io`, `dfkd.objective`."""
from dfkd.synthesis import contrast, exchange, real, relation, synthesizers, zeroth_order  # noqa: F401,E402  (registering)
