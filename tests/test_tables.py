import csv
import io
import json
import statistics

import pytest
from scipy import stats

from dfkd.base.errors import DfkdError
from dfkd.cli.main import main
from dfkd.tables.results import collect, distillation_score, markdown, read_published, render, t_interval


def _run(root, name, method, seed, acc, **extra):
    d = root / name
    d.mkdir()
    (d / "summary.json").write_text(json.dumps({
        "method": method, "dataset": "digits", "teacher": "cnn", "student": "cnn_small", "seed": seed,
        "teacher_acc": 99.0, "student_acc": acc, "best_student_acc": acc + 1, "wall_time_s": 10.0,
        "teacher_params": 1000, "student_params": 100, **extra}))


def test_groups_by_cell_and_reports_mean_and_sample_sd(tmp_path):
    for seed, acc in enumerate([90.0, 92.0, 97.0]):
        _run(tmp_path, f"a{seed}", "dfq", seed, acc, synth_time_s=4.0)
    _run(tmp_path, "b0", "dfad", 0, 40.0)
    rows = collect([tmp_path])
    assert [r["method"] for r in rows] == ["dfad", "dfq"]
    mean, sd = rows[1]["student_acc"]
    assert mean == pytest.approx(93.0) and sd == pytest.approx(statistics.stdev([90.0, 92.0, 97.0]))
    assert sd == pytest.approx(3.605551, abs=1e-6)  # sqrt(((−3)² + (−1)² + 4²) / 2) = sqrt(13)
    # 95% t-interval, 2 degrees of freedom: t = 4.302653, half-width = t·sd/sqrt(3)
    assert rows[1]["ci95"] == pytest.approx(4.302653 * 3.605551 / 3 ** 0.5, rel=1e-5)
    assert rows[0]["student_acc"] == (40.0, 0.0) and rows[0]["ci95"] is None
    assert rows[0]["synth_time_s"] is None and rows[1]["synth_time_s"] == (4.0, 0.0)
    table = markdown(rows)
    assert "| dfq | digits | cnn → cnn_small | 99.00 | 93.00 ± 3.61 | ±8.96 | 94.00 ± 3.61 | — | — |" in table


def test_runs_under_teachers_and_outdated_are_not_cells_but_a_parent_so_named_is_fine(tmp_path):
    root = tmp_path / "teachers" / "table"  # a user's folder may be called so: only the parts under it count
    (root / "teachers").mkdir(parents=True)
    (root / "outdated").mkdir()
    _run(root, "dfq-s0", "dfq", 0, 90.0)
    _run(root / "outdated", "dfq-s1-20261123-085151", "dfq", 1, 50.0)
    _run(root / "teachers", "digits16-cnn-s0", "dfq", 0, 10.0)
    rows = collect([root])
    assert len(rows) == 1 and rows[0]["student_acc"] == (90.0, 0.0) and rows[0]["seeds"] == [0]


def test_t_interval_matches_scipy_and_needs_two_values():
    values = [1.0, 2.0, 4.0, 8.0]
    lo, hi = stats.t.interval(0.95, 3, loc=statistics.fmean(values), scale=stats.sem(values))
    assert t_interval(values) == pytest.approx((hi - lo) / 2)
    assert t_interval([5.0]) is None


def test_distillation_metric_matches_the_papers_worked_example():
    # Alkhulaifi et al. 2021: ResNet-44 teacher at 71.76%, a student with 15.25% of its parameters at 62.87%
    assert distillation_score(15.25, 100.0, 62.87, 71.76) == pytest.approx(0.1382, abs=5e-5)
    assert distillation_score(1, 1, 90, 90, alpha=0.0) == 0.0
    assert distillation_score(10, 100, 95, 90, alpha=0.0) < 0  # a student that beats its teacher


def test_published_values_give_the_difference_and_every_format_carries_it(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    for seed, acc in enumerate([97.0, 98.0]):
        _run(runs, f"r{seed}", "dfq", seed, acc)
    pub = tmp_path / "published.yaml"
    pub.write_text("cells:\n  - {method: dfq, dataset: digits, teacher: cnn, student: cnn_small, acc: 98.0,"
                   " source: 'made up, Table 1'}\n")
    rows = collect([runs], read_published(pub))
    # the published number is the authors' best epoch: compared with our best (97.5 + 1), not our final
    assert rows[0]["published"] == 98.0 and rows[0]["diff"] == pytest.approx(+0.5)
    assert rows[0]["student_acc"][0] == 97.5 and rows[0]["best_student_acc"][0] == 98.5
    # DS = 0.5·100/1000 + 0.5·(1 − 97.5/99)
    assert rows[0]["ds"] == pytest.approx(0.05 + 0.5 * (1 - 97.5 / 99))
    assert "| 98.00 | +0.50 |" in render(rows, "markdown") and "diff (best)" in render(rows, "markdown")
    tex = render(rows, "latex")
    assert tex.startswith(r"\begin{tabular}") and r"97.50 $\pm$ 0.71" in tex and r"cnn\_small" in tex
    (row,) = csv.DictReader(io.StringIO(render(rows, "csv")))
    assert float(row["student_acc_mean"]) == 97.5 and float(row["diff"]) == 0.5 and row["seeds"] == "2"


def test_cli_writes_the_table_atomically_and_rejects_bad_input(tmp_path, capsys):
    _run(tmp_path, "r0", "dfq", 0, 90.0)
    out = tmp_path / "t.csv"
    assert main(["table", str(tmp_path), "--format", "csv", "--output", str(out)]) == 0
    assert out.read_text().startswith("label,method,dataset,teacher,student,seeds")
    assert main(["table", str(tmp_path), "--published", str(tmp_path / "none.yaml")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["table", str(tmp_path), "--alpha", "2"]) == 2


def test_no_runs_is_a_clear_error(tmp_path):
    with pytest.raises(DfkdError, match="no summary.json"):
        collect([tmp_path])
    with pytest.raises(DfkdError, match="neither a run directory"):
        collect([tmp_path / "nope"])
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "summary.json").write_text("{trunc")
    with pytest.raises(DfkdError, match="not valid JSON"):
        collect([tmp_path])


def test_plots_of_fixture_runs(tmp_path):
    from PIL import Image

    from dfkd.io.plots import plot_all

    runs = tmp_path / "runs"
    runs.mkdir()
    for seed, acc in enumerate([60.0, 70.0]):
        _run(runs, f"r{seed}", "dfq", seed, acc, curve=[[10, acc / 2], [20, acc]])
    Image.new("RGB", (40, 40), "white").save(runs / "r0" / "samples.png")
    _run(runs, "n0", "noise", 0, 30.0, curve=[[10, 20.0], [20, 30.0]])
    rows = collect([runs])
    assert rows[0]["curves"] == [[[10, 30.0], [20, 60.0]], [[10, 35.0], [20, 70.0]]]
    written = plot_all(rows, tmp_path / "figs")
    assert [p.name for p in written] == ["accuracy.png", "bars.png", "samples.png"]
    for p in written:
        with Image.open(p) as im:
            assert im.format == "PNG" and im.size[0] > 300
    assert main(["plot", str(runs), "--to", str(tmp_path / "cli")]) == 0
    assert (tmp_path / "cli" / "bars.png").is_file()


def test_table_from_wandb_runs_uses_the_same_statistics():
    from types import SimpleNamespace

    from dfkd.tables.results import wandb_summaries

    class FakeApi:  # stands in for wandb.Api(): runs(path, filters) -> objects with .summary
        def runs(self, path, filters=None):
            assert path == "me/dfkd" and filters == {"group": "digits-paper"}
            base = {"method": "dfq", "dataset": "digits", "teacher": "cnn", "student": "cnn_small",
                    "teacher_acc": 99.0, "wall_time_s": 5.0}
            return [SimpleNamespace(id=f"r{i}", summary={**base, "seed": i, "student_acc": a})
                    for i, a in enumerate([90.0, 94.0])] + [SimpleNamespace(id="x", summary={"loss": 1})]

    summaries = wandb_summaries("me/dfkd", "digits-paper", api=FakeApi())
    (row,) = collect([], summaries=summaries)
    assert row["student_acc"] == (92.0, pytest.approx(2 ** 0.5 * 2)) and row["seeds"] == [0, 1]
    with pytest.raises(DfkdError, match="no finished dfkd runs"):
        wandb_summaries("me/dfkd", "digits-paper", api=SimpleNamespace(runs=lambda p, filters=None: []))


def test_robust_accuracy_gets_its_own_column_when_runs_report_it(tmp_path):
    _run(tmp_path, "k0", "kd", 0, 98.0)
    _run(tmp_path, "r0", "rslad", 0, 95.0, robust_acc=60.0)
    _run(tmp_path, "r1", "rslad", 1, 93.0, robust_acc=70.0)
    rows = collect([tmp_path])
    assert rows[0]["robust_acc"] is None and rows[1]["robust_acc"] == pytest.approx((65.0, 7.0710678))
    table = markdown(rows)
    assert table.splitlines()[0].endswith("| robust acc |")
    assert table.splitlines()[3].endswith("| 65.00 ± 7.07 |") and table.splitlines()[2].endswith("| — |")
    assert "robust acc" not in markdown(rows[:1])  # no robust run, no column
    assert next(csv.DictReader(io.StringIO(render(rows, "csv"))))["robust_acc_mean"] == ""


def test_a_black_box_teachers_queries_get_their_own_column(tmp_path):
    _run(tmp_path, "d0", "dfad", 0, 60.0, teacher_queries=900, teacher_black_box=False)  # counted, not a black box
    _run(tmp_path, "m0", "dfme", 0, 50.0, teacher_queries=179200, teacher_black_box=True)
    _run(tmp_path, "m1", "dfme", 1, 52.0, teacher_queries=179202, teacher_black_box=True)
    rows = collect([tmp_path])
    assert [r["teacher_queries"] for r in rows] == [None, 179201]
    lines = markdown(rows).splitlines()
    assert lines[0].endswith("| teacher queries |") and lines[2].endswith("| — |")
    assert lines[3].endswith("| 179,201 |")
    assert "teacher queries" not in markdown(rows[:1])
    assert [r["teacher_queries"] for r in csv.DictReader(io.StringIO(render(rows, "csv")))] == ["", "179201"]


def test_a_teacher_at_zero_accuracy_leaves_ds_undefined_instead_of_failing(tmp_path):
    _run(tmp_path, "z0", "kd", 0, 1.0, teacher_acc=0.0)
    assert collect([tmp_path])[0]["ds"] is None


def test_latex_escapes_every_special_character_of_a_label():
    from dfkd.tables.results import latex_escape

    assert latex_escape("a&b %c $d #e _f {g} ~h ^i \\j") == (
        r"a\&b \%c \$d \#e \_f \{g\} \textasciitilde{}h \textasciicircum{}i \textbackslash{}j")
    assert latex_escape("cnn → cnn_small: 97.50 ± 0.71, —") == r"cnn $\to$ cnn\_small: 97.50 $\pm$ 0.71, --"


def test_plots_leave_the_matplotlib_backend_alone(tmp_path):
    import subprocess
    import sys

    code = ("import matplotlib; matplotlib.use('svg'); from dfkd.io.plots import bar_chart; "
            "from pathlib import Path; import sys; "
            "rows = [dict(label='a', dataset='d', teacher='t', student='s', student_acc=(90.0, 1.0), "
            "teacher_acc=(99.0, 0.0), published=None, curves=[], run_dirs=[])]; "
            "p = bar_chart(rows, Path(sys.argv[1]) / 'bars.png'); "
            "print(matplotlib.get_backend(), p.read_bytes()[:4] == b'\\x89PNG')")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["svg", "True"]  # a notebook's backend stays; the PNG is still written
