"""The benchmark script runs and prints well-formed results (its timings are not asserted here), each
allocator setting really is in force in its worker, and the floor carries none of the framework's hooks."""
import json
import subprocess
import sys
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"


def test_benchmark_prints_one_json_line_per_case_and_allocator_and_the_tables(tmp_path):
    out = tmp_path / "r.jsonl"
    proc = subprocess.run([sys.executable, str(BENCH), "--cases", "dfad-digits", "--rounds", "1",
                           "--warmup", "0", "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert [(r["case"], r["memory"]) for r in rows] == [("dfad-digits", "fast"), ("dfad-digits", "glibc")]
    for r in rows:
        assert r["framework_s_per_round"] > 0 and r["bare_s_per_round"] > 0
        assert abs(r["ratio"] - r["framework_s_per_round"] / r["bare_s_per_round"]) < 0.01
        assert set(r["peak_mem_mib"]) == {"framework", "bare"}
        if r["memory"] == "glibc":
            assert r["memory_state"] == "glibc defaults (untouched)"
        elif not r["memory_state"].startswith("n/a"):  # glibc: the worker keeps a 16 MiB block in its heap
            assert r["memory_state"] == "fast" and r["large_blocks_mapped"] is False
    assert len(out.read_text().splitlines()) == 2
    assert "| dfad-digits | cpu | off | fast |" in proc.stderr and "| dfad-digits | cpu | off | glibc |" in proc.stderr
    assert "fast memory speed-up" in proc.stderr


def test_the_floor_runs_none_of_the_framework_hooks(tmp_path):
    sys.path.insert(0, str(BENCH.parent))
    try:
        import bench
    finally:
        sys.path.remove(str(BENCH.parent))
    _, cfg, nets = bench.framework_loop(bench.CASES["dfad-digits"], torch.device("cpu"), "off", tmp_path)

    def hooks(m):
        return sum(len(v) for x in m.modules() for k, v in vars(x).items()
                   if k.startswith("_") and "hooks" in k and isinstance(v, dict))

    assert hooks(nets[0]) > 0  # the framework probes the teacher's BN layers ...
    plain = [bench.plain_copy(m) for m in nets]
    assert [hooks(m) for m in plain] == [0, 0, 0]  # ... the floor does not
    for a, b in zip(nets, plain):  # the very same weights
        assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    x = torch.randn(4, 1, 16, 16)
    assert torch.equal(nets[0](x), plain[0](x))
