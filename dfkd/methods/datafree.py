"""The data-free recipes (DFAD, DAFL, DFQ, ZSKT, DeepInversion, ADI, CMI, Fast, NAYER, the noise
control) and their per-dataset presets. Each recipe's docstring cites its paper and says where it
knowingly differs."""
from __future__ import annotations

import math

from dfkd.config.load import deep_merge
from dfkd.methods.registry import Preset, recipe

# ----------------------------------------------------------------------------- per-dataset presets
# digits: the budget of our digits table (experiments/digits): 1,000 student steps at batch 128 with
# a half-width generator, a few minutes per run on 2 CPU cores; per method what that table measured.
_DIGITS_BUDGET = {"source": {"width": 64}, "synth": {"batch_size": 128}, "distill": {"rounds": 200, "eval_every": 20}}
_DIGITS_SOURCE = "the digits table (experiments/digits): 1,000 student steps at batch 128, half-width generator"


def _digits(extra: dict | None = None, why: str = "") -> Preset:
    return Preset(deep_merge(_DIGITS_BUDGET, extra or {}), _DIGITS_SOURCE + (f"; {why}" if why else ""))


# The authors' repositories, at the commits read (docs/fidelity.md lists each difference that remains).
FD = "zju-vipa/Fast-Datafree@0dcecbc"
CMI_REPO = "zju-vipa/CMI@9e79fa9"
NV = "NVlabs/DeepInversion@2413af1"

# CIFAR-10/100: the schedule of the authors' scripts for the pool-based methods (FD datafree_kd.py,
# scripts/*_cifar.sh): batch 256, 400 student steps per round at T = 20, student SGD with weight decay
# 1e-4 and cosine decay per epoch to 2e-4 (CosineAnnealingLR(200, eta_min=2e-4)); the pool holds every
# round's batch (the authors' PNG folder is never trimmed).
_CIFAR_POOL = {"distill": {"kd_steps": 400, "eval_every": 10}, "objective": {"temperature": 20.0},
               "student": {"optim": {"weight_decay": 1e-4, "min_lr": 2e-4}}}
_CIFAR_SOURCE = f"the authors' CIFAR scripts ({FD} datafree_kd.py, scripts/*_cifar.sh)"


def _cifar(values: dict, why: str = "", source: str = _CIFAR_SOURCE) -> dict[str, Preset]:
    """The same preset for CIFAR-10 and CIFAR-100, over the pool schedule; the pool holds every round's
    batch (rounds x batch, as the authors' never-trimmed folder)."""
    v = deep_merge(_CIFAR_POOL, values)
    rounds, batch = v.get("distill", {}).get("rounds", 200), v.get("synth", {}).get("batch_size", 256)
    v = deep_merge({"pool": {"capacity": rounds * batch}}, v)
    p = Preset(v, source + (f": {why}" if why else ""))
    return {"cifar10": p, "cifar100": p}


VAINF = "VainF/Data-Free-Adversarial-Distillation@c161591"
HUAWEI = "huawei-noah/Efficient-Computing@225ddd2 Data-Efficient-Model-Compression/DAFL"
POLO5 = "polo5/ZeroShotKnowledgeTransfer@e24915d"

DFAD = recipe("dfad", "adversarial generator maximising L1(S, T) (Fang et al. 2019)",
    f"""DFAD — Fang, Song, Shen, Wang, Song (2019), "Data-Free Adversarial Distillation",
arXiv:1912.11006; as the authors' code runs it ({VAINF} DFAD_cifar.py, DFAD_mnist.py). A persistent
generator (DAFL's: tanh and an affine-free BatchNorm) maximises the L1 distance between student and
teacher logits; each round the student first minimises it on 5 fresh batches, then the generator
takes one step (the student in train mode, as theirs). Student SGD (lr 0.1, momentum 0.9, wd 5e-4),
generator Adam (lr 1e-3, default betas); on CIFAR nz 256 and both rates x0.1 after 99 and 199 of
500 epochs (MultiStepLR([100, 200]) stepped at each epoch's start). Differs: on digits the rates
follow a cosine schedule and the student's is 0.3 (the digits table's short budget).""", {
    "source": {"name": "dcgan", "optim": {"betas": [0.9, 0.999]}},
    "synth": {"schedule": "persistent", "g_steps": 1, "student_mode": "train"},
    "objective": {"generator": {"adv_l1": 1.0}, "student": {"kd_l1": 1.0}},
    "distill": {"kd_steps": 5, "batch": "fresh", "order": "student_first"},
}, presets={
    "digits": _digits({"student": {"optim": {"lr": 0.3}}},
                      "student lr 0.3 for this short budget (59.2 +- 3.1% against 47.7 +- 9.9 at the paper's 0.1, "
                      "seeds 0-2)"),
    "mnist": Preset({"student": {"optim": {"lr": 0.01, "weight_decay": 1e-4, "schedule": "constant"}},
                     "source": {"optim": {"schedule": "constant"}}, "synth": {"batch_size": 512}},
                    f"the authors' MNIST script ({VAINF} DFAD_mnist.py, run_mnist.sh): student SGD lr 0.01, momentum "
                    "0.9, wd 1e-4, generator Adam 1e-3, both constant, batch 512"),
    **{ds: Preset({"source": {"nz": 256, "optim": {"schedule": "step", "milestones": [0.198, 0.398], "gamma": 0.1}},
                   "student": {"optim": {"schedule": "step", "milestones": [0.198, 0.398], "gamma": 0.1}},
                   "distill": {"rounds": 25000, "eval_every": 50}},
                  f"the authors' CIFAR script ({VAINF} DFAD_cifar.py --scheduler): 500 epochs of 50 iterations, nz "
                  "256, both rates x0.1 after epochs 99 and 199, batch 256")
       for ds in ("cifar10", "cifar100")},
})

def _dafl_cifar(oh: float, ie_log10: float, act: float, source: str) -> Preset:
    """DAFL's CIFAR README: the same optimizers and budget, per-dataset weights (ie in the code's log10)."""
    return Preset({"source": {"nz": 1000, "optim": {"lr": 0.02, "betas": [0.9, 0.999], "schedule": "constant"}},
                   "synth": {"batch_size": 1024}, "distill": {"rounds": 240000, "eval_every": 2400},
                   "objective": {"generator": {"oh": oh, "ie": ie_log10 / math.log(10), "act": act}},
                   "student": {"optim": {"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4,
                                         "schedule": "step", "milestones": [0.4, 0.8], "gamma": 0.1}}},
                  source.format(HUAWEI))


DAFL = recipe("dafl", "non-adversarial generator: one-hot + class balance + activation (Chen et al. 2019)",
    f"""DAFL — Chen, Wang, Xu, Yang, Liu, Shi, Xu, Xu, Tian (2019), "Data-Free Learning of
Student Networks", ICCV 2019, arXiv:1904.01186; as the authors' code runs it ({HUAWEI}
DAFL-train.py, README). A persistent generator (tanh and an affine-free BatchNorm; its two inner
BatchNorms have eps 0.8, as the code's `BatchNorm2d(128, 0.8)`), trained *without* the student,
makes inputs on which the teacher is confident (one-hot CE, weight 1), whose batch covers the
classes evenly (information entropy, weight 5 in the code's log10 = 5/ln 10 here) and that excite
the teacher's penultimate features (activation, weight 0.1). The student learns by KL (T = 1) on the
same batch, one student step per generator step. On MNIST both use Adam at constant rates (the
generator's 0.2, the student's 2e-3, batch 512) and the activation reads LeNet-5's 120-d conv3
output (the input of fc1); on CIFAR-10 the README's generator Adam 0.02, nz 1000, batch 1024, oh
0.05, act 0.01 and a student SGD 0.1 (wd 5e-4) x0.1 at 40% and 80% of the run. The default here
(generator lr 1e-3, betas 0.5, cosine) suits the embedded digits, where lr 0.2 stays near chance.""", {
    "source": {"name": "dcgan", "bn_eps": 0.8},
    "synth": {"schedule": "persistent", "g_steps": 1},
    "objective": {"generator": {"oh": 1.0, "ie": 5.0 / math.log(10), "act": 0.1},
                  "student": {"kd_kl": 1.0}},
    "distill": {"kd_steps": 1, "batch": "reuse"},
    "student": {"optim": {"name": "adam", "lr": 2e-3, "weight_decay": 0.0}},
}, presets={
    "digits": _digits({"distill": {"rounds": 1000, "eval_every": 100}, "student": {"optim": {"lr": 5e-3}}},
                      "1,000 rounds of one student step; student lr 5e-3 (seed 0: 65.6% -> 84.7%)"),
    "mnist": Preset({"source": {"optim": {"lr": 0.2, "betas": [0.9, 0.999], "schedule": "constant"}},
                     "student": {"optim": {"schedule": "constant"}}, "synth": {"batch_size": 512},
                     "objective": {"params": {"act": {"layer": "fc1"}}}},
                    f"the authors' MNIST defaults ({HUAWEI} DAFL-train.py): generator Adam at a constant lr 0.2 "
                    "with default betas, student Adam 2e-3 constant, batch 512, activation on conv3's output"),
    "cifar10": _dafl_cifar(0.05, 5.0, 0.01, "the authors' CIFAR-10 README ({}): generator Adam at a constant lr "
                           "0.02, nz 1000, batch 1024, oh 0.05, ie 5, a 0.01, student SGD 0.1 wd 5e-4 x0.1 at epochs "
                           "800 and 1600 of 2000 (x 120 iterations)"),
    "cifar100": _dafl_cifar(0.5, 20.0, 0.1, "the authors' CIFAR-100 README ({}): as CIFAR-10 with oh 0.5, ie 20, a 0.1"),
})

DFQ = recipe("dfq", "adversarial generator + BN-statistics prior + one-hot (Choi et al. 2020)",
    f"""DFQ-style — Choi, Choi, El-Khamy, Lee (2020), "Data-Free Network Quantization With
Adversarial Knowledge Distillation", CVPR Workshops 2020, arXiv:2005.04136 (no public code); the
generative baseline of the CMI and Fast tables, as their code runs it ({FD} scripts/dfq_cifar.sh,
datafree/synthesis/generative.py): a persistent generator (sigmoid output, nz 256, Adam 1e-3 (0.5,
0.999), constant) maximises KL(T||S) at T = 1 while matching the teacher's BatchNorm statistics
(weight 1), keeping the teacher confident (one-hot CE, weight 1) and the batch balanced over the
classes (weight 20, natural log); the student (in eval mode during the generator's step) minimises
KL at T = 1 on 10 fresh batches per generator step. That code passes the teacher as the student
(Fast-Datafree issue #11), which silences the adversarial term; here the student is the student,
as in zju-vipa/CMI's copy of the same script. The BN-statistics prior is what keeps the generator on
the data manifold: on digits it lifts the same loop from ~40% (DFAD) to ~99%. Differs from the
paper: one generator and one student (the paper also ensembles several).""", {
    "source": {"name": "dcgan", "nz": 256, "output": "sigmoid", "optim": {"schedule": "constant"}},
    "synth": {"schedule": "persistent", "g_steps": 1},
    "objective": {"generator": {"adv_kl": 1.0, "bn": 1.0, "oh": 1.0, "ie": 20.0}, "student": {"kd_kl": 1.0}},
    "distill": {"kd_steps": 10, "batch": "fresh"},
    "student": {"optim": {"weight_decay": 1e-4, "min_lr": 2e-4}},
}, presets={"digits": _digits({"distill": {"rounds": 100, "eval_every": 10}},
                              "100 rounds of 10 student steps"),
            **{ds: Preset({"distill": {"rounds": 8000, "eval_every": 40}}, _CIFAR_SOURCE +
                                                 ": 200 epochs of 40 rounds (1 generator step, 10 student steps)")
                                     for ds in ("cifar10", "cifar100")}})

ZSKT = recipe("zskt", "adversarial generator, KL + attention transfer, 10 student steps per batch "
                      "(Micaelli & Storkey 2019)",
    f"""ZSKT — Micaelli & Storkey (2019), "Zero-shot Knowledge Transfer via Adversarial Belief
Matching", NeurIPS 2019, arXiv:1905.09768; as the authors' code runs it ({POLO5} solver.py,
scripts/ZeroShot). A persistent generator (ending in a learned BatchNorm, no squashing) maximises
KL(T||S); the student minimises KL(T||S) + 250·attention transfer over matched stage outputs, taking
10 steps on each generated batch (n_G = 1, n_S = 10); both KLs are PyTorch's element-wise mean
(batchmean / K) at T = 1, both gradients are clipped to norm 5, the student is in train mode
throughout, and its 10 steps use the batch regenerated from the generator's codes after its step
(`synth.keep=after`). Generator Adam lr 1e-3, student Adam lr 2e-3 (default betas, no weight decay),
both with cosine decay; on CIFAR batch 128 and 80,000 batches. Differs: the student's rate decays
per step rather than per batch, and stages are paired automatically by spatial size
(`dfkd.objective.hooks.match_stages`; the WRN blocks the authors list).""", {
    "source": {"name": "dcgan", "output": "bn", "optim": {"betas": [0.9, 0.999], "clip_grad": 5.0}},
    "synth": {"schedule": "persistent", "g_steps": 1, "student_mode": "train", "keep": "after"},
    "objective": {"generator": {"adv_kl": 1.0}, "student": {"kd_kl": 1.0, "at": 250.0},
                  "params": {"adv_kl": {"reduction": "mean"}, "kd_kl": {"reduction": "mean"}}},
    "distill": {"kd_steps": 10, "batch": "reuse"},
    "student": {"optim": {"name": "adam", "lr": 2e-3, "weight_decay": 0.0, "clip_grad": 5.0}},
}, presets={
    "digits": _digits({"distill": {"rounds": 100, "eval_every": 10}, "student": {"optim": {"lr": 5e-3}},
                       "objective": {"student": {"at": 25.0}}},
                      "100 rounds of 10 student steps; student lr 5e-3; attention weight 25 (the authors' "
                      "element-mean KL weighs 250 ten times more than a batch-mean KL; at 250 the small "
                      "student ends at 36.9 / 31.4 / 39.4%, at 25 at 65.3 / 59.7 / 64.2, seeds 0-2)"),
    **{ds: Preset({"synth": {"batch_size": 128}, "distill": {"rounds": 80000, "eval_every": 800}},
                  f"the authors' CIFAR-10 scripts ({POLO5} scripts/ZeroShot/main*.sh): 80,000 batches of 128")
       for ds in ("cifar10", "cifar100")},
})

# the student side of the pool-based recipes, as the authors' code trains it: every synthesized batch
# goes to a replay pool, the student reads it through the training transform (crop + flip), the
# student is in eval mode while the source is optimised
_POOL_STUDENT = {"distill": {"batch": "pool", "augment": "crop"}, "synth": {"student_mode": "eval"}}

_DEEPINV = deep_merge(_POOL_STUDENT, {
    "source": {"name": "pixels", "optim": {"name": "adam", "lr": 0.05, "betas": [0.9, 0.999],
                                           "weight_decay": 0.0, "schedule": "constant"}},
    "synth": {"schedule": "reinit", "g_steps": 2000, "augment": "roll", "augment_shift": 2, "augment_flip": False},
    "objective": {"generator": {"ce": 1.0, "bn": 10.0, "tv_norm": 2.5e-5}, "student": {"kd_kl": 1.0}},
    "distill": {"kd_steps": 20},
    "pool": {"capacity": 8192},
})

DEEPINV = recipe("deepinv", "free pixels re-initialised per round, BN + priors, replay pool (Yin et al. 2020)",
    f"""DeepInversion — Yin, Molchanov, Alvarez, Li, Mallya, Hoiem, Jha, Kautz (2020),
"Dreaming to Distill: Data-free Knowledge Transfer via DeepInversion", CVPR 2020, arXiv:1912.08795.
Free pixels, drawn from N(0, I) in normalised space every round and optimised for g_steps (2,000)
by Adam at a constant lr 0.05 on CE towards balanced target classes + 10 x BN statistics (every
layer alike) + 2.5e-5 x TV (the whole-batch L2 norms of the four neighbouring-pixel differences),
under DeepInversion's jitter: one circular shift of the whole batch by up to 2 pixels, no flip. The
round's batch is the last iterate (the authors' `best_inputs` aliases the pixels, which every Adam
step overwrites in place). This is the authors' CIFAR-10 script ({NV} cifar10/deepinversion_cifar10.py,
README "paper_parameters"). Their repository trains no student: it goes to a replay pool and the
student distils from it with KL, reading it through the CIFAR training transform and in eval mode
during synthesis, as {FD} does. Differs: synthesis is interleaved with student training instead of
done once up front (as in every pool-based table).""", _DEEPINV, presets={
    "digits": _digits({"distill": {"rounds": 100, "eval_every": 10, "kd_steps": 10}, "synth": {"g_steps": 25}},
                      "100 rounds of 25 pixel steps (2,000 in the paper) and 10 student steps"),
    **_cifar({"distill": {"rounds": 200}, "student": {"optim": {"lr": 0.1}}},
             "200 rounds of 2,000 pixel steps (NVlabs' CIFAR-10 script), the student of the Fast-Datafree "
             "script (SGD 0.1)"),
})

ADI = recipe("adi", "DeepInversion + JS competition with the student (Yin et al. 2020)",
    f"""Adaptive DeepInversion (ADI) — Yin et al. (2020), CVPR, arXiv:1912.08795: DeepInversion plus
the competition term 1 − JS(S, T) at T = 3, which pushes the pixels toward inputs the student has
not learned yet; the authors' form ({NV} cifar10/deepinversion_cifar10.py): KL(m‖p) on probabilities
clamped to [0.01, 0.99], then clamped to [0, 1] (`objective.params.adv_js.form=capped`; here −JS,
equal up to the constant 1). The student's KD temperature is the recipe's, not the term's. On
CIFAR the preset is the script behind the DeepInv rows of the CMI and Fast tables ({FD}
scripts/deepinv_cifar.sh, datafree/synthesis/deepinversion.py), which is ADI: CE + 10 x BN + 1 x
competition (the clamped form, unbounded) − 0.01 x the student's BN statistics, no image priors,
Adam (0.5, 0.99) at a constant 0.1 for 1,000 steps, jitter by up to 4 pixels with a flip of the
whole batch, pixels clamped to the image range after every step.""",
                  deep_merge(_DEEPINV, {"objective": {"generator": {"adv_js": 1.0},
                                                      "params": {"adv_js": {"T": 3.0, "form": "capped"}}}}),
                  presets={"digits": _digits(
                      {"distill": {"rounds": 50, "eval_every": 10}, "synth": {"g_steps": 50}},
                      "50 rounds of 50 pixel steps (2,000 in the paper) and 20 student steps"),
                      **_cifar({"distill": {"rounds": 200}, "student": {"optim": {"lr": 0.1}},
                                "source": {"optim": {"lr": 0.1, "betas": [0.5, 0.99]}},
                                "synth": {"g_steps": 1000, "augment_shift": 4, "augment_flip": True, "clip": True},
                                "objective": {"generator": {"ce": 1.0, "bn": 10.0, "adv_js": 1.0, "adv_sbn": 0.01,
                                                            "tv_norm": 0.0},
                                              "params": {"adv_js": {"T": 3.0, "form": "clamped"}}}},
                               "scripts/deepinv_cifar.sh: 200 rounds of 1,000 pixel steps at Adam (0.5, 0.99) lr 0.1, "
                               "CE 1, BN 10, competition 1 (clamped JS at T = 3), student BN -0.01, roll 4 + flip, "
                               "clip; student SGD 0.1")})

CMI = recipe("cmi", "generator re-initialised per round + contrastive InfoNCE over a memory bank, pool "
                    "(Fang et al. 2021)",
    f"""CMI — Fang, Song, Wang, Shen, Wang, Song (2021), "Contrastive Model Inversion for Data-Free
Knowledge Distillation", IJCAI 2021, arXiv:2105.08584; as the authors' code runs it ({CMI_REPO}
datafree/synthesis/contrastive.py, scripts/cmi_cifar10.sh). Every round the generator (sigmoid
output, nz 256) is re-drawn with the DCGAN initialisation and optimised, together with one latent
code per round, by Adam (0.5, 0.999) for g_steps on BN statistics + CE towards uniformly drawn
target classes + the adversarial KL at T = 1 on the samples where student and teacher agree + the
contrastive term (`cmi`): each sample's local-view embedding (per-sample means of the teacher's BN
inputs, through a projection head with its own Adam) must pick its own global-view embedding among
the batch's and 4,096 read from a 40,960-row memory bank of earlier rounds' kept batches. The round
keeps its lowest-loss batch; it goes to a replay pool the student reads through crop + flip, and the
student is in eval mode during synthesis. Weights bn 1, ce 1, adv 0.5, cmi 0.8 at tau 0.2 (the
CIFAR-10 script). Differs: the bank is read with torch's generator instead of Python's `random`.""",
    deep_merge(_POOL_STUDENT, {
        "source": {"name": "dcgan", "nz": 256, "output": "sigmoid",
                   "optim": {"name": "adam", "lr": 1e-3, "betas": [0.5, 0.999], "weight_decay": 0.0,
                             "schedule": "constant"}},
        "synth": {"schedule": "reinit", "g_steps": 200, "augment": "crop", "reset": "dcgan", "latent": "optimised",
                  "keep": "best", "targets": "uniform"},
        "objective": {"generator": {"bn": 1.0, "ce": 1.0, "adv_kl": 0.5, "cmi": 0.8},
                      "params": {"adv_kl": {"mask": "agree"}, "cmi": {"tau": 0.2}}, "student": {"kd_kl": 1.0}},
        "distill": {"kd_steps": 5},
        "pool": {"capacity": 8192},
    }), presets={
    "digits": _digits({"synth": {"g_steps": 10}, "distill": {"rounds": 100, "kd_steps": 10, "eval_every": 10}},
                      "100 rounds of 10 generator steps (200 in the paper) and 10 student steps"),
    **_cifar({"distill": {"rounds": 200}, "synth": {"g_steps": 200}, "student": {"optim": {"lr": 0.1, "min_lr": 0.0}}},
             "200 rounds of 200 generator steps, student SGD 0.1 cosine to 0 (CosineAnnealingLR(200))",
             source=f"the authors' CIFAR-10 script ({CMI_REPO} scripts/cmi_cifar10.sh, datafree_kd.py)"),
})

_FAST = deep_merge(_POOL_STUDENT, {
    "source": {"name": "dcgan", "nz": 256, "output": "sigmoid",
               "optim": {"name": "adam", "lr": 4e-3, "betas": [0.5, 0.999], "weight_decay": 0.0,
                         "schedule": "constant"}},
    "synth": {"schedule": "meta", "g_steps": 10, "meta": "fomaml", "meta_step": "adam", "warmup": 20,
              "z_lr": 0.01, "keep": "best", "targets": "uniform", "augment": "crop", "reset_first_layer": 140},
    "objective": {"generator": {"adv_kl": 1.1, "bn": 10.0, "ce": 0.4},
                  "params": {"bn": {"momentum": 0.9}, "adv_kl": {"mask": "agree"}},
                  "student": {"kd_kl": 1.0}},
    "distill": {"kd_steps": 5},
    "pool": {"capacity": 8192},
})
_FAST_DOC = f"""Fast — Fang, Mo, Wang, Song, Xu, Song (2022), "Up to 100× Faster Data-free Knowledge
Distillation", AAAI 2022, arXiv:2112.06253; as the authors' code runs it ({FD}
datafree/synthesis/fast_meta.py, scripts/fast_cifar.sh). One generator (sigmoid output, nz 256)
is a meta-learned initialisation: each round clones it and optimises the clone and one latent code
(at its own lr, 0.01; 0.015 for Fast-2) by Adam (0.5, 0.999) for g_steps on 10 x BN statistics (blended
with a momentum 0.9 running statistic that moves once per round) + CE towards uniformly drawn targets
+ the adversarial KL at T = 1 on the samples where student and teacher agree (weights adv 1.1, ce 0.4:
the authors' WRN pairs; ResNet-34 1.33 / 0.5, VGG-11 1.0 / 0.5); first-order MAML: the clone's
gradients, summed over the round, step the shared generator's own Adam at lr x g_steps. The round
keeps its lowest-loss batch for a replay pool the student reads through crop + flip; the student is
in eval mode during synthesis; the first 20 rounds are warm-up (no adversarial term, no student
steps) and at round 140 (120 after it) the generator's first Linear and BatchNorm are re-drawn
(reset_l0). `synth.meta=reptile` is the authors' other meta update. Differs: the adversarial term
comes on one round later (after the warm-up: the authors' starts at its last round)."""

_FAST_LR = {2: 5e-3, 5: 3e-3, 10: 2e-3}  # the authors' generator rate per number of steps (CIFAR scripts)
_FAST_ZLR = {2: 0.015, 5: 0.01, 10: 0.01}  # and the latent codes' rate


def _fast_presets(k: int) -> dict[str, Preset]:
    """Fast-k: 220 rounds (20 of warm-up) on digits and in the authors' CIFAR scripts, where the student
    learns at SGD 0.2 (their adv/ce weights are per teacher-student pair and stay in the tables)."""
    return {"digits": _digits({"distill": {"rounds": 220}}, "220 rounds, the first 20 of warm-up"),
            **_cifar({"distill": {"rounds": 220}, "student": {"optim": {"lr": 0.2}},
                      "source": {"optim": {"lr": _FAST_LR[k]}}, "synth": {"z_lr": _FAST_ZLR[k]}},
                     f"220 rounds with 20 of warm-up, generator lr {_FAST_LR[k]}, codes {_FAST_ZLR[k]}, "
                     f"student SGD 0.2")}


FAST = recipe("fast", "meta-learned generator init (FOMAML/Reptile), pool, BN momentum (Fang et al. 2022)",
              _FAST_DOC, deep_merge(_FAST, {"synth": {"z_lr": _FAST_ZLR[10]}}), presets=_fast_presets(10))
for _k in (2, 5, 10):
    recipe(f"fast{_k}", f"Fast with {_k} generator steps per round (Fang et al. 2022)",
           _FAST_DOC + f" Fast-{_k}: synth.g_steps={_k}.",
           deep_merge(_FAST, {"synth": {"g_steps": _k, "z_lr": _FAST_ZLR[_k]}, "source": {"optim": {"lr": _FAST_LR[_k]}}}),
           presets=_fast_presets(_k))

NAYER_REPO = "tmtuan1307/NAYER@c6bedcd"

NAYER = recipe("nayer", "label embedding through noisy layers re-drawn every batch, generator re-initialised "
                        "every 10 rounds, pool (Tran et al. 2024)",
               f"""NAYER — Tran, Tran, Le, Harandi, Phung (2024), "NAYER: Noisy Layer Data Generation for
Efficient and Effective Data-free Knowledge Distillation", CVPR 2024, arXiv:2310.00258; as the authors'
code runs it ({NAYER_REPO} datafree/synthesis/nayer.py, datafree/models/generator.py, scripts/nayer_*.sh).
The generator's input is a fixed per-class embedding through a BatchNorm1d and noisy Linear layers (one
per block of K tiled target classes, re-drawn from N(0, 1) every batch; no latent code) into the
DAFL/DFAD body with a sigmoid output. Every 10 rounds the whole generator is re-initialised; each round
synthesizes `synth.loops` batches (10 in the 20 warm-up rounds, 2 after), each by a fresh Adam
(4e-3, betas 0.5) for g_steps on 10 x BN statistics (momentum 0.9, moved once per batch) + 0.5 x CE
towards the tiled classes + 1.33 x the adversarial KL at T = 1 on the samples where student and
teacher agree, under crop + flip; each batch's lowest-loss iterate goes to the replay pool, which the
student (in eval mode during synthesis) reads through crop + flip. Differs: the class embedding is
random (or learned, or a file: `source.embed`, e.g. the authors' CLIP text features converted with
torch.save) instead of CLIP's; the authors' student is in train mode in every batch of a round after
the first (a `student.train()` inside their loop), here in eval mode in all
(`synth.student_mode=train_after_first` runs theirs).""", deep_merge(_POOL_STUDENT, {
    "source": {"name": "nayer", "nz": 1000, "output": "sigmoid",
               "optim": {"name": "adam", "lr": 4e-3, "betas": [0.5, 0.999], "weight_decay": 0.0,
                         "schedule": "constant"}},
    "synth": {"schedule": "nayer", "g_steps": 30, "loops": 2, "warmup_loops": 10, "reinit_every": 10, "warmup": 20,
              "keep": "best", "targets": "ordered", "augment": "crop"},
    "objective": {"generator": {"ce": 0.5, "bn": 10.0, "adv_kl": 1.33},
                  "params": {"bn": {"momentum": 0.9}, "adv_kl": {"mask": "agree"}}, "student": {"kd_kl": 1.0}},
    "distill": {"kd_steps": 5},
    "pool": {"capacity": 8192},
}), presets={
    "digits": _digits({"synth": {"g_steps": 5, "warmup": 5, "warmup_loops": 2}, "distill": {"rounds": 205}},
                      "205 rounds (5 of warm-up with 2 batches each) of 5 generator steps"),
    **{ds: Preset({"synth": {"g_steps": steps, "batch_size": 400}, "source": {"embed_dim": 512},
                   "distill": {"rounds": 120, "kd_steps": 400, "batch_size": 512, "eval_every": 1},
                   "objective": {"temperature": 20.0},
                   "student": {"optim": {"lr": 0.2, "weight_decay": 1e-4, "min_lr": 2e-4}},
                   "pool": {"capacity": 160000}},
                  f"the authors' CIFAR scripts ({NAYER_REPO} scripts/nayer_100.sh): 120 rounds (20 of warm-up), "
                  f"{steps} generator steps, synthesis batch 400, student batch 512, 400 student steps at T = 20, "
                  "SGD 0.2 wd 1e-4 cosine to 2e-4; the pool holds every batch (160,000)")
       for ds, steps in (("cifar10", 30), ("cifar100", 40))},
})

NOISE = recipe("noise", "control: the same loop on Gaussian noise",
    """Noise control (the baseline of the DFKD tables, e.g. Fang et al. 2021, CMI): the
student is distilled with KL through the same loop on Gaussian-noise inputs, with no synthesis.
Whatever a method scores above this row is what its input source earns.""", {
    "source": {"name": "noise"},
    "synth": {"schedule": "persistent", "g_steps": 0},
    "objective": {"student": {"kd_kl": 1.0}},
    "distill": {"kd_steps": 5, "batch": "fresh"},
}, presets={"digits": _digits()})
