"""The `dfkd` command line.

    dfkd quickstart [--out DIR]                       digits teacher + data-free student, minutes on a CPU
    dfkd train-teacher [--dataset D] [--arch A] [--config F] [--set k=v]...
    dfkd distill [--method M] [--config F]... [--set k=v]... [k=v | --k=v]...
    dfkd list [methods|models|datasets|sources|schedules|terms|views]
    dfkd experiment TABLE [--seeds N] [--scale smoke|paper]   every cell of a table, then the table
    dfkd plot RUN_DIR...|TABLE                        accuracy curves, bar chart, sample grids (PNG)
    dfkd table RUN_DIR... [--published F] [--format markdown|latex|csv]  statistics over seeds
    dfkd sync RUN_DIR... [--dry-run]                  upload offline W&B runs (a resumed one as one run)
    dfkd options [distill|train-teacher]              every config key with its default and meaning
    dfkd options --method M [--dataset D] [--config F] [--set k=v]...   every resolved value and its origin

Bad input prints one line on stderr and exits with status 2 (3 for a non-finite loss).

Overrides: `--set key=value` (repeatable), and for `distill`, `train-teacher` and `quickstart` also
bare `key=value` and `--key=value` / `--key value` (what a W&B sweep agent passes: `${args_no_hyphens}`,
`${args}`, `${args_no_equals}`), applied after every `--set` in the order given; `--config` is
repeatable, later files winning.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from .errors import DfkdError


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


def _shorthands(args) -> list[str]:
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


def main(argv=None) -> int:
    try:
        args = parse(argv)
    except DfkdError as e:
        sys.stderr.write(f"dfkd: error: {e}\n")
        return e.exit_code
    try:
        return _dispatch(args)
    except DfkdError as e:
        sys.stderr.write(f"dfkd: error: {e}\n")
        return e.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("dfkd: interrupted\n")
        return 130
    except BrokenPipeError:  # output piped into `head` and the like, which stopped reading
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:  # under torchrun: leave the process group cleanly
        dist = sys.modules.get("torch.distributed")
        if dist is not None and dist.is_available() and dist.is_initialized():
            # What still holds gloo work (the DDP wrapper, in a reference cycle with the loop) is freed
            # now, while the interpreter is whole: freed during interpreter shutdown instead, gloo's
            # threads aborted the process now and then ("terminate called without an active
            # exception", exit -6; pytorch/pytorch#190489).
            import gc

            gc.collect()
            dist.destroy_process_group()


def _dispatch(args) -> int:
    from .commands import _experiment, _list, _options, _plot, _resolved_options, _sync, _table

    if args.command == "list":
        return _list(args.what)
    if args.command == "options":
        if args.method or args.dataset or args.config or args.sets:
            return _resolved_options(args)
        return _options(args.which)
    if args.command == "table":
        return _table(args)
    if args.command == "experiment":
        return _experiment(args)
    if args.command == "plot":
        return _plot(args)
    if args.command == "sync":
        return _sync(args)
    if args.command == "quickstart":
        from .quickstart import quickstart

        return quickstart(out=args.out, method=args.method, seed=args.seed, sets=_shorthands(args),
                          quiet=args.quiet)
    if args.command == "train-teacher":
        from .teacher import build_teacher_config, train_teacher

        sets = _shorthands(args)
        if args.dataset:
            sets.insert(0, f"data.name={args.dataset}")
        if args.arch:
            sets.insert(0, f"arch={args.arch}")
        cfg = build_teacher_config(args.config, sets)
        from .distributed import from_env

        world, _ = from_env(cfg.device)
        path, acc = train_teacher(cfg, quiet=args.quiet or not world.main, world=world)
        if world.main:
            print(f"teacher {cfg.arch} on {cfg.data.name}: test accuracy {acc:.2f}% -> {path}")
        return 0
    if args.command == "distill":
        from .methods import build_config
        from .runs import distill

        if args.resume:
            if args.config or args.method or _shorthands(args):
                raise DfkdError("--resume continues a run with its own saved config; drop --config, "
                                "--method and --set")
            run_dir, summary = distill(quiet=args.quiet, resume=args.resume)
        else:
            cfg = build_config(args.config, _shorthands(args), method=args.method)
            run_dir, summary = distill(cfg, quiet=args.quiet)
        if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 reports
            return 0
        print(json.dumps({k: v for k, v in summary.items() if k != "curve"}, indent=2))
        print(f"run directory: {run_dir}")
        return 0
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
