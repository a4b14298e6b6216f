"""What the `dfkd` commands other than distill, train-teacher and quickstart do (dfkd/cli/main.py parses
the command line): experiment, sync, table, plot, list, options."""
from __future__ import annotations

import argparse

from dfkd.base.errors import DfkdError
from dfkd.cli.args import shorthands


def _with_variant(table: str, variant: str | None) -> str:
    """`--table NAME`: the folder's second table FOLDER/NAME.yaml instead of its table.yaml."""
    return f"{table.removesuffix('/')}/{variant}" if variant else table


def _renderer(rows, ref_file, order):
    """fmt -> the table's text: the usual one, or for a side-by-side table (its authors' results file
    read once) each cell beside the authors' runs."""
    from dfkd.tables.results import render

    if ref_file is None:
        return lambda fmt: render(rows, fmt)
    from dfkd.tables import side_by_side

    paired = side_by_side.rows(rows, side_by_side.read_reference(ref_file) if ref_file.is_file() else {}, order)
    return lambda fmt: side_by_side.render(paired, fmt)


def experiment_command(args) -> int:
    from dfkd.tables.experiment import run_table
    from dfkd.tables.results import collect, read_published
    from dfkd.tables.spec import published_file, reference_file

    if args.seeds is not None and args.seeds < 1:
        raise DfkdError(f"--seeds must be >= 1, got {args.seeds}")
    sets = shorthands(argparse.Namespace(**{**vars(args), "out": None}))
    table = _with_variant(args.table, args.variant)
    from dfkd.tables.launch import read_launcher

    launcher = read_launcher(args.launcher, args.launcher_set)
    remote = launcher.kind != "local"
    if remote and args.jobs != 1:
        raise DfkdError(f"--jobs runs processes on this machine; with --launcher {args.launcher} each run is a "
                        f"task of the job array (set launcher.array_parallelism instead)")
    root, cells = run_table(table, args.seeds, args.scale, args.out or "runs", args.only, sets,
                            dry_run=args.dry_run, quiet=args.quiet, jobs=args.jobs, launcher=launcher,
                            wait=args.wait or not remote, status=args.status)
    if remote and not args.wait and not args.status and not args.dry_run:
        print("follow them by running this command again with --status; with --wait it blocks and writes the table")
        return 0
    if not args.dry_run and not args.status:
        from dfkd.io.checkpoint import atomic_write_text
        from dfkd.io.plots import plot_all

        pub = published_file(table)
        rows = collect([root], read_published(pub) if pub else None, order=cells)
        render = _renderer(rows, reference_file(table), cells)
        texts = {fmt: render(fmt) for fmt in ("markdown", "latex", "csv")}
        for fmt, ext in (("markdown", "md"), ("latex", "tex"), ("csv", "csv")):
            atomic_write_text(root / f"table.{ext}", texts[fmt].rstrip("\n") + "\n")
        plot_all(rows, root)
        from dfkd.io.wandb_files import log_table_run

        name = root.parent.name
        log_table_run(root, texts["csv"], [root / f for f in ("accuracy.png", "bars.png", "samples.png")],
                      group=f"{name}-{args.scale}", tags=[name, args.scale, "table"])
        print(texts[args.format])
        print(f"table and plots (table.md/.tex/.csv, accuracy.png, bars.png, samples.png) in {root}")
    return 0


def sync_command(args) -> int:
    import shlex
    import subprocess
    from pathlib import Path

    from dfkd.io.wandb_files import declare_inputs, pending_inputs, sync_commands, tag_outdated

    for run in args.runs:
        cmds = sync_commands(run)
        if not cmds:
            raise DfkdError(f"'{run}' holds no offline W&B run (wandb/offline-run-*); was it run with "
                            f"tracking.mode=offline?")
        for cmd in cmds:
            print(shlex.join(cmd), flush=True)
            if not args.dry_run and subprocess.run(cmd).returncode != 0:
                raise DfkdError(f"`{shlex.join(cmd)}` failed (see its output above); check `wandb login` and the "
                                f"network, then run dfkd sync again")
        if args.dry_run:  # what offline W&B could not link, declared after the upload
            for item in pending_inputs(run):
                print(f"then declare input {item['name']} (sha256 {item['sha256'][:12]})")
        else:
            for line in declare_inputs(run):
                print(line)
            if Path(run).resolve().parent.name == "outdated" and tag_outdated(run, uploaded=True):
                print(f"tagged {run} outdated in W&B")
    return 0


def _resolve_runs(args):
    """(run paths, row order, published file, folder for outputs, the authors' results file of a
    side-by-side table or None) from RUN_DIR|TABLE arguments."""
    from pathlib import Path

    from dfkd.tables.spec import read_table, table_name

    paths, order, pub_file, folder, ref_file = [], [], getattr(args, "published", None), None, None
    for item in args.runs:
        p = Path(item)
        if p.exists() and p.name != "table.yaml" and not (p / "table.yaml").is_file():
            paths.append(p)
            folder = folder or p
            continue
        try:
            path, spec = read_table(_with_variant(item, getattr(args, "variant", None)))  # a table name
        except DfkdError as e:
            raise DfkdError(f"'{item}' is not a run directory, and {e}") from None
        paths.append(Path(args.out) / table_name(path) / args.scale)
        folder = folder or paths[-1]
        order += [c.name or c.method for c in spec.cells]
        if pub_file is None and spec.published:
            pub_file = path.parent / spec.published
        if ref_file is None and spec.reference:
            ref_file = path.parent / spec.reference
    return paths, order, pub_file, folder, ref_file


def table_command(args) -> int:
    from dfkd.io.checkpoint import atomic_write_text
    from dfkd.tables.results import collect, read_published

    if not 0.0 <= args.alpha <= 1.0:
        raise DfkdError(f"--alpha must be in [0, 1], got {args.alpha}")
    if args.wandb:
        from dfkd.tables.results import wandb_summaries

        summaries = [s for group in args.runs for s in wandb_summaries(args.wandb, group)]
        paths, order, pub_file, ref_file = [], [], args.published, None
    else:
        summaries = None
        paths, order, pub_file, _, ref_file = _resolve_runs(args)
    published = read_published(pub_file) if pub_file else None
    text = _renderer(collect(paths, published, args.alpha, order, summaries), ref_file, order)(args.format)
    if args.output:
        atomic_write_text(args.output, text.rstrip("\n") + "\n")
        print(f"table: {args.output}")
    else:
        print(text)
    return 0


def plot_command(args) -> int:
    from dfkd.io.plots import plot_all
    from dfkd.tables.results import collect, read_published

    paths, order, pub_file, folder, _ = _resolve_runs(args)
    rows = collect(paths, read_published(pub_file) if pub_file else None, order=order)
    for p in plot_all(rows, args.to or folder):
        print(f"plot: {p}")
    return 0


def list_command(what: str) -> int:
    from dfkd.generators import SOURCES
    from dfkd.io.data import DATASETS
    from dfkd.methods.registry import METHODS
    from dfkd.models import model_names
    from dfkd.objective.terms import TERMS
    from dfkd.synthesis.schedule import SCHEDULES
    from dfkd.synthesis.views import VIEWS

    tables = {
        "methods": [(n, METHODS.get(n).summary + (f" [presets: {', '.join(METHODS.get(n).presets)}]"
                                                   if METHODS.get(n).presets else "")) for n in METHODS],
        "models": [(n, "") for n in model_names()],
        "datasets": [(n, DATASETS.get(n).doc) for n in DATASETS],
        "sources": [(n, (SOURCES.get(n).__doc__ or "").strip()) for n in SOURCES],
        "schedules": [(n, (SCHEDULES.get(n).__doc__ or "").strip().split("\n")[0]) for n in SCHEDULES],
        "terms": [(n, TERMS.get(n).doc + "".join(f"\n{'':<25}objective.params.{n}.{k} = {p.default!r}: {p.help}"
                                                 for k, p in TERMS.get(n).params.items())) for n in TERMS],
        "views": [(n, (VIEWS.get(n).__doc__ or "").strip()) for n in VIEWS],
    }
    for name, rows in tables.items():
        if what not in ("all", name):
            continue
        print(f"{name}:")
        for key, doc in rows:
            print(f"  {key:<22} {doc}".rstrip())
    return 0


def options_command(which: str) -> int:
    from dfkd.config.load import options
    from dfkd.config.schema import Config
    from dfkd.config.teacher import TeacherTrainConfig

    for key, tp, default, help_ in options(Config if which == "distill" else TeacherTrainConfig):
        print(f"{key:<28} {tp:<19} {default!s:<14} {help_}")
    return 0


def resolved_options_command(args) -> int:
    from dfkd.config.load import flatten, to_dict
    from dfkd.methods.configure import build_config

    if args.which != "distill":
        raise DfkdError("--method/--dataset/--config/--set resolve a distill config; drop 'train-teacher'")
    base = {"data": {"name": args.dataset}} if args.dataset else None
    cfg = build_config(args.config, args.sets, method=args.method, base=base, base_origin=f"--dataset {args.dataset}")
    flat = flatten(to_dict(cfg))
    width = max(len(k) for k in flat)
    for k, v in flat.items():
        print(f"{k:<{width}}  {str(v):<18} {cfg.provenance.get(k, 'default')}")
    if cfg.preset:
        print(f"{cfg.preset[0]}: {cfg.preset[1]}")
    return 0
