import json
import statistics

import pytest

from dfkd.errors import DfkdError
from dfkd.tables import collect, markdown


def _run(root, name, method, seed, acc):
    d = root / name
    d.mkdir()
    (d / "summary.json").write_text(json.dumps({
        "method": method, "dataset": "digits", "teacher": "cnn", "student": "cnn_small", "seed": seed,
        "teacher_acc": 99.0, "student_acc": acc, "best_student_acc": acc + 1, "wall_time_s": 10.0}))


def test_groups_by_cell_and_reports_mean_and_sample_sd(tmp_path):
    for seed, acc in enumerate([90.0, 92.0, 97.0]):
        _run(tmp_path, f"a{seed}", "dfq", seed, acc)
    _run(tmp_path, "b0", "dfad", 0, 40.0)
    rows = collect([tmp_path])
    assert [r["method"] for r in rows] == ["dfad", "dfq"]
    mean, sd = rows[1]["student_acc"]
    assert mean == pytest.approx(93.0) and sd == pytest.approx(statistics.stdev([90.0, 92.0, 97.0]))
    assert sd == pytest.approx(3.605551, abs=1e-6)  # sqrt(((−3)² + (−1)² + 4²) / 2) = sqrt(13)
    assert rows[0]["student_acc"] == (40.0, 0.0)
    table = markdown(rows)
    assert "| dfq | digits | cnn → cnn_small | 99.00 | 93.00 ± 3.61 | 94.00 ± 3.61 | 3 | 10 s |" in table


def test_no_runs_is_a_clear_error(tmp_path):
    with pytest.raises(DfkdError, match="no summary.json"):
        collect([tmp_path])
    with pytest.raises(DfkdError, match="neither a run directory"):
        collect([tmp_path / "nope"])
