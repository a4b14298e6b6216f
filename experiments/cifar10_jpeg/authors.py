"""Run one cell of `side_by_side.yaml` in the authors' own code, unchanged, on this machine's CPU.

    python experiments/cifar10_jpeg/authors.py export --checkout ~/scratch/Fast-Datafree \
        --dfkd-teacher runs/.../teacher.pt --teacher ~/scratch/cifar10_resnet20.pth
    python experiments/cifar10_jpeg/authors.py run --checkout ~/scratch/Fast-Datafree --cell fast2 --seed 0 \
        --teacher ~/scratch/cifar10_resnet20.pth --data ~/scratch/cifar10-jpeg --work ~/scratch/authors-runs \
        [--record experiments/cifar10_jpeg/side_by_side_authors.yaml]

`--checkout` is a copy of the repository and commit the cell's `authors:` entry names (fetch it
read-only and `git archive` that commit into a folder outside this repository: their code is never
copied here). The cell's `authors.args` are passed to their entry point as its command line, from a
fresh working folder `WORK/CELL-sSEED` (their scripts write logs, checkpoints and the PNG pool
relative to it) that holds the shared teacher as `checkpoints/pretrained/cifar10_resnet20.pth` (and
`checkpoints/scratch/`, where ljrprocc/DFKD reads it).

What this wrapper changes, and nothing else (each named in the recorded result):
- CPU: `Tensor.cuda()` and `Module.cuda()` return themselves, `--gpu` reads as None (their
  `device=None` is the CPU), tensors pickled on a GPU load on the CPU (NAYER's label embedding);
  `torchvision.models.utils.load_state_dict_from_url` (moved to `torch.hub` in torchvision 0.13);
  modules imported but unused here (termcolor, xlsxwriter, pandas, wandb) are stubs where absent.
- data: `torchvision.datasets.CIFAR10(root, train)` reads the JPEG copy's `train/` or `test/`
  ImageFolder instead (same classes in the same order, the transforms theirs); every DataLoader
  runs without worker processes or pinned memory (their pool loaders hard-code 4 workers, which
  fork anew after every synthesis on a 2-core machine; dfkd's loaders use none either).
- the cell's `authors.patches`, outright bugs only:
  - `student_not_teacher`: Fast-Datafree issue #11, `datafree_kd.py` builds the generative
    baselines with `student=teacher`, which zeroes their adversarial term; the student built from
    `--student` is put in its place, as zju-vipa/CMI's copy of that script does.
  - `deepinv_adv0`: Fast-Datafree's DeepInversion at `--adv 0` raises UnboundLocalError (its
    `loss_oh.new_zeros(1)` runs before `loss_oh` exists); the weight is a 0.0 that takes their
    `adv > 0` branch, so the competition term is computed and weighted by 0 (their cost, not ours).
  - `tiny_resnet_l`: ljrprocc/DFKD's synthesizers call every network with `l=0` (start at the input),
    which its CIFAR ResNet-18/34 accept and its resnet8/resnet20 do not (TypeError); the tiny ResNet
    takes `l=0` and runs as before (any other level raises).
  - `nayer_method_choice`: NAYER's `--method` accepts only 'nldf' while `datafree_kd.py` runs only
    'nayer' (its scripts fail in argparse); 'nayer' is added to the choices.

`export` writes a dfkd `resnet20` teacher in the authors' parameter names (`{'state_dict': ...}`,
as their `datafree_kd.py` loads it), checks that their `resnet20` built from it gives dfkd's logits,
and prints its sha256; dfkd loads the same file (`teacher.checkpoint=`), so both codes distil the
very same weights.

The result (final and best accuracy, the per-epoch curve, wall time of the whole run, their own
synthesis-time total) is printed as YAML and, with `--record FILE`, merged into FILE under
`runs:` keyed by (cell, seed), with the repository, commit, command and date.
"""
from __future__ import annotations

import argparse
import platform
import re
import runpy
import sys
import time
import types
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
EVAL = re.compile(r"\[Eval\] Epoch=(\d+) Acc@1=([0-9.]+)")
COST = re.compile(r"Generation Cost: ([0-9.]+)")


def authors_run(table: Path, name: str):
    """The cell's `authors:` entry (dfkd.tables.spec.AuthorsRun), read and checked as dfkd reads tables."""
    from dfkd.base.errors import DfkdError
    from dfkd.tables.spec import read_table

    try:
        _, spec = read_table(str(table))
    except DfkdError as e:
        sys.exit(f"authors.py: {e}")
    names = [c.name or c.method for c in spec.cells]
    if name not in names:
        sys.exit(f"authors.py: no cell '{name}' in {table}; cells: {', '.join(names)}")
    auth = spec.cells[names.index(name)].authors
    if auth is None or not auth.args:
        sys.exit(f"authors.py: cell '{name}' of {table} has no 'authors:' entry")
    return auth


class _ZeroWeight(float):
    """0.0 that passes a `weight > 0` test: their `adv > 0` branch runs and contributes nothing."""

    def __gt__(self, other):
        return True


def _stub(name: str, **attrs) -> None:
    """A module their code imports but never uses on this path (absent here)."""
    import importlib.machinery
    import importlib.util

    if importlib.util.find_spec(name) is None:
        m = types.ModuleType(name)
        m.__spec__ = importlib.machinery.ModuleSpec(name, None)
        m.__dict__.update(attrs)
        sys.modules[name] = m


def install_shims(data: Path | None, patches: list[str]) -> None:
    """CPU, the JPEG data and the named patches (module docstring); their code itself is untouched."""
    import io

    import torch
    import torch.utils.data
    import torchvision
    from torchvision.datasets import ImageFolder

    _stub("termcolor", colored=lambda s, *a, **k: s)
    _stub("xlsxwriter")
    _stub("pandas")
    sys.modules["wandb"] = types.SimpleNamespace(init=lambda *a, **k: None, log=lambda *a, **k: None)
    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.nn.Module.cuda = lambda self, *a, **k: self
    # tensors pickled on a GPU (NAYER's label embedding) load on the CPU
    torch.storage._load_from_bytes = lambda b: torch.load(io.BytesIO(b), map_location="cpu", weights_only=False)
    utils = types.ModuleType("torchvision.models.utils")
    utils.load_state_dict_from_url = torch.hub.load_state_dict_from_url
    sys.modules["torchvision.models.utils"] = utils
    torchvision.models.utils = utils

    class Loader(torch.utils.data.DataLoader):
        """Their pool loaders' hard-coded 4 workers and pinned memory: none here, as dfkd's loaders."""

        def __init__(self, *a, **k):
            super().__init__(*a, **{**k, "num_workers": 0, "pin_memory": False})

    torch.utils.data.DataLoader = Loader

    class CIFAR10(ImageFolder):
        """The JPEG copy's train/ or test/ folder under CIFAR10's signature (a class: their
        registries subclass it)."""

        def __init__(self, root, train=True, transform=None, target_transform=None, download=False):
            super().__init__(str(data / ("train" if train else "test")), transform=transform,
                             target_transform=target_transform)

    if data is not None:
        torchvision.datasets.CIFAR10 = CIFAR10
    parse = argparse.ArgumentParser.parse_args

    def parse_args(self, *a, **k):
        for act in self._actions:
            if act.dest == "method" and act.choices is not None and "nayer_method_choice" in patches:
                act.choices = [*act.choices, "nayer"]
        ns = parse(self, *a, **k)
        if hasattr(ns, "gpu"):
            ns.gpu = None
        return ns

    argparse.ArgumentParser.parse_args = parse_args
    if "student_not_teacher" in patches:
        import datafree
        import registry

        built = []
        get_model = registry.get_model

        def recording(name, *a, **k):
            built.append(get_model(name, *a, **k))
            return built[-1]

        registry.get_model = recording  # datafree_kd.py builds the student first, then the teacher
        cls = datafree.synthesis.GenerativeSynthesizer
        init = cls.__init__

        def patched(self, teacher, student, *a, **k):
            init(self, teacher, built[0] if student is teacher else student, *a, **k)

        cls.__init__ = patched
    if "tiny_resnet_l" in patches:
        from datafree.models.classifiers import resnet_tiny

        forward = resnet_tiny.ResNet.forward

        def forward_l(self, x, return_features=False, l=0):
            if l != 0:
                raise NotImplementedError("tiny_resnet_l: only l=0 (the whole network)")
            return forward(self, x, return_features)

        resnet_tiny.ResNet.forward = forward_l
    if "deepinv_adv0" in patches:
        import datafree

        cls = datafree.synthesis.DeepInvSyntheiszer
        init_di = cls.__init__

        def patched_di(self, *a, **k):
            init_di(self, *a, **k)
            if self.adv == 0:
                self.adv = _ZeroWeight(0.0)

        cls.__init__ = patched_di


def parse_log(log: Path) -> dict:
    text = log.read_text()
    curve = [[int(e), float(a)] for e, a in EVAL.findall(text)]
    if not curve:
        sys.exit(f"authors.py: no '[Eval]' line in {log}; the run failed (see its output above)")
    cost = COST.search(text)
    return {"final": curve[-1][1], "best": max(a for _, a in curve), "curve": curve,
            "synth_s": round(float(cost.group(1)) * 3600, 1) if cost else None}


def export(args) -> None:
    """The dfkd teacher in the authors' names, checked against their own resnet20 on random inputs."""
    import hashlib

    import torch

    from dfkd.io.checkpoint import read_model
    from dfkd.models import build_model
    from dfkd.models.naming import RESNET_RULES, rename

    sys.path.insert(0, str(args.checkout.resolve()))
    install_shims(None, [])
    import registry

    ckpt = read_model(args.dfkd_teacher)  # verified against its sha256
    ours = build_model(ckpt["arch"], num_classes=ckpt["num_classes"], in_channels=ckpt["in_channels"])
    ours.load_state_dict(ckpt["state_dict"])
    theirs = registry.get_model(ckpt["arch"], num_classes=ckpt["num_classes"])
    mine = ours.state_dict()
    state = {k: mine[rename(k, RESNET_RULES)].clone() for k in theirs.state_dict()}
    theirs.load_state_dict(state)
    x = torch.randn(16, 3, 32, 32)
    gap = (ours.eval()(x) - theirs.eval()(x)).abs().max().item()
    if gap > 1e-5:
        sys.exit(f"authors.py: their resnet20 differs from dfkd's by {gap:.2e} on the same inputs")
    args.teacher.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": state}, args.teacher)
    digest = hashlib.sha256(args.teacher.read_bytes()).hexdigest()
    print(f"{args.teacher}: {len(state)} tensors in the authors' names, logits equal to {gap:.1e}, sha256 {digest}")


def embedding(args) -> None:
    """NAYER's CIFAR-10 class embedding (CLIP text features, pickled on a GPU in fp16) as a float
    tensor file for dfkd's `source.embed`, so both codes start from the same embedding."""
    import pickle

    import torch

    install_shims(None, [])
    with open(args.checkout / "label_embedding" / "cifar10_le.pickle", "rb") as f:
        emb = pickle.load(f).float().cpu()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(emb, args.out)
    print(f"{args.out}: class embedding {tuple(emb.shape)} (dfkd: --set source.embed={args.out})")


def run(args) -> None:
    auth = authors_run(args.table, args.cell)
    patches = auth.patches or []
    record = args.record.resolve() if args.record else None
    data = args.data.resolve()
    run_dir = (args.work / f"{args.cell}-s{args.seed}").resolve()
    if run_dir.exists():
        sys.exit(f"authors.py: {run_dir} exists; remove it to run the cell again")
    for folder in ("pretrained", "scratch"):  # Fast-Datafree and NAYER read pretrained/, ljrprocc/DFKD scratch/
        (run_dir / "checkpoints" / folder).mkdir(parents=True)
        (run_dir / "checkpoints" / folder / "cifar10_resnet20.pth").symlink_to(args.teacher.resolve())
    checkout = args.checkout.resolve()
    if (checkout / "label_embedding").is_dir():  # NAYER reads its class embeddings relative to the cwd
        (run_dir / "label_embedding").symlink_to(checkout / "label_embedding")
    ssn = auth.entry.endswith("train_cvpr2023.py")  # SpaceshipNet: their model class, their loop re-stated
    argv_their = [*auth.args.split(), *([f"manualSeed={args.seed}"] if ssn else ["--seed", str(args.seed)]),
                  *args.extra.split()]
    import os

    os.chdir(run_dir)
    sys.argv = [auth.entry, *argv_their]
    start = time.perf_counter()
    if ssn:
        sys.path.insert(0, str(HERE))
        import authors_spaceshipnet

        authors_spaceshipnet.run(checkout, argv_their, args.teacher.resolve(), data, run_dir)
    else:
        sys.path.insert(0, str(checkout))
        install_shims(data, patches)
        runpy.run_path(str(checkout / sys.argv[0]), run_name="__main__")
    wall = time.perf_counter() - start
    logs = sorted(run_dir.glob("checkpoints/datafree-*/log-*.txt")) or sorted(run_dir.rglob("log*.txt"))
    if not logs:
        sys.exit(f"authors.py: no log file under {run_dir}")
    result = {"cell": args.cell, "seed": args.seed, **parse_log(logs[0]), "wall_s": round(wall, 1),
              "repo": auth.repo, "commit": auth.commit,
              "command": " ".join(["python", "experiments/cifar10_jpeg/authors_spaceshipnet.py" if ssn else sys.argv[0],
                                   *argv_their]),
              "patches": patches, "date": time.strftime("%Y-%m-%d"),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {__import__('torch').__version__}"}
    print(yaml.safe_dump({k: v for k, v in result.items() if k != "curve"}, sort_keys=False))
    (run_dir / "result.yaml").write_text(yaml.safe_dump(result, sort_keys=False))
    if record:
        data = (yaml.safe_load(record.read_text()) if record.exists() else None) or {"runs": []}
        data["runs"] = [r for r in data["runs"] if (r["cell"], r["seed"]) != (args.cell, args.seed)] + [result]
        data["runs"].sort(key=lambda r: (r["cell"], r["seed"]))
        record.write_text(yaml.safe_dump(data, sort_keys=False, width=120, default_flow_style=None))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("export", help="the dfkd teacher in the authors' parameter names")
    ex.add_argument("--checkout", required=True, type=Path, help="the authors' repository (for their resnet20)")
    ex.add_argument("--dfkd-teacher", required=True, type=Path, help="teacher.pt written by dfkd train-teacher")
    ex.add_argument("--teacher", required=True, type=Path, help="where the authors' file goes")
    em = sub.add_parser("embedding", help="NAYER's class embedding as a tensor file for source.embed")
    em.add_argument("--checkout", required=True, type=Path, help="the NAYER repository")
    em.add_argument("--out", required=True, type=Path, help="where the tensor file goes")
    r = sub.add_parser("run", help="one cell and seed in the authors' code")
    r.add_argument("--checkout", required=True, type=Path, help="the authors' repository at the cell's commit")
    r.add_argument("--cell", required=True)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--teacher", required=True, type=Path, help="the shared teacher in the authors' naming")
    r.add_argument("--data", required=True, type=Path, help="the extracted cifar10-jpeg folder (train/, test/)")
    r.add_argument("--work", required=True, type=Path, help="scratch folder for the run (outside the repository)")
    r.add_argument("--table", type=Path, default=HERE / "side_by_side.yaml")
    r.add_argument("--record", type=Path, help="merge the result into this YAML file")
    r.add_argument("--extra", default="", help="more of their options after the cell's (a smoke test: "
                                               "'--epochs 2'); recorded in the command")
    args = ap.parse_args(argv)
    {"export": export, "embedding": embedding, "run": run}[args.command](args)


if __name__ == "__main__":
    main()
