"""The generator-based data-free recipes: a generator trained against (DFAD, DFQ, ZSKT) or only with
(DAFL) the teacher, kept across rounds, the student on its fresh or regenerated batches; with their
per-dataset presets. Each recipe's docstring cites its paper and says where it knowingly differs."""
from __future__ import annotations

import math

from dfkd.config.load import deep_merge
from dfkd.methods.presets import CIFAR_SOURCE, FD, digits_preset
from dfkd.methods.registry import Preset, recipe

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
    "digits": digits_preset({"student": {"optim": {"lr": 0.3}}},
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
    "digits": digits_preset({"distill": {"rounds": 1000, "eval_every": 100}, "student": {"optim": {"lr": 5e-3}}},
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
}, presets={"digits": digits_preset({"distill": {"rounds": 100, "eval_every": 10}},
                              "100 rounds of 10 student steps"),
            **{ds: Preset({"distill": {"rounds": 8000, "eval_every": 40}}, CIFAR_SOURCE +
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
    "digits": digits_preset({"distill": {"rounds": 100, "eval_every": 10}, "student": {"optim": {"lr": 5e-3}},
                       "objective": {"student": {"at": 25.0}}},
                      "100 rounds of 10 student steps; student lr 5e-3; attention weight 25 (the authors' "
                      "element-mean KL weighs 250 ten times more than a batch-mean KL; at 250 the small "
                      "student ends at 36.9 / 31.4 / 39.4%, at 25 at 65.3 / 59.7 / 64.2, seeds 0-2)"),
    **{ds: Preset({"synth": {"batch_size": 128}, "distill": {"rounds": 80000, "eval_every": 800}},
                  f"the authors' CIFAR-10 scripts ({POLO5} scripts/ZeroShot/main*.sh): 80,000 batches of 128")
       for ds in ("cifar10", "cifar100")},
})

DFME_REPO = "cake-lab/datafree-model-extraction@525b76c"

DFME = recipe("dfme", "black-box extraction: a generator trained by zeroth-order gradient estimates from "
                      "teacher queries, L1 on mean-corrected log-probabilities (Truong et al. 2021)",
    f"""DFME — Truong, Maini, Walls, Papernot (2021), "Data-Free Model Extraction", CVPR 2021,
arXiv:2011.14779; as the authors' code runs it ({DFME_REPO} dfme/train.py, dfme/approximate_gradients.py,
run_cifar_dfme.sh). The teacher is a black box (teacher.black_box: outputs only, every forward pass
under no_grad, each sample counted in the summary's teacher_queries), its outputs read as
log-softmax minus its mean over the classes (teacher.correction=mean). A persistent generator
(DFAD's, ending in an affine-free BatchNorm then tanh: source.output=bn_tanh; nz 256; Adam lr 1e-4)
maximises the L1 distance between student and teacher logits through a zeroth-order estimate of its
gradient (synth.schedule=zeroth_order: forward differences along m = 1 random unit direction per
sample before the tanh, ε = 1e-3, scaled by 1/(K N) as their code; 2N queries per step, the student
scored in eval mode); then the student (SGD lr 0.1, momentum 0.9, wd 5e-4) minimises that L1 on 5
fresh batches of the generator in train mode, N queries each. Both rates x0.3 at 10, 30 and 50% of
the run. On CIFAR-10 the budget is 20M queries at batch 256: 11,160 rounds of 1,792 queries.
Differs: the generator's convolutions before BatchNorm carry no bias (theirs do: the same function,
other initial weights), and the rates step at the milestones' rounds (theirs per epoch of 50 rounds:
the first decay after 21 of 224 epochs, 9.4% of the run, in the CIFAR preset).""", {
    "teacher": {"black_box": True, "correction": "mean"},
    "source": {"name": "dcgan", "nz": 256, "output": "bn_tanh",
               "optim": {"lr": 1e-4, "betas": [0.9, 0.999], "schedule": "step", "milestones": [0.1, 0.3, 0.5],
                         "gamma": 0.3}},
    "synth": {"schedule": "zeroth_order", "g_steps": 1, "zo_directions": 1, "zo_eps": 1e-3},
    "objective": {"generator": {"adv_l1": 1.0}, "student": {"kd_l1": 1.0}},
    "distill": {"kd_steps": 5, "batch": "fresh"},
    "student": {"optim": {"lr": 0.1, "weight_decay": 5e-4, "schedule": "step", "milestones": [0.1, 0.3, 0.5],
                          "gamma": 0.3}},
}, presets={
    "digits": digits_preset({"student": {"optim": {"lr": 0.3}}},
                            "200 rounds of 5 student steps (179,200 queries), student lr 0.3 as DFAD's digits "
                            "preset (seed 0: 55.8% against 34.4 at the paper's 0.1; generator lr 1e-3 instead "
                            "56.1, both 52.8, both with m = 5 directions 55.6, both with cosine schedules as "
                            "DFAD's digits preset 66.4)"),
    **{ds: Preset({"synth": {"batch_size": 256}, "distill": {"rounds": 11160, "eval_every": 50},
                   "source": {"optim": {"milestones": [0.0941, 0.2957, 0.4973]}},
                   "student": {"optim": {"milestones": [0.0941, 0.2957, 0.4973]}}},
                  f"the authors' CIFAR script ({DFME_REPO} run_cifar_dfme.sh): 20M queries at batch 256, "
                  "11,160 rounds; both rates x0.3 after epochs 21, 66 and 111 of 224 (of 50 rounds)")
       for ds in ("cifar10", "cifar100")},
})

MOSAIC_REPO = "zju-vipa/MosaicKD@a8d8e2c"

MOSAICKD = recipe("mosaickd", "a generator whose patches mimic out-of-domain images (patch GAN) while it confuses "
                              "the student; the student on its samples and the images (Fang et al. 2021)",
    f"""MosaicKD — Fang, Bao, Song, Wang, Xie, Shen, Song (2021), "Mosaicking to Distill: Knowledge
Distillation from Out-of-Domain Data", NeurIPS 2021, arXiv:2110.15094; as the authors' code runs it
({MOSAIC_REPO} kd_mosaic.py, engine/models/generator.py, README's CIFAR-100 + CIFAR-10 command). A
persistent generator (sigmoid, nz 100, widths 256-128-64; Adam 1e-3 (0.5, 0.999), cosine) takes one
step per round on -KL(T||S) at T = 1 (adversarial) + the teacher's per-sample entropy (`t_entropy`:
their alignment) + a patch discriminator's verdict (`patch_gan`: every patch must look like the
out-of-domain images of objective.params.patch_gan.data, the discriminator taking its own step
first) + 10 x class balance in log2 (`ie` x 10 / ln 2); the student is in train mode throughout, as
theirs. Then 5 student steps, KL at T = 1, each on n fresh generator samples followed by n
out-of-domain images (SGD 0.1, momentum 0.9, wd 1e-4, cosine over the run). Differs: see
dfkd/synthesis/mosaic.py (the discriminator's rate is constant); the out-of-domain images are not
augmented; no OOD subset selection (their --ood_subset for ImageNet / Places365: use dfnd's).""", {
    "source": {"name": "dcgan", "nz": 100, "width": 256, "taper": "early", "output": "sigmoid",
               "optim": {"name": "adam", "lr": 1e-3, "betas": [0.5, 0.999]}},
    "synth": {"schedule": "persistent", "g_steps": 1, "student_mode": "train"},
    "objective": {"generator": {"adv_kl": 1.0, "t_entropy": 1.0, "patch_gan": 1.0, "ie": 14.426950408889634},
                  "student": {"kd_kl": 1.0}, "temperature": 1.0},
    "distill": {"kd_steps": 5, "batch": "fresh"},
    "student": {"optim": {"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4}},
}, presets={
    "digits": digits_preset({"objective": {"params": {"patch_gan": {"data": "digits_mosaic"}}}},
                            "the out-of-domain images: digits_mosaic, 200 rounds of 5 student steps"),
    "cifar100": Preset({"synth": {"batch_size": 256}, "distill": {"rounds": 39200, "eval_every": 196},
                        "objective": {"params": {"patch_gan": {"data": "cifar10"}}}},
                       f"the authors' CIFAR-100 command ({MOSAIC_REPO} README): CIFAR-10 as the out-of-domain set, "
                       "200 epochs of its 196 batches of 256"),
})

CUDFKD_REPO = "ljrprocc/DFKD@cd281c4"


def _cudfkd_cifar(values: dict, why: str) -> Preset:
    return Preset(deep_merge({"distill": {"eval_every": 40}, "objective": {"ramp_every": 40}}, values),
                  f"the authors' scripts ({CUDFKD_REPO} scripts/cudfkd/{why})")


CUDFKD = recipe("cudfkd", "DFQ's persistent generator with an easy-to-hard curriculum: ramped adversarial "
                          "weight, self-paced student loss (Li et al. 2023)",
    f"""CuDFKD — Li, Zhou, Li, Wang, Yu, Bu (2023), "Dynamic Data-Free Knowledge Distillation by
Easy-to-Hard Learning Strategy", Information Sciences, arXiv:2208.13648; as the authors' code runs it
({CUDFKD_REPO} datafree/synthesis/cudfkd.py, datafree_kd.py, scripts/cudfkd). A persistent generator
(nz 512, widths 256-128-64, sigmoid, DCGAN initialisation once; Adam 1e-3 (0.9, 0.99), constant)
takes one step per round on BN statistics + one-hot CE + 20 x class balance at the KD temperature
+ a ramped -KL at T = 3: the adversarial weight stays at its start for the first quarter of the
run, then grows by a fixed step per epoch until three quarters (objective.ramp with a FROM; the
easy-to-hard curriculum of the generator). The student takes 10 steps per round on fresh batches
drawn with the generator in eval mode, its loss L weighted by the detached self-paced
v = (1 + e^-λ) / (1 + e^(L - λ)) with λ rising linearly per student step (objective.self_paced; the
student's easy-to-hard). Differs: the authors' code at that commit dropped the agreement mask of
the adversarial KL (its CIFAR numbers were probably produced with it: objective.params.adv_kl.mask=
agree); the class-balance temperature follows objective.params.ie.T, not the KD temperature.""", {
    "source": {"name": "dcgan", "nz": 512, "width": 256, "taper": "early", "output": "sigmoid", "init": "dcgan",
               "optim": {"name": "adam", "lr": 1e-3, "betas": [0.9, 0.99], "schedule": "constant"}},
    "synth": {"schedule": "persistent", "g_steps": 1, "sample_mode": "eval"},
    "objective": {"generator": {"adv_kl": 1.0, "bn": 1.0, "oh": 1.0, "ie": 20.0}, "student": {"kd_kl": 1.0},
                  "params": {"adv_kl": {"T": 3.0}, "ie": {"T": 20.0}}, "temperature": 20.0,
                  "ramp": {"adv_kl": [0.0, 62.5, 0.756, 0.256]}, "self_paced": [2.0, 1e-4]},
    "distill": {"kd_steps": 10, "batch": "fresh"},
    "student": {"optim": {"weight_decay": 1e-4}},
}, presets={
    "digits": digits_preset({"distill": {"rounds": 100, "eval_every": 10}},
                            "100 rounds of 10 student steps (93.33 +- 5.20%, best 97.04, seeds 0-2)"),
    "cifar10": _cudfkd_cifar({"synth": {"batch_size": 512}, "distill": {"rounds": 10000},
                              "objective": {"student": {"kd_kl": 0.0, "kd_l1": 1.0}}},
                             "cudfkd_cifar10_resnet34_resnet18.sh: batch 512, 250 epochs of 40 rounds, "
                             "L1 on logits for the student, the adversarial weight 0 until epoch 64, then "
                             "+0.5 per epoch to 62.5 at epoch 189, λ from 2 by 1e-4 per step"),
    "cifar100": _cudfkd_cifar({"synth": {"batch_size": 768}, "distill": {"rounds": 12000},
                               "objective": {"student": {"kd_kl": 0.0, "kd_l1": 1.0},
                                             "ramp": {"adv_kl": [1.0, 1.0, 1.0]}, "params": {"ie": {"T": 5.0}},
                                             "self_paced": [1.0, 2e-5]}},
                              "cudfkd_cifar100_resnet34_resnet18.sh: batch 768, 300 epochs of 40 rounds, "
                              "L1 on logits, the adversarial weight 1 throughout, balance at T = 5, λ from 1 "
                              "by 2e-5 per step; without the script's replay pool (--memory)"),
})

ADADFKD = recipe("adadfkd", "CuDFKD + relation refinement: teacher features against a sliding window of past "
                            "student features; in-batch InfoNCE for the student (Li et al. 2024)",
    f"""AdaDFKD — Li, Zhou, Li, Wang, Bu, Yu (2024), "AdaDFKD: Exploring adaptive inter-sample
relationship in data-free knowledge distillation", Neural Networks, doi:10.1016/j.neunet.2024.106386;
as the authors' code runs it ({CUDFKD_REPO} datafree/synthesis/adadfkd.py, datafree_kd.py,
scripts/adadfkd). CuDFKD's loop (see `cudfkd`) with a constant adversarial weight 1 (the scripts'
grad_adv 0) and two terms on penultimate features: the generator's 0.1·r2m (each sample's teacher
feature must pick the student's against a queue of earlier student features, keeping a window of
the negatives that slides from the easiest to the hardest between two fractions of the run) and
the student's 0.1·kd_nce (in-batch InfoNCE, teacher rows, at tau 0.07), inside the self-paced
weight. Student features of another width go through a fresh random linear map at every step, as
the authors' code does (objective.params.r2m.project=random). Differs: the authors' CIFAR-10
ResNet-34 script asks for a queue of 4096 with batch 768, which their code refuses (the queue must
be a multiple of the batch): here 6144; no agreement mask on the adversarial KL (as their code at
that commit).""", deep_merge(CUDFKD.recipe, {
    "objective": {"generator": {"r2m": 0.1}, "student": {"kd_nce": 0.1},
                  "ramp": {"adv_kl": [1.0, 1.0, 1.0]}, "self_paced": [2.2, 1e-4],
                  "params": {"r2m": {"project": "random"}, "kd_nce": {"project": "random"}}}}),
    presets={
    "digits": digits_preset({"distill": {"rounds": 100, "eval_every": 10},
                             "objective": {"params": {"r2m": {"bank": 1024}},
                                           "ramp": {"adv_kl": [0.0, 62.5, 0.756, 0.256]}}},
                            "100 rounds of 10 student steps, a queue of 8 rounds' features, and CuDFKD's "
                            "ramped adversary: at the scripts' constant weight 1 from the first round the "
                            "student ends at 12.78 / 10.00 / 4.44% (seeds 0-2); ramped, 89.44 / 91.11 / 96.67%"),
    "cifar10": _cudfkd_cifar({"synth": {"batch_size": 768}, "distill": {"rounds": 12000},
                              "objective": {"params": {"r2m": {"bank": 6144}}}},
                             "../adadfkd/adadfkd_cifar10_resnet34_resnet18.sh: batch 768, 300 epochs of 40 "
                             "rounds, the queue 6144 (the script's 4096 is refused by its own code), window "
                             "0.9 sliding from a quarter to three quarters, λ from 2.2 by 1e-4 per step"),
    "cifar100": _cudfkd_cifar({"synth": {"batch_size": 1024}, "distill": {"rounds": 16000},
                               "objective": {"student": {"kd_kl": 0.0, "kd_l1": 1.0}, "self_paced": [1.0, 2e-5],
                                             "params": {"ie": {"T": 5.0}, "r2m": {"bank": 12288, "length": 0.8,
                                                                                 "begin": 0.2, "end": 0.8}}}},
                              "../adadfkd/adadfkd_cifar100_resnet34_resnet18.sh (its values, with the ResNet-34 "
                              "teacher): batch 1024, 400 epochs of 40 rounds, L1 on logits, the queue 12288, "
                              "window 0.8 sliding over 20-80%, balance at T = 5, λ from 1 by 2e-5 per step"),
})
