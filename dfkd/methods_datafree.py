"""The data-free recipes (DFAD, DAFL, DFQ, ZSKT, DeepInversion, ADI, CMI, Fast, NAYER, the noise
control) and their per-dataset presets. Each recipe's docstring cites its paper and says where it
knowingly differs."""
from __future__ import annotations

import math

from .config import deep_merge
from .method_registry import Preset, recipe

# ----------------------------------------------------------------------------- per-dataset presets
# digits: the budget of our digits table (experiments/digits): 1,000 student steps at batch 128 with
# a half-width generator, a few minutes per run on 2 CPU cores; per method what that table measured.
_DIGITS_BUDGET = {"source": {"width": 64}, "synth": {"batch_size": 128}, "distill": {"rounds": 200, "eval_every": 20}}
_DIGITS_SOURCE = "the digits table (experiments/digits): 1,000 student steps at batch 128, half-width generator"


def _digits(extra: dict | None = None, why: str = "") -> Preset:
    return Preset(deep_merge(_DIGITS_BUDGET, extra or {}), _DIGITS_SOURCE + (f"; {why}" if why else ""))


# CIFAR-10/100: the schedule of the authors' scripts for the pool-based methods (zju-vipa/Fast-Datafree,
# the CMI and Fast tables): batch 256, 400 student steps per round from a 51,200-sample pool at T = 20.
_CIFAR_POOL = {"pool": {"capacity": 51200}, "distill": {"kd_steps": 400, "eval_every": 10},
               "objective": {"temperature": 20.0}}
_CIFAR_SOURCE = "the authors' CIFAR scripts (zju-vipa/Fast-Datafree, Fang et al. 2021, 2022)"


def _cifar(values: dict, why: str = "") -> dict[str, Preset]:
    p = Preset(deep_merge(_CIFAR_POOL, values), _CIFAR_SOURCE + (f": {why}" if why else ""))
    return {"cifar10": p, "cifar100": p}


DFAD = recipe("dfad", "adversarial generator maximising L1(S, T) (Fang et al. 2019)",
    """DFAD — Fang, Song, Shen, Wang, Song (2019), "Data-Free Adversarial Distillation",
arXiv:1912.11006. A persistent generator maximises the L1 distance between student and teacher
logits; the student minimises it on fresh samples: 1 generator step : 5 student steps per round.
Student SGD (lr 0.1, momentum 0.9, wd 5e-4), generator Adam (lr 1e-3). Differs from the authors'
code: learning rates follow a cosine schedule over the run instead of step decay (the plain loop
collapses late in training on small data; cosine decay holds it).""", {
    "source": {"name": "dcgan"},
    "synth": {"schedule": "persistent", "g_steps": 1},
    "objective": {"generator": {"adv_l1": 1.0}, "student": {"kd_l1": 1.0}},
    "distill": {"kd_steps": 5, "batch": "fresh"},
}, presets={
    "digits": _digits({"student": {"optim": {"lr": 0.3}}},
                      "student lr 0.3 for this short budget (59.2 +- 3.1% against 47.7 +- 9.9 at the paper's 0.1, "
                      "seeds 0-2)"),
    "mnist": Preset({"student": {"optim": {"lr": 0.01, "weight_decay": 1e-4, "schedule": "constant"}},
                     "source": {"optim": {"betas": [0.9, 0.999], "schedule": "constant"}},
                     "synth": {"batch_size": 512}},
                    "the authors' MNIST script (DFAD, Fang et al. 2019): student SGD lr 0.01, momentum 0.9, wd "
                    "1e-4, generator Adam 1e-3, both constant, batch 512; at the recipe's lr 0.1 the BN-free "
                    "LeNet-5-half loses its units (27.5 +- 29.8%)"),
})

DAFL = recipe("dafl", "non-adversarial generator: one-hot + class balance + activation (Chen et al. 2019)",
    """DAFL — Chen, Wang, Xu, Yang, Liu, Shi, Xu, Xu, Tian (2019), "Data-Free Learning of
Student Networks", ICCV 2019, arXiv:1904.01186. A persistent generator, trained *without* the
student, makes inputs on which the teacher is confident (one-hot CE, weight 1), whose batch covers
the classes evenly (information entropy, weight 5 with log10 = 5/ln 10 here) and that excite the
teacher's penultimate features (activation, weight 0.1). The student learns by KL on the same
batch, one student step per generator step. Generator and student both use Adam. The authors'
generator rate is per dataset (their README: a constant lr 0.2 on MNIST, 0.02 on CIFAR), which the
tables set; the default here (lr 1e-3, betas 0.5, cosine) suits the embedded digits, where lr 0.2
stays near chance (10-15% after 300 steps against 71-77%). On MNIST the large rate matters: every generator
layer is batch-normalised, so the rate's effect shrinks as its weights grow and the generator settles;
at lr 1e-3 it keeps drifting to inputs the teacher is sure of but the student cannot generalise from
(3 seeds, 24,000 iterations: 56.7%, against 97.5% after 8,000 iterations at lr 0.2).""", {
    "source": {"name": "dcgan"},
    "synth": {"schedule": "persistent", "g_steps": 1},
    "objective": {"generator": {"oh": 1.0, "ie": 5.0 / math.log(10), "act": 0.1},
                  "student": {"kd_kl": 1.0}},
    "distill": {"kd_steps": 1, "batch": "reuse"},
    "student": {"optim": {"name": "adam", "lr": 2e-3, "weight_decay": 0.0}},
}, presets={
    "digits": _digits({"distill": {"rounds": 1000, "eval_every": 100}, "student": {"optim": {"lr": 5e-3}}},
                      "1,000 rounds of one student step; student lr 5e-3 (seed 0: 65.6% -> 84.7%)"),
    "mnist": Preset({"source": {"optim": {"lr": 0.2, "betas": [0.9, 0.999], "schedule": "constant"}},
                     "synth": {"batch_size": 512}},
                    "the authors' MNIST README and script (DAFL, Chen et al. 2019): generator Adam at a constant "
                    "lr 0.2 with default betas, batch 512, student Adam 2e-3 (97.5% where lr 1e-3 gave 56.7%)"),
    "cifar10": Preset({"source": {"optim": {"lr": 0.02, "betas": [0.9, 0.999], "schedule": "constant"}}},
                      "the authors' CIFAR-10 README (DAFL, Chen et al. 2019): generator Adam at a constant lr 0.02"),
    "cifar100": Preset({"source": {"optim": {"lr": 0.02, "betas": [0.9, 0.999], "schedule": "constant"}},
                        "objective": {"generator": {"oh": 0.5}}},
                       "the authors' CIFAR-100 README (DAFL, Chen et al. 2019): generator Adam at a constant "
                       "lr 0.02, one-hot weight 0.5"),
})

DFQ = recipe("dfq", "adversarial generator + BN-statistics prior + one-hot (Choi et al. 2020)",
    """DFQ-style — Choi, Choi, El-Khamy, Lee (2020), "Data-Free Network Quantization With
Adversarial Knowledge Distillation", CVPR Workshops 2020, arXiv:2005.04136; the generative baseline
of the CMI and Fast tables. A persistent generator maximises KL(T||S) while matching the teacher's
BatchNorm statistics (weight 1) and keeping the teacher confident (one-hot CE, weight 1); the student
minimises KL on fresh samples, 5 student steps per generator step. The BN-statistics prior is what
keeps the generator on the data manifold: on digits it lifts the same loop from ~40% (DFAD) to ~99%.
Differs from the paper: one generator and one student (the paper also ensembles several), and the
batch-entropy term is off by default (`objective.generator.ie`).""", {
    "source": {"name": "dcgan"},
    "synth": {"schedule": "persistent", "g_steps": 1},
    "objective": {"generator": {"adv_kl": 1.0, "bn": 1.0, "oh": 1.0}, "student": {"kd_kl": 1.0}},
    "distill": {"kd_steps": 5, "batch": "fresh"},
}, presets={"digits": _digits()})

ZSKT = recipe("zskt", "adversarial generator, KL + attention transfer, 10 student steps per batch "
                      "(Micaelli & Storkey 2019)",
    """ZSKT — Micaelli & Storkey (2019), "Zero-shot Knowledge Transfer via Adversarial Belief
Matching", NeurIPS 2019, arXiv:1905.09768. A persistent generator maximises KL(T||S); the student
minimises KL(T||S) + 250·attention transfer over matched stage outputs, taking 10 steps on each
generated batch (n_G = 1, n_S = 10). Generator Adam lr 1e-3, student Adam lr 2e-3, both with
cosine decay, as in the paper. Differs: the generator is the DAFL/DFAD one (the paper's is a
similar DCGAN-style net), and stages are paired automatically by spatial size
(`dfkd.hooks.match_stages`) instead of by hand-written block lists.""", {
    "source": {"name": "dcgan"},
    "synth": {"schedule": "persistent", "g_steps": 1},
    "objective": {"generator": {"adv_kl": 1.0}, "student": {"kd_kl": 1.0, "at": 250.0}},
    "distill": {"kd_steps": 10, "batch": "reuse"},
    "student": {"optim": {"name": "adam", "lr": 2e-3, "weight_decay": 5e-4}},
}, presets={
    "digits": _digits({"distill": {"rounds": 100, "eval_every": 10}, "student": {"optim": {"lr": 5e-3}}},
                      "100 rounds of 10 student steps; student lr 5e-3 (92.2 / 73.6 / 84.2% against 36.7 / 26.1 / "
                      "10.6 at the paper's 2e-3, seeds 0-2)"),
})

_DEEPINV = {
    "source": {"name": "pixels", "optim": {"name": "adam", "lr": 0.1, "betas": [0.9, 0.999],
                                           "weight_decay": 0.0, "schedule": "cosine"}},
    "synth": {"schedule": "reinit", "g_steps": 2000, "augment": "crop"},
    "objective": {"generator": {"ce": 1.0, "bn": 1.0, "tv_l2": 0.005, "l2": 1e-3},
                  "params": {"bn": {"first": 10.0}}, "student": {"kd_kl": 1.0}},
    "distill": {"kd_steps": 20, "batch": "pool"},
    "pool": {"capacity": 8192},
}

DEEPINV = recipe("deepinv", "free pixels re-initialised per round, BN + priors, replay pool (Yin et al. 2020)",
    """DeepInversion — Yin, Molchanov, Alvarez, Li, Mallya, Hoiem, Jha, Kautz (2020),
"Dreaming to Distill: Data-free Knowledge Transfer via DeepInversion", CVPR 2020, arXiv:1912.08795.
Free pixels, re-initialised every round and optimised with Adam for g_steps (2,000 in the paper) on
CE towards sampled target classes + BN statistics (first BN layer ×10) + squared TV + L2 priors,
under random crop (jitter) and flip; each round's batch goes to a replay pool the student distils
from with KL. Differs: the prior weights (bn 1, tv_l2 0.005, l2 1e-3) are set for normalised
small images — the paper's ImageNet weights (bn 0.01, tv_l2 1e-4, l2 1e-5) assume 224-px inputs;
on digits (40 rounds of 50 steps, seed 0) tv_l2 0.005 gave 54.4% against 44.4% for 0.05 — and
synthesis is interleaved with student training instead of done once up front.""", _DEEPINV, presets={
    "digits": _digits({"distill": {"rounds": 100, "eval_every": 10, "kd_steps": 10}, "synth": {"g_steps": 25}},
                      "100 rounds of 25 pixel steps (2,000 in the paper) and 10 student steps: seed 0 65.0% in "
                      "136 s, against 52.5% for 50 rounds of 50 steps and 20 student steps at the same cost"),
    **_cifar({"distill": {"rounds": 200}, "student": {"optim": {"lr": 0.1}}},
             "200 rounds of 2,000 pixel steps, student SGD 0.1"),
})

ADI = recipe("adi", "DeepInversion + JS competition with the student (Yin et al. 2020)",
    """Adaptive DeepInversion (ADI) — Yin et al. (2020), CVPR, arXiv:1912.08795: DeepInversion plus
the competition term 1 − JS(S, T) at temperature 3, which pushes the pixels toward inputs the
student has not learned yet (here −JS, equal up to a constant; weight 1). The temperature is
shared: the student's KL runs at T = 3 too.""",
                  deep_merge(_DEEPINV, {"objective": {"generator": {"adv_js": 1.0}, "temperature": 3.0}}),
                  presets={**DEEPINV.presets, "digits": _digits(
                      {"distill": {"rounds": 50, "eval_every": 10}, "synth": {"g_steps": 50}},
                      "50 rounds of 50 pixel steps (2,000 in the paper) and 20 student steps")})

CMI = recipe("cmi", "generator re-initialised per round + contrastive InfoNCE over a memory bank, pool "
                    "(Fang et al. 2021)",
    """CMI — Fang, Song, Wang, Shen, Wang, Song (2021), "Contrastive Model
Inversion for Data-Free Knowledge Distillation", IJCAI 2021, arXiv:2105.08584. The generator is
re-initialised every round and optimised for g_steps on BN statistics + one-hot + adversarial KL +
a contrastive term: each sample's teacher embedding (per-sample BN-input means through an MLP head
trained with the generator) must match the embedding of its own local crop against the rest of the
batch and a memory bank of earlier samples (InfoNCE, tau 0.1). Batches go to a replay pool the
student distils from. Differs: the local view is a random resized crop of the batch the teacher
saw, and the weights (bn 1, oh 1, adv 1, cmi 0.8) are a starting point, not the paper's
per-dataset values.""", {
    "source": {"name": "dcgan", "optim": {"name": "adam", "lr": 1e-3, "betas": [0.5, 0.999],
                                          "weight_decay": 0.0, "schedule": "constant"}},
    "synth": {"schedule": "reinit", "g_steps": 200, "augment": "crop"},
    "objective": {"generator": {"bn": 1.0, "oh": 1.0, "adv_kl": 1.0, "cmi": 0.8}, "student": {"kd_kl": 1.0}},
    "distill": {"kd_steps": 5, "batch": "pool"},
    "pool": {"capacity": 8192},
}, presets={
    "digits": _digits({"synth": {"g_steps": 10}, "distill": {"rounds": 100, "kd_steps": 10, "eval_every": 10}},
                      "100 rounds of 10 generator steps (200 in the paper) and 10 student steps: seed 0 96.4% "
                      "in 163 s, against 94.2% in 300 s for 200 rounds of 5 student steps"),
    **_cifar({"distill": {"rounds": 200}, "synth": {"g_steps": 200}, "student": {"optim": {"lr": 0.1}},
              "objective": {"params": {"cmi": {"tau": 0.2}},
                            "generator": {"adv_kl": 0.5, "bn": 1.0, "oh": 1.0, "cmi": 0.8}}},
             "200 rounds of 200 generator steps, InfoNCE tau 0.2, weights adv 0.5, bn 1, oh 1, cmi 0.8, student SGD 0.1"),
})

_FAST = {
    "source": {"name": "dcgan", "optim": {"name": "adam", "lr": 4e-3, "betas": [0.5, 0.999],
                                          "weight_decay": 0.0, "schedule": "constant"}},
    "synth": {"schedule": "meta", "g_steps": 10, "meta": "reptile", "meta_lr": 0.5, "warmup": 20},
    "objective": {"generator": {"adv_kl": 1.0, "bn": 10.0, "oh": 1.0}, "params": {"bn": {"momentum": 0.9}},
                  "student": {"kd_kl": 1.0}},
    "distill": {"kd_steps": 5, "batch": "pool"},
    "pool": {"capacity": 8192},
}
_FAST_DOC = """Fast — Fang, Mo, Wang, Song, Xu, Song (2022), "Up to 100× Faster Data-free Knowledge
Distillation", AAAI 2022, arXiv:2112.06253. One generator whose initialisation is meta-learned
(Reptile by default, `synth.meta=fomaml` for first-order MAML); each round clones it and optimises
clone and latent codes for g_steps on the DFQ-style objective (adversarial KL + 10·BN statistics
with momentum 0.9 + one-hot); every batch goes to a replay pool the student distils from; the first
20 rounds are warm-up (no adversarial term, no student steps). The BN weight must grow with the
momentum: the current batch enters the blended statistics with weight 1 − 0.9, so bn 1 is ten
times weaker than DFQ's prior, and on digits Fast-2 then collapses (best 70.6% -> 33.1% final),
while bn 10 holds 98.1% (200 rounds, seed 0, warm-up 10). Differs: the meta update is a plain
Reptile/FOMAML step of size meta_lr instead of a pseudo-gradient through Adam, and the generator
is the DAFL/DFAD one."""

_FAST_LR = {2: 5e-3, 5: 3e-3, 10: 2e-3}  # the authors' generator rate per number of steps (CIFAR scripts)


def _fast_presets(k: int) -> dict[str, Preset]:
    """Fast-k: 220 rounds (20 of warm-up) on digits and in the authors' CIFAR scripts, where the student
    learns at SGD 0.2 and the generator by first-order MAML (their adv/oh weights are per teacher-student
    pair and stay in the tables)."""
    return {"digits": _digits({"distill": {"rounds": 220}}, "220 rounds, the first 20 of warm-up"),
            **_cifar({"distill": {"rounds": 220}, "synth": {"warmup": 20, "meta": "fomaml"},
                      "student": {"optim": {"lr": 0.2}}, "source": {"optim": {"lr": _FAST_LR[k]}}},
                     f"220 rounds with 20 of warm-up, first-order MAML, generator lr {_FAST_LR[k]}, student SGD 0.2")}


FAST = recipe("fast", "meta-learned generator init (Reptile/FOMAML), pool, BN momentum (Fang et al. 2022)",
              _FAST_DOC, _FAST, presets=_fast_presets(10))
for _k in (2, 5, 10):
    recipe(f"fast{_k}", f"Fast with {_k} generator steps per round (Fang et al. 2022)",
           _FAST_DOC + f" Fast-{_k}: synth.g_steps={_k}.",
           deep_merge(_FAST, {"synth": {"g_steps": _k}}), presets=_fast_presets(_k))

NAYER = recipe("nayer", "label embedding through a noisy layer re-initialised per round, pool (Tran et al. 2024)",
               """NAYER-style — Tran, Tran, Le, Harandi, Phung (2024), "NAYER: Noisy Layer Data Generation for
Efficient and Effective Data-free Knowledge Distillation", CVPR 2024, arXiv:2310.00258. The
generator's input is a fixed per-class label embedding passed through a noisy layer that is
re-initialised every round (the generator itself persists); the source is optimised for g_steps
on CE towards the labels + BN statistics + adversarial KL, and batches go to a replay pool.
Differs: the class embedding is random (or learned, or a user file: `source.embed`) instead of a
text encoder's, and z ~ N(0, I) is added to the noisy layer's output.""", {
    "source": {"name": "nayer"},
    "synth": {"schedule": "persistent", "g_steps": 5},
    "objective": {"generator": {"ce": 1.0, "bn": 1.0, "adv_kl": 1.0}, "student": {"kd_kl": 1.0}},
    "distill": {"kd_steps": 5, "batch": "pool"},
    "pool": {"capacity": 8192},
}, presets={"digits": _digits()})

NOISE = recipe("noise", "control: the same loop on Gaussian noise",
    """Noise control (the baseline of the DFKD tables, e.g. Fang et al. 2021, CMI): the
student is distilled with KL through the same loop on Gaussian-noise inputs, with no synthesis.
Whatever a method scores above this row is what its input source earns.""", {
    "source": {"name": "noise"},
    "synth": {"schedule": "persistent", "g_steps": 0},
    "objective": {"student": {"kd_kl": 1.0}},
    "distill": {"kd_steps": 5, "batch": "fresh"},
}, presets={"digits": _digits()})
