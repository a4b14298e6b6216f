"""Every registered schedule, for whoever looks one up by name (`synth.schedule`):
the data-free ones (dfkd/synthesizers.py) and the real-data one (dfkd/real.py), on the contract of
dfkd/schedule.py."""
from . import real, synthesizers  # noqa: F401  (registering)
from .schedule import SCHEDULES

__all__ = ["SCHEDULES"]
