"""Fast CPU memory (dfkd/run/memory.py): observed through glibc's own count of mapped blocks."""
import json
import os
import platform
import subprocess
import sys

import pytest

glibc = pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                           reason="fast CPU memory is glibc's mallopt")


def _py(code: str, **env) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **env})
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


@glibc
def test_fast_memory_keeps_a_large_block_in_the_heap_and_the_opt_out_leaves_glibc_alone():
    code = "from dfkd.run import memory; s = memory.apply(); print(s, memory.large_blocks_are_mapped())"
    assert _py(code) == ["fast", "False"]  # a fresh process: glibc would map a 16 MiB block; fast memory does not
    assert _py(code, DFKD_FAST_MEMORY="0") == ["system", "True"]  # untouched: glibc's default maps it
    # switched off after being on (a notebook): back to glibc's starting threshold
    assert _py("from dfkd.run import memory; memory.apply(); s = memory.apply(False); "
               "print(s, memory.large_blocks_are_mapped())") == ["system", "True"]


@glibc
def test_a_cli_run_applies_it_and_both_switches_turn_it_off(digits_teacher, tmp_path):
    def start(name, *extra, **env):  # each in a process of its own (the allocator's state is per process)
        sets = [f"teacher.checkpoint={digits_teacher}", f"out={tmp_path}", f"run_name={name}", "distill.rounds=1",
                "synth.batch_size=8", "source.width=8", "tracking.mode=disabled", "device=cpu", *extra]
        return subprocess.Popen([sys.executable, "-m", "dfkd", "distill", "--method", "dfq", "--quiet",
                                 *[a for s in sets for a in ("--set", s)]], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, env={**os.environ, **env})

    def result(name, proc):
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        return json.loads((tmp_path / name / "summary.json").read_text())["cpu_memory"]

    # the three at once: most of each is the process's start-up
    procs = {"fast": start("fast"), "by-env": start("by-env", DFKD_FAST_MEMORY="0"),
             "by-key": start("by-key", "perf.fast_memory=false")}
    assert result("fast", procs["fast"]) == {"state": "fast", "large_blocks_mapped": False}
    # off: glibc's own adaptive threshold decides (it rises once such a block has been freed)
    assert result("by-env", procs["by-env"])["state"] == "system"
    assert result("by-key", procs["by-key"])["state"] == "system"


def test_without_glibc_it_is_a_no_op_said_once(monkeypatch, capsys):
    from dfkd.run import memory

    monkeypatch.setattr(memory, "_libc", None)
    monkeypatch.setattr(memory, "_noted", False)
    monkeypatch.setattr(memory.platform, "libc_ver", lambda: ("", ""))
    monkeypatch.setattr(memory, "_state", None)
    first, second = memory.apply(), memory.apply()
    assert first.startswith("n/a") and second == first
    assert capsys.readouterr().err.count("dfkd: note: fast CPU memory needs glibc") == 1
    assert memory.large_blocks_are_mapped() is None
