"""The recipes on real training data: data-driven KD (the upper reference rows: Hinton KD, FitNets,
AT, RKD, DKD, labels alone, a critic) and robust distillation on perturbed real batches (RSLAD,
ARD, BSS). Each recipe's docstring cites its paper and says where it knowingly differs."""
from __future__ import annotations

from dfkd.config.load import deep_merge
from dfkd.methods.registry import Method, Preset, recipe

# ----------------------------------------------------------------------------- data-driven KD
# The upper reference rows: the student learns on the real training split (source `real`, one
# shuffled batch per round, random-crop augmentation) through the same loop. Defaults follow the
# CRD/RepDistiller CIFAR-100 benchmark (Tian et al. 2020): SGD lr 0.05, momentum 0.9, wd 5e-4,
# x0.1 at 150/180/210 of 240 epochs (milestones as fractions of the run), batch 64, T = 4.
_DATA = {
    "source": {"name": "real"},
    "synth": {"schedule": "per_batch", "g_steps": 0, "batch_size": 64, "augment": "crop", "augment_fill": "mean"},
    "distill": {"kd_steps": 1, "batch": "reuse"},
    "student": {"optim": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4, "schedule": "step",
                          "milestones": [0.625, 0.75, 0.875], "gamma": 0.1}},
    "objective": {"temperature": 4.0},
}
_DATA_NOTE = (" Data-driven: reads the real training split (source.name=real, synth.schedule=per_batch); "
              "a round is one batch, so distill.rounds = epochs x floor(N / synth.batch_size). Optimizer "
              "and schedule as in the CRD benchmark (SGD 0.05, x0.1 at 62.5/75/87.5% of the run, wd 5e-4, "
              "batch 64), T = 4. Differs from CRD: the random crop pads with the mean colour, not black "
              "(synth.augment_fill; on digits, 150 KD steps: 97.2% against 93.3% with black padding).")


def data_recipe(name: str, summary: str, doc: str, student_terms: dict, extra: dict | None = None,
                presets: dict[str, Preset] | None = None) -> Method:
    """A recipe on the real training split: these student terms over the data-driven defaults."""
    values = deep_merge(_DATA, {"objective": {"student": student_terms}})
    return recipe(name, summary, doc + _DATA_NOTE, deep_merge(values, extra or {}), presets)


LABELS = data_recipe("labels", "the student trained on the real labels alone (no teacher): the floor of KD",
    """Supervised baseline (the "student trained alone" row of Hinton et al. 2015 and of the CRD
benchmark, Tian et al. 2020, arXiv:1910.10699): cross-entropy of the student on the true labels,
no teacher term. What every data-driven KD row must beat.""", {"label_ce": 1.0})

KD = data_recipe("kd", "Hinton KD on the real training data: 0.9 KL(T/4 || S/4) x 16 + 0.1 CE",
    """Hinton KD — Hinton, Vinyals, Dean (2015), "Distilling the Knowledge in a Neural Network",
arXiv:1503.02531: the student minimises KL between the teacher's and its own softened predictions
(temperature T, x T^2) plus cross-entropy on the labels; weights 0.9 / 0.1 at T = 4 as in the
CRD/RepDistiller benchmark.""", {"kd_kl": 0.9, "label_ce": 0.1}, presets={
    "mnist": Preset({"student": {"optim": {"lr": 0.01}}, "synth": {"augment": "none"}},
                    "measured here (experiments/mnist): the CRD rate 0.05 leaves the BN-free LeNet-5-half at 10% "
                    "(its units die in the first steps), 0.01 reaches 97.7% after one epoch; no crop on MNIST"),
})

GD = data_recipe("gd", "generalized distillation: the teacher sees the privileged input, the student a restricted "
                        "view; (1 - λ) CE + λ CE against the teacher at T (Lopez-Paz et al. 2016)",
    """Generalized distillation — Lopez-Paz, Bottou, Schölkopf, Vapnik (2016), "Unifying distillation
and privileged information", ICLR 2016, arXiv:1511.03643: learning using privileged information
(Vapnik & Vashist 2009) as distillation. The teacher learned on, and sees, the privileged
representation x* of each training sample (`view.teacher`: the full input); the student only ever
gets the regular representation x (`view.student`, here `lowres`: the image down- and up-sampled by
view.lowres_factor = 4, the paper's MNIST 28 x 28 -> 7 x 7) and minimises

    (1 - λ) CE(y, softmax(f_s(x))) + λ CE(softmax(f_t(x*) / T), softmax(f_s(x)))

where only the teacher is softened (`kd_gd`): λ is the weight of kd_gd (label_ce takes 1 - λ) and T
the objective's temperature. The paper picks λ in {0, 0.25, 0.5, 0.75, 1} and T in {1, 2, 5, 10, 20,
50} by validation and publishes no single pair: the defaults here, λ = 0.5 and T = 2, are a choice,
not theirs. The student is trained and scored on the restricted view (view.eval follows
view.student); its floor is `labels` on the same view (--set view.student=lowres).""",
    {"label_ce": 0.5, "kd_gd": 0.5}, extra={"objective": {"temperature": 2.0}, "view": {"student": "lowres"}})

DFND = recipe("dfnd", "KD on unlabelled out-of-domain images, the teacher's most confident ones (Chen et al. 2021)",
    """DFND — Chen, Guo, Xu, Shu, Xu, Tian (2021), "Learning Student Networks in the Wild", CVPR 2021;
as the authors' code runs it (huawei-noah/Efficient-Computing@225ddd2 Data-Efficient-Model-Compression/
DFND/DFND-train.py). Instead of synthesising inputs, the student learns from unlabelled images of
another domain (`source.name=unlabelled`, `source.data`): one pass of the teacher over all of them
keeps the `source.select` it is most confident on (lowest cross-entropy against its own arg-max:
their `identify_outlier` and `topk(largest=False)`), then the student minimises KL at T = 4 (x T^2,
batch mean) on shuffled batches of them, with random crop (and flip on natural images); SGD lr 0.1,
momentum 0.9, wd 5e-4, x0.1 at 40% and 80% of the run, batch 256. Differs: without the paper's
noise adaptation (an NLL through a learned class-transition matrix whose diagonal is the teacher's
accuracy; in their script it sits next to the KD term). Their CIFAR runs select 600,000 ImageNet
images resized to 32 x 32: give such a set as an image folder (source.data=imagefolder with
data.root) or a registered dataset; the digits preset uses `digits_mosaic` (digits cut into quarters
and re-assembled), no download.""", {
    "source": {"name": "unlabelled"},
    "synth": {"schedule": "per_batch", "g_steps": 0, "batch_size": 256, "augment": "crop"},
    "distill": {"kd_steps": 1, "batch": "reuse"},
    "objective": {"student": {"kd_kl": 1.0}, "temperature": 4.0},
    "student": {"optim": {"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4, "schedule": "step",
                          "milestones": [0.4, 0.8], "gamma": 0.1}},
}, presets={"digits": Preset({"source": {"data": "digits_mosaic", "select": 720}, "synth": {"batch_size": 128},
                              "distill": {"rounds": 1000, "eval_every": 100}},
                             "digits_mosaic's half the teacher is most confident on (720 of 1,437), 1,000 "
                             "student steps at batch 128: the data-free digits table's student steps")})

FITNET = data_recipe("fitnet", "FitNets hints on real data: CE + 100 x MSE(adapter(student stage), teacher stage)",
    """FitNets — Romero, Ballas, Kahou, Chassang, Gatta, Bengio (2015), "FitNets: Hints for Thin Deep
Nets", ICLR 2015, arXiv:1412.6550: the student's middle stage, through a learned 1x1-conv adapter,
regresses the teacher's middle stage (MSE, weight 100) next to CE on the labels, trained jointly
(the CRD benchmark's single-stage variant, not the paper's two-stage schedule). Stages are paired by
spatial size; the middle pair is used.""", {"label_ce": 1.0, "hint": 100.0})

AT = data_recipe("at", "attention transfer on real data: CE + 1000 x AT over matched stages",
    """Attention transfer — Zagoruyko & Komodakis (2017), "Paying More Attention to Attention",
ICLR 2017, arXiv:1612.03928: the student matches the teacher's normalised spatial attention maps
(channel-mean of squared activations) at every stage of equal resolution (weight 1000, as in the
CRD benchmark) next to CE on the labels.""", {"label_ce": 1.0, "at": 1000.0})

RKD = data_recipe("rkd", "relational KD on real data: CE + 25 x distance + 50 x angle of penultimate features",
    """RKD — Park, Kim, Lu, Cho (2019), "Relational Knowledge Distillation", CVPR 2019,
arXiv:1904.05068: the student matches the normalised pairwise distances (weight 25) and triplet
angles (weight 50) of the teacher's penultimate embeddings within each batch (Huber loss), next to
CE on the labels. Embedding dimensions may differ between teacher and student.""",
    {"label_ce": 1.0, "rkd_d": 25.0, "rkd_a": 50.0})

DKD = data_recipe("dkd", "decoupled KD on real data: CE + TCKD + 8 x NCKD at T = 4",
    """DKD — Zhao, Cui, Song, Qiu, Liang (2022), "Decoupled Knowledge Distillation", CVPR 2022,
arXiv:2203.08679: KD split into target-class KD (binary target/rest, weight alpha = 1) and
non-target-class KD (distribution over the other classes, weight beta = 8), both x T^2 at T = 4,
next to CE on the labels. Differs: no linear warm-up of the DKD weight over the first 20 epochs.""",
    {"label_ce": 1.0, "dkd": 1.0})


ADVKD = data_recipe("advkd", "discriminator-based adversarial KD: KD + fool a critic of output distributions",
    """Discriminator-based adversarial KD — Belagiannis, Farshad, Galasso (2018), "Adversarial
Network Compression", ECCV Workshops, arXiv:1803.10750; Wang, Zhang, Wang (2018), "KDGAN", NeurIPS.
A small MLP critic (`dfkd.objective.critic`) learns to tell the teacher's softened output distribution from
the student's (one Adam step, lr objective.params.adv_critic.lr, after every student step); the student adds
the non-saturating fooling loss (weight 0.1, our choice) to Hinton KD (0.9 KL x T^2 + 0.1 CE, T = 4).
Differs: the critic reads output distributions, not pooled features.""",
    {"kd_kl": 0.9, "label_ce": 0.1, "adv_critic": 0.1})


# ----------------------------------------------------------------------------- robust distillation
# Real batch + delta (source real with eps > 0): delta is re-drawn per batch and optimised by PGD
# (synth.g_steps steps of source.step) against the source objective; the teacher scores the clean
# batch (view_t = clean, view_s = perturbed); robust.eps turns on PGD-10 robust accuracy at the end.
# The authors' optimizers, schedules and budgets are on CIFAR-10 presets; the digits ones keep the
# data-driven rows' optimizer for the digits table.
_ROBUST = deep_merge(_DATA, {
    "source": {"eps": 8 / 255, "step": 2 / 255, "random_start": True, "teacher_input": "clean"},
    "synth": {"g_steps": 10},
    "robust": {"eps": 8 / 255, "steps": 10, "step": 2 / 255},
})
RSLAD_REPO = "zibojia/RSLAD@c40e04f"
ARD_REPO = "goldblum/AdversariallyRobustDistillation@779ade3"
BSS_REPO = "bhheo/BSS_distillation@586b141"


# The authors' element-wise mean KL is batch-mean / K: under SGD a K-fold smaller step, which their
# 78,000-117,000 steps absorb and the digits table's 660 do not (ARD 46.4, RSLAD 52.5 on digits);
# the digits presets use batch-mean (measured in docs/fidelity.md).
_DIGITS_KL = ("KL in batch-mean (the authors' element-wise mean / K is a 10x smaller step, which the 660 "
              "digits steps do not absorb; their CIFAR budgets are 118-177x longer)")


def _cifar_robust(lr_wd: tuple[float, float], batch: int, rounds: int, milestones: list[float], why: str) -> dict:
    p = Preset({"student": {"optim": {"lr": lr_wd[0], "weight_decay": lr_wd[1], "milestones": milestones}},
                "synth": {"batch_size": batch, "augment_fill": "black"},
                "distill": {"rounds": rounds, "eval_every": rounds // 20}}, why)
    return {"cifar10": p, "cifar100": p}


RSLAD = recipe("rslad", "robust soft-label distillation: PGD on KL(S(x+d) || T(x)), student 5/6 adv + 1/6 clean KL",
    f"""RSLAD — Zi, Zhao, Ma, Jiang (2021), "Revisiting Adversarial Robustness Distillation: Robust Soft
Labels Make Student Better", ICCV 2021, arXiv:2108.07969; as the authors' code runs it ({RSLAD_REPO}
rslad_loss.py, resnet18_rslad_cifar10.py). δ* maximises the KL between the teacher on the clean batch
and the student (in eval mode) on x + δ: PGD from x + 0.001·N(0, 1), ε = 8/255, 10 steps of 2/255; the
student minimises (5/6)·KL(T(x) || S(x + δ*)) + (1/6)·KL(T(x) || S(x)) at T = 1, both PyTorch's
element-wise mean (batch-mean / K), the perturbed batch first. CIFAR preset: SGD 0.1 wd 2e-4, batch
128, 300 epochs with x0.1 after 215, 260 and 285. The authors distil from a TRADES-trained WRN-34-10
reading [0, 1] images: with it, set data.mean=[0,0,0] data.std=[1,1,1]. Digits preset: both KLs in
batch-mean (the element-wise mean is a 10x smaller step that the table's 660 steps do not absorb).""" + _DATA_NOTE,
    deep_merge(_ROBUST, {"source": {"random_start": False, "start_noise": 0.001},
                         "distill": {"clean_first": False},
                         "objective": {"temperature": 1.0, "generator": {"adv_kl": 1.0},
                                       "student": {"kd_kl": 5 / 6, "kd_kl_clean": 1 / 6},
                                       "params": {"kd_kl": {"reduction": "mean"},
                                                  "kd_kl_clean": {"reduction": "mean"}}}}),
    presets={"digits": Preset({"objective": {"params": {"kd_kl": {"reduction": "batchmean"},
                                                        "kd_kl_clean": {"reduction": "batchmean"}}}},
                              _DIGITS_KL),
             **_cifar_robust((0.1, 2e-4), 128, 117000, [215 / 300, 260 / 300, 285 / 300],
                             f"the authors' CIFAR-10 script ({RSLAD_REPO} resnet18_rslad_cifar10.py): SGD 0.1 wd "
                             "2e-4, batch 128, 300 epochs of 390 steps, x0.1 after epochs 215, 260, 285")})

ARD = recipe("ard", "adversarially robust distillation: PGD on CE(S(x+d), y), student a*KL(adv) + (1-a)*CE(clean)",
    f"""ARD — Goldblum, Fowl, Feizi, Goldstein (2020), "Adversarially Robust Distillation", AAAI 2020,
arXiv:1905.09747; as the authors' code runs it ({ARD_REPO} main.py, its defaults). δ* maximises the
student's cross-entropy on the true labels, the student in train mode (PGD from a uniform start in
the ball, ε = 8/255, 10 steps of 2/255); the student minimises α·T²·KL(T(x)/T || S(x + δ*)/T) +
(1 − α)·CE(S(x), y) with α = 1 and T = 30 (the code's defaults): KL in PyTorch's element-wise mean,
the teacher on the clean batch. CIFAR preset: SGD 0.1 wd 2e-4, batch 128, 200 epochs, x0.1 at epoch
100 (the code's second drop, at 150, sets the same rate again). Differs: with α = 1 the authors still
run the student on the clean batch (its BN statistics move); the teacher is theirs only if you load
the TRADES WRN-34-10 (data.mean=[0,0,0] data.std=[1,1,1]). Digits preset: the KL in batch-mean (the
element-wise mean is a 10x smaller step that the table's 660 steps do not absorb).""" + _DATA_NOTE,
    deep_merge(_ROBUST, {"synth": {"student_mode": "train"}, "distill": {"clean_first": False},
                         "objective": {"temperature": 30.0, "generator": {"adv_ce": 1.0},
                                       "student": {"kd_kl": 1.0}, "params": {"kd_kl": {"reduction": "mean"}}}}),
    presets={"digits": Preset({"objective": {"params": {"kd_kl": {"reduction": "batchmean"}}}}, _DIGITS_KL),
             **_cifar_robust((0.1, 2e-4), 128, 78000, [0.5],
                             f"the authors' defaults ({ARD_REPO} main.py): SGD 0.1 wd 2e-4, batch 128, 200 epochs "
                             "of 390 steps, x0.1 at epoch 100 (as coded)")})


BSS = recipe("bss", "boundary-supporting samples: the teacher's boundary attack on samples both classify right; "
                    "KD on clean + on them, ramped",
    f"""BSS — Heo, Lee, Yun, Choi (2019), "Knowledge Distillation with Adversarial Samples Supporting
Decision Boundary", AAAI 2019, arXiv:1805.05532; as the authors' code runs it ({BSS_REPO}
train_BSS_distillation.py, attacks/attack_BSS.py). Per batch the samples that teacher and student
both classify right (at most 64, those with the largest squared probability gap off the label) are
moved toward a class drawn from the teacher's probabilities over its other classes by the teacher's
boundary attack: from x, 10 steps along the L2-normalised gradient of z[target] − z[first], each
0.3 × the current margin, a sample stopping once the teacher's class changes, inputs clamped to
±2.5 (normalised). The student minimises CE on the clean batch + soft-target CE at T = 3 (no T²) on
the clean batch, weight ramped 4 -> 1 over the run, + the same on the attacked samples (the teacher
on them), ramped 2 -> 0 at 75% of the run, both per epoch (objective.ramp_every = an epoch of
rounds). CIFAR preset: SGD 0.1 wd 1e-4, batch 256, 80 epochs, x0.1 at epochs 40 and 60. Differs:
the optimizer keeps its momentum at the drops (the authors re-create it); after 75% of the run the
attacked samples still pass the student, at weight 0 (the authors skip them).""" + _DATA_NOTE,
    deep_merge(_ROBUST, {"source": {"teacher_input": "perturbed", "attack": "boundary", "attack_select": "correct",
                                    "attack_max": 64},
                         "robust": {"eps": 0.0},
                         "objective": {"temperature": 3.0, "generator": {"bss": 1.0},
                                       "student": {"label_ce_clean": 1.0, "kd_soft_ce_clean": 1.0,
                                                   "kd_soft_ce": 1.0},
                                       "ramp": {"kd_soft_ce_clean": [4.0, 1.0, 1.0], "kd_soft_ce": [2.0, 0.0, 0.75]}}}),
    presets={"digits": Preset({"objective": {"ramp_every": 22}},
                              "the ramps move per epoch: 22 rounds of batch 64 on the 1,437 training digits"),
             **_cifar_robust((0.1, 1e-4), 256, 15600, [39 / 80, 59 / 80],
                             f"the authors' script ({BSS_REPO} train_BSS_distillation.py): SGD 0.1 wd 1e-4, batch 256, "
                             "80 epochs of 195 steps, x0.1 at epochs 40 and 60")})
for _ds in ("cifar10", "cifar100"):  # the ramps move per epoch of 195 rounds
    BSS.presets[_ds] = Preset(deep_merge(BSS.presets[_ds].values, {"objective": {"ramp_every": 195}}),
                              BSS.presets[_ds].source)
