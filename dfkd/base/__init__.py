"""The ground floor: errors, the dfkd logger, the one registry mechanism, process-wide run settings
(seeding, determinism, precision, devices) and the torchrun helpers.

May import: nothing of dfkd outside `dfkd.base`."""
