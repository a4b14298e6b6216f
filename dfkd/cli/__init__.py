"""The `dfkd` command: argument parsing and dispatch (`main`), the commands (`commands`) and
`dfkd quickstart` (`quickstart`).

May import: every package."""
