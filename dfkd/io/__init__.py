"""Files in and out: datasets and loaders (`data`), atomic checkpoints and model files (`checkpoint`,
`model_files`), W&B and metrics tracking (`tracking`), figures (`plots`).

May import: `dfkd.base`, `dfkd.config`, `dfkd.models`."""
