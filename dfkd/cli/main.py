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

import json
import os
import sys

from dfkd.base.errors import DfkdError
from dfkd.cli.args import parse, shorthands


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
    from dfkd.cli import commands

    if args.command == "list":
        return commands.list_command(args.what)
    if args.command == "options":
        if args.method or args.dataset or args.config or args.sets:
            return commands.resolved_options_command(args)
        return commands.options_command(args.which)
    if args.command == "table":
        return commands.table_command(args)
    if args.command == "experiment":
        return commands.experiment_command(args)
    if args.command == "plot":
        return commands.plot_command(args)
    if args.command == "sync":
        return commands.sync_command(args)
    if args.command == "quickstart":
        from dfkd.cli.quickstart import quickstart

        return quickstart(out=args.out, method=args.method, seed=args.seed, sets=shorthands(args),
                          quiet=args.quiet)
    if args.command == "train-teacher":
        from dfkd.run.teacher import build_teacher_config, train_teacher

        sets = shorthands(args)
        if args.dataset:
            sets.insert(0, f"data.name={args.dataset}")
        if args.arch:
            sets.insert(0, f"arch={args.arch}")
        cfg = build_teacher_config(args.config, sets)
        from dfkd.base.distributed import from_env

        world, _ = from_env(cfg.device)
        path, acc = train_teacher(cfg, quiet=args.quiet or not world.main, world=world)
        if world.main:
            print(f"teacher {cfg.arch} on {cfg.data.name}: test accuracy {acc:.2f}% -> {path}")
        return 0
    if args.command == "distill":
        from dfkd.methods.configure import build_config
        from dfkd.run.runner import distill

        if args.resume:
            if args.config or args.method or shorthands(args):
                raise DfkdError("--resume continues a run with its own saved config; drop --config, "
                                "--method and --set")
            run_dir, summary = distill(quiet=args.quiet, resume=args.resume)
        else:
            cfg = build_config(args.config, shorthands(args), method=args.method)
            run_dir, summary = distill(cfg, quiet=args.quiet)
        if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 reports
            return 0
        print(json.dumps({k: v for k, v in summary.items() if k != "curve"}, indent=2))
        print(f"run directory: {run_dir}")
        return 0
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
