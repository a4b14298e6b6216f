"""Tables of runs: statistics and rendering (`results`), a table's file (`spec`), the table runner
(`experiment`) and the side-by-side tables beside the authors' code (`side_by_side`).

May import: every package but `dfkd.cli`."""
