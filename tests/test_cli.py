"""Bad input: one clear line on stderr, exit status 2, no traceback, nothing written. A few cases run
as a user meets them, in a fresh process (`run`); the rest through the same entry point in this
process (`run_here`), which saves a process start-up each."""
import subprocess
import sys
from types import SimpleNamespace

import pytest

from dfkd.cli.main import main


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "dfkd", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def run_here(capsys, *args):
    capsys.readouterr()
    code = main(list(args))
    printed = capsys.readouterr()
    return SimpleNamespace(returncode=code, stdout=printed.out, stderr=printed.err)


def _one_line_error(p, *needles):
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, p.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_unknown_method(tmp_path):
    p = run("distill", "--method", "dfadd", "--out", str(tmp_path / "o"))
    _one_line_error(p, "unknown method 'dfadd'", "did you mean 'dfad'")
    assert not (tmp_path / "o").exists()


def test_unknown_config_key_suggests(tmp_path, capsys):
    p = run_here(capsys, "distill", "--set", "distill.roundz=3", "--out", str(tmp_path / "o"))
    _one_line_error(p, "unknown config key 'distill.roundz'", "did you mean 'rounds'")


def test_missing_dataset(tmp_path, capsys):
    p = run_here(capsys, "distill", "--set", "data.name=mnist", "--data-root", str(tmp_path),
                 "--out", str(tmp_path / "o"), "--tracking", "disabled")
    _one_line_error(p, "dataset 'mnist'", "not found under", "--download")
    assert not (tmp_path / "o").exists()


def test_missing_cifar10_jpeg_names_where_it_looked_even_with_download(tmp_path, capsys):
    """The JPEG copy exists only in ../shared: --download cannot fetch it and says so (no network touched)."""
    p = run_here(capsys, "distill", "--set", "data.name=cifar10_jpeg", "--set", "teacher.arch=resnet8",
                 "--data-root", str(tmp_path), "--download", "--out", str(tmp_path / "o"), "--tracking", "disabled")
    _one_line_error(p, "cifar10-jpeg.tar.gz", str(tmp_path), "not downloadable")
    assert not (tmp_path / "o").exists()


def test_teacher_checkpoint_of_another_architecture(digits_teacher, tmp_path, capsys):
    p = run_here(capsys, "distill", "--set", f"teacher.checkpoint={digits_teacher}", "--set",
                 "teacher.arch=resnet8", "--out", str(tmp_path / "o"), "--tracking", "disabled")
    _one_line_error(p, "holds a 'cnn' but the config asks for 'resnet8'")
    assert not (tmp_path / "o").exists()


def test_bad_flag_is_one_line():
    _one_line_error(run("distill", "--bogus"), "unrecognized argument '--bogus'; config overrides take the form")


def test_list_and_options():
    p = run("list", "methods")
    assert p.returncode == 0 and "dfad" in p.stdout and "dafl" in p.stdout
    p = run("options")
    assert p.returncode == 0 and "distill.kd_steps" in p.stdout and "student.optim.lr" in p.stdout


@pytest.mark.parametrize("args", [["distill", "--help"], ["train-teacher", "--help"], ["quickstart", "--help"]])
def test_help(args):
    p = run(*args)
    assert p.returncode == 0 and "--set" in p.stdout


def test_warnings_go_through_the_dfkd_logger(capsys):
    """One line on stderr by default; an application that configures logging takes them over."""
    import logging

    from dfkd.base import log

    log.warn("something to know")
    assert capsys.readouterr().err == "dfkd: warning: something to know\n"
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    logger = logging.getLogger("dfkd")
    saved = logger.handlers[:]
    logger.handlers[:] = [Keep()]
    try:
        log.note("routed")
    finally:
        logger.handlers[:] = saved
    assert records == ["routed"] and capsys.readouterr().err == ""
