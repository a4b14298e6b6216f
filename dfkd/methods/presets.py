"""What the data-free recipes share: the digits table's budget and the authors' CIFAR schedule of the
pool-based methods as per-dataset presets, and the authors' repositories at the commits read."""
from __future__ import annotations

from dfkd.config.load import deep_merge
from dfkd.methods.registry import Preset

# ----------------------------------------------------------------------------- per-dataset presets
# digits: the budget of our digits table (experiments/digits): 1,000 student steps at batch 128 with
# a half-width generator, a few minutes per run on 2 CPU cores; per method what that table measured.
DIGITS_BUDGET = {"source": {"width": 64}, "synth": {"batch_size": 128}, "distill": {"rounds": 200, "eval_every": 20}}
DIGITS_SOURCE = "the digits table (experiments/digits): 1,000 student steps at batch 128, half-width generator"


def digits_preset(extra: dict | None = None, why: str = "") -> Preset:
    return Preset(deep_merge(DIGITS_BUDGET, extra or {}), DIGITS_SOURCE + (f"; {why}" if why else ""))


# The authors' repositories, at the commits read (docs/fidelity.md lists each difference that remains).
FD = "zju-vipa/Fast-Datafree@0dcecbc"
CMI_REPO = "zju-vipa/CMI@9e79fa9"
NV = "NVlabs/DeepInversion@2413af1"

# CIFAR-10/100: the schedule of the authors' scripts for the pool-based methods (FD datafree_kd.py,
# scripts/*_cifar.sh): batch 256, 400 student steps per round at T = 20, student SGD with weight decay
# 1e-4 and cosine decay per epoch to 2e-4 (CosineAnnealingLR(200, eta_min=2e-4)); the pool holds every
# round's batch (the authors' PNG folder is never trimmed).
CIFAR_POOL = {"distill": {"kd_steps": 400, "eval_every": 10}, "objective": {"temperature": 20.0},
               "student": {"optim": {"weight_decay": 1e-4, "min_lr": 2e-4}}}
CIFAR_SOURCE = f"the authors' CIFAR scripts ({FD} datafree_kd.py, scripts/*_cifar.sh)"


def cifar_presets(values: dict, why: str = "", source: str = CIFAR_SOURCE) -> dict[str, Preset]:
    """The same preset for CIFAR-10 and CIFAR-100, over the pool schedule; the pool holds every round's
    batch (rounds x batch, as the authors' never-trimmed folder)."""
    v = deep_merge(CIFAR_POOL, values)
    rounds, batch = v.get("distill", {}).get("rounds", 200), v.get("synth", {}).get("batch_size", 256)
    v = deep_merge({"pool": {"capacity": rounds * batch}}, v)
    p = Preset(v, source + (f": {why}" if why else ""))
    return {"cifar10": p, "cifar100": p}
