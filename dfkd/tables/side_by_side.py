"""Side-by-side tables: each cell's dfkd runs beside the same cell run in its authors' code.

A side-by-side table (`experiments/cifar10_jpeg/side_by_side.yaml`) names, per cell, the authors'
repository, commit and command line (`authors:`), and a `reference:` file of what that code gave,
one entry per (cell, seed), written by the table's `authors.py`:

    runs:
      - {cell: fast2, seed: 0, final: 17.9, best: 18.2, wall_s: 553.0, synth_s: 120.4,
         curve: [[0, 10.0], ...], repo: zju-vipa/Fast-Datafree, commit: 0dcecbc..., command: ..., date: ...}

`rows(dfkd_rows, reference)` pairs them by cell (a dfkd row's label); `render(rows, fmt)` prints per
cell: the authors' and dfkd's final and best accuracy and their last-quarter mean (mean ± sd over
seeds), dfkd minus authors, and both codes' wall and synthesis time per run.

The last-quarter mean (`tail`) is each run's accuracy averaged over the last quarter of its
evaluations (at least one), then averaged over seeds: at a reduced budget one evaluation swings by
several points from epoch to epoch, the final one is a single draw of that noise and the best one
is biased upward by it; the tail is the steadier statistic to compare two codes by.
"""
from __future__ import annotations

import csv
import io

from dfkd.base.errors import DfkdError
from dfkd.tables.results import mean_sd, read_yaml_list

NEEDED = ("cell", "seed", "final", "best", "wall_s")


def read_reference(path) -> dict[str, list[dict]]:
    """The authors' results file: cell -> its runs (sorted by seed)."""
    runs = read_yaml_list(path, "runs", "authors' results file",
                          "; record runs into it with the table's authors.py --record")
    out: dict[str, list[dict]] = {}
    for i, r in enumerate(runs):
        if not isinstance(r, dict) or not all(k in r for k in NEEDED):
            raise DfkdError(f"{path}: run {i} needs {', '.join(NEEDED)}")
        out.setdefault(str(r["cell"]), []).append(r)
    return {c: sorted(rs, key=lambda r: r["seed"]) for c, rs in out.items()}


def _ms(values: list[float]) -> tuple[float, float] | None:
    return mean_sd(values) if values else None


def tail_mean(curve: list) -> float | None:
    """Mean accuracy over the last quarter of a run's evaluations ([[round, acc], ...]; at least one)."""
    accs = [float(a) for _, a in curve]
    if not accs:
        return None
    k = max(1, len(accs) // 4)
    return sum(accs[-k:]) / k


def _tails(curves: list) -> tuple[float, float] | None:
    values = [tail_mean(c or []) for c in curves]
    return None if any(v is None for v in values) else _ms(values)


def rows(dfkd_rows: list[dict], reference: dict[str, list[dict]], order: list[str] | None = None) -> list[dict]:
    """One row per cell that either code ran, in `order` (cell names) where given."""
    ours = {r["label"]: r for r in dfkd_rows}
    cells = list(order or []) + sorted((set(ours) | set(reference)) - set(order or []))
    out = []
    for cell in cells:
        d, a = ours.get(cell), reference.get(cell, [])
        if d is None and not a:
            continue
        row = {"cell": cell, "dfkd_seeds": d["seeds"] if d else [], "authors_seeds": [r["seed"] for r in a],
               "authors_final": _ms([r["final"] for r in a]), "authors_best": _ms([r["best"] for r in a]),
               "authors_wall": _ms([r["wall_s"] for r in a]),
               "authors_synth": _ms([r["synth_s"] for r in a]) if all(r.get("synth_s") is not None for r in a)
               else None,
               "authors_tail": _tails([r.get("curve") for r in a]),
               "dfkd_final": d["student_acc"] if d else None, "dfkd_best": d["best_student_acc"] if d else None,
               "dfkd_tail": _tails(d.get("curves", [])) if d else None,
               "dfkd_wall": d["wall_time_s"] if d else None, "dfkd_synth": d["synth_time_s"] if d else None,
               "source": f"{a[0]['repo']}@{str(a[0]['commit'])[:7]}" if a else None}
        both = d is not None and a
        row["diff_final"] = d["student_acc"][0] - row["authors_final"][0] if both else None
        row["diff_best"] = d["best_student_acc"][0] - row["authors_best"][0] if both else None
        row["diff_tail"] = row["dfkd_tail"][0] - row["authors_tail"][0] \
            if both and row["dfkd_tail"] and row["authors_tail"] else None
        row["wall_ratio"] = d["wall_time_s"][0] / row["authors_wall"][0] if both and row["authors_wall"][0] else None
        out.append(row)
    return out


COLUMNS = ["cell", "seeds (authors / dfkd)", "authors final", "dfkd final", "diff final", "authors best",
           "dfkd best", "diff best", "authors last ¼", "dfkd last ¼", "diff last ¼", "authors wall", "dfkd wall",
           "wall dfkd/authors", "authors synthesis", "dfkd synthesis", "authors' code"]


def _cells(r: dict, pm: str, dash: str) -> list[str]:
    def ms(v, seeds):  # mean ± sd over seeds; one seed has no sd
        return dash if v is None else f"{v[0]:.2f}" + (f" {pm} {v[1]:.2f}" if len(seeds) > 1 else "")

    sec = lambda v: dash if v is None else f"{v[0]:.0f} s"  # noqa: E731
    opt = lambda v, f: dash if v is None else f.format(v)  # noqa: E731
    a, d = r["authors_seeds"], r["dfkd_seeds"]
    return [r["cell"], f"{len(a)} / {len(d)}", ms(r["authors_final"], a),
            ms(r["dfkd_final"], d), opt(r["diff_final"], "{:+.2f}"), ms(r["authors_best"], a), ms(r["dfkd_best"], d),
            opt(r["diff_best"], "{:+.2f}"), ms(r["authors_tail"], a), ms(r["dfkd_tail"], d),
            opt(r["diff_tail"], "{:+.2f}"), sec(r["authors_wall"]), sec(r["dfkd_wall"]),
            opt(r["wall_ratio"], "{:.2f}"), sec(r["authors_synth"]), sec(r["dfkd_synth"]), r["source"] or dash]


def markdown(table: list[dict]) -> str:
    out = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    return "\n".join(out + ["| " + " | ".join(_cells(r, "±", "—")) + " |" for r in table])


def latex(table: list[dict]) -> str:
    from dfkd.tables.results import latex_escape as esc

    out = [r"\begin{tabular}{l" + "r" * (len(COLUMNS) - 2) + "l}", r"\toprule",
           " & ".join(esc(c) for c in COLUMNS) + r" \\", r"\midrule"]
    out += [" & ".join(esc(c) for c in _cells(r, "±", "—")) + r" \\" for r in table]
    return "\n".join(out + [r"\bottomrule", r"\end{tabular}"])


def to_csv(table: list[dict]) -> str:
    """Plain numbers: means and sds of each side, the differences and the wall-time ratio."""
    pairs = ["authors_final", "dfkd_final", "authors_best", "dfkd_best", "authors_tail", "dfkd_tail",
             "authors_wall", "dfkd_wall", "authors_synth", "dfkd_synth"]
    fields = ["cell", "authors_seeds", "dfkd_seeds", *(f"{p}_{s}" for p in pairs for s in ("mean", "sd")),
              "diff_final", "diff_best", "diff_tail", "wall_ratio", "source"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for r in table:
        row = {"cell": r["cell"], "authors_seeds": len(r["authors_seeds"]), "dfkd_seeds": len(r["dfkd_seeds"]),
               "diff_final": r["diff_final"], "diff_best": r["diff_best"], "diff_tail": r["diff_tail"],
               "wall_ratio": r["wall_ratio"], "source": r["source"]}
        for p in pairs:
            row[f"{p}_mean"], row[f"{p}_sd"] = r[p] if r[p] is not None else (None, None)
        w.writerow(row)
    return buf.getvalue()


FORMATS = {"markdown": markdown, "latex": latex, "csv": to_csv}


def render(table: list[dict], fmt: str = "markdown") -> str:
    return FORMATS[fmt](table)
