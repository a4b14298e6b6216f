"""The typed config: its sections and options (`schema`), and reading, layering, coercing and
checking YAML and `--set` values with provenance (`load`), teacher training's config (`teacher`).

May import: `dfkd.base`."""
