"""W&B sweeps from the command line: the exact command a sweep agent builds from
experiments/sweeps/digits-dfq.yaml is parsed by the CLI into the config the trial asked for."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dfkd.base.errors import DfkdError
from dfkd.cli import args as cli_args
from dfkd.cli import main as cli
from dfkd.methods.configure import build_config

SWEEP = Path(__file__).resolve().parents[1] / "experiments" / "sweeps" / "digits-dfq.yaml"


def _trial(spec: dict) -> dict:
    """One trial's values, as a sweep would draw them (the first value, or the range's lower end)."""
    return {k: p["values"][0] if "values" in p else p.get("value", p.get("min")) for k, p in spec["parameters"].items()}


def _agent_command(spec: dict, trial: dict, macro: str) -> list[str]:
    """The agent's command line after the executable (`${env}` and the program dropped)."""
    forms = {"${args_no_hyphens}": [f"{k}={v}" for k, v in trial.items()],
             "${args}": [f"--{k}={v}" for k, v in trial.items()],
             "${args_no_equals}": [a for k, v in trial.items() for a in (f"--{k}", str(v))]}
    argv = []
    for token in spec["command"]:
        if token == "${args_no_hyphens}":
            argv += forms[macro]
        elif token not in ("${env}", spec["program"]):
            argv.append(token)
    return argv


def _config(argv: list[str]):
    args = cli_args.parse(argv)
    return build_config(args.config, cli_args.shorthands(args), method=args.method)


@pytest.mark.parametrize("macro", ["${args_no_hyphens}", "${args}", "${args_no_equals}"])
def test_the_sweep_agents_command_line_gives_the_trials_config(macro):
    spec = yaml.safe_load(SWEEP.read_text())
    assert spec["metric"]["name"] == "student_acc" and "${args_no_hyphens}" in spec["command"]
    trial = _trial(spec)
    cfg = _config(_agent_command(spec, trial, macro))
    assert cfg.method == "dfq" and cfg.tracking.mode == "online"  # online: the trial reports to the sweep
    assert cfg.student.optim.lr == trial["student.optim.lr"] == 0.01
    assert cfg.source.optim.lr == trial["source.optim.lr"]
    assert cfg.objective.generator["bn"] == trial["objective.generator.bn"]
    assert cfg.seed == trial["seed"] == 0
    assert cfg.provenance["student.optim.lr"] == "--set student.optim.lr=0.01"


def test_bare_overrides_come_after_every_set_and_configs_stack(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("distill: {rounds: 7, kd_steps: 3}\n")
    b.write_text("distill: {rounds: 9}\n")
    cfg = _config(["distill", "--config", str(a), "--config", str(b), "seed=4", "--set", "seed=2"])
    assert (cfg.distill.rounds, cfg.distill.kd_steps, cfg.seed) == (9, 3, 4)


def test_bad_override_forms_are_one_line_errors(capsys):
    with pytest.raises(DfkdError, match="unrecognized argument 'rounds'; config overrides take the form key=value"):
        cli_args.parse(["distill", "rounds"])
    with pytest.raises(DfkdError, match=r"unknown config key 'distill\.rouns' \(did you mean 'rounds'\?\)"):
        _config(["distill", "distill.rouns=5"])
    assert cli.main(["distill", "--method", "dfq", "=5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unrecognized argument '=5'" in err
    with pytest.raises(SystemExit) as exit_:  # commands without config overrides keep argparse's check
        cli.main(["list", "methods", "seed=1"])
    assert exit_.value.code == 2 and "unrecognized arguments: seed=1" in capsys.readouterr().err
    with pytest.raises(DfkdError, match="unknown config key 'se'"):  # no abbreviation: '--se' is not --set
        _config(["distill", "--se", "seed=1"])


def test_a_sweep_run_that_cannot_report_back_says_so(monkeypatch, tmp_path, capsys):
    from dfkd.config.schema import TrackingConfig
    from dfkd.io.tracking import Tracker

    monkeypatch.setenv("WANDB_SWEEP_ID", "abc123")
    Tracker(tmp_path, TrackingConfig(mode="disabled"), {}, name="t", job_type="distill").finish({})
    assert "sweep will never see its result; add tracking.mode=online" in capsys.readouterr().err
