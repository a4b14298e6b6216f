"""Methods are named recipes: configuration of the shared parts (source, schedule, objective terms,
views), never a new loop. A recipe is a dict of config values laid over the defaults; a recipe may
carry per-dataset presets (the authors' settings for MNIST or CIFAR, the measured settings of the
digits table), laid over the recipe when the run's dataset matches; the user's layers (a base such
as the quickstart's, the YAML file, each `--set`) are laid over those. Every resolved value's origin
is kept (`Config.provenance`, `provenance.yaml` in the run directory, `dfkd options --method M
--dataset D`).

Objective weights merge key by key: to drop a recipe's term, set its weight to 0
(`--set objective.generator.adv_l1=0`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from .config import Config, deep_merge, flatten, from_dict, layer_list, provenance, to_dict
from .errors import DfkdError
from .registry import Registry

METHODS = Registry("method")


@dataclass(frozen=True)
class Preset:
    """Config values a recipe takes on one dataset unless the user sets them, and where they come
    from (the paper, the authors' script or README, or our own measurement)."""

    values: dict
    source: str


@dataclass(frozen=True)
class Method:
    name: str
    summary: str  # one line for listings
    doc: str  # the paper, what the recipe does, where it knowingly differs
    recipe: dict
    presets: dict[str, Preset] = field(default_factory=dict)  # dataset name -> its preset

    def preset(self, dataset: str) -> Preset | None:
        """The preset for `dataset` (a dataset holding another's images takes its presets)."""
        return self.presets.get(SAME_IMAGES.get(dataset, dataset))

    def describe(self) -> str:
        """The doc, then each preset with its source."""
        lines = [self.doc]
        for ds, p in self.presets.items():
            values = ", ".join(f"{k}={v}" for k, v in flatten(p.values).items())
            lines.append(f"Preset {ds}: {values}. Source: {p.source}")
        return "\n".join(lines)


# datasets whose presets are another's: the same images in another encoding
SAME_IMAGES = {"cifar10_jpeg": "cifar10"}


def recipe(name: str, summary: str, doc: str, values: dict, presets: dict[str, Preset] | None = None) -> Method:
    m = Method(name, summary, doc, values, dict(presets or {}))
    METHODS.register(name)(m)
    return m


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


# ----------------------------------------------------------------------------- data-driven KD
# The upper reference rows: the student learns on the real training split (source `real`, one
# shuffled batch per round, random-crop augmentation) through the same loop. Defaults follow the
# CRD/RepDistiller CIFAR-100 benchmark (Tian et al. 2020): SGD lr 0.05, momentum 0.9, wd 5e-4,
# x0.1 at 150/180/210 of 240 epochs (milestones as fractions of the run), batch 64, T = 4.
_DATA = {
    "source": {"name": "real"},
    "synth": {"schedule": "per_batch", "g_steps": 0, "batch_size": 64, "augment": "crop"},
    "distill": {"kd_steps": 1, "batch": "reuse"},
    "student": {"optim": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4, "schedule": "step",
                          "milestones": [0.625, 0.75, 0.875], "gamma": 0.1}},
    "objective": {"temperature": 4.0},
}
_DATA_NOTE = (" Data-driven: reads the real training split (source.name=real, synth.schedule=per_batch); "
              "a round is one batch, so distill.rounds = epochs x floor(N / synth.batch_size). Optimizer "
              "and schedule as in the CRD benchmark (SGD 0.05, x0.1 at 62.5/75/87.5% of the run, wd 5e-4, "
              "batch 64), T = 4.")


def _data_recipe(name: str, summary: str, doc: str, student_terms: dict, extra: dict | None = None,
                 presets: dict[str, Preset] | None = None) -> Method:
    values = deep_merge(_DATA, {"objective": {"student": student_terms}})
    return recipe(name, summary, doc + _DATA_NOTE, deep_merge(values, extra or {}), presets)


LABELS = _data_recipe("labels", "the student trained on the real labels alone (no teacher): the floor of KD",
    """Supervised baseline (the "student trained alone" row of Hinton et al. 2015 and of the CRD
benchmark, Tian et al. 2020, arXiv:1910.10699): cross-entropy of the student on the true labels,
no teacher term. What every data-driven KD row must beat.""", {"label_ce": 1.0})

KD = _data_recipe("kd", "Hinton KD on the real training data: 0.9 KL(T/4 || S/4) x 16 + 0.1 CE",
    """Hinton KD — Hinton, Vinyals, Dean (2015), "Distilling the Knowledge in a Neural Network",
arXiv:1503.02531: the student minimises KL between the teacher's and its own softened predictions
(temperature T, x T^2) plus cross-entropy on the labels; weights 0.9 / 0.1 at T = 4 as in the
CRD/RepDistiller benchmark.""", {"kd_kl": 0.9, "label_ce": 0.1}, presets={
    "mnist": Preset({"student": {"optim": {"lr": 0.01}}, "synth": {"augment": "none"}},
                    "measured here (experiments/mnist): the CRD rate 0.05 leaves the BN-free LeNet-5-half at 10% "
                    "(its units die in the first steps), 0.01 reaches 97.7% after one epoch; no crop on MNIST"),
})

FITNET = _data_recipe("fitnet", "FitNets hints on real data: CE + 100 x MSE(adapter(student stage), teacher stage)",
    """FitNets — Romero, Ballas, Kahou, Chassang, Gatta, Bengio (2015), "FitNets: Hints for Thin Deep
Nets", ICLR 2015, arXiv:1412.6550: the student's middle stage, through a learned 1x1-conv adapter,
regresses the teacher's middle stage (MSE, weight 100) next to CE on the labels, trained jointly
(the CRD benchmark's single-stage variant, not the paper's two-stage schedule). Stages are paired by
spatial size; the middle pair is used.""", {"label_ce": 1.0, "hint": 100.0})

AT = _data_recipe("at", "attention transfer on real data: CE + 1000 x AT over matched stages",
    """Attention transfer — Zagoruyko & Komodakis (2017), "Paying More Attention to Attention",
ICLR 2017, arXiv:1612.03928: the student matches the teacher's normalised spatial attention maps
(channel-mean of squared activations) at every stage of equal resolution (weight 1000, as in the
CRD benchmark) next to CE on the labels.""", {"label_ce": 1.0, "at": 1000.0})

RKD = _data_recipe("rkd", "relational KD on real data: CE + 25 x distance + 50 x angle of penultimate features",
    """RKD — Park, Kim, Lu, Cho (2019), "Relational Knowledge Distillation", CVPR 2019,
arXiv:1904.05068: the student matches the normalised pairwise distances (weight 25) and triplet
angles (weight 50) of the teacher's penultimate embeddings within each batch (Huber loss), next to
CE on the labels. Embedding dimensions may differ between teacher and student.""",
    {"label_ce": 1.0, "rkd_d": 25.0, "rkd_a": 50.0})

DKD = _data_recipe("dkd", "decoupled KD on real data: CE + TCKD + 8 x NCKD at T = 4",
    """DKD — Zhao, Cui, Song, Qiu, Liang (2022), "Decoupled Knowledge Distillation", CVPR 2022,
arXiv:2203.08679: KD split into target-class KD (binary target/rest, weight alpha = 1) and
non-target-class KD (distribution over the other classes, weight beta = 8), both x T^2 at T = 4,
next to CE on the labels. Differs: no linear warm-up of the DKD weight over the first 20 epochs.""",
    {"label_ce": 1.0, "dkd": 1.0})


ADVKD = _data_recipe("advkd", "discriminator-based adversarial KD: KD + fool a critic of output distributions",
    """Discriminator-based adversarial KD — Belagiannis, Farshad, Galasso (2018), "Adversarial
Network Compression", ECCV Workshops, arXiv:1803.10750; Wang, Zhang, Wang (2018), "KDGAN", NeurIPS.
A small MLP critic (`dfkd.critic`) learns to tell the teacher's softened output distribution from
the student's (one Adam step, lr objective.params.adv_critic.lr, after every student step); the student adds
the non-saturating fooling loss (weight 0.1, our choice) to Hinton KD (0.9 KL x T^2 + 0.1 CE, T = 4).
Differs: the critic reads output distributions, not pooled features.""",
    {"kd_kl": 0.9, "label_ce": 0.1, "adv_critic": 0.1})


# ----------------------------------------------------------------------------- robust distillation
# Real batch + delta (source real with eps > 0): delta is re-drawn per batch and optimised by PGD
# (synth.g_steps steps of source.step) against the source objective; the teacher scores the clean
# batch (view_t = clean, view_s = perturbed); robust.eps turns on PGD-10 robust accuracy at the end.
_ROBUST = deep_merge(_DATA, {
    "source": {"eps": 8 / 255, "step": 2 / 255, "random_start": True, "teacher_input": "clean"},
    "synth": {"g_steps": 10},
    "robust": {"eps": 8 / 255, "steps": 10, "step": 2 / 255},
})

RSLAD = recipe("rslad", "robust soft-label distillation: PGD on KL(S(x+d) || T(x)), student 5/6 adv + 1/6 clean KL",
    """RSLAD — Zi, Zhao, Ma, Jiang (2021), "Revisiting Adversarial Robustness Distillation: Robust Soft
Labels Make Student Better", ICCV 2021, arXiv:2108.07969. δ* maximises the KL between the teacher on
the clean batch and the student on x + δ (PGD, ε = 8/255, 10 steps of 2/255, random start; the
teacher's soft labels replace the hard ones everywhere); the student minimises
(5/6)·KL(T(x) || S(x + δ*)) + (1/6)·KL(T(x) || S(x)) at T = 1. Differs: the CRD optimizer and
schedule of the data-driven rows instead of the paper's SGD 0.1 / 300 epochs.""" + _DATA_NOTE,
    deep_merge(_ROBUST, {"objective": {"temperature": 1.0, "generator": {"adv_kl": 1.0},
                                       "student": {"kd_kl": 5 / 6, "kd_kl_clean": 1 / 6}}}))

ARD = recipe("ard", "adversarially robust distillation: PGD on CE(S(x+d), y), student a*KL(adv) + (1-a)*CE(clean)",
    """ARD — Goldblum, Fowl, Feizi, Goldstein (2020), "Adversarially Robust Distillation", AAAI 2020,
arXiv:1905.09747. δ* maximises the student's cross-entropy on the true labels (PGD, ε = 8/255, 10
steps of 2/255); the student minimises α·τ²·KL(T(x)/τ || S(x + δ*)/τ) + (1 − α)·CE(S(x), y), the
teacher on the clean batch. Here α = 0.9 and τ = 4 (our choice, the CRD KD setting; the paper
tunes both per dataset), with the CRD optimizer of the data-driven rows.""" + _DATA_NOTE,
    deep_merge(_ROBUST, {"objective": {"temperature": 4.0, "generator": {"adv_ce": 1.0},
                                       "student": {"kd_kl": 0.9, "label_ce_clean": 0.1}}}))


BSS = recipe("bss", "boundary-supporting samples: targeted attacks on the teacher move real samples to its "
                    "decision boundary; KD on clean + decaying KD on them",
    """BSS — Heo, Lee, Yun, Choi (2019), "Knowledge Distillation with Adversarial Samples Supporting
Decision Boundary", AAAI 2019, arXiv:1805.05532. Per batch, the half of the samples with the largest
teacher-student KL are attacked: PGD raises z_T[target] − z_T[label] of the *teacher*, the target
class drawn from the teacher's probabilities over the other classes, inside an L∞ ball (ε = 8/255,
10 steps of 2/255); the student learns Hinton KD on the clean batch (0.9 KL·T² + 0.1 CE) plus KL on
the boundary-supporting batch (teacher on it), whose weight decays linearly to 0 over the run.
Differs: a projected ball instead of the paper's step-until-boundary attack; fraction and weights
are our choice.""" + _DATA_NOTE,
    deep_merge(_ROBUST, {"source": {"teacher_input": "perturbed", "attack_fraction": 0.5},
                         "robust": {"eps": 0.0},
                         "objective": {"temperature": 4.0, "generator": {"bss": 1.0}, "decay": ["kd_kl"],
                                       "student": {"kd_kl_clean": 0.9, "label_ce_clean": 0.1, "kd_kl": 1.0}}}))


def build_config(config_file: str | None = None, sets=(), method: str | None = None,
                 base: dict | None = None, base_origin: str | dict = "base", set_origin: str = "--set") -> Config:
    """defaults <- recipe(method) <- its preset for the dataset <- base <- YAML file <- --set items;
    validated. `cfg.provenance` says where each value came from; `base_origin` names the base layer,
    or is a provenance dict for it (a base that is itself a resolved config keeps its origins)."""
    user = layer_list(config_file, sets, base, base_origin if isinstance(base_origin, str) else "base",
                      set_origin)
    if method:
        user.append(("--method", {"method": method}))
    raw: dict = {}
    for _, layer in user:
        raw = deep_merge(raw, layer)
    name = raw.get("method", Config().method)
    if not isinstance(name, str):
        raise DfkdError(f"config key 'method' must be a method name, got {name!r}")
    m = METHODS.get(name)
    data = raw.get("data") if isinstance(raw.get("data"), dict) else {}
    dataset = data.get("name", Config().data.name)
    layers = [("default", to_dict(Config())), (f"recipe {m.name}", m.recipe)]
    p = m.preset(dataset) if isinstance(dataset, str) else None
    if p is not None:
        layers.append((f"preset {m.name}/{SAME_IMAGES.get(dataset, dataset)}", p.values))
    merged: dict = {}
    for _, layer in layers:
        merged = deep_merge(merged, layer)
    cfg = from_dict(Config, deep_merge(merged, raw))
    from .objective import resolve_params

    validate(cfg)
    o = cfg.objective  # the weighted terms' parameters, completed with their defaults
    o.params = resolve_params(o.params, [t for obj in (o.generator, o.student) for t, w in obj.items() if w])
    origins = provenance(layers + user)
    if isinstance(base_origin, dict):
        base_keys = set(flatten(base))
        later = provenance(user[1:] if base else user)
        origins.update({k: base_origin[k] for k in base_keys if k in base_origin and k not in later})
    cfg.provenance = {k: origins.get(k, "default") for k in flatten(to_dict(cfg))}
    cfg.preset = (layers[-1][0], p.source) if p is not None else None
    return cfg


def without_batchnorm() -> list[str]:
    """Data-free recipes whose source objective reads no BatchNorm layer (neither `bn` nor CMI's
    BN-based embeddings): what runs on a teacher with GroupNorm/LayerNorm, or a black box."""
    from .objective import TERMS

    out = []
    for name in METHODS:
        r = METHODS.get(name).recipe
        if r.get("source", {}).get("name") == "real":
            continue
        terms = [t for t, w in r.get("objective", {}).get("generator", {}).items() if w]
        if not any(TERMS.get(t).needs & {"bn", "contrast"} for t in terms):
            out.append(name)
    return out


def no_batchnorm_message(cfg: Config, why: str) -> str:
    terms = [t for t in ("bn", "cmi") if cfg.objective.generator.get(t, 0)]
    return (f"method '{cfg.method}' matches the teacher's BatchNorm statistics (objective.generator."
            f"{'/'.join(terms) or 'bn'}), and the teacher {why}; use a method that works without them: "
            f"{', '.join(without_batchnorm())} (or set objective.generator.{terms[0] if terms else 'bn'}=0)")


def validate(cfg: Config) -> None:
    """Checks across keys and registries that a field-by-field check cannot make."""
    from .generators import SOURCES

    from .data import get_entry
    from .models import MODELS
    from .objective import TERMS
    from .schedules import SCHEDULES

    entry = get_entry(cfg.data.name)
    from .views import VIEWS, build_view, check_teacher_view

    VIEWS.get(cfg.view.student)
    if cfg.view.eval:
        VIEWS.get(cfg.view.eval)
    if cfg.data.name == "none":
        from .data import dataset_info

        c = dataset_info(cfg.data).in_channels  # says which of channels / image_size / num_classes is missing
    else:
        c = entry.info.in_channels
    check_teacher_view(cfg.view.teacher, build_view(cfg.view.teacher, c, cfg=cfg.view)[1], c, cfg.teacher.arch)
    SOURCES.get(cfg.source.name)
    SCHEDULES.get(cfg.synth.schedule)
    for owner in ("generator", "student"):
        for term in getattr(cfg.objective, owner):
            if term not in TERMS:
                TERMS.get(term)  # raises with a suggestion
    if not any(w != 0 for w in cfg.objective.student.values()):
        raise DfkdError("objective.student has no term with a non-zero weight; e.g. --set objective.student.kd_kl=1")
    real, per_batch = cfg.source.name == "real", cfg.synth.schedule == "per_batch"
    if real != per_batch:
        raise DfkdError("source.name=real and synth.schedule=per_batch go together (real data is drawn one "
                        "batch per round); set both, or neither")
    if real and cfg.synth.perturb_eps > 0:
        raise DfkdError("synth.perturb_eps perturbs synthesized samples; on real data use source.eps (PGD on the "
                        "real batch) instead")
    if real and cfg.distill.batch != "reuse":
        raise DfkdError("with source.name=real the student learns on each round's real batch; set distill.batch=reuse")
    if real and cfg.synth.g_steps != 0 and cfg.source.eps == 0:
        raise DfkdError("source.name=real with source.eps=0 has nothing to optimise; set synth.g_steps=0, or "
                        "source.eps > 0 for a perturbation optimised by synth.g_steps PGD steps")
    if real and cfg.source.eps > 0 and cfg.synth.g_steps == 0:
        raise DfkdError("source.eps > 0 needs PGD steps to optimise the perturbation; set synth.g_steps (e.g. 10)")
    labelled = [t for t, w in cfg.objective.student.items() if w != 0 and "targets" in TERMS.get(t).needs]
    if labelled and not real:
        raise DfkdError(f"objective.student.{labelled[0]} needs the true labels of real data; use it with "
                        f"source.name=real (e.g. --method kd) or set objective.student.{labelled[0]}=0")
    for t in cfg.objective.decay:
        if cfg.objective.student.get(t, 0) == 0:
            raise DfkdError(f"objective.decay names '{t}', which is not a weighted student term; "
                            f"student terms: {', '.join(k for k, w in cfg.objective.student.items() if w)}")
    attack = [t for t, w in cfg.objective.generator.items() if w != 0 and "attack" in TERMS.get(t).needs]
    if attack and cfg.synth.g_steps > 0 and not (real and cfg.source.eps > 0):
        raise DfkdError(f"objective.generator.{attack[0]} attacks real samples; use it with source.name=real and "
                        f"source.eps > 0 (e.g. --method bss)")
    clean = [t for t, w in cfg.objective.student.items() if w != 0 and "clean" in TERMS.get(t).needs]
    if clean and not (real and cfg.source.eps > 0):
        raise DfkdError(f"objective.student.{clean[0]} compares with the clean batch of a perturbed real source; "
                        f"use it with source.name=real and source.eps > 0 (e.g. --method rslad)")
    if cfg.distill.batch == "pool" and cfg.pool.capacity == 0:
        raise DfkdError("distill.batch=pool needs a replay pool; set pool.capacity (e.g. pool.capacity=4096)")
    if cfg.synth.g_steps > 0 and cfg.objective.generator.get("bn", 0) != 0 and cfg.teacher.arch in MODELS:
        from .hooks import has_batchnorm
        from .models import build_model

        if not has_batchnorm(build_model(cfg.teacher.arch, 10, 3)):  # BN layers do not depend on the shapes
            raise DfkdError(no_batchnorm_message(cfg, f"({cfg.teacher.arch}) has no BatchNorm layers"))
    if cfg.synth.g_steps > 0 and not any(w != 0 for w in cfg.objective.generator.values()):
        raise DfkdError("synth.g_steps > 0 but objective.generator has no weighted term; "
                        "add one (e.g. objective.generator.adv_l1=1) or set synth.g_steps=0")
