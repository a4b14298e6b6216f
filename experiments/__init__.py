"""The experiment tables (one folder each: table.yaml, its base config and published numbers) and
sweep examples; installed with the package as dfkd.experiments, so `dfkd experiment NAME` finds them
in a wheel install too (dfkd/tables/spec.py, `locate`)."""
