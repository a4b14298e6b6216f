"""The `dfkd` command line's arguments: the parser of every command, the sweep-style bare overrides
(`overrides`) and the flags that stand for config keys (`shorthands`)."""
from __future__ import annotations

import argparse
import sys

from dfkd.base.errors import DfkdError


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kw):
        kw.setdefault("allow_abbrev", False)  # '--se=1' must not pass for --set or --seed
        super().__init__(*args, **kw)

    def error(self, message: str):  # one line, no usage dump
        sys.stderr.write(f"dfkd: error: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(2)


def _common(p: argparse.ArgumentParser, config: bool = True) -> None:
    if config:
        p.add_argument("--config", action="append", default=[], metavar="FILE",
                       help="YAML config file; repeatable, later files win")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="dotted override, repeatable (e.g. --set distill.rounds=50)")
    p.add_argument("--out", help="output directory (config key: out)")
    p.add_argument("--data-root", help="where datasets live (data.root; default $DFKD_DATA_ROOT or ./data)")
    p.add_argument("--download", action="store_true", help="download a missing torchvision dataset")
    p.add_argument("--tracking", choices=["offline", "online", "disabled"], help="W&B mode (tracking.mode)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--deterministic", action="store_true", help="seeded, deterministic algorithms (deterministic)")


def shorthands(args) -> list[str]:
    sets = []
    if args.out:
        sets.append(f"out={args.out}")
    if args.data_root:
        sets.append(f"data.root={args.data_root}")
    if args.download:
        sets.append("data.download=true")
    if args.tracking:
        sets.append(f"tracking.mode={args.tracking}")
    if getattr(args, "deterministic", False):
        sets.append("deterministic=true")
    return sets + list(args.sets)


def _variant(p: argparse.ArgumentParser) -> None:
    """`--table NAME` of experiment, table and plot: a folder's second table."""
    p.add_argument("--table", dest="variant", metavar="NAME",
                   help="a second table of the folder: experiments/TABLE/NAME.yaml (e.g. side_by_side: each "
                        "cell beside its authors' code)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="dfkd", description="Data-free and adversarial knowledge distillation.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    q = sub.add_parser("quickstart", help="train a digits teacher and distil a student data-free (CPU, minutes)",
                       description="Train (or reuse) a teacher on the embedded digits data, run a data-free "
                                   "distillation, print a short summary. Run directories go under --out.")
    q.add_argument("--method", default="dfq", help="method recipe (default dfq)")
    q.add_argument("--seed", type=int, default=0)
    _common(q, config=False)
    q.set_defaults(out="runs/quickstart")

    t = sub.add_parser("train-teacher", help="train a teacher with the dataset's recipe",
                       description="Supervised teacher training; writes OUT/DATASET{SIZE}-ARCH-sSEED/teacher.pt "
                                   "with its config, test accuracy and sha256.")
    t.add_argument("--dataset", help="dataset (data.name)")
    t.add_argument("--arch", help="architecture (arch)")
    _common(t)

    d = sub.add_parser("distill", help="data-free distillation with a method recipe",
                       description="Data-free distillation: defaults <- method recipe <- --config <- --set.")
    d.add_argument("--method", help="method recipe (see `dfkd list methods`)")
    d.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run exactly from its last "
                                                      "checkpoint (its config.yaml is used; no other options)")
    _common(d)

    ls = sub.add_parser("list", help="list registered methods, models, datasets, ...")
    ls.add_argument("what", nargs="?", default="all",
                    choices=["all", "methods", "models", "datasets", "sources", "schedules", "terms", "views"])

    tb = sub.add_parser("table", help="mean ± sd, 95%% t-interval, published value and DS over seeds",
                        description="Group finished runs by method, dataset, teacher and student; print per "
                                    "cell the student accuracy mean ± sd over seeds, its 95%% Student-t "
                                    "interval, the published value and the difference, the distillation "
                                    "metric DS (Alkhulaifi et al. 2021) and synthesis/wall time.")
    tb.add_argument("runs", nargs="+", metavar="RUN_DIR|TABLE",
                    help="run directories (searched recursively), or a table name: its runs under "
                         "OUT/TABLE/SCALE, with its published values and cell order")
    _variant(tb)
    tb.add_argument("--published", metavar="FILE", help="published-results YAML (e.g. experiments/*/published.yaml)")
    tb.add_argument("--scale", default="paper", help="with a table name: which scale's runs (default paper)")
    tb.add_argument("--out", default="runs", help="with a table name: the runner's --out (default runs)")
    tb.add_argument("--wandb", metavar="ENTITY/PROJECT", help="read the runs back from W&B instead of run "
                                                            "directories (needs network); RUN_DIR|TABLE then "
                                                            "names W&B groups, e.g. digits-paper")
    tb.add_argument("--format", default="markdown", choices=["markdown", "latex", "csv"], help="output format")
    tb.add_argument("--output", metavar="FILE", help="write the table here (atomically) instead of stdout")
    tb.add_argument("--alpha", type=float, default=0.5,
                    help="DS weight of the size ratio, in [0, 1] (default 0.5)")

    pl = sub.add_parser("plot", help="accuracy curves, a bar chart and sample grids of runs or a table (PNG)",
                        description="Plot student accuracy over rounds (mean ± sd over seeds), a bar chart of "
                                    "final accuracy with the published values, and each row's sample grid.")
    pl.add_argument("runs", nargs="+", metavar="RUN_DIR|TABLE", help="as for `dfkd table`")
    pl.add_argument("--scale", default="paper", help="with a table name: which scale's runs (default paper)")
    pl.add_argument("--out", default="runs", help="with a table name: the runner's --out (default runs)")
    _variant(pl)
    pl.add_argument("--to", metavar="DIR", help="where the PNGs go (default: the table's or first run folder)")

    ex = sub.add_parser("experiment", help="run every cell of a table over seeds, then print the table",
                        description="Run the cells of experiments/TABLE/table.yaml over seeds (finished runs are "
                                    "skipped, interrupted ones run again), training missing teachers first, "
                                    "then print the table with the published numbers.")
    ex.add_argument("table", help="a table name (a folder under experiments/) or a path to its table.yaml")
    _variant(ex)
    ex.add_argument("--seeds", type=int, help="seeds 0..N-1 per cell (default: the table's)")
    ex.add_argument("--scale", default="paper", help="'paper' (the published budget) or a scale the table "
                                                    "defines, e.g. 'smoke' (minutes on a CPU)")
    ex.add_argument("--only", nargs="+", default=[], metavar="CELL", help="run only these cells")
    ex.add_argument("--dry-run", action="store_true", help="list every (cell, seed) and its status, run nothing")
    ex.add_argument("--format", default="markdown", choices=["markdown", "latex", "csv"], help="table format")
    ex.add_argument("--jobs", type=int, default=1, metavar="N",
                    help="run N (cell, seed) runs at once, each in its own process (default 1); small networks "
                         "leave a GPU mostly idle, so several runs share one well")
    ex.add_argument("--launcher", default="local", metavar="NAME",
                    help="where the runs execute: local (default), slurm (one job array through submitit; "
                         'pip install "dfkd[slurm]"), submitit_local, or experiments/launchers/NAME.yaml')
    ex.add_argument("--launcher-set", action="append", default=[], metavar="KEY=VALUE",
                    help="a launcher setting, repeatable (partition, account, time_min, gpus_per_task, "
                         "cpus_per_task, mem_gb, array_parallelism, signal_delay_s, sbatch)")
    ex.add_argument("--wait", action="store_true", help="with a submitting launcher: block until every run "
                                                        "ends, then write the table")
    ex.add_argument("--status", action="store_true", help="list each run as pending / queued / running / done / "
                                                          "failed (with its job id), run nothing")
    _common(ex, config=False)

    sy = sub.add_parser("sync", help="upload the offline W&B runs of run directories (needs network)",
                        description="Upload each run directory's offline W&B run with `wandb sync`: a resumed run "
                                    "has one offline folder per attempt, all with one run id, and the last holds "
                                    "every row (the resumed attempt logs the rows up to its checkpoint again), so "
                                    "only the last is synced.")
    sy.add_argument("runs", nargs="+", metavar="RUN_DIR")
    sy.add_argument("--dry-run", action="store_true", help="print the wandb commands, run nothing")

    o = sub.add_parser("options", help="every config key with its type, default and meaning; with --method, "
                                       "--dataset, --config or --set: every resolved value and where it came from",
                       description="Without options: every config key with its type, default and meaning. With "
                                   "--method, --dataset, --config or --set: the config a `dfkd distill` with them "
                                   "would run, each value with its origin (default, recipe, the recipe's preset for "
                                   "the dataset with its source, --config, --set).")
    o.add_argument("which", nargs="?", default="distill", choices=["distill", "train-teacher"])
    o.add_argument("--method", help="method recipe (see `dfkd list methods`)")
    o.add_argument("--dataset", help="dataset (data.name), which selects the recipe's preset")
    o.add_argument("--config", action="append", default=[], metavar="FILE", help="YAML config file; repeatable")
    o.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="dotted override, repeatable")
    return p


OVERRIDABLE = ("distill", "train-teacher", "quickstart")  # commands that take bare key=value overrides


def overrides(extra: list[str]) -> list[str]:
    """Sweep-style arguments as --set items: 'key=value', '--key=value', '--key value' (a W&B agent's
    ${args_no_hyphens}, ${args}, ${args_no_equals}); anything else is an error naming it."""
    sets, i = [], 0
    while i < len(extra):
        item = extra[i]
        key = item[2:] if item.startswith("--") else item
        if "=" in key and not key.startswith("="):
            sets.append(key)
        elif item.startswith("--") and key and i + 1 < len(extra) and not extra[i + 1].startswith("--"):
            sets.append(f"{key}={extra[i + 1]}")
            i += 1
        else:
            raise DfkdError(f"unrecognized argument {item!r}; config overrides take the form key=value, --key=value "
                            f"or --set key=value (e.g. distill.rounds=50)")
        i += 1
    return sets


def parse(argv=None) -> argparse.Namespace:
    """The command line, with sweep-style overrides gathered into `args.sets` (after every --set)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        if args.command not in OVERRIDABLE:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.sets = list(args.sets) + overrides(extra)
    return args
