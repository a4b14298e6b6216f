"""Typed, plain configuration: dataclasses filled from YAML plus dotted `--set key=value` overrides.

Layering (later wins): the dataclass defaults, the method's recipe (`dfkd.methods`), the YAML file,
then each `--set`. Unknown keys, wrong types and out-of-range values raise `DfkdError` naming the
key and, for unknown keys, the closest valid one. Every field carries its help text, so
`dfkd options` documents every option from this one file.
"""
from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any

from dfkd.config.fields import OptimConfig, opt
from dfkd.config.synthesis import SourceConfig, SynthConfig


@dataclass
class DataConfig:
    name: str = opt("digits", "dataset (see `dfkd list datasets`), or 'none' for no data at all: the inputs are "
                              "then described by data.channels, data.image_size, data.num_classes, data.mean, data.std")
    root: str | None = opt(None, "where datasets live; default $DFKD_DATA_ROOT, else ./data")
    download: bool = opt(False, "download a missing torchvision dataset or pretrained weights (needs network)")
    image_size: int | None = opt(None, "input resolution the teacher takes; default: the dataset's own (digits 16, "
                                       "MNIST 32); required with data.name=none", min=4)
    channels: int | None = opt(None, "data.name=none: input channels the teacher takes", min=1)
    num_workers: int = opt(0, "data-loader workers for real-data loading", min=0)
    mean: list[float] | None = opt(None, "per-channel normalisation mean of the inputs the teacher was trained on "
                                         "(any dataset; default the dataset's own, ImageNet's for imagefolder, 0 with "
                                         "data.name=none)")
    std: list[float] | None = opt(None, "per-channel normalisation std, as data.mean (default the dataset's own, "
                                        "1 with data.name=none)")
    num_classes: int | None = opt(None, "number of classes (imagefolder default: folders found; required with "
                                        "data.name=none)", min=2)
    flip: bool | None = opt(None, "horizontal flips preserve the labels (natural images): the crop and roll "
                                  "augmentations flip; default the dataset's own (CIFAR: yes; "
                                  "digits, MNIST, SVHN: no; false with data.name=none)")
    eval: str = opt("", "what the student is scored on: '' = the dataset's test split; a folder of labelled "
                        "images (CLASS/*.png|jpg, classes in sorted order, or named by their index); 'none' = no "
                        "labelled set: teacher-student agreement on held-out synthesized inputs instead; "
                        "'in-memory' = a Dataset given to dfkd.distill(eval_set=...)")
    train_per_class: int = opt(0, "source.name=real: the student learns from at most this many training samples "
                                  "per class (drawn once with the run's seed; the teacher is unaffected): the "
                                  "few-sample regime of learning using privileged information; 0 = all", min=0)


@dataclass
class TeacherConfig:
    arch: str = opt("cnn", "teacher architecture: a registry name (`dfkd list models`), torchvision:NAME, timm:NAME, "
                           "pkg.module:factory or path/file.py:factory")
    checkpoint: str = opt("auto", "teacher weights: 'auto' trains (or reuses) one under OUT/teachers ('auto:SEED': "
                                  "with that seed, default 0); a file (dfkd checkpoint, a state dict or a wrapped one, .safetensors, TorchScript); "
                                  "wandb:ENTITY/PROJECT/NAME:VERSION = a W&B model artifact (downloaded; needs "
                                  "network); 'none' = as teacher.arch builds it (its pretrained teacher.weights, or a "
                                  "factory's own)")
    weights: str | None = opt(None, "pretrained weights of a torchvision:/timm: teacher, e.g. IMAGENET1K_V2 or "
                                    "DEFAULT (read from $TORCH_HOME/hub/checkpoints; fetched only with --download)")
    output: str | None = opt(None, "when the teacher's forward returns a tuple/list/dict: the index or key of "
                                   "its logits")
    members: list[str] = opt([], "an ensemble of teachers in place of one (multi-teacher KD; DENSE's one-shot "
                                 "federated distillation): each 'FILE' (weights of teacher.arch, any form "
                                 "teacher.checkpoint takes), 'ARCH=FILE', or 'auto:SEED' (teacher.arch trained on "
                                 "the dataset with that seed, as teacher.checkpoint=auto); [] = the one teacher")
    combine: str = opt("logits", "teacher.members: the ensemble's logits are the mean of the members' ('logits') "
                                 "or the log of their mean softmax ('probs')", choices=["logits", "probs"])
    black_box: bool = opt(False, "query the teacher for its outputs only, as a served model (DFME's setting): every "
                                 "forward pass under no_grad, no hooks (BN statistics, features, stages), each "
                                 "sample counted in the summary's teacher_queries; source steps then estimate their "
                                 "gradient from queries (synth.schedule=zeroth_order). A TorchScript teacher is "
                                 "always a black box for hooks")
    correction: str = opt("none", "what the loss terms read as the teacher's logits: its outputs ('none'), or "
                                  "DFME's logit correction 'mean': log-softmax minus its mean over the classes "
                                  "(logits recovered, up to a per-sample constant, from an API that returns "
                                  "probabilities)", choices=["none", "mean"])


@dataclass
class StudentConfig:
    arch: str = opt("cnn_small", "student architecture, in any form teacher.arch takes")
    weights: str | None = opt(None, "pretrained weights of a torchvision:/timm: student (its starting point)")
    output: str | None = opt(None, "when the student's forward returns a tuple/list/dict: the index or key of "
                                   "its logits")
    optim: OptimConfig = opt(OptimConfig(), "student optimizer")


@dataclass
class ObjectiveConfig:
    generator: dict[str, float] = opt({}, "weights of the source's loss terms, set by the method "
                                          "(see `dfkd list terms`)")
    student: dict[str, float] = opt({}, "weights of the student's loss terms, set by the method")
    temperature: float = opt(1.0, "softmax temperature of the student's KD terms (kd_kl, kd_kl_clean, dkd, "
                                  "adv_critic) and of the data-free perturbation; the source's adversarial terms "
                                  "carry their own (objective.params.adv_kl.T, objective.params.adv_js.T)", min=1e-6)
    params: dict[str, dict[str, Any]] = opt({}, "parameters of loss terms, objective.params.TERM.NAME (e.g. "
                                                "objective.params.cmi.tau=0.2); each term declares its own "
                                                "and their defaults (`dfkd list terms`), filled in for the "
                                                "weighted terms")
    decay: list[str] = opt([], "student terms whose weight decays linearly from its value to 0 over the run")
    ramp: dict[str, list[float]] = opt({}, "terms (of either objective) whose weight is multiplied by a factor "
                                           "going linearly from START to END, reached at fraction AT of the run, "
                                           "from fraction FROM (default 0): objective.ramp.TERM=[START, END, AT] "
                                           "or [START, END, AT, FROM] (BSS: clean KD [4, 1, 1]; CuDFKD: the "
                                           "adversarial weight from 0 once a quarter of the run is done)")
    ramp_every: int = opt(0, "the ramps move in steps of this many rounds (an epoch: BSS's weights change per "
                             "epoch); 0 = every round", min=0)
    self_paced: list[float] = opt([], "[LAMBDA0, RATE]: each student step's loss L is multiplied by the detached "
                                      "v = (1 + e^-λ) / (1 + e^(L - λ)), λ = LAMBDA0 + RATE x the student steps so "
                                      "far (CuDFKD's easy-to-hard weighting); [] = off")


@dataclass
class DistillConfig:
    rounds: int = opt(200, "synthesis rounds (each: g_steps source steps, then kd_steps student steps)", min=1)
    epochs: float = opt(0.0, "real data (source.name=real) only: the run's length in passes over the training "
                             "split, in place of rounds: rounds = round(epochs x floor(N / synth.batch_size)), "
                             "resolved when the run starts; 0 = use distill.rounds", min=0.0)
    kd_steps: int = opt(5, "student steps per round", min=1)
    batch: str = opt("fresh", "student inputs: 'fresh' samples a new batch per step, 'reuse' trains on "
                              "the round's synthesized batch (DAFL, ZSKT), 'pool' samples the replay pool "
                              "every round's batch is added to (DeepInversion, CMI, Fast)",
                     choices=["fresh", "reuse", "pool"])
    eval_every: int = opt(20, "evaluate the student on the test split every N rounds (and at the end)", min=1)
    batch_size: int = opt(0, "the student's batch (pool and fresh samples); 0 = synth.batch_size (NAYER: 512 "
                             "against a synthesis batch of 400)", min=0)
    clean_first: bool = opt(True, "robust distillation: the student's forward on the clean batch comes before "
                                  "the one on the perturbed batch (BSS; false: after, ARD and RSLAD), which "
                                  "orders their BatchNorm statistics' updates")
    order: str = opt("synth_first", "within a round: the source's steps, then the student's ('synth_first'), or "
                                    "the student's first ('student_first': DFAD's loop, 5 student steps then one "
                                    "generator step; needs distill.batch=fresh)",
                     choices=["synth_first", "student_first"])
    augment: str = opt("none", "student batches drawn from the pool or the source are read through 'crop' = a "
                               "per-sample random crop with black padding (size/8) plus, on natural images, a "
                               "horizontal flip: the authors' training transform (Fast-Datafree registry.py), "
                               "which teacher and student both see; 'none' = as synthesized",
                       choices=["none", "crop"])


@dataclass
class ViewConfig:
    teacher: str = opt("identity", "what the teacher sees of each batch (see `dfkd list views`); its output "
                                   "channels must be the teacher's")
    student: str = opt("identity", "what the student sees, in training and on the test split (cross-modal KD: "
                                   "e.g. sobel, grayscale, lowres); the student's input channels follow it")
    eval: str = opt("", "the view of the test split the student is scored on; default (empty): view.student. "
                        "view.student=identity with view.eval=sobel is the 'naive transfer' control of cross-modal KD")
    lowres_factor: int = opt(4, "lowres view: down-sampling factor", min=2)
    mix_seed: int = opt(0, "colormix view: seed of the fixed random mixing matrix")


@dataclass
class RobustConfig:
    eps: float = opt(0.0, "PGD robust accuracy of the final student on the test split at this L-inf radius "
                          "(pixel units); 0 = off", min=0.0, max=1.0)
    steps: int = opt(10, "PGD steps of the robust evaluation", min=1)
    step: float = opt(2 / 255, "PGD step size of the robust evaluation (pixel units)", min=0.0, max=1.0)


@dataclass
class PerfConfig:
    amp: str = opt("off", "mixed precision of forward passes: off, bf16 (autocast), or fp16 (autocast + a "
                          "GradScaler per optimizer); for GPUs", choices=["off", "bf16", "fp16"])
    channels_last: bool = opt(False, "channels-last memory format for teacher, student and source (GPUs)")
    compile: bool = opt(False, "torch.compile the teacher's and the student's forward passes")
    compile_backend: str = opt("inductor", "torch.compile backend (inductor; 'eager' checks the plumbing)")
    fast_memory: bool = opt(True, "CPU: freed large blocks stay in the heap for reuse instead of going back to the "
                                  "system (glibc mallopt, dfkd/run/memory.py): faster rounds for a little more peak "
                                  "memory; the environment variable DFKD_FAST_MEMORY=0 turns it off too")


@dataclass
class GuardConfig:
    enabled: bool = opt(True, "skip (and count) any generator or student step whose loss or gradients are "
                              "not finite")
    patience: int = opt(5, "skipped steps in a row that roll the run back to its last good checkpoint", min=1)
    max_rollbacks: int = opt(3, "rollbacks after which the run stops with exit status 3", min=0)


@dataclass
class PoolConfig:
    capacity: int = opt(0, "samples the replay pool holds (oldest overwritten first); 0 = no pool", min=0)
    storage: str = opt("fp16", "pool storage: fp32 (exact), fp16 (half), or uint8 with a per-sample range "
                               "(a quarter); fp64 for double-precision runs", choices=["fp64", "fp32", "fp16", "uint8"])
    device: str = opt("cpu", "where the pool lives: cpu (RAM), 'same' as the run's device, or 'disk': a "
                             "memory-mapped file pool.bin in the run directory, for pools larger than RAM "
                             "(the extensions' pools too: SpaceshipNet's feature pools, exchange-levelL-rankR.bin)",
                      choices=["cpu", "same", "disk"])
    sampling: str = opt("uniform", "how the student reads the pool: 'uniform' draws each batch with "
                                   "replacement; 'shuffled' reads shuffled passes without replacement, a new "
                                   "pass each round, its last batch short (the authors' DataLoader(shuffle=True) "
                                   "rebuilt after every synthesis; the default of the deepinv, adi, cmi, fast and "
                                   "nayer recipes, whose authors read so)",
                        choices=["uniform", "shuffled"])


@dataclass
class TrackingConfig:
    mode: str = opt("offline", "Weights & Biases mode; offline needs no network (`wandb sync` later)",
                    choices=["offline", "online", "disabled"])
    project: str = opt("dfkd", "W&B project")
    entity: str | None = opt(None, "W&B entity (user or team)")
    group: str | None = opt(None, "W&B group (e.g. the table a run belongs to)")
    job_type: str | None = opt(None, "W&B job type; default the command (distill, train-teacher); the "
                                     "experiment runner sets the cell name, so W&B groups a table's runs by cell")
    tags: list[str] = opt([], "W&B tags")
    log_every: int = opt(10, "write averaged losses every N rounds", min=1)


@dataclass
class Config:
    """A data-free distillation run (`dfkd distill`)."""

    # set by `dfkd.methods.build_config`: dotted key -> where its value came from (default, recipe,
    # preset, --config, --set); written to the run directory as provenance.yaml. Not a config key.
    provenance: typing.ClassVar[dict[str, str] | None] = None
    preset: typing.ClassVar[tuple[str, str] | None] = None  # ('preset METHOD/DATASET', its source) if one applied

    method: str = opt("dfad", "recipe that sets the defaults below (see `dfkd list methods`)")
    seed: int = opt(0, "random seed")
    deterministic: bool = opt(False, "PyTorch deterministic algorithms (bitwise-repeatable runs and resumes; "
                                     "slower on a GPU)")
    device: str = opt("auto", "cpu, cuda, cuda:N, or auto (cuda when available)")
    out: str = opt("runs", "directory under which run directories are created")
    run_name: str | None = opt(None, "run directory name; default METHOD-DATASET-TEACHER-STUDENT-sSEED-TIME")
    label: str | None = opt(None, "row label in `dfkd table` (runs with one label and pair are one cell); "
                                  "default: the method name")
    data: DataConfig = opt(DataConfig(), "dataset (only its test split is read in data-free runs)")
    teacher: TeacherConfig = opt(TeacherConfig(), "frozen teacher")
    student: StudentConfig = opt(StudentConfig(), "student")
    source: SourceConfig = opt(SourceConfig(), "input source")
    synth: SynthConfig = opt(SynthConfig(), "synthesis schedule")
    objective: ObjectiveConfig = opt(ObjectiveConfig(), "loss terms")
    view: ViewConfig = opt(ViewConfig(), "teacher and student views (cross-modal KD)")
    distill: DistillConfig = opt(DistillConfig(), "the distillation loop")
    robust: RobustConfig = opt(RobustConfig(), "robust evaluation (PGD) of the final student")
    pool: PoolConfig = opt(PoolConfig(), "replay pool of synthesized batches")
    guard: GuardConfig = opt(GuardConfig(), "non-finite losses and gradients")
    perf: PerfConfig = opt(PerfConfig(), "speed options (off by default; for GPUs)")
    tracking: TrackingConfig = opt(TrackingConfig(), "tracking")
