"""Packaging names: the project's generators/ folder is installed as dfkd.generators, so a user's own
`generators` module (common in GAN code) is never shadowed, and dfkd still finds its sources."""
import subprocess
import sys


def test_a_users_own_generators_module_is_not_shadowed(tmp_path):
    (tmp_path / "generators.py").write_text("MINE = 'the user\\'s'\n")
    code = ("import generators, dfkd.generators, dfkd.run.runner; "
            "print(generators.MINE, 'dcgan' in dfkd.generators.SOURCES, dfkd.generators.__name__)")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["the", "user's", "True", "dfkd.generators"]


def test_no_top_level_generators_package_is_installed(tmp_path):
    code = "import importlib.util; print(importlib.util.find_spec('generators'))"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "None", done.stdout + done.stderr
