"""The typed config: its sections and options (`schema`), and reading, layering, coercing and
checking YAML and `--set` values with provenance (`load`); the source's and schedule's sections
(`synthesis`), the documented field `opt()` and the optimizer section (`fields`), teacher
training's config (`teacher`).

May import: `dfkd.base`."""
