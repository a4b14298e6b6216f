"""Tables from run directories: one row per (method, dataset, teacher, student), statistics over seeds.

    rows = collect(["runs/a", "runs/b", ...])   # reads each RUN/summary.json (directories are searched)
    print(markdown(rows))
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path

from .errors import DfkdError

KEY = ("method", "dataset", "teacher", "student")


def find_summaries(paths) -> list[Path]:
    found = []
    for p in map(Path, paths):
        if p.is_file() and p.name == "summary.json":
            found.append(p)
        elif p.is_dir():
            found += sorted(q for q in p.rglob("summary.json") if "teachers" not in q.parts)
        else:
            raise DfkdError(f"'{p}' is neither a run directory nor a summary.json")
    if not found:
        raise DfkdError(f"no summary.json under {', '.join(map(str, paths))}; finished runs write one")
    return found


def _mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def collect(paths) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for f in find_summaries(paths):
        s = json.loads(f.read_text())
        if all(k in s for k in KEY):
            groups.setdefault(tuple(s[k] for k in KEY), []).append(s)
    rows = []
    for key, runs in sorted(groups.items()):
        row = dict(zip(KEY, key))
        row["seeds"] = sorted(r["seed"] for r in runs)
        row["student_acc"] = _mean_sd([r["student_acc"] for r in runs])
        row["best_student_acc"] = _mean_sd([r["best_student_acc"] for r in runs])
        row["teacher_acc"] = _mean_sd([r["teacher_acc"] for r in runs])
        row["wall_time_s"] = _mean_sd([r["wall_time_s"] for r in runs])
        rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    out = ["| method | dataset | teacher → student | teacher acc | student acc (final) | best | seeds | wall time / run |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        f = lambda ms: f"{ms[0]:.2f} ± {ms[1]:.2f}"  # noqa: E731
        out.append(f"| {r['method']} | {r['dataset']} | {r['teacher']} → {r['student']} | {r['teacher_acc'][0]:.2f} "
                   f"| {f(r['student_acc'])} | {f(r['best_student_acc'])} | {len(r['seeds'])} "
                   f"| {r['wall_time_s'][0]:.0f} s |")
    return "\n".join(out)
