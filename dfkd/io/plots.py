"""Figures of a table (matplotlib's object API: no pyplot state, no global backend switch, so inline
plots in a notebook are left alone; PNG written atomically):

- `accuracy_curves(rows, path)`: student test accuracy over rounds, mean ± sd over seeds, one line per row;
- `bar_chart(rows, path)`: final student accuracy per row (mean, sd error bars), the published value as a
  marker and the teacher's accuracy as a dashed line;
- `sample_grids(rows, path)`: the last synthesized-sample grid (`samples.png`) of each row's first seed.

`rows` are `dfkd.tables.results.collect` rows. `plot_all(rows, folder)` writes accuracy.png, bars.png and samples.png.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def _figure(**kw):
    """A stand-alone Figure (rendered by Agg when saved)."""
    from matplotlib.figure import Figure

    return Figure(**kw)


def _save(fig, path: Path) -> Path:
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.png")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    tmp.replace(path)
    return path


def _title(rows: list[dict]) -> str:
    pairs = sorted({f"{r['dataset']}: {r['teacher']} → {r['student']}" for r in rows})
    return "; ".join(pairs)


def accuracy_curves(rows: list[dict], path) -> Path:
    fig = _figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for r in rows:
        curves = [c for c in r["curves"] if c]
        if not curves:
            continue
        n = min(len(c) for c in curves)  # seeds share their evaluation rounds
        rounds = np.array([curves[0][i][0] for i in range(n)])
        acc = np.array([[c[i][1] for i in range(n)] for c in curves])
        mean = acc.mean(0)
        sd = acc.std(0, ddof=1) if len(acc) > 1 else np.zeros(n)
        line, = ax.plot(rounds, mean, label=f"{r['label']} ({len(curves)} seeds)")
        ax.fill_between(rounds, mean - sd, mean + sd, color=line.get_color(), alpha=0.2)
    ax.set(xlabel="round", ylabel="student test accuracy (%)", title=_title(rows), ylim=(0, 100))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def bar_chart(rows: list[dict], path) -> Path:
    fig = _figure(figsize=(max(5, 0.8 * len(rows) + 2), 4.5))
    ax = fig.subplots()
    x = np.arange(len(rows))
    ax.bar(x, [r["student_acc"][0] for r in rows], yerr=[r["student_acc"][1] for r in rows], capsize=3,
           color="tab:blue", label="ours (mean ± sd)")
    pub = [(i, r["published"]) for i, r in enumerate(rows) if r.get("published") is not None]
    if pub:
        ax.scatter(*zip(*pub), marker="D", color="tab:red", zorder=3, label="published")
    scored = [r["teacher_acc"][0] for r in rows if r.get("teacher_acc")]
    if scored:  # runs without labelled data have no teacher accuracy
        teacher = max(scored)
        ax.axhline(teacher, ls="--", color="gray", label=f"teacher ({teacher:.2f}%)")
    ax.set_xticks(x, [r["label"] for r in rows], rotation=30, ha="right")
    ax.set(ylabel="student test accuracy (%)", title=_title(rows), ylim=(0, 100))
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def sample_grids(rows: list[dict], path) -> Path | None:
    from matplotlib.image import imread

    found = [(r["label"], Path(r["run_dirs"][0]) / "samples.png") for r in rows]
    found = [(label, p) for label, p in found if p.is_file()]
    if not found:
        return None
    cols = min(4, len(found))
    nrows = -(-len(found) // cols)
    fig = _figure(figsize=(3 * cols, 3.2 * nrows))
    axes = fig.subplots(nrows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (label, p) in zip(axes.flat, found):
        ax.imshow(imread(p))
        ax.set_title(label, fontsize=10)
    return _save(fig, path)


def plot_all(rows: list[dict], folder) -> list[Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = [accuracy_curves(rows, folder / "accuracy.png"), bar_chart(rows, folder / "bars.png")]
    grids = sample_grids(rows, folder / "samples.png")
    return out + ([grids] if grids else [])
