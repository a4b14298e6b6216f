"""One run: resolving teacher and student (`resolve`), building its parts (`parts`), the loop
(`loop`), its resumable state (`state`), the run set-up and summary (`runner`), teacher training
(`teacher`), evaluation and the CPU allocator settings (`memory`).

May import: every package but `dfkd.tables` and `dfkd.cli`."""
