"""The ground floor: errors, the dfkd logger, the one registry mechanism, process-wide run settings
(seeding, determinism, precision, devices), the torchrun helpers and the `Component` contract of
a run's trainable parts.

May import: nothing of dfkd outside `dfkd.base`."""
