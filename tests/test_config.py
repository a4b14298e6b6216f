import pytest
import yaml

from dfkd.base.errors import DfkdError
from dfkd.config.load import dump_yaml, from_dict, options, parse_set, to_dict
from dfkd.config.schema import Config
from dfkd.methods.configure import build_config
from dfkd.methods.registry import METHODS


def test_parse_set_reads_yaml_values_into_nested_keys():
    assert parse_set("distill.rounds=50") == {"distill": {"rounds": 50}}
    assert parse_set("source.optim.betas=[0.5, 0.9]") == {"source": {"optim": {"betas": [0.5, 0.9]}}}
    assert parse_set("run_name=null") == {"run_name": None}
    with pytest.raises(DfkdError, match="key=value"):
        parse_set("distill.rounds")


def test_layering_recipe_then_file_then_set(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("distill:\n  rounds: 7\n  kd_steps: 3\nstudent:\n  optim:\n    lr: 1e-3\n")
    cfg = build_config(str(f), ["distill.kd_steps=4"], method="dfad")
    assert cfg.distill.rounds == 7 and cfg.distill.kd_steps == 4
    assert cfg.student.optim.lr == pytest.approx(1e-3)  # '1e-3' (a YAML string) read as a number
    assert cfg.objective.generator == {"adv_l1": 1.0} and cfg.objective.student == {"kd_l1": 1.0}
    dafl = build_config(method="dafl")
    assert dafl.distill.batch == "reuse" and dafl.objective.generator["oh"] == 1.0


def test_unknown_key_is_rejected_with_a_suggestion():
    with pytest.raises(DfkdError, match=r"unknown config key 'distill.round'.*did you mean 'rounds'"):
        build_config(sets=["distill.round=3"])
    with pytest.raises(DfkdError, match=r"unknown config key 'studnet'.*did you mean 'student'"):
        build_config(sets=["studnet.arch=cnn"])


@pytest.mark.parametrize("item, message", [
    ("distill.rounds=-1", "must be >= 1"),
    ("distill.rounds=abc", "must be an integer"),
    ("student.optim.lr=fast", "must be a number"),
    ("student.optim.name=adamw", "choose one of: sgd, adam"),
    ("data.download=maybe", "true or false"),
    ("objective.student.kd_kll=1", "did you mean 'kd_kl'"),
    ("data.name=mnits", "did you mean 'mnist'"),
    ("source.name=dcgen", "did you mean 'dcgan'"),
    ("objective.student.kd_l1=0", "no term with a non-zero weight"),
    ("student.optim.lr=.inf", "must be finite"),
])
def test_bad_values_name_the_key(item, message):
    with pytest.raises(DfkdError, match=message):
        build_config(sets=[item])


def test_unknown_method_suggests():
    with pytest.raises(DfkdError, match="unknown method 'dfadd'.*did you mean 'dfad'"):
        build_config(method="dfadd")


def test_bad_yaml_files(tmp_path):
    with pytest.raises(DfkdError, match="not found"):
        build_config(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("distill: [1, 2\n")
    with pytest.raises(DfkdError, match="not valid YAML"):
        build_config(str(bad))
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(DfkdError, match="must hold a mapping"):
        build_config(str(lst))


def test_resolved_config_round_trips_through_yaml():
    cfg = build_config(method="dafl", sets=["seed=3"])
    again = from_dict(Config, yaml.safe_load(dump_yaml(cfg)))
    assert to_dict(again) == to_dict(cfg)


def test_every_option_is_documented_and_every_method_has_a_cited_docstring():
    for key, _, _, help_ in options(Config):
        assert help_.strip(), f"option {key} has no help text"
    for name in METHODS:
        doc = METHODS.get(name).doc
        assert any(str(y) in doc for y in range(2015, 2030)), f"method {name} cites no paper year"


def test_options_show_the_defaults_a_section_actually_gets():
    rows = {key: default for key, _, default, _ in options(Config)}
    assert rows["source.optim.name"] == "adam" and rows["source.optim.lr"] == pytest.approx(1e-3)
    assert rows["student.optim.name"] == "sgd" and rows["student.optim.lr"] == pytest.approx(0.1)


def test_a_bare_off_is_the_choice_off_not_a_boolean():
    from dfkd.methods.configure import build_config

    assert build_config(sets=["perf.amp=off"]).perf.amp == "off"
    assert build_config(sets=["perf.amp=bf16"]).perf.amp == "bf16"
