"""Where the student's inputs come from and how they are optimised: the schedule contract
(`schedule`) and its data-free (`synthesizers`) and real-data (`real`) schedules, the replay pool,
views, augmentation, perturbations and robust attacks, CMI's contrastive extension, AdaDFKD's
queue of student features, MosaicKD's patch discriminator, DFME's zeroth-order schedule.

Importing this package registers every schedule in `dfkd.synthesis.schedule.SCHEDULES`, every
source extension in `EXTENSIONS` (MAD's EMA generator, SpaceshipNet's feature exchange), and the
`cmi` term's component (its head and bank), the `r2m` term's (its queue) and the `patch_gan`
term's (its discriminator) in
`dfkd.objective.terms.COMPONENTS`.

May import: `dfkd.base`, `dfkd.config`, `dfkd.models`, `dfkd.generators`, `dfkd.io`, `dfkd.objective`."""
# registering
from dfkd.synthesis import contrast, exchange, mosaic, real, relation, synthesizers, zeroth_order  # noqa: F401,E402
