"""Per-dataset presets in the recipes, and the provenance of every resolved value."""
import subprocess
import sys

import yaml

from dfkd.config.load import flatten, to_dict
from dfkd.methods.configure import build_config, without_batchnorm
from dfkd.methods.registry import METHODS
from dfkd.tables.spec import Scale, cell_config, read_table

DATA_FREE = [m for m in METHODS if METHODS.get(m).recipe.get("source", {}).get("name") != "real"]


def test_a_preset_applies_on_its_dataset_only_and_the_user_wins():
    digits = build_config(method="dfad")  # digits is the default dataset
    assert digits.student.optim.lr == 0.3 and digits.provenance["student.optim.lr"] == "preset dfad/digits"
    assert digits.synth.batch_size == 128 and digits.source.width == 64
    mnist = build_config(method="dfad", sets=["data.name=mnist"])
    assert (mnist.student.optim.lr, mnist.student.optim.weight_decay, mnist.student.optim.schedule) == (
        0.01, 1e-4, "constant")
    assert mnist.synth.batch_size == 512 and mnist.provenance["synth.batch_size"] == "preset dfad/mnist"
    svhn = build_config(method="dfad", sets=["data.name=svhn"])  # no preset: the recipe and the defaults
    assert svhn.student.optim.lr == 0.1 and svhn.provenance["student.optim.lr"] == "default" and svhn.preset is None
    mine = build_config(method="dfad", sets=["data.name=mnist", "student.optim.lr=0.05"])
    assert mine.student.optim.lr == 0.05 and mine.provenance["student.optim.lr"] == "--set student.optim.lr=0.05"
    assert mine.student.optim.weight_decay == 1e-4  # the rest of the preset still applies


def test_every_preset_resolves_to_its_values_and_every_data_free_recipe_has_a_digits_preset():
    for name in METHODS:
        m = METHODS.get(name)
        if name in DATA_FREE:
            assert "digits" in m.presets, name
        for ds, p in m.presets.items():
            assert p.source and f"Preset {ds}:" in m.describe()
            cfg = build_config(method=name, sets=[f"data.name={ds}"])
            flat = flatten(to_dict(cfg))
            for key, value in flatten(p.values).items():
                assert flat[key] == value, (name, ds, key)
                assert cfg.provenance[key] == f"preset {name}/{ds}", (name, ds, key)


def test_the_jpeg_copy_of_cifar10_takes_the_cifar10_presets():
    cfg = build_config(method="cmi", sets=["data.name=cifar10_jpeg"])
    assert cfg.synth.g_steps == 200 and cfg.objective.params["cmi"]["tau"] == 0.2 and cfg.distill.kd_steps == 400
    assert cfg.objective.generator["adv_kl"] == 0.5 and cfg.preset[0] == "preset cmi/cifar10"


def test_mnist_presets_are_the_authors_optimizers_shown_by_dfkd_options():
    r = subprocess.run([sys.executable, "-m", "dfkd", "options", "--method", "dafl", "--dataset", "mnist"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rows = {line.split()[0]: line.split(None, 2)[1:] for line in r.stdout.splitlines() if line.strip()}
    assert rows["source.optim.lr"] == ["0.2", "preset dafl/mnist"]
    assert rows["source.optim.schedule"] == ["constant", "preset dafl/mnist"]
    assert rows["data.name"] == ["mnist", "--dataset mnist"] and rows["method"] == ["dafl", "--method"]
    assert rows["distill.kd_steps"] == ["1", "recipe dafl"] and rows["seed"] == ["0", "default"]
    assert "lr 0.2" in r.stdout.splitlines()[-1] and r.stdout.splitlines()[-1].startswith("preset dafl/mnist:")
    bad = subprocess.run([sys.executable, "-m", "dfkd", "options", "--method", "dfadd"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "did you mean 'dfad'" in bad.stderr


def test_tables_state_only_what_differs_from_the_preset():
    for table in ("digits", "mnist", "cifar10", "cifar100"):
        path, spec = read_table(table)
        for cell in spec.cells:
            cfg = cell_config(path, spec, cell, Scale(), 0)
            preset = flatten(cfg.preset and METHODS.get(cfg.method).preset(cfg.data.name).values or {})
            for key, value in flatten(cell.set or {}).items():
                assert preset.get(key, object()) != value, f"{table} {cell.name or cell.method}: {key} is the preset's"
            flat, own = flatten(to_dict(cfg)), flatten(cell.set or {})
            assert all(flat[k] == v for k, v in preset.items() if k not in own)  # the cell runs the preset


def test_a_table_cell_says_where_each_value_came_from():
    path, spec = read_table("mnist")
    [dafl] = [c for c in spec.cells if c.method == "dafl"]
    cfg = cell_config(path, spec, dafl, Scale(), 0)
    assert cfg.source.optim.lr == 0.2 and cfg.provenance["source.optim.lr"] == "preset dafl/mnist"
    assert cfg.provenance["distill.rounds"] == "table mnist: distill.rounds=24000"
    assert cfg.provenance["teacher.arch"].startswith("--config") and cfg.provenance["teacher.arch"].endswith("base.yaml")


def test_the_run_directory_holds_provenance_yaml(digits_teacher, tmp_path):
    from dfkd.run.runner import distill

    f = tmp_path / "mine.yaml"
    f.write_text("distill:\n  kd_steps: 2\n")
    cfg = build_config(str(f), [f"teacher.checkpoint={digits_teacher}", f"out={tmp_path}", "distill.rounds=2",
                                "tracking.mode=disabled", "device=cpu"], method="zskt")
    run_dir, _ = distill(cfg, quiet=True)
    text = (run_dir / "provenance.yaml").read_text()
    prov = yaml.safe_load(text)
    assert prov["distill.rounds"] == {"value": 2, "from": "--set distill.rounds=2"}
    assert prov["distill.kd_steps"] == {"value": 2, "from": f"--config {f}"}
    assert prov["student.optim.lr"] == {"value": 5e-3, "from": "preset zskt/digits"}
    assert prov["objective.student.at"] == {"value": 25.0, "from": "preset zskt/digits"}
    assert prov["objective.student.kd_kl"] == {"value": 1.0, "from": "recipe zskt"}
    assert prov["seed"] == {"value": 0, "from": "default"}
    assert "# preset zskt/digits: the digits table" in text
    assert set(prov) == set(flatten(yaml.safe_load((run_dir / "config.yaml").read_text())))


def test_presets_never_hand_a_bn_free_method_a_bn_term():
    for name in without_batchnorm():
        for ds, p in METHODS.get(name).presets.items():
            assert not flatten(p.values).get("objective.generator.bn"), (name, ds)


def test_the_shipped_tables_are_found_from_any_working_directory(tmp_path, monkeypatch):
    from dfkd.tables.spec import locate

    monkeypatch.chdir(tmp_path)  # no ./experiments here: the shipped copy (checkout or wheel) is found
    assert locate("digits").parent.name == "digits" and locate("digits").is_file()
