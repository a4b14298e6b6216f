"""The benchmark script runs and prints well-formed results (its numbers are not asserted here)."""
import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"


def test_benchmark_prints_one_json_line_per_case_and_a_table(tmp_path):
    out = tmp_path / "r.jsonl"
    proc = subprocess.run([sys.executable, str(BENCH), "--cases", "dfad-digits", "fast2-digits", "--rounds", "1",
                           "--warmup", "0", "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert [r["case"] for r in rows] == ["dfad-digits", "fast2-digits"]
    for r in rows:
        assert r["framework_s_per_round"] > 0 and r["bare_s_per_round"] > 0
        assert abs(r["ratio"] - r["framework_s_per_round"] / r["bare_s_per_round"]) < 0.01
        assert set(r["peak_mem_mib"]) == {"framework", "bare"}
    assert [json.loads(line)["case"] for line in out.read_text().splitlines()] == ["dfad-digits", "fast2-digits"]
    assert "| dfad-digits | cpu | off |" in proc.stderr
