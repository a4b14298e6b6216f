"""Side-by-side tables: dfkd's runs of a cell beside the authors' code's, and the shipped table's cells
running the very budget and weights of the authors' command lines."""
import json
import shlex

import pytest

from dfkd.cli.main import main
from dfkd.tables import side_by_side
from dfkd.tables.experiment import run_table
from dfkd.tables.spec import cell_config, read_table, table_name

REFERENCE = """
runs:
  - {cell: noise, seed: 1, final: 12.0, best: 14.0, wall_s: 30.0, synth_s: 10.0, repo: someone/code, commit: abcdef0123,
     curve: [[0, 10.0], [1, 14.0], [2, 13.0], [3, 12.0], [4, 11.0], [5, 12.0], [6, 13.0], [7, 12.0]]}
  - {cell: noise, seed: 0, final: 10.0, best: 12.0, wall_s: 50.0, synth_s: 20.0, repo: someone/code, commit: abcdef0123,
     curve: [[0, 10.0], [1, 12.0], [2, 10.0]]}
  - {cell: theirs_only, seed: 0, final: 30.0, best: 31.0, wall_s: 9.0, repo: someone/code, commit: abcdef0123}
"""


def test_rows_pair_each_cell_with_the_authors_runs(tmp_path):
    (tmp_path / "ref.yaml").write_text(REFERENCE)
    ref = side_by_side.read_reference(tmp_path / "ref.yaml")
    assert [r["seed"] for r in ref["noise"]] == [0, 1]
    ours = [{"label": "noise", "seeds": [0, 1], "student_acc": (13.0, 1.0), "best_student_acc": (15.0, 0.5),
             "wall_time_s": (20.0, 2.0), "synth_time_s": None,
             "curves": [[[2, 11.0], [4, 17.0], [6, 13.0], [8, 15.0]], [[2, 9.0], [4, 19.0], [6, 14.0], [8, 14.0]]]}]
    rows = side_by_side.rows(ours, ref, order=["noise"])
    assert [r["cell"] for r in rows] == ["noise", "theirs_only"]
    noise = rows[0]
    assert noise["authors_final"] == pytest.approx((11.0, 2 ** 0.5))  # mean and sample sd of 10, 12
    assert noise["diff_final"] == pytest.approx(13.0 - 11.0)
    assert noise["diff_best"] == pytest.approx(15.0 - 13.0)
    assert noise["wall_ratio"] == pytest.approx(20.0 / 40.0)
    # last quarter of each run's evaluations: seed 1 the last 2 of 8 (13, 12), seed 0 the last 1 of 3
    assert noise["authors_tail"] == pytest.approx((11.25, 1.25 * 2 ** 0.5))
    assert noise["dfkd_tail"] == pytest.approx((14.5, 0.5 * 2 ** 0.5))  # the last of 4: 15 and 14
    assert noise["diff_tail"] == pytest.approx(14.5 - 11.25)
    assert noise["authors_synth"] == pytest.approx((15.0, 50 ** 0.5))
    assert rows[1]["diff_final"] is None and rows[1]["authors_synth"] is None  # no synth_s recorded
    md = side_by_side.render(rows, "markdown").splitlines()
    assert md[2].startswith("| noise | 2 / 2 | 11.00 ± 1.41 | 13.00 ± 1.00 | +2.00 |")
    assert "someone/code@abcdef0" in md[2]
    csv = side_by_side.render(rows, "csv").splitlines()
    assert csv[1].startswith("noise,2,2,11.0,")
    assert "\\toprule" in side_by_side.render(rows, "latex")


@pytest.mark.parametrize("text, message", [("runs: 3\n", "needs a list under 'runs:'"),
                                           ("runs: [{cell: a, seed: 0}]\n", "run 0 needs cell, seed, final"),
                                           ("runs: [\n", "not valid YAML")])
def test_a_bad_reference_file_is_one_error(tmp_path, text, message):
    from dfkd.base.errors import DfkdError

    (tmp_path / "ref.yaml").write_text(text)
    with pytest.raises(DfkdError, match=message):
        side_by_side.read_reference(tmp_path / "ref.yaml")


def test_table_flag_runs_and_prints_a_folders_second_table_beside_the_authors(tmp_path, capsys, digits_teacher):
    d = tmp_path / "tiny"
    d.mkdir()
    (d / "table.yaml").write_text("cells: [{method: dfq}]\n")
    (d / "other.yaml").write_text(
        "base: base.yaml\nreference: ref.yaml\nseeds: 1\ncells:\n"
        "  - {method: noise, authors: {repo: someone/code, commit: abcdef0123, args: '--epochs 2'}}\n")
    (d / "base.yaml").write_text(f"synth: {{batch_size: 16}}\ndevice: cpu\ntracking: {{mode: disabled}}\n"
                                 f"distill: {{rounds: 2, eval_every: 1, kd_steps: 1}}\n"
                                 f"teacher: {{checkpoint: {digits_teacher}}}\n")
    (d / "ref.yaml").write_text(REFERENCE)
    path, spec = read_table(f"{d}/other")
    assert table_name(path) == "tiny-other" and spec.cells[0].authors.args == "--epochs 2"
    assert main(["experiment", str(d), "--table", "other", "--out", str(tmp_path / "r"), "--quiet"]) == 0
    summary = json.loads((tmp_path / "r" / "tiny-other" / "paper" / "noise-s0" / "summary.json").read_text())
    capsys.readouterr()
    assert main(["table", str(d), "--table", "other", "--out", str(tmp_path / "r")]) == 0
    row = capsys.readouterr().out.splitlines()[2].split(" | ")
    assert row[0] == "| noise" and row[2] == "11.00 ± 1.41"
    assert float(row[4]) == pytest.approx(summary["student_acc"] - 11.0, abs=0.006)
    assert main(["table", str(d), "--table", "nope", "--out", str(tmp_path / "r")]) == 2
    assert "no table" in capsys.readouterr().err


def _their_options(args: str) -> dict[str, str]:
    words = shlex.split(args)
    return {w.lstrip("-"): v for w, v in zip(words, words[1:] + [""]) if w.startswith("--")}


def test_the_shipped_side_by_side_cells_run_the_authors_budget_and_weights(tmp_path, capsys):
    """Each dfkd cell against its authors' command line: the same student steps, evaluations,
    synthesis steps, batch, rates, loss weights and the same part of the authors' cosine."""
    path, spec = read_table("cifar10_jpeg/side_by_side")
    run_table("cifar10_jpeg/side_by_side", out=str(tmp_path), dry_run=True)  # every config builds
    assert len(capsys.readouterr().out.splitlines()) == len(spec.cells) * spec.seeds
    for cell in spec.cells:
        if cell.authors.repo not in ("zju-vipa/Fast-Datafree", "tmtuan1307/NAYER"):
            continue  # their own command lines: the next two tests
        name = cell.name or cell.method
        cfg = cell_config(path, spec, cell, spec.scales["paper"], 0, scale_name="paper")
        o = _their_options(cell.authors.args)
        epochs, warmup = int(o["epochs"]), int(o.get("warmup", 0))
        per_epoch = int(o["ep_steps"]) // int(o["kd_steps"])  # synthesis + kd rounds per epoch
        pool = cfg.distill.batch == "pool"
        warm_rounds = cfg.synth.warmup if pool else 0
        assert cfg.distill.rounds == epochs * per_epoch, name
        assert warm_rounds == warmup * per_epoch, name
        assert (cfg.distill.rounds - warm_rounds) * cfg.distill.kd_steps == \
            (epochs - warmup) * per_epoch * int(o["kd_steps"]), name  # student steps
        assert cfg.distill.eval_every == per_epoch, name  # one evaluation per epoch, as theirs
        assert cfg.synth.g_steps == int(o["g_steps"]), name
        assert cfg.source.optim.lr == pytest.approx(float(o["lr_g"])), name
        assert cfg.student.optim.lr == pytest.approx(float(o["lr"])), name
        batch = int(o["batch_size"])
        assert cfg.synth.batch_size == int(o.get("synthesis_batch_size", batch)), name
        assert (cfg.distill.batch_size or cfg.synth.batch_size) == batch, name
        # the authors' cosine: T_max = 200 epochs in Fast-Datafree, the trained epochs in NAYER
        t_max = epochs - warmup if cell.authors.repo == "tmtuan1307/NAYER" else 200
        assert cfg.student.optim.horizon * (epochs - warmup) == pytest.approx(t_max, rel=1e-6), name
        w = cfg.objective.generator
        assert w.get("bn", 0.0) == pytest.approx(float(o["bn"])), name
        assert w.get("oh", 0.0) + w.get("ce", 0.0) == pytest.approx(float(o["oh"])), name
        adv = w.get("adv_kl", 0.0) + w.get("adv_l1", 0.0) + w.get("adv_js", 0.0)
        assert adv == pytest.approx(float(o["adv"])), name
        assert w.get("ie", 0.0) == pytest.approx(float(o.get("balance", 0))), name
        assert w.get("act", 0.0) == pytest.approx(float(o.get("act", 0))), name
        if pool:  # their pool methods' student KL runs at --T; the generative baselines' at 1
            assert cfg.objective.temperature == pytest.approx(float(o["T"])), name
        else:
            assert cfg.objective.temperature == pytest.approx(1.0), name


def _cell(name: str):
    path, spec = read_table("cifar10_jpeg/side_by_side")
    cell = next(c for c in spec.cells if (c.name or c.method) == name)
    return cell, cell_config(path, spec, cell, spec.scales["paper"], 0, scale_name="paper")


@pytest.mark.parametrize("name", ["cudfkd", "cudfkd_step", "adadfkd"])
def test_the_curriculum_cells_follow_ljrprocc_command_lines(name):
    """ljrprocc/DFKD's datafree_kd.py: rounds of kd_steps per epoch, its CosineAnnealingLR(T_max =
    epochs), -lmda_ent the class balance, the adversarial weight ramped per epoch (CuDFKD: from adv
    by grad_adv per epoch between the fractions), L1 or KL at T for the student."""
    cell, cfg = _cell(name)
    o = _their_options(cell.authors.args)
    epochs, per_epoch = int(o["epochs"]), int(o["ep_steps"]) // int(o["kd_steps"])
    assert cell.authors.repo == "ljrprocc/DFKD"
    assert cfg.distill.rounds == epochs * per_epoch and cfg.distill.kd_steps == int(o["kd_steps"])
    assert cfg.distill.eval_every == per_epoch == cfg.objective.ramp_every
    assert cfg.synth.g_steps == int(o["g_steps"]) and cfg.synth.batch_size == int(o["batch_size"])
    assert cfg.source.optim.lr == pytest.approx(float(o["lr_g"])) and cfg.student.optim.lr == float(o["lr"])
    assert cfg.student.optim.horizon == 1.0  # their cosine spans the run
    w = cfg.objective.generator
    assert w["bn"] == float(o["bn"]) and w["oh"] == float(o["oh"]) and w["ie"] == -float(o["lmda_ent"])
    assert cfg.objective.self_paced[0] == float(o["lambda_0"]) and cfg.objective.temperature == float(o["T"])
    student = "kd_l1" if o["loss"] == "l1" else "kd_kl"
    assert cfg.objective.student[student] == 1.0
    # the adversarial weight at the end of each epoch e: adv + grad_adv * clamp(e - B, 0, E - B), their
    # get_alpha_adv, read during epoch e + 1; B, E = int(epochs * begin / end fraction)
    b, e = int(epochs * float(o["begin_fraction"])), int(epochs * float(o["end_fraction"]))
    start, end, at, *frm = cfg.objective.ramp["adv_kl"]
    f = frm[0] if frm else 0.0
    for epoch in range(epochs):
        theirs = float(o["adv"]) + float(o["grad_adv"]) * min(max(epoch - 1 - b, 0), e - b)
        p = (epoch + 1) / epochs
        ours = w["adv_kl"] * (start + (end - start) * min(1.0, max(0.0, p - f) / (at - f)))
        assert ours == pytest.approx(theirs, abs=1e-6), (name, epoch)


def test_the_spaceshipnet_cell_follows_its_authors_config():
    """skgyu/SpaceshipNet's YAML with the cell's overrides (authors_spaceshipnet.py reads the same)."""
    import yaml

    cell, cfg = _cell("spaceshipnet")
    words = cell.authors.args.split()
    assert words[0] == "--config" and cell.authors.repo == "skgyu/SpaceshipNet"
    over = {k: yaml.safe_load(v) for k, v in (w.split("=", 1) for w in words[2:])}
    assert cfg.distill.rounds == over["max_epoch"] + 1 and cfg.distill.eval_every == 1
    assert cfg.synth.g_steps == over["g_steps"] and cfg.distill.kd_steps == over["kd_steps"]
    assert cfg.synth.batch_size == over["batch_size"] and cfg.student.optim.horizon == 1.0
    assert cfg.objective.temperature == 30.0 and cfg.source.optim.lr == 1e-3 and cfg.student.optim.lr == 0.1


def _pool_replay():
    import importlib.util
    from pathlib import Path
    path = Path(__file__).parents[1] / "experiments" / "cifar10_jpeg" / "pool_replay.py"
    spec = importlib.util.spec_from_file_location("pool_replay", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pool_replay_reads_both_pools_as_pixels_in_the_order_they_were_added(tmp_path):
    """The authors' PNG pool (ROUND-INDEX.png, 8 bits) in (round, index) order, not the names' text
    order; dfkd's checkpoint pool mapped back from the run's normalisation."""
    import dataclasses

    import numpy as np
    import torch
    from PIL import Image

    from dfkd.config.schema import DataConfig
    from dfkd.io.checkpoint import save_run_checkpoint
    replay = _pool_replay()
    folder = tmp_path / "synthesis"
    folder.mkdir()
    for r in range(2):
        for i in range(11):  # index 10 sorts before 2 as text
            Image.fromarray(np.full((32, 32, 3), 10 * r + i, np.uint8)).save(folder / f"{r}-{i}.png")
    rounds, kind = replay.load_pool(folder, rounds=2, per_round=11)
    assert "22 images" in kind
    assert [round(float(x[0, 0, 0, 0]) * 255) for x in rounds] == [0, 10]
    assert [round(float(v) * 255) for v in rounds[1][:, 0, 0, 0]] == list(range(10, 21))

    pixels = torch.rand(6, 3, 32, 32)
    data = dataclasses.asdict(DataConfig(name="cifar10_jpeg", std=[0.5, 0.25, 0.2]))
    mean, std = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1), torch.tensor([0.5, 0.25, 0.2]).view(1, 3, 1, 1)
    save_run_checkpoint({"config": {"data": data}, "pool": {"data": ((pixels - mean) / std).half()}}, tmp_path / "c.pt")
    rounds, kind = replay.load_pool(tmp_path / "c.pt", rounds=3, per_round=2)
    assert len(rounds) == 3 and rounds[2].shape == (2, 3, 32, 32)
    assert torch.allclose(torch.cat(rounds), pixels, atol=2e-3)  # fp16 storage
    with pytest.raises(SystemExit, match="fewer than 4 rounds"):
        replay.load_pool(tmp_path / "c.pt", rounds=4, per_round=2)


def test_pool_replay_crops_from_black_padding_and_flips_about_half():
    import torch
    replay = _pool_replay()
    x = torch.rand(64, 3, 32, 32) + 1.0  # no pixel is black
    out = replay.crop_flip(x, torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    flipped = 0
    for n in range(len(x)):
        windows = [padded[n, :, i:i + 32, j:j + 32] for i in range(9) for j in range(9)]
        plain = any(torch.equal(w, out[n]) for w in windows)
        mirrored = any(torch.equal(w.flip(2), out[n]) for w in windows)
        assert plain or mirrored, f"image {n} is no window of its padded image"
        flipped += mirrored and not plain
    assert 16 <= flipped <= 48
    assert (out == 0).any()  # some windows reach into the black padding
