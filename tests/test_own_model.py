"""Distil a model you already have (issue 14): teachers whose class lives only in this file, saved
in the formats other codebases write, distilled through the Python API and the CLI; no-data runs;
teachers without BatchNorm or with tuple outputs; pretrained torchvision weights; other authors'
parameter names; and the one-line refusals of bad input."""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dfkd
from dfkd.config.schema import DataConfig
from dfkd.io.checkpoint import state_hash
from dfkd.io.data import load_split

HERE = os.path.abspath(__file__)
QUIET = {"tracking.mode": "disabled", "device": "cpu"}
TINY = {**QUIET, "distill.rounds": 2, "distill.eval_every": 1, "synth.batch_size": 32}


class BNNet(nn.Module):
    """A user's digits classifier with BatchNorm; its parameter names are its own."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 24, 3, padding=1), nn.BatchNorm2d(24), nn.ReLU(), nn.MaxPool2d(2),
                                  nn.Conv2d(24, 48, 3, padding=1), nn.BatchNorm2d(48), nn.ReLU(), nn.MaxPool2d(2),
                                  nn.Conv2d(48, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(64, num_classes)

    def forward(self, x):
        return self.head(self.body(x))


class GNNet(BNNet):
    """The same network with GroupNorm: no BatchNorm statistics to match."""

    def __init__(self, num_classes: int = 10):
        super().__init__(num_classes)
        for i, m in enumerate(self.body):
            if isinstance(m, nn.BatchNorm2d):
                self.body[i] = nn.GroupNorm(4, m.num_features)


class TupleNet(BNNet):
    """Research-code style: forward returns (logits, features)."""

    def forward(self, x):
        f = self.body(x)
        return self.head(f), f


def _train(model: nn.Module, epochs: int = 25) -> nn.Module:
    """A plain supervised loop on the digits training split (seconds on a CPU)."""
    torch.manual_seed(0)
    x, y = load_split(DataConfig(), "train").tensors
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    model.train()
    for _ in range(epochs):
        for i in torch.randperm(len(y)).split(64):
            opt.zero_grad()
            F.cross_entropy(model(x[i])[0] if isinstance(model, TupleNet) else model(x[i]), y[i]).backward()
            opt.step()
    return model.eval()


def _accuracy(model: nn.Module) -> float:
    x, y = load_split(DataConfig(), "test").tensors
    with torch.no_grad():
        out = model(x)
    out = out[0] if isinstance(out, tuple) else out
    return 100.0 * (out.argmax(1) == y).float().mean().item()


@pytest.fixture(scope="module")
def bn_teacher():
    model = _train(BNNet())
    assert _accuracy(model) > 95.0
    return model


@pytest.fixture(scope="module")
def gn_teacher():
    model = _train(GNNet())
    assert _accuracy(model) > 90.0
    return model


def _save_all(model: nn.Module, folder) -> dict[str, str]:
    """The teacher as four files: plain state dict, a DataParallel state dict under 'state_dict' with
    an epoch count beside it, .safetensors, TorchScript."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    paths = {f: str(folder / name) for f, name in (("plain", "plain.pth"), ("wrapped", "wrapped.tar"),
                                                   ("safetensors", "t.safetensors"), ("torchscript", "t.ts"))}
    torch.save(sd, paths["plain"])
    torch.save({"epoch": 30, "state_dict": {f"module.{k}": v for k, v in sd.items()}, "best_acc": 99.0},
               paths["wrapped"])
    save_file(sd, paths["safetensors"])
    torch.jit.save(torch.jit.script(model), paths["torchscript"])
    return paths


def _cli(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dfkd", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "WANDB_MODE": "disabled"})


def _sets(d: dict) -> list[str]:
    return [a for k, v in d.items() for a in ("--set", f"{k}={v}")]


# ----------------------------------------------------------------------------- every format, API and CLI


@pytest.fixture(scope="module")
def student_from_the_module(bn_teacher, tmp_path_factory):
    """The student that a TINY run from the in-memory teacher ends with (its state's sha256)."""
    run = dfkd.distill(teacher=bn_teacher, data="digits", set=TINY, out=tmp_path_factory.mktemp("ref"), quiet=True)
    return state_hash(run.student.state_dict())


@pytest.fixture(scope="module")
def student_from_a_fresh_cli(bn_teacher, tmp_path_factory):
    """The student of the same TINY run through the CLI (a fresh process) from the plain state dict.
    Compared across processes only with another fresh process: an in-process run here can differ from
    a fresh process's in the last bits after other tests have run in this one (seen once in a full
    suite from a clean clone; the cause is not found yet)."""
    tmp = tmp_path_factory.mktemp("cli-ref")
    paths = _save_all(bn_teacher, tmp / "files")
    r = _cli("distill", "--method", "dfq", "--quiet", "--out", str(tmp / "run"),
             *_sets({**TINY, "teacher.checkpoint": paths["plain"], "teacher.arch": f"{HERE}:BNNet"}))
    assert r.returncode == 0, r.stderr
    [run] = (tmp / "run").iterdir()
    return state_hash(dfkd.load_model(run / "student.pt").state_dict())


@pytest.mark.parametrize("fmt", ["plain", "wrapped", "safetensors", "torchscript"])
def test_every_file_format_loads_the_very_teacher_through_the_api_and_the_cli(bn_teacher, student_from_the_module,
                                                                              student_from_a_fresh_cli, tmp_path, fmt):
    """Each file gives the very teacher (same sha256 and accuracy) and so, seed for seed, the very student
    that the in-memory teacher gives: the 90% run below from one format stands for all of them (the
    slow-marked test runs every format at that budget)."""
    paths = _save_all(bn_teacher, tmp_path / "files")
    want_sha, want_acc = state_hash(bn_teacher.state_dict()), _accuracy(bn_teacher)
    arch = f"{HERE}:BNNet"
    run = dfkd.distill(teacher=paths[fmt], data="digits", set={**TINY, "teacher.arch": arch},
                       out=tmp_path / "api", quiet=True)
    assert run.summary["teacher_sha256"] == want_sha
    assert run.summary["teacher_acc"] == pytest.approx(want_acc)
    assert run.summary["teacher"] == arch and (run.dir / "student.pt").is_file()
    assert state_hash(run.student.state_dict()) == student_from_the_module
    r = _cli("distill", "--method", "dfq", "--quiet", "--out", str(tmp_path / "cli"),
             *_sets({**TINY, "teacher.checkpoint": paths[fmt], "teacher.arch": arch}))
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout[:r.stdout.rindex("}") + 1])
    assert summary["teacher_sha256"] == want_sha and summary["teacher_acc"] == pytest.approx(want_acc)
    [cli_run] = (tmp_path / "cli").iterdir()
    assert state_hash(dfkd.load_model(cli_run / "student.pt").state_dict()) == student_from_a_fresh_cli


@pytest.mark.slow
def test_bn_teacher_of_a_state_dict_is_distilled_to_90_percent_at_the_quickstart_budget(bn_teacher, tmp_path):
    """The quickstart's budget (dfq, 200 rounds of 5 student steps at batch 128, half-width generator),
    from a plain state dict of a class defined in this file. Slow (80 s on 2 cores): in the default run,
    the file-format test shows that such a teacher gives the very student of the in-memory module, and
    test_distill holds the dfq loop to an accuracy floor."""
    path = tmp_path / "teacher.pth"
    torch.save(bn_teacher.state_dict(), path)
    run = dfkd.distill(teacher=str(path), student="cnn_small", method="dfq", data="digits",
                       set={**QUIET, "teacher.arch": f"{HERE}:BNNet", "source.width": 64, "synth.batch_size": 128,
                            "distill.rounds": 200, "distill.eval_every": 50}, out=tmp_path / "runs", quiet=True)
    assert run.summary["student_acc"] >= 90.0, run.summary["curve"]
    x, y = load_split(DataConfig(), "test").tensors
    with torch.no_grad():  # run.student is the trained network itself
        assert 100.0 * (run.student(x).argmax(1) == y).float().mean().item() == pytest.approx(run.summary["student_acc"])


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["plain", "wrapped", "safetensors", "torchscript"])
def test_every_format_reaches_90_percent_through_api_and_cli(bn_teacher, tmp_path, fmt):
    """The Done-when of issue 14 at full length: each format, API and CLI, quickstart budget."""
    path = _save_all(bn_teacher, tmp_path / "files")[fmt]
    budget = {**QUIET, "teacher.arch": f"{HERE}:BNNet", "source.width": 64, "synth.batch_size": 128,
              "distill.rounds": 200, "distill.eval_every": 50}
    run = dfkd.distill(teacher=path, data="digits", set=budget, out=tmp_path / "api", quiet=True)
    r = _cli("distill", "--method", "dfq", "--quiet", "--out", str(tmp_path / "cli"),
             *_sets({**budget, "teacher.checkpoint": path}))
    cli = json.loads(r.stdout[:r.stdout.rindex("}") + 1])
    print(f"{fmt}: api {run.summary['student_acc']:.2f} cli {cli['student_acc']:.2f}")
    assert run.summary["student_acc"] >= 90.0 and cli["student_acc"] >= 90.0


def test_torchscript_without_its_class_is_a_black_box_that_logit_methods_distil(bn_teacher, tmp_path):
    path = _save_all(bn_teacher, tmp_path / "files")["torchscript"]
    run = dfkd.distill(teacher=path, method="dfad", data="digits", set=TINY, out=tmp_path / "runs", quiet=True)
    assert run.summary["teacher"] == "torchscript:BNNet" and run.summary["teacher_source"] == "torchscript"
    assert run.summary["teacher_acc"] == pytest.approx(_accuracy(bn_teacher))
    with pytest.raises(dfkd.DfkdError, match="TorchScript black box.*dafl, dfad"):
        dfkd.distill(teacher=path, method="dfq", data="digits", set=TINY, out=tmp_path / "no", quiet=True)
    assert not (tmp_path / "no").exists()


# ----------------------------------------------------------------------------- teachers unlike ours


def test_groupnorm_teacher_refuses_bn_recipes_in_one_line_and_runs_dafl_and_dfad(gn_teacher, tmp_path):
    path = tmp_path / "gn.pth"
    torch.save(gn_teacher.state_dict(), path)
    r = _cli("distill", "--method", "dfq", "--out", str(tmp_path / "refused"),
             *_sets({**TINY, "teacher.checkpoint": path, "teacher.arch": f"{HERE}:GNNet"}))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "no BatchNorm layers" in r.stderr and "dafl, dfad" in r.stderr and "zskt" in r.stderr
    assert not (tmp_path / "refused").exists()
    for method in ("dafl", "dfad"):
        run = dfkd.distill(teacher=gn_teacher, method=method, data="digits", set=TINY, out=tmp_path / method,
                           quiet=True)
        assert run.summary["rounds"] == 2 and run.summary["teacher_acc"] > 90.0
        assert run.summary["teacher"] == "module:GNNet"


def test_tuple_output_is_selected_by_teacher_output_and_refused_without_it(tmp_path):
    teacher = TupleNet().eval()
    with pytest.raises(dfkd.DfkdError, match=r"returns a tuple of 2.*teacher.output=0"):
        dfkd.distill(teacher=teacher, data="digits", set=TINY, out=tmp_path / "a", quiet=True)
    with pytest.raises(dfkd.DfkdError, match=r"teacher.output=5 does not select the logits"):
        dfkd.distill(teacher=teacher, data="digits", set={**TINY, "teacher.output": 5}, out=tmp_path / "b", quiet=True)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    run = dfkd.distill(teacher=teacher, data="digits", set={**TINY, "teacher.output": 0}, out=tmp_path / "c",
                       quiet=True)
    assert run.summary["rounds"] == 2
    assert teacher.training is False and all(p.requires_grad for p in teacher.parameters())  # not changed


# ----------------------------------------------------------------------------- no data at all


def test_no_data_run_reports_agreement_and_no_accuracy(bn_teacher, tmp_path):
    spec = dfkd.InputSpec(channels=1, size=16, num_classes=10, mean=[0.3054], std=[0.3190])
    run = dfkd.distill(teacher=bn_teacher, student="cnn_small", method="dfq", data=spec,
                       set={**TINY, "distill.rounds": 9, "distill.eval_every": 3}, out=tmp_path, quiet=True)
    s = run.summary
    assert s["student_acc"] is None and s["teacher_acc"] is None and "agreement" in s["scored_on"]
    assert 0.0 <= s["agreement"] <= 100.0 and s["agreement_kl"] >= 0.0 and s["best_agreement"] >= s["agreement"] - 1e-9
    assert [r for r, _ in s["curve"]] == [3, 6, 9]
    config = (run.dir / "config.yaml").read_text()
    assert "name: none" in config and "channels: 1" in config
    from dfkd.tables import results

    table = results.render(results.collect([run.dir]))
    assert "(agreement)" in table and "— |" in table


def test_agreement_is_top1_match_on_the_same_held_out_inputs_every_time(bn_teacher, tmp_path):
    """A student that is the teacher agrees 100% with KL 0; the held-out draws do not move the
    training's random streams."""
    spec = dfkd.InputSpec(1, 16, 10)
    run = dfkd.distill(teacher=bn_teacher, student=BNNet(), method="dfad", data=spec,
                       set={**TINY, "student.optim.lr": 0.0, "distill.rounds": 1}, out=tmp_path, quiet=True)
    assert run.summary["agreement"] < 100.0  # a fresh BNNet is not the teacher
    from dfkd.run.evaluate import agreement

    student = copy.deepcopy(bn_teacher)
    probe = dfkd.synthesis.context.TeacherProbe(copy.deepcopy(bn_teacher))

    class Source:
        generator = nn.Module()

        def sample(self, n):
            return torch.randn(n, 1, 16, 16)

    cpu = torch.device("cpu")
    before = torch.random.get_rng_state()
    assert agreement(Source(), probe, student, student, nn.Identity(), nn.Identity(),
                     dfkd.base.runtime.Precision("off", cpu), 64, cpu) == (100.0, pytest.approx(0.0, abs=1e-6))
    assert torch.equal(before, torch.random.get_rng_state())


def test_data_none_reads_the_input_spec_off_the_teacher(bn_teacher, tmp_path):
    assert dfkd.infer_spec(bn_teacher, quiet=True) == dfkd.InputSpec(1, 32, 10)
    run = dfkd.distill(teacher=bn_teacher, set={**TINY, "data.image_size": 16}, out=tmp_path, quiet=True)
    assert run.summary["dataset"] == "none" and run.summary["agreement"] >= 0


def test_eval_folder_scores_the_teacher_and_warns_about_a_wrong_normalisation(bn_teacher, tmp_path, capsys):
    from PIL import Image

    x, y = load_split(DataConfig(image_size=16, mean=[0.0], std=[1.0]), "test").tensors  # raw [0, 1] pixels
    assert 0.2 < x.mean().item() < 0.4  # data.mean / data.std apply to the registered datasets too
    # 6 images per class: a teacher that answers one class for all of them scores exactly 10% (with the
    # first 60 images, a class could hold 9 of them: 15%, on the warning's threshold)
    picked = [i for c in range(10) for i in (y == c).nonzero().flatten()[:6].tolist()]
    for i in picked:
        (tmp_path / "eval" / str(int(y[i]))).mkdir(parents=True, exist_ok=True)
        Image.fromarray((x[i, 0] * 255).round().byte().numpy()).save(tmp_path / "eval" / f"{y[i]}" / f"{i}.png")
    spec = dfkd.InputSpec(1, 16, 10, mean=[0.3054], std=[0.3190])
    run = dfkd.distill(teacher=bn_teacher, data=spec, eval_set=tmp_path / "eval", set=TINY, out=tmp_path / "r")
    assert run.summary["teacher_acc"] > 90.0 and run.summary["student_acc"] is not None
    err = capsys.readouterr().err
    assert "teacher accuracy on" in err and "warning" not in err
    # a std 1000x too large: every input is ~0 and the teacher answers one class for all of them
    dfkd.distill(teacher=bn_teacher, data=dfkd.InputSpec(1, 16, 10, mean=[0.0], std=[1000.0]),
                 eval_set=tmp_path / "eval", set=TINY, out=tmp_path / "bad")
    assert "about chance" in capsys.readouterr().err


def test_eval_set_dataset_object_and_resume_from_python(bn_teacher, tmp_path):
    ds = load_split(DataConfig(), "test")
    run = dfkd.distill(teacher=bn_teacher, data="digits", eval_set=ds, set=TINY, out=tmp_path, quiet=True)
    assert run.summary["teacher_acc"] == pytest.approx(_accuracy(bn_teacher))
    assert "eval_set given from Python" in run.summary["scored_on"]
    (run.dir / "summary.json").unlink()  # as if interrupted after its last checkpoint
    r = _cli("distill", "--resume", str(run.dir))
    assert r.returncode == 2 and "from Python" in r.stderr and r.stderr.count("\n") == 1
    with pytest.raises(dfkd.DfkdError, match="pass it again"):
        dfkd.distill(teacher=bn_teacher, resume=run.dir, quiet=True)
    with pytest.raises(dfkd.DfkdError, match="not the one run"):
        dfkd.distill(teacher=_train(BNNet(), epochs=1), eval_set=ds, resume=run.dir, quiet=True)
    again = dfkd.distill(teacher=bn_teacher, eval_set=ds, resume=run.dir, quiet=True)
    assert again.summary["student_acc"] == pytest.approx(run.summary["student_acc"])


# ----------------------------------------------------------------------------- model specs


def test_student_and_teacher_take_every_spec_form(bn_teacher, tmp_path):
    for student in (f"{HERE}:BNNet", "test_own_model:GNNet", BNNet(), "cnn_small"):
        run = dfkd.distill(teacher=bn_teacher, student=student, data="digits", set={**TINY, "distill.rounds": 1},
                           out=tmp_path / str(len(os.listdir(tmp_path)) if tmp_path.exists() else 0), quiet=True)
        assert isinstance(run.student, nn.Module) and run.summary["student_acc"] is not None
    model = dfkd.load_model(run.dir / "student.pt")
    assert sum(p.numel() for p in model.parameters()) == run.summary["student_params"]


def test_timm_spec_builds_through_timm_when_installed(monkeypatch):
    import types

    calls = []
    fake = types.SimpleNamespace(list_models=lambda pretrained=False: ["tiny_net"],
                                 create_model=lambda name, **kw: calls.append((name, kw)) or nn.Linear(2, 2))
    monkeypatch.setitem(sys.modules, "timm", fake)
    from dfkd.models import build_model

    assert isinstance(build_model("timm:tiny_net", 7, 1), nn.Linear)
    assert calls == [("tiny_net", {"pretrained": False, "num_classes": 7, "in_chans": 1})]
    with pytest.raises(dfkd.DfkdError, match="unknown timm model 'tiny_nte' \\(did you mean 'tiny_net'"):
        build_model("timm:tiny_nte", 7, 1)
    monkeypatch.setitem(sys.modules, "timm", None)
    with pytest.raises(dfkd.DfkdError, match=r"pip install 'dfkd\[timm\]'"):
        build_model("timm:tiny_net", 7, 1)


def test_pretrained_torchvision_weights_from_the_hub_cache_run_deepinversion_and_dfq_at_224px(tmp_path, monkeypatch):
    import torchvision

    from dfkd.models.external import hub_file, torchvision_weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    w = torchvision_weights("mobilenet_v3_small", "IMAGENET1K_V1")
    spec = dfkd.InputSpec(3, 224, 1000, mean=w.transforms().mean, std=w.transforms().std)
    tv = {**QUIET, "teacher.weights": "IMAGENET1K_V1", "synth.batch_size": 4, "distill.rounds": 1}
    with pytest.raises(dfkd.DfkdError, match="mobilenet_v3_small-047dcff4.pth.*--download"):
        dfkd.distill(teacher="torchvision:mobilenet_v3_small", data=spec, set=tv, out=tmp_path / "no", quiet=True)
    assert not (tmp_path / "no").exists()
    torch.manual_seed(0)
    weights = torchvision.models.mobilenet_v3_small(num_classes=1000).state_dict()
    hub_file(w.url).parent.mkdir(parents=True)
    torch.save(weights, hub_file(w.url))
    for method, extra in (("adi", {"synth.g_steps": 2, "pool.capacity": 8}), ("dfq", {"source.width": 16})):
        run = dfkd.distill(teacher="torchvision:mobilenet_v3_small", student="cnn_small", method=method, data=spec,
                           set={**tv, **extra}, out=tmp_path / method, quiet=True)
        assert run.summary["teacher_sha256"] == state_hash(weights) and run.summary["teacher_source"] == "pretrained"
        assert run.summary["agreement"] >= 0.0


# ----------------------------------------------------------------------------- other authors' names


class _TheirBlock(nn.Module):
    """A basic block named as in the CIFAR ResNets of DAFL/DFAD/CMI/Fast ('shortcut') and of
    RepDistiller-style tiny ResNets ('downsample')."""

    def __init__(self, cin, cout, stride, proj_name):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.proj_name = proj_name
        proj = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)) \
            if stride != 1 or cin != cout else None
        setattr(self, proj_name, proj if proj is not None else nn.Sequential())

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + getattr(self, self.proj_name)(x))


class _TheirResNet(nn.Module):
    def __init__(self, blocks, widths, stem, fc_name, proj_name, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, stem, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        cin = stem
        for i, (n, w) in enumerate(zip(blocks, widths)):
            setattr(self, f"layer{i + 1}", nn.Sequential(*[
                _TheirBlock(cin if j == 0 else w, w, (1 if i == 0 else 2) if j == 0 else 1, proj_name)
                for j in range(n)]))
            cin = w
        self.fc_name = fc_name
        setattr(self, fc_name, nn.Linear(cin, num_classes))

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        for i in range(len([n for n in dir(self) if n.startswith("layer")])):
            x = getattr(self, f"layer{i + 1}")(x)
        return getattr(self, self.fc_name)(F.adaptive_avg_pool2d(x, 1).flatten(1))


class _TheirWRNBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout), nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.equal = cin == cout
        self.convShortcut = None if self.equal else nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        o = F.relu(self.bn1(x))
        y = self.conv2(F.relu(self.bn2(self.conv1(o))))
        return y + (x if self.equal else self.convShortcut(o))


class _TheirWRN(nn.Module):
    def __init__(self, depth, k, num_classes=10):
        super().__init__()
        n, w = (depth - 4) // 6, [16, 16 * k, 32 * k, 64 * k]
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        for i in range(3):
            blk = nn.Module()
            blk.layer = nn.Sequential(*[_TheirWRNBlock(w[i] if j == 0 else w[i + 1], w[i + 1],
                                                       (1 if i == 0 else 2) if j == 0 else 1) for j in range(n)])
            setattr(self, f"block{i + 1}", blk)
        self.bn1, self.fc = nn.BatchNorm2d(w[3]), nn.Linear(w[3], num_classes)

    def forward(self, x):
        x = self.conv1(x)
        for i in range(3):
            x = getattr(self, f"block{i + 1}").layer(x)
        return self.fc(F.adaptive_avg_pool2d(F.relu(self.bn1(x)), 1).flatten(1))


def _randomise_bn(model: nn.Module) -> nn.Module:
    g = torch.Generator().manual_seed(3)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model.eval()


@pytest.mark.parametrize("arch,theirs", [
    ("resnet18", lambda: _TheirResNet([2, 2, 2, 2], [64, 128, 256, 512], 64, "linear", "shortcut")),
    ("resnet20", lambda: _TheirResNet([3, 3, 3], [16, 32, 64], 16, "fc", "downsample")),
    ("resnet8x4", lambda: _TheirResNet([1, 1, 1], [64, 128, 256], 32, "fc", "downsample")),
    ("wrn16_2", lambda: _TheirWRN(16, 2)),
    ("wrn40_1", lambda: _TheirWRN(40, 1)),
])
def test_teachers_released_in_the_authors_naming_load_into_the_registry_architectures(tmp_path, arch, theirs):
    torch.manual_seed(0)
    model = _randomise_bn(theirs())
    path = tmp_path / "released.pth"
    torch.save({"net": model.state_dict(), "acc": 95.0}, path)
    ours = dfkd.load_model(path, arch=arch, num_classes=10, in_channels=3)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), model(x), rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------- bad input: one line, nothing written


def test_bad_input_is_one_line_and_writes_nothing(bn_teacher, tmp_path, capsys):
    """Each case through the CLI's entry point in this process (the first also in a fresh process, as a
    user meets it): exit status 2, one line on stderr, no run directory."""
    import re

    from dfkd.cli.main import main

    sd_path = tmp_path / "resnet20.pth"
    torch.save(dfkd.models.build_model("resnet20", 10, 1).state_dict(), sd_path)
    (tmp_path / "broken.py").write_text("import no_such_module_here\n")
    torch.save(bn_teacher, tmp_path / "pickled.pt")
    cases = [
        ({"teacher.checkpoint": sd_path, "teacher.arch": f"{HERE}:BNNet"},
         r"do not fit teacher.arch=.*BNNet: \d+ keys missing \(body.0.weight, .*\d+ unexpected \(stem.0.weight.*"
         r"closest registry architecture is 'resnet20'"),
        ({"teacher.checkpoint": sd_path, "teacher.arch": "resnet20", "teacher.output": 1},
         r"teacher.output=1 does not select the logits: the teacher returns a tensor"),
        ({"teacher.checkpoint": sd_path, "teacher.arch": f"{tmp_path}/broken.py:Net"},
         r"cannot import .*broken.py.*ModuleNotFoundError: No module named 'no_such_module_here'"),
        ({"teacher.checkpoint": sd_path, "teacher.arch": "no_such_pkg.models:Net"},
         r"cannot import 'no_such_pkg.models'"),
        ({"teacher.checkpoint": tmp_path / "pickled.pt", "teacher.arch": f"{HERE}:BNNet"},
         r"pickled Python objects .* for safety"),
        ({"data.name": "none", "data.channels": 3, "data.image_size": 16, "data.num_classes": 10,
          "teacher.checkpoint": sd_path, "teacher.arch": "resnet20"},
         r"take 1-channel inputs \(stem.0.weight\) but the data has 3; describe the inputs"),
        ({"data.name": "none", "data.channels": 1, "teacher.checkpoint": sd_path, "teacher.arch": "resnet20"},
         r"set data.image_size, data.num_classes"),
    ]
    for i, (sets, pattern) in enumerate(cases):
        args = ["distill", "--method", "dfad", "--out", str(tmp_path / "out"), *_sets({**TINY, **sets})]
        if i == 0:
            r = _cli(*args)
            code, err = r.returncode, r.stderr
        else:
            code, err = main(args), capsys.readouterr().err
        assert code == 2, (sets, err)
        assert err.count("\n") == 1 and err.startswith("dfkd: error: "), err
        assert re.search(pattern, err), (pattern, err)
        assert not (tmp_path / "out").exists()
    with pytest.raises(dfkd.DfkdError, match=r"first layer \(body.0\) takes 1-channel inputs but the data has 3"):
        dfkd.distill(teacher=bn_teacher, data=dfkd.InputSpec(3, 16, 10), set=TINY, out=tmp_path / "out")
    with pytest.raises(dfkd.DfkdError, match=r"unknown config key 'distill.round'.*rounds"):
        dfkd.distill(teacher=bn_teacher, data="digits", set={"distill.round": 3}, out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_run_options_in_set_are_taken_or_refused_with_the_argument_to_use(bn_teacher, tmp_path, capsys):
    """`quiet` given in `set` is the quiet argument (nothing printed); `resume` there is refused,
    naming resume=RUN_DIR; a `quiet` that is not a bool is refused too."""
    run = dfkd.distill(teacher=bn_teacher, data="digits", method="dfad", set={**TINY, "quiet": True},
                       out=tmp_path / "out")
    printed = capsys.readouterr()  # not quiet, it would print the teacher's accuracy and a progress bar
    assert run.summary["rounds"] == TINY["distill.rounds"] and printed.out == printed.err == ""
    with pytest.raises(dfkd.DfkdError, match=r"'resume' is not a config key but an argument; pass it as "
                                             r"resume=RUN_DIR"):
        dfkd.distill(teacher=bn_teacher, data="digits", set={"resume": str(run.dir)}, out=tmp_path / "o2")
    with pytest.raises(dfkd.DfkdError, match=r"'quiet' must be true or false, got 'yes'"):
        dfkd.train_teacher("digits", set={"quiet": "yes"}, out=tmp_path / "o2")
    assert not (tmp_path / "o2").exists()


class LeNet28(nn.Module):
    """A user's MNIST-style LeNet-5 for 28-px inputs in [0, 1]: no BatchNorm, a fixed-size classifier."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                                  nn.MaxPool2d(2), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(16 * 4 * 4, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                                  nn.Linear(84, 10))

    def forward(self, x):
        return self.head(self.body(x))


def test_lenet5_half_takes_a_28px_bn_free_teacher_with_no_size_flag(tmp_path):
    """The 28-px eval set alone sets the size; LeNet-5-half (designed for 32 px) centres the inputs
    in a 32-px field, as LeCun et al. did with MNIST, and distils the BN-free teacher with DAFL."""
    data = DataConfig(image_size=28, mean=[0.0], std=[1.0])
    x, y = load_split(data, "train").tensors
    torch.manual_seed(0)
    teacher = LeNet28()
    opt = torch.optim.Adam(teacher.parameters(), 3e-3)
    for _ in range(6):
        for i in torch.randperm(len(y)).split(64):
            opt.zero_grad()
            F.cross_entropy(teacher(x[i]), y[i]).backward()
            opt.step()
    run = dfkd.distill(teacher=teacher.eval(), student="lenet5_half", method="dafl", eval_set=load_split(data, "test"),
                       set={**TINY, "distill.kd_steps": 1, "synth.g_steps": 1}, out=tmp_path, quiet=True)
    assert run.summary["teacher_acc"] > 90.0 and run.summary["student"] == "lenet5_half"
    assert [m.out_channels for m in run.model.modules() if isinstance(m, nn.Conv2d)] == [3, 8, 60]
    with torch.no_grad():  # the padded 28-px input is the 32-px input with its zero border
        probe = torch.rand(4, 1, 28, 28)
        assert torch.equal(run.model(probe), run.model(F.pad(probe, (2, 2, 2, 2))))


class Needs32(nn.Module):
    """A fixed 32-px classifier (fed 16-px digits below)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        self.conv, self.head = nn.Conv2d(in_channels, 4, 3), nn.Linear(4 * 30 * 30, num_classes)

    def forward(self, x):
        return self.head(self.conv(x).flatten(1))


def needs32(num_classes: int, in_channels: int) -> Needs32:
    return Needs32(num_classes, in_channels)


def test_a_student_that_cannot_take_the_size_is_named_with_the_registry_models_that_can(bn_teacher, tmp_path):
    """distill names the student; train-teacher names the architecture to train (a traceback before)."""
    with pytest.raises(dfkd.DfkdError, match=r"the teacher \(.*:needs32\) fails on inputs of shape \(N, 1, 16, 16\) "
                                             r".*; pick an architecture \(--arch\) that takes 16 px \(registry "
                                             r"models that do: cnn, cnn_small, lenet5, "):
        dfkd.train_teacher("digits", arch=f"{HERE}:needs32", set=QUIET, out=tmp_path / "teachers")
    assert not (tmp_path / "teachers").exists()
    with pytest.raises(dfkd.DfkdError, match=r"the student \(module:.*Needs32\) fails on inputs of shape "
                                             r"\(N, 1, 16, 16\) .*; pick a student \(student.arch or your module\) "
                                             r"that takes 16 px \(registry models that do: cnn, cnn_small, lenet5, "):
        dfkd.distill(teacher=bn_teacher, student=Needs32(), data="digits", set=TINY, out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_readme_example_runs_exactly_as_printed(bn_teacher, tmp_path, monkeypatch, capsys):
    readme = open(os.path.join(os.path.dirname(HERE), "..", "README.md"), encoding="utf-8").read()
    section = readme[readme.index("## Distil your own model"):]
    code = section[section.index("```python\n") + len("```python\n"):section.index("```\n", section.index("```python"))]
    assert "dfkd.distill(teacher=model" in code and "InputSpec" in code
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    scope = {"model": bn_teacher}
    exec(compile(code, "README.md", "exec"), scope)
    assert isinstance(scope["run"].student, nn.Module)
    assert scope["run"].summary["dataset"] == "none" and (tmp_path / "runs").is_dir()
    assert "agreement with the teacher:" in capsys.readouterr().out
    assert len(list((tmp_path / "runs").iterdir())) == 2
