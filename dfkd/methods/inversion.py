"""The inversion recipes with a replay pool: inputs optimised against the teacher's BatchNorm
statistics, re-initialised or meta-learned each round (DeepInversion, ADI, CMI, Fast, NAYER), the
student on the pool; and the noise control. With their per-dataset presets; each recipe's docstring
cites its paper and says where it knowingly differs."""
from __future__ import annotations

from dfkd.config.load import deep_merge
from dfkd.methods.presets import CMI_REPO, FD, NV, cifar_presets, digits_preset
from dfkd.methods.registry import Preset, recipe

# the student side of the pool-based recipes, as the authors' code trains it: every synthesized batch
# goes to a replay pool, the student reads it in shuffled passes (their DataLoader(shuffle=True),
# rebuilt after each synthesis) through the training transform (crop + flip), and the student is in
# eval mode while the source is optimised
_POOL_STUDENT = {"distill": {"batch": "pool", "augment": "crop"}, "synth": {"student_mode": "eval"},
                 "pool": {"sampling": "shuffled"}}

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
student distils from it with KL, reading it in shuffled passes through the CIFAR training transform and in eval mode
during synthesis, as {FD} does. Differs: synthesis is interleaved with student training instead of
done once up front (as in every pool-based table).""", _DEEPINV, presets={
    "digits": digits_preset({"distill": {"rounds": 100, "eval_every": 10, "kd_steps": 10}, "synth": {"g_steps": 25}},
                      "100 rounds of 25 pixel steps (2,000 in the paper) and 10 student steps"),
    **cifar_presets({"distill": {"rounds": 200}, "student": {"optim": {"lr": 0.1}}},
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
                  presets={"digits": digits_preset(
                      {"distill": {"rounds": 50, "eval_every": 10}, "synth": {"g_steps": 50}},
                      "50 rounds of 50 pixel steps (2,000 in the paper) and 20 student steps"),
                      **cifar_presets({"distill": {"rounds": 200}, "student": {"optim": {"lr": 0.1}},
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
keeps its lowest-loss batch; it goes to a replay pool the student reads in shuffled passes through crop + flip, and the
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
    "digits": digits_preset({"synth": {"g_steps": 10}, "distill": {"rounds": 100, "kd_steps": 10, "eval_every": 10}},
                      "100 rounds of 10 generator steps (200 in the paper) and 10 student steps"),
    **cifar_presets({"distill": {"rounds": 200}, "synth": {"g_steps": 200}, "student": {"optim": {"lr": 0.1, "min_lr": 0.0}}},
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
keeps its lowest-loss batch for a replay pool the student reads in shuffled passes through crop + flip; the student is
in eval mode during synthesis; the first 20 rounds are warm-up (no adversarial term, no student
steps) and at round 140 (120 after it) the generator's first Linear and BatchNorm are re-drawn
(reset_l0). `synth.meta=reptile` is the authors' other meta update. Differs: the adversarial term
comes on one round later (after the warm-up: the authors' starts at its last round)."""

_FAST_LR = {2: 5e-3, 5: 3e-3, 10: 2e-3}  # the authors' generator rate per number of steps (CIFAR scripts)
_FAST_ZLR = {2: 0.015, 5: 0.01, 10: 0.01}  # and the latent codes' rate


def _fast_presets(k: int) -> dict[str, Preset]:
    """Fast-k: 220 rounds (20 of warm-up) on digits and in the authors' CIFAR scripts, where the student
    learns at SGD 0.2 (their adv/ce weights are per teacher-student pair and stay in the tables)."""
    return {"digits": digits_preset({"distill": {"rounds": 220}}, "220 rounds, the first 20 of warm-up"),
            **cifar_presets({"distill": {"rounds": 220}, "student": {"optim": {"lr": 0.2}},
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
student (in eval mode during synthesis) reads in shuffled passes through crop + flip. Differs: the class embedding is
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
    "digits": digits_preset({"synth": {"g_steps": 5, "warmup": 5, "warmup_loops": 2}, "distill": {"rounds": 205}},
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

SPACESHIP_REPO = "skgyu/SpaceshipNet@30a76b0"

SPACESHIPNET = recipe("spaceshipnet", "persistent generator, student batches decoded from pooled generator "
                                      "features with channels exchanged + CAM/Grad-CAM consistency (Yu et al. 2023)",
    f"""SpaceshipNet — Yu, Chen, Han, Jiang (2023), "Data-Free Knowledge Distillation via Feature
Exchange and Activation Region Constraint", CVPR 2023; as the authors' code runs it ({SPACESHIP_REPO}
code/SpaceshipNet train/train_cvpr2023.py, models/model_CFE_mSARC_bases/model_CFE_mSARC_base_V37.py,
scripts/DFKD_Cifar*_ResNet34_ResNet18_V37_conv012*.yaml). One generator (CMI's: sigmoid, nz 256,
Kaiming initialisation once) is kept across rounds; each round it gets a fresh Adam (1e-3, (0.5,
0.999)) and one latent code held fixed (not optimised) for g_steps on 0.5 x CE towards 0..K-1 tiled
+ BN statistics, under crop + flip; the round keeps its lowest-loss batch, and its intermediate
features (bn0, block1, block2) go to three never-trimmed pools. Every student batch is decoded from
one level's pool, drawn uniformly, by the current generator in eval mode, after the channel-wise
feature exchange with probability 0.7 (each sample takes a random half of its channels from its
mirror sample: `synth.exchange`), then read through crop + flip. The student minimises KD at T = 30
(element-wise mean KL x T^2) + the CAM consistency of the last stage (`sarc_cam`) + the Grad-CAM
consistency of every matched stage for the teacher's class (`sarc_gradcam`); 2,000 steps per round
on CIFAR. Differs: the student keeps its architecture's initialisation (theirs: Xavier-normal, gain
sqrt(2)); N mod K targets are drawn at random (theirs: 0..N mod K - 1); the student's cosine moves
per step, not per round; the authors report the best round's test accuracy, dfkd the final one too.""", {
    "source": {"name": "dcgan", "nz": 256, "output": "sigmoid", "init": "kaiming",
               "optim": {"name": "adam", "lr": 1e-3, "betas": [0.5, 0.999], "weight_decay": 0.0,
                         "schedule": "constant"}},
    "synth": {"schedule": "reinit", "reset": "none", "latent": "round", "g_steps": 200, "keep": "best",
              "targets": "ordered", "augment": "crop", "exchange": 0.7, "student_mode": "eval"},
    "objective": {"generator": {"ce": 0.5, "bn": 1.0},
                  "student": {"kd_kl": 1.0, "sarc_cam": 1.0, "sarc_gradcam": 1.0},
                  "temperature": 30.0, "params": {"kd_kl": {"reduction": "mean"}}},
    "distill": {"batch": "fresh", "augment": "crop", "kd_steps": 2000},
    "student": {"optim": {"lr": 0.1, "weight_decay": 1e-4, "min_lr": 0.0}},
}, presets={
    "digits": digits_preset({"synth": {"g_steps": 10}, "distill": {"rounds": 100, "kd_steps": 10, "eval_every": 10}},
                            "100 rounds of 10 generator steps (200 in the paper) and 10 student steps (2,000)"),
    **{ds: Preset({"synth": {"batch_size": 256}, "distill": {"rounds": 200, "eval_every": 1}},
                  f"the authors' scripts ({SPACESHIP_REPO} scripts/DFKD_{name}_ResNet34_ResNet18_V37_conv012*.yaml): "
                  "200 rounds of 200 generator steps and 2,000 student steps at batch 256, the feature pools "
                  "holding every round's batch (51,200; fp16 by pool.storage)")
       for ds, name in (("cifar10", "Cifar10"), ("cifar100", "Cifar100"))},
})

NOISE = recipe("noise", "control: the same loop on Gaussian noise",
    """Noise control (the baseline of the DFKD tables, e.g. Fang et al. 2021, CMI): the
student is distilled with KL through the same loop on Gaussian-noise inputs, with no synthesis.
Whatever a method scores above this row is what its input source earns.""", {
    "source": {"name": "noise"},
    "synth": {"schedule": "persistent", "g_steps": 0},
    "objective": {"student": {"kd_kl": 1.0}},
    "distill": {"kd_steps": 5, "batch": "fresh"},
}, presets={"digits": digits_preset()})
