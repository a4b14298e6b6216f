"""Tables from run directories: one row per cell (method, dataset, teacher, student), statistics over seeds.

    rows = collect(["runs/a", "runs/b"], published=read_published("experiments/x/published.yaml"))
    print(render(rows, "markdown"))      # or "latex", "csv"

Per cell: student accuracy mean ± sample sd over seeds and the half-width of its 95% Student-t
interval (scipy.stats.t, n − 1 degrees of freedom; none for a single seed), the published value (the
authors' best epoch) and the difference of our best to it, wall-clock synthesis time, and the distillation metric of Alkhulaifi,
Alsahli, Ahmad, "Knowledge distillation in deep learning and its applications", PeerJ CS 2021
(arXiv:2007.09029):

    DS = α·(student_params / teacher_params) + (1 − α)·(1 − student_acc / teacher_acc)

lower is better (0 ideal, negative when the student beats the teacher), α = 0.5 by default.
"""
from __future__ import annotations

import csv
import io
import json
import math
import statistics
from pathlib import Path

import yaml

from dfkd.base.errors import DfkdError

KEY = ("method", "dataset", "teacher", "student")  # a published cell
ROW = ("label", "dataset", "teacher", "student")  # a row: runs with one label (default: method) and pair


def distillation_score(student_params: float, teacher_params: float, student_acc: float, teacher_acc: float,
                       alpha: float = 0.5) -> float:
    """Alkhulaifi et al. (2021): α·size ratio + (1 − α)·(1 − accuracy ratio); lower is better."""
    if teacher_params <= 0 or teacher_acc <= 0:
        raise ValueError("teacher_params and teacher_acc must be positive")
    return alpha * student_params / teacher_params + (1 - alpha) * (1 - student_acc / teacher_acc)


def t_interval(values: list[float], confidence: float = 0.95) -> float | None:
    """Half-width of the Student-t confidence interval of the mean (None for fewer than 2 values)."""
    from scipy import stats

    n = len(values)
    if n < 2:
        return None
    return float(stats.t.ppf(0.5 + confidence / 2, n - 1) * statistics.stdev(values) / math.sqrt(n))


# Folders under a table's run folder that hold no cell's runs: its teachers, and the runs the
# experiment runner set aside because the table changed after they finished.
NOT_CELLS = ("teachers", "outdated")


def find_summaries(paths) -> list[Path]:
    """Every summary.json named in `paths` or under them, except under their `NOT_CELLS` folders."""
    found = []
    for p in map(Path, paths):
        if p.is_file() and p.name == "summary.json":
            found.append(p)
        elif p.is_dir():
            found += sorted(q for q in p.rglob("summary.json")
                            if not any(part in NOT_CELLS for part in q.relative_to(p).parts))
        else:
            raise DfkdError(f"'{p}' is neither a run directory nor a summary.json")
    if not found:
        raise DfkdError(f"no summary.json under {', '.join(map(str, paths))}; finished runs write one")
    return found


def read_yaml_list(path, key: str, what: str, missing: str = "") -> list:
    """The list under `key` of the YAML file `path` (`what` names the file in errors; `missing` is
    added to the not-found one)."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise DfkdError(f"{what} '{path}' not found{missing}") from None
    except yaml.YAMLError as e:
        raise DfkdError(f"{what} '{path}' is not valid YAML ({type(e).__name__})") from None
    items = data.get(key) if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise DfkdError(f"{what} '{path}' needs a list under '{key}:'")
    return items


def read_published(path) -> dict[tuple, dict]:
    """A published-results file: YAML with `cells:`, a list of {method, dataset, teacher, student,
    acc, source} (source: paper and table, or the authors' README)."""
    cells = read_yaml_list(path, "cells", "published-results file")
    out = {}
    for i, c in enumerate(cells):
        if not isinstance(c, dict) or not all(k in c for k in (*KEY, "acc")):
            raise DfkdError(f"{path}: cell {i} needs method, dataset, teacher, student and acc")
        out[tuple(c[k] for k in KEY)] = c
    return out


def _score(run: dict, best: bool = False) -> float:
    """A run's student accuracy, or, for a run without labelled data, its teacher-student agreement."""
    if run.get("student_acc") is not None:
        return run.get("best_student_acc", run["student_acc"]) if best else run["student_acc"]
    return run.get("best_agreement", run.get("agreement", 0.0)) if best else run.get("agreement", 0.0)


def mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def load_summaries(paths) -> list[dict]:
    """Every run's summary.json under `paths`, with its `run_dir`."""
    out = []
    for f in find_summaries(paths):
        try:
            s = json.loads(f.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise DfkdError(f"{f} is not valid JSON; delete that run directory or re-run it") from None
        if isinstance(s, dict):
            out.append({**s, "run_dir": str(f.parent)})
    return out


def wandb_summaries(project: str, group: str | None = None, api=None) -> list[dict]:
    """Run summaries read back from W&B (`ENTITY/PROJECT`, optionally one group); needs network and
    a login. Only finished dfkd runs (their summary has the cell keys) are kept."""
    if api is None:
        try:
            import wandb

            api = wandb.Api(timeout=30)
        except Exception as e:  # no login, no network, bad settings
            raise DfkdError(f"cannot reach W&B ({type(e).__name__}: {e}); run `wandb login`, or read "
                            f"the run directories instead") from None
    try:
        runs = api.runs(project, filters={"group": group} if group else None)
        summaries = [{**dict(r.summary), "run_dir": getattr(r, "url", r.id)} for r in runs
                     if "outdated" not in (getattr(r, "tags", None) or [])]  # moved aside by the runner
    except Exception as e:
        raise DfkdError(f"reading W&B project '{project}' failed ({type(e).__name__}: {e})") from None
    summaries = [s for s in summaries if all(k in s for k in (*KEY, "student_acc", "seed"))]
    if not summaries:
        raise DfkdError(f"no finished dfkd runs in W&B project '{project}'" + (f", group '{group}'" if group else ""))
    return summaries


def collect(paths, published: dict[tuple, dict] | None = None, alpha: float = 0.5,
            order: list[str] | None = None, summaries: list[dict] | None = None) -> list[dict]:
    """One row per (label, dataset, teacher, student) from the runs under `paths` (or the given
    `summaries`); rows follow `order` (labels) where given, then sorted. A row takes the published
    value of its label, else of its method."""
    groups: dict[tuple, list[dict]] = {}
    for s in summaries if summaries is not None else load_summaries(paths):
        if all(k in s for k in KEY):
            s.setdefault("label", s["method"])
            groups.setdefault(tuple(s[k] for k in ROW), []).append(s)
    rank = {label: i for i, label in enumerate(order or [])}
    rows = []
    for key, runs in sorted(groups.items(), key=lambda kv: (rank.get(kv[0][0], len(rank)), kv[0])):
        agreement = all(r.get("student_acc") is None for r in runs)  # runs without labelled data
        accs = [_score(r) for r in runs]
        row = dict(zip(ROW, key))
        row["method"] = runs[0]["method"]
        runs.sort(key=lambda r: r["seed"])
        row["seeds"] = [r["seed"] for r in runs]
        row["run_dirs"] = [r["run_dir"] for r in runs]
        row["curves"] = [r.get("curve", []) for r in runs]  # [[round, acc], ...] per seed
        row["student_acc"] = mean_sd(accs)
        row["ci95"] = t_interval(accs)
        row["scored_on"] = "agreement" if agreement else "accuracy"
        row["best_student_acc"] = mean_sd([_score(r, best=True) for r in runs])
        teacher = [r["teacher_acc"] for r in runs if r.get("teacher_acc") is not None]
        row["teacher_acc"] = mean_sd(teacher) if teacher else None
        row["wall_time_s"] = mean_sd([r["wall_time_s"] for r in runs])
        synth = [r["synth_time_s"] for r in runs if "synth_time_s" in r]
        row["synth_time_s"] = mean_sd(synth) if len(synth) == len(runs) else None
        robust = [r["robust_acc"] for r in runs if "robust_acc" in r]
        row["robust_acc"] = mean_sd(robust) if robust and len(robust) == len(runs) else None
        # a black-box teacher's runs: the samples it answered (DFME's query budget)
        queries = [r["teacher_queries"] for r in runs if r.get("teacher_black_box") and "teacher_queries" in r]
        row["teacher_queries"] = round(sum(queries) / len(queries)) if queries and len(queries) == len(runs) else None
        row["ds"] = None
        if all(k in runs[0] for k in ("student_params", "teacher_params")) and not agreement \
                and row["teacher_acc"] and row["teacher_acc"][0] > 0 and runs[0]["teacher_params"] > 0:  # DS is undefined for a teacher at 0% (e.g. a smoke run)
            row["ds"] = distillation_score(runs[0]["student_params"], runs[0]["teacher_params"],
                                           row["student_acc"][0], row["teacher_acc"][0], alpha)
        pub = (published or {}).get(key) or (published or {}).get((row["method"], *key[1:]))
        row["published"] = pub["acc"] if pub else None
        row["published_source"] = pub.get("source") if pub else None
        # the published numbers are the authors' best epoch (they log every epoch and keep the best):
        # compared with our best, the final accuracy shown beside it
        row["diff"] = row["best_student_acc"][0] - pub["acc"] if pub else None
        rows.append(row)
    return rows


COLUMNS = ["method", "dataset", "teacher → student", "teacher acc", "student acc", "95% CI", "best",
           "published", "diff (best)", "DS", "seeds", "synthesis time", "wall time"]


def _columns(rows: list[dict]) -> list[str]:
    """COLUMNS, plus PGD robust accuracy when some row has it (robust distillation), plus the teacher's
    queries when some row's teacher is a black box (teacher.black_box)."""
    return COLUMNS + (["robust acc"] if any(r.get("robust_acc") for r in rows) else []) \
        + (["teacher queries"] if any(r.get("teacher_queries") for r in rows) else [])


def _cells(r: dict, pm: str, dash: str, cols: list[str]) -> list[str]:
    ms = lambda v: f"{v[0]:.2f} {pm} {v[1]:.2f}"  # noqa: E731
    opt = lambda v, f: dash if v is None else f.format(v)  # noqa: E731
    extra = [dash if not r.get("robust_acc") else ms(r["robust_acc"])] if "robust acc" in cols else []
    extra += [opt(r.get("teacher_queries"), "{:,}")] if "teacher queries" in cols else []
    teacher = dash if r["teacher_acc"] is None else f"{r['teacher_acc'][0]:.2f}"
    student = ms(r["student_acc"]) + (" (agreement)" if r.get("scored_on") == "agreement" else "")
    return [r["label"], r["dataset"], f"{r['teacher']} → {r['student']}", teacher,
            student, opt(r["ci95"], pm + "{:.2f}"), ms(r["best_student_acc"]),
            opt(r["published"], "{:.2f}"), opt(r["diff"], "{:+.2f}"), opt(r["ds"], "{:.4f}"),
            str(len(r["seeds"])), dash if r["synth_time_s"] is None else f"{r['synth_time_s'][0]:.0f} s",
            f"{r['wall_time_s'][0]:.0f} s", *extra]


def markdown(rows: list[dict]) -> str:
    cols = _columns(rows)
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(_cells(r, "±", "—", cols)) + " |" for r in rows]
    return "\n".join(out)


LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                 "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "→": r"$\to$",
                 "±": r"$\pm$", "—": "--"}


def latex_escape(text: str) -> str:
    """Text as LaTeX prints it: & % $ # _ { } ~ ^ and backslash escaped; → ± — as LaTeX writes them."""
    return "".join(LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def latex(rows: list[dict]) -> str:
    esc = latex_escape
    cols = _columns(rows)
    out = [r"\begin{tabular}{" + "l" * 3 + "r" * (len(cols) - 3) + "}", r"\toprule",
           " & ".join(esc(c) for c in cols) + r" \\", r"\midrule"]
    out += [" & ".join(esc(c) for c in _cells(r, "±", "—", cols)) + r" \\" for r in rows]
    out += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(out)


def to_csv(rows: list[dict]) -> str:
    """One row per cell, plain numbers (no ± strings) for spreadsheets and plotting."""
    fields = ["label", *KEY, "seeds", "teacher_acc", "student_acc_mean", "student_acc_sd", "ci95", "best_mean",
              "best_sd", "published", "diff", "ds", "synth_time_s", "wall_time_s", "robust_acc_mean", "robust_acc_sd",
              "published_source", "teacher_queries"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({**{k: r[k] for k in ("label", *KEY)}, "seeds": len(r["seeds"]),
                    "teacher_acc": r["teacher_acc"][0] if r["teacher_acc"] else None,
                    "student_acc_mean": r["student_acc"][0], "student_acc_sd": r["student_acc"][1],
                    "ci95": r["ci95"], "best_mean": r["best_student_acc"][0], "best_sd": r["best_student_acc"][1],
                    "published": r["published"], "diff": r["diff"], "ds": r["ds"],
                    "synth_time_s": r["synth_time_s"][0] if r["synth_time_s"] else None,
                    "wall_time_s": r["wall_time_s"][0], "published_source": r["published_source"],
                    "robust_acc_mean": r["robust_acc"][0] if r.get("robust_acc") else None,
                    "robust_acc_sd": r["robust_acc"][1] if r.get("robust_acc") else None,
                    "teacher_queries": r.get("teacher_queries")})
    return buf.getvalue()


FORMATS = {"markdown": markdown, "latex": latex, "csv": to_csv}


def render(rows: list[dict], fmt: str = "markdown") -> str:
    return FORMATS[fmt](rows)
