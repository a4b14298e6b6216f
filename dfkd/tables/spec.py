"""Experiment tables as files: where a table is (`locate`), what it holds (`TableSpec`: its cells,
scales, teachers, published and reference numbers; read strictly, unknown keys refused) and the
config of one (cell, scale, seed) run (`cell_config`). Running them is `dfkd.tables.experiment`.

A table is a folder `experiments/NAME/` holding `table.yaml` (schema: `TableSpec` below), the
config files its cells share and `published.yaml` (the published numbers, with their source).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dfkd.base.errors import DfkdError
from dfkd.base.registry import suggest
from dfkd.config.load import flatten, from_dict, read_yaml, to_dict
from dfkd.config.schema import Config


@dataclass
class AuthorsRun:
    """The same cell in its authors' code, for a side-by-side table: the repository and commit, and
    the command line their entry point runs with (the table's `authors.py` runs it; dfkd only
    records it). `patches` names the outright bugs the wrapper works around, each documented there."""
    repo: str = ""
    commit: str = ""
    args: str = ""
    entry: str = "datafree_kd.py"
    patches: list[str] | None = None
    doc: str = ""


@dataclass
class Cell:
    method: str
    name: str = ""  # default: the method name; unique within the table
    set: dict[str, Any] | None = None  # dotted config keys -> values, over the table's base config
    doc: str = ""
    scale_set: dict[str, dict[str, Any]] | None = None  # scale -> overrides applied after its caps
    authors: AuthorsRun | None = None  # side-by-side tables: the cell in the authors' code


@dataclass
class Scale:
    doc: str = ""
    set: dict[str, Any] | None = None  # dotted overrides for every cell at this scale
    max: dict[str, Any] | None = None  # caps: key -> largest value any cell may use at this scale
    teacher_set: dict[str, Any] | None = None  # dotted overrides for teacher training (train-teacher keys)
    standin: bool = False  # a dataset that is absent here is replaced by a generated stand-in (standin:NAME)


@dataclass
class TableSpec:
    doc: str = ""
    base: str | None = None  # a config file (relative to table.yaml) under every cell
    published: str | None = None  # published-results file (relative to table.yaml)
    reference: str | None = None  # side-by-side: the authors' code's results for the same cells (authors.py)
    seeds: int = 3
    cells: list[Cell] | None = None
    scales: dict[str, Scale] | None = None


# the tables shipped with dfkd: the repository's experiments/ (a checkout or an editable install), or
# the copy a wheel installs as dfkd/experiments
_PACKAGE = Path(__file__).resolve().parents[1]  # dfkd/ (this file is dfkd/tables/spec.py)
SHIPPED = [_PACKAGE.parent / "experiments", _PACKAGE / "experiments"]


def locate(table: str) -> Path:
    """table.yaml for a table name or path: the path itself, ./experiments/NAME, or the shipped one;
    `FOLDER/OTHER` names a second table of a folder, `FOLDER/OTHER.yaml` (e.g. cifar10_jpeg/side_by_side)."""
    p = Path(table)
    candidates = [p / "table.yaml" if p.is_dir() else p, Path("experiments") / table / "table.yaml",
                  *(root / table / "table.yaml" for root in SHIPPED), Path(f"{table}.yaml"),
                  Path("experiments") / f"{table}.yaml",
                  *(root / f"{table}.yaml" for root in SHIPPED)]
    for c in candidates:
        if c.is_file():
            return c
    known = sorted({q.parent.name for root in [Path("experiments"), *SHIPPED] for q in root.glob("*/table.yaml")})
    raise DfkdError(f"no table '{table}'{suggest(table, known)}; known tables: {', '.join(known) or 'none'} "
                    f"(a table is a folder with a table.yaml)")


def table_name(path: Path) -> str:
    """What a table's runs are filed under: its folder's name, `FOLDER-OTHER` for `FOLDER/OTHER.yaml`."""
    return path.parent.name if path.name == "table.yaml" else f"{path.parent.name}-{path.stem}"


def read_table(table: str) -> tuple[Path, TableSpec]:
    path = locate(table)
    spec = _strict(TableSpec, read_yaml(path), path)
    if not spec.cells:
        raise DfkdError(f"{path}: 'cells' is empty; list at least one {{method: NAME}}")
    names = [c.name or c.method for c in spec.cells]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DfkdError(f"{path}: cell names must be unique, '{dup[0]}' repeats; give the cells a 'name'")
    return path, spec


def _strict(cls, data: dict, path: Path):
    try:
        return from_dict(cls, data)
    except DfkdError as e:
        raise DfkdError(f"{path}: {e}") from None


def config_sets(d: dict | None) -> list[str]:
    """A nested dict of config values as `--set key=value` strings (values as JSON)."""
    import json

    return [f"{k}={json.dumps(v)}" for k, v in flatten(d).items()]


def cell_config(path: Path, spec: TableSpec, cell: Cell, scale: Scale, seed: int, extra=(),
                scale_name: str = "") -> Config:
    """The cell's config: recipe <- base file <- cell.set <- scale.set <- extra, then scale.max caps,
    then the cell's own overrides at this scale (`scale_set`, e.g. a reference row that keeps its budget)."""
    from dfkd.methods.configure import build_config

    base = str(path.parent / spec.base) if spec.base else None
    sets = [*config_sets(cell.set), *config_sets(scale.set), *extra, f"seed={seed}"]
    origin = f"table {table_name(path)}:"
    cfg = build_config(base, sets, method=cell.method, set_origin=origin)
    flat = flatten(to_dict(cfg))
    caps = []
    for key, cap in (scale.max or {}).items():
        if key not in flat:
            raise DfkdError(f"{path}: scale cap '{key}' is not a config key{suggest(key, flat)}")
        if isinstance(flat[key], (int, float)) and flat[key] > cap:
            caps.append(f"{key}={cap}")
    own = config_sets((cell.scale_set or {}).get(scale_name, {}))
    return build_config(base, sets + caps + own, method=cell.method, set_origin=origin) if caps or own else cfg


def published_file(table: str) -> Path | None:
    path, spec = read_table(table)
    return path.parent / spec.published if spec.published else None


def reference_file(table: str) -> Path | None:
    """A side-by-side table's file of the authors' results, or None."""
    path, spec = read_table(table)
    return path.parent / spec.reference if spec.reference else None
