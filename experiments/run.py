"""Run a table: `python experiments/run.py TABLE --seeds 3 --scale smoke|paper` (same as `dfkd experiment`).

TABLE is a folder here holding a table.yaml; see dfkd/tables/spec.py for the format.
"""
import sys

from dfkd.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["experiment", *sys.argv[1:]]))
