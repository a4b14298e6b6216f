"""The SpaceshipNet cell in the authors' code (skgyu/SpaceshipNet, code/SpaceshipNet), for authors.py.

Their entry point, `train/train_cvpr2023.py`, has networks for ResNet-18/34, VGG and WRN only, reads
CIFAR from the pickled batches and stores its feature pools in LMDB; so this runner drives their
model class itself: `models/model_CFE_mSARC_base.py` with the V37 functions bound onto it by their
own `initialize` (the variant every one of their scripts names), from their YAML config, through
the epoch loop their script runs (train_cvpr2023.py:290-330, re-stated here without its image
dumps, checkpoints and confusion matrices):

    for epoch in range(start_epoch, max_epoch + 1):
        trainer.iepoch = epoch; trainer.trainstate(); trainer.clear_loss(); trainer.optimize_step()
        trainer.evalstate(); test(...); trainer.update_learning_rate(epoch + 1)

Their args are `--config FILE` (relative to code/SpaceshipNet) then KEY=VALUE overrides of its
top-level keys (YAML values); the seed is their `manualSeed`, set as their options parser does
(random, numpy, torch).

What this runner changes, and nothing else:
- networks: the teacher and the student are dfkd's `resnet20` / `resnet8` presented in their
  ResNet's interface (forward returns (logits, pooled feature, last feature map, [stage outputs]);
  with `do_save_gradient` on, a hook on each stage output, their own methods bound), the teacher
  with the shared weights (authors.py export's file, in Fast-Datafree's names); their generator,
  CMIGeneratorV3, is built by their own `find_network`. Their initialisations run as coded
  (student Xavier-normal with gain sqrt 2, generator Kaiming).
- modules absent here and unused on this path: lmdb (an in-memory environment with the calls their
  feature pool makes), pickle5 (the stdlib's), pyarrow, cv2, pandas, tensorboardX, timm.
- CPU: `Tensor.cuda` is the identity, device 'cpu'; DataLoaders without worker processes.
- their debug image dumps (`record_batchimg`, `record_feature_fuse`) write nothing.
- options their argparse would add and this path reads: isTrain, device, gpu_ids [], local_rank 0,
  aug_padding 4, weight_decay 1e-4, the pool type SkyuFeatureLabelImagePool, synthesize_interval 1,
  and the run folder for expr_dir / debug folders.
- test: the student's top-1 on the JPEG copy's 10,000 test images, normalised by their
  `prin_normalize`, after every epoch, printed as `[Eval] Epoch=E Acc@1=A` (their script computes
  the same accuracy from the pickled images).
"""
from __future__ import annotations

import importlib.machinery
import os
import pickle
import random
import sys
import types
from pathlib import Path


class _Txn:
    def __init__(self, env):
        self.env = env

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False

    def stat(self):
        return {"entries": len(self.env.store)}

    def get(self, key):
        return self.env.store.get(key)

    def put(self, key, value):
        self.env.store[key] = value
        return True

    def commit(self):
        pass


class _Env:
    """lmdb.open's environment, in memory (their SkyuFeatureLabelImagePool's calls)."""

    def __init__(self, path, **kw):
        self.path, self.store = path, {}

    def begin(self, write=False):
        return _Txn(self)

    def sync(self):
        pass


def _stub(name: str, **attrs) -> None:
    mod = types.ModuleType(name)
    mod.__spec__ = importlib.machinery.ModuleSpec(name, None)
    mod.__dict__.update(attrs)
    sys.modules[name] = mod


class Opt(dict):
    """Their options object (an EasyDict: attribute and item access, nested)."""

    def __getattr__(self, k):
        try:
            return self[k]
        except KeyError as e:
            raise AttributeError(k) from e

    def __setattr__(self, k, v):
        self[k] = v

    @classmethod
    def of(cls, x):
        return cls({k: cls.of(v) for k, v in x.items()}) if isinstance(x, dict) else x


def as_theirs(net, resnet_class):
    """A dfkd CIFAR ResNet (stem, stages, pool, fc) in the interface of their
    networks/resnet_cifar_1028.ResNet; `resnet_class` lends its gradient-saving methods."""
    from torch import nn

    class AsTheirs(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net
            self.linear = net.fc
            self.linear_attr = "linear"
            self.linear_input_dim = net.fc.in_features
            self.bool_save_gradient = False
            self.gradients = []
            for name in ("do_save_gradient", "save_gradient", "get_gradient"):
                setattr(self, name, types.MethodType(getattr(resnet_class, name), self))

        def forward(self, x):
            if self.bool_save_gradient:
                self.gradients = []
            x = self.net.stem(x)
            conv_outputs = []
            for stage in self.net.stages:
                for block in stage:
                    x = block(x)
                if self.bool_save_gradient:
                    x.register_hook(self.save_gradient)
                conv_outputs.append(x)
            feature = self.net.pool(x)
            return self.net.fc(feature), feature, x, conv_outputs

    return AsTheirs()


def read_config(checkout: Path, args: list[str]) -> tuple[Path, dict]:
    import yaml

    if len(args) < 2 or args[0] != "--config":
        sys.exit("authors_spaceshipnet.py: the cell's args must start with '--config FILE'")
    config = checkout / args[1]
    cfg = yaml.safe_load(config.read_text())
    for kv in args[2:]:
        key, sep, value = kv.partition("=")
        if not sep or key not in cfg:
            sys.exit(f"authors_spaceshipnet.py: '{kv}' is not KEY=VALUE with a key of {config.name}")
        cfg[key] = yaml.safe_load(value)
    return config, cfg


def run(checkout: Path, args: list[str], teacher: Path, data: Path, run_dir: Path) -> Path:
    """Runs the cell in `run_dir` (the current folder); returns the log holding the `[Eval]` lines."""
    import numpy
    import torch
    import torchvision  # noqa: F401  (before the stubs)
    from torchvision import transforms
    from torchvision.datasets import ImageFolder

    from dfkd.models import build_model
    from dfkd.models.naming import RESNET_RULES, rename

    root = checkout / "code" / "SpaceshipNet"
    _stub("lmdb", open=lambda path, **kw: _Env(path, **kw))
    sys.modules["pickle5"] = pickle
    for name in ("pyarrow", "cv2", "pandas", "tensorboardX", "timm", "timm.data"):
        _stub(name)
    _stub("timm.data.mixup", Mixup=None)
    _stub("easydict", EasyDict=Opt)
    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.nn.Module.cuda = lambda self, *a, **k: self
    loader = torch.utils.data.DataLoader

    class Loader(loader):
        def __init__(self, *a, **k):
            super().__init__(*a, **{**k, "num_workers": 0, "pin_memory": False})

    torch.utils.data.DataLoader = Loader
    sys.path.insert(0, str(root))
    cwd = Path.cwd()
    os.chdir(root)  # their initialize copies its model files by paths relative to code/SpaceshipNet
    import networks
    import networks.resnet_cifar_1028 as their_resnet
    from models.model_CFE_mSARC_base import model_CFE_mSARC_base

    config, cfg = read_config(checkout / "code" / "SpaceshipNet", args)
    seed = cfg["manualSeed"]
    random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    numpy.random.seed(seed)
    torch.manual_seed(seed)

    classes = cfg["teacher_net"]["num_classes"]
    t_net = build_model("resnet20", num_classes=classes, in_channels=3)
    saved = torch.load(teacher, map_location="cpu", weights_only=False)["state_dict"]
    t_net.load_state_dict({rename(k, RESNET_RULES): v for k, v in saved.items()})
    s_net = build_model("resnet8", num_classes=classes, in_channels=3)
    nets = {"teacher_net": as_theirs(t_net, their_resnet.ResNet), "student_net": as_theirs(s_net, their_resnet.ResNet)}
    cfg.update(isTrain=True, device="cpu", gpu_ids=[], local_rank=0, aug_padding=4, weight_decay=1e-4,
               FeatureLabelImagePoolType="SkyuFeatureLabelImagePool", synthesize_interval=1,
               expr_dir=str(run_dir), debug_info_dir=str(run_dir), debug_image_dir=str(run_dir), num_workers=0)
    opt = Opt.of(cfg)
    find = networks.find_network
    built = {}

    def find_network(spec):
        for role, net in nets.items():
            if spec is opt[role]:
                built[role] = net
                return net
        return find(spec)

    networks.find_network = find_network
    trainer = model_CFE_mSARC_base()
    trainer.initialize(opt)
    if set(built) != set(nets):
        sys.exit(f"authors_spaceshipnet.py: their model did not build {sorted(set(nets) - set(built))}")
    trainer.record_batchimg = lambda *a, **k: None
    trainer.record_feature_fuse = lambda *a, **k: None
    os.chdir(cwd)

    mean, std = cfg["prin_normalize"]
    test = ImageFolder(str(data / "test"), transform=transforms.Compose([transforms.ToTensor(),
                                                                         transforms.Normalize(mean, std)]))
    tests = loader(test, batch_size=256, shuffle=False, num_workers=0)

    def accuracy() -> float:
        right = 0
        with torch.no_grad():
            for x, y in tests:
                right += (trainer.student_net(x)[0].argmax(1) == y).sum().item()
        return 100.0 * right / len(test)

    log = run_dir / "log.txt"
    with open(log, "w") as out:
        for epoch in range(cfg["start_epoch"], cfg["max_epoch"] + 1):
            trainer.iepoch = epoch
            trainer.trainstate()
            trainer.clear_loss()
            trainer.optimize_step()
            trainer.evalstate()
            line = f"[Eval] Epoch={epoch} Acc@1={accuracy():.4f} Lr={trainer.optimizer_S.param_groups[0]['lr']:.4f}"
            print(line, flush=True)
            out.write(line + "\n")
            out.flush()
            trainer.update_learning_rate(epoch + 1)
    return log
