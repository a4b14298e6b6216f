"""Typed, plain configuration: dataclasses filled from YAML plus dotted `--set key=value` overrides.

Layering (later wins): the dataclass defaults, the method's recipe (`dfkd.methods`), the YAML file,
then each `--set`. Unknown keys, wrong types and out-of-range values raise `DfkdError` naming the
key and, for unknown keys, the closest valid one. Every field carries its help text, so
`dfkd options` documents every option from this one file.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any


def opt(default, help: str, *, min=None, max=None, choices=None):
    """A config field with its documentation and its allowed range or choices."""
    meta = {"help": help, "min": min, "max": max, "choices": choices}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    if dataclasses.is_dataclass(default):
        return field(default_factory=lambda d=default: dataclasses.replace(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class OptimConfig:
    name: str = opt("sgd", "optimizer", choices=["sgd", "adam"])
    lr: float = opt(0.1, "learning rate", min=0.0)
    momentum: float = opt(0.9, "SGD momentum", min=0.0, max=1.0)
    betas: list[float] = opt([0.9, 0.999], "Adam betas")
    weight_decay: float = opt(5e-4, "L2 weight decay", min=0.0)
    schedule: str = opt("cosine", "learning-rate schedule over the whole run",
                        choices=["cosine", "step", "constant"])
    milestones: list[float] = opt([0.5, 0.75], "step schedule: fractions of the run where lr is multiplied by gamma")
    gamma: float = opt(0.1, "step schedule: multiplier at each milestone", min=0.0)
    min_lr: float = opt(0.0, "cosine schedule: the learning rate it ends at (Fast-Datafree's student: 2e-4)", min=0.0)
    clip_grad: float = opt(0.0, "clip the gradients' global L2 norm to this before each step (ZSKT: 5); 0 = off",
                           min=0.0)
    horizon: float = opt(1.0, "length of the cosine or step schedule in multiples of the run: 1 ends it with the "
                              "run; 5 runs its first fifth, as the authors' fixed CosineAnnealingLR(T_max=200 "
                              "epochs) does in a 40-epoch run", min=1.0)


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


@dataclass
class TeacherConfig:
    arch: str = opt("cnn", "teacher architecture: a registry name (`dfkd list models`), torchvision:NAME, timm:NAME, "
                           "pkg.module:factory or path/file.py:factory")
    checkpoint: str = opt("auto", "teacher weights: 'auto' trains (or reuses) one under OUT/teachers; a file (dfkd "
                                  "checkpoint, a state dict or a wrapped one, .safetensors, TorchScript); "
                                  "wandb:ENTITY/PROJECT/NAME:VERSION = a W&B model artifact (downloaded; needs "
                                  "network); 'none' = as teacher.arch builds it (its pretrained teacher.weights, or a "
                                  "factory's own)")
    weights: str | None = opt(None, "pretrained weights of a torchvision:/timm: teacher, e.g. IMAGENET1K_V2 or "
                                    "DEFAULT (read from $TORCH_HOME/hub/checkpoints; fetched only with --download)")
    output: str | None = opt(None, "when the teacher's forward returns a tuple/list/dict: the index or key of "
                                   "its logits")


@dataclass
class StudentConfig:
    arch: str = opt("cnn_small", "student architecture, in any form teacher.arch takes")
    weights: str | None = opt(None, "pretrained weights of a torchvision:/timm: student (its starting point)")
    output: str | None = opt(None, "when the student's forward returns a tuple/list/dict: the index or key of "
                                   "its logits")
    optim: OptimConfig = opt(OptimConfig(), "student optimizer")


@dataclass
class SourceConfig:
    name: str = opt("dcgan", "input source: a generator architecture (see `dfkd list sources`)")
    nz: int = opt(100, "latent dimension of the generator", min=1)
    width: int = opt(128, "channels of the generator's first feature map", min=1)
    output: str = opt("tanh_bn", "dcgan/nayer: how the generator ends: 'tanh_bn' = tanh then an affine-free "
                                 "BatchNorm (DAFL's generator: zero mean, unit variance per channel in normalised "
                                 "space); 'sigmoid' = pixels in [0, 1], then normalised with data.mean/data.std "
                                 "(the generator of Fast-Datafree, CMI, Fast and NAYER); 'bn' = a learned "
                                 "(affine) BatchNorm, no squashing (ZSKT's)", choices=["tanh_bn", "sigmoid", "bn"])
    bn_eps: float = opt(1e-5, "dcgan: eps of the generator's two inner BatchNorms (DAFL's code: 0.8)", min=0.0)
    embed: str = opt("random", "nayer: class embedding: 'random' (fixed), 'learned', or a path to a "
                               "(num_classes, E) tensor file (e.g. text-encoder embeddings)")
    embed_dim: int = opt(64, "nayer: size of the random or learned class embedding", min=1)
    nayer_z: bool = opt(False, "nayer: add z ~ N(0, I) to the noisy layers' output (the authors' generator has no "
                               "latent code)")
    eps: float = opt(0.0, "real: L-inf radius of the perturbation delta in pixel units ([0, 1] images, e.g. "
                          "0.031 = 8/255), optimised for synth.g_steps PGD steps per batch; 0 = clean data",
                     min=0.0, max=1.0)
    step: float = opt(2 / 255, "real: PGD step size in pixel units", min=0.0, max=1.0)
    random_start: bool = opt(True, "real: start delta uniformly inside the ball (else at 0)")
    start_noise: float = opt(0.0, "real: start delta at this x N(0, 1) in pixel units instead (RSLAD: 0.001); 0 = "
                                  "random_start's", min=0.0)
    attack: str = opt("pgd", "real with eps > 0: 'pgd' = signed steps in the L-inf ball; 'boundary' = BSS's "
                             "attack on the teacher (margin-scaled L2-normalised steps from x, each sample "
                             "stopping at the teacher's boundary); the student then learns on the attacked "
                             "samples only", choices=["pgd", "boundary"])
    attack_select: str = opt("kl", "real with eps > 0: which samples attack_fraction keeps: the largest "
                                   "teacher-student KL ('kl'), or ('correct', BSS) those both get right, the "
                                   "attack_max with the largest squared probability gap off the label",
                             choices=["kl", "correct"])
    attack_max: int = opt(0, "real with eps > 0: attack at most this many samples per batch (BSS: 64); 0 = no cap",
                          min=0)
    boundary_step: float = opt(0.3, "attack=boundary: step size, times the teacher's current logit margin", min=0.0)
    boundary_clamp: float = opt(2.5, "attack=boundary: inputs clamped to +-this in normalised units", min=0.0)
    attack_fraction: float = opt(1.0, "real with eps > 0: perturb only this fraction of each batch, the samples "
                                      "with the largest teacher-student KL (BSS); the rest stay clean",
                                 min=0.0, max=1.0)
    teacher_input: str = opt("perturbed", "real with eps > 0: the teacher scores the perturbed batch, or the "
                                          "clean one (robust distillation: ARD, RSLAD)",
                             choices=["perturbed", "clean"])
    optim: OptimConfig = opt(OptimConfig(name="adam", lr=1e-3, betas=[0.5, 0.999], weight_decay=0.0),
                             "generator optimizer")


@dataclass
class SynthConfig:
    schedule: str = opt("persistent", "how the source is kept across rounds (see `dfkd list schedules`)")
    g_steps: int = opt(1, "source optimisation steps per round", min=0)
    batch_size: int = opt(256, "synthesized batch size", min=1)
    ema: float = opt(0.0, "momentum of an EMA copy of the generator (MAD, Do et al. 2022); 0 = off",
                     min=0.0, max=0.9999)
    meta: str = opt("reptile", "schedule=meta: how the shared initialisation learns from each round's "
                               "adapted clone", choices=["reptile", "fomaml"])
    meta_lr: float = opt(0.5, "schedule=meta: Reptile moves the shared weights this fraction of the way "
                              "to the clone; first-order MAML steps by meta_lr x the clone's last gradient",
                         min=0.0)
    meta_step: str = opt("adam", "schedule=meta: 'adam' = the authors' meta update (Fast, Fang et al. 2022): the "
                                 "shared generator's own Adam at lr = source.optim.lr x g_steps takes a pseudo-"
                                 "gradient (first-order MAML: the clone's gradients summed over the round's steps; "
                                 "Reptile: shared - clone); 'plain' = a plain step of size meta_lr",
                         choices=["adam", "plain"])
    warmup: int = opt(0, "first N rounds: adversarial (adv_*) terms off and no student steps (Fast)", min=0)
    student_mode: str = opt("eval", "the student's mode while the source is optimised: 'eval' (the authors' "
                                    "code: its BN layers use their running statistics and the synthesis leaves "
                                    "them untouched) or 'train' (batch statistics, and every source step moves "
                                    "the running statistics); 'train_after_first' (schedule=nayer, NAYER's code: "
                                    "eval in a round's first batch, train in its later ones)",
                         choices=["eval", "train", "train_after_first"])
    latent: str = opt("fresh", "latent codes of a generator: 'fresh' = new z ~ N(0, I) every step (DAFL, DFAD, "
                               "ZSKT, DFQ); 'optimised' = one z per round, optimised with the generator (CMI, "
                               "Fast)", choices=["fresh", "optimised"])
    z_lr: float = opt(0.0, "latent=optimised: learning rate of the codes (Fast: 0.01-0.015); 0 = source.optim.lr",
                      min=0.0)
    keep: str = opt("last", "which batch of a round goes to the pool and the student: the 'last' step's, "
                            "the 'best' one, of lowest source loss (CMI, Fast), or the last step's codes "
                            "regenerated 'after' the source's last update (ZSKT)", choices=["last", "best", "after"])
    targets: str = opt("balanced", "target classes of the ce term: 'balanced' (every class equally often, "
                                   "shuffled), 'uniform' (drawn independently, as the authors' randint) or "
                                   "'ordered' (0..K-1 tiled: NAYER's blocks)", choices=["balanced", "uniform", "ordered"])
    loops: int = opt(1, "schedule=nayer: batches synthesized per round (each: the noisy layers re-drawn, a fresh "
                        "optimizer, g_steps steps, its kept batch into the pool)", min=1)
    warmup_loops: int = opt(0, "schedule=nayer: batches per warm-up round; 0 = loops", min=0)
    reinit_every: int = opt(0, "schedule=nayer: re-initialise the whole source every N rounds (NAYER's g_life: "
                               "10); 0 = never", min=0)
    reset: str = opt("default", "schedule=reinit: how the source is re-initialised each round: each layer's "
                                "'default' initialisation, or 'dcgan' = weights N(0, 0.02), BatchNorm scales "
                                "N(1, 0.02), biases 0 (CMI)", choices=["default", "dcgan"])
    reset_first_layer: int = opt(0, "at this round, re-draw the generator's first Linear and first BatchNorm "
                                    "weights from N(0, 0.02), biases 0 (Fast's reset_l0: round 120 + warm-up); "
                                    "0 = never", min=0)
    augment: str = opt("none", "differentiable augmentation of synthesized batches before teacher and "
                               "student see them: 'crop' = per-sample random crop with black padding "
                               "(size/8), plus a horizontal flip on natural-image datasets; 'roll' = one "
                               "circular shift of the whole batch by up to augment_shift pixels, plus a flip "
                               "of the whole batch with augment_flip (DeepInversion)",
                       choices=["none", "crop", "roll"])
    augment_fill: str = opt("black", "augment=crop: what the padding shows: 'black' (zero pixels, as torchvision's "
                                     "and the authors' crops) or 'mean' (zero in normalised space: the dataset's "
                                     "mean colour)", choices=["black", "mean"])
    augment_shift: int = opt(0, "augment=roll: largest shift in pixels; 0 = image size / 8", min=0)
    augment_flip: bool = opt(True, "augment=roll: flip the whole batch with probability 1/2 (natural images only)")
    clip: bool = opt(False, "free pixels: clamp them to the valid image range, [(0 - mean)/std, (1 - mean)/std], "
                            "after every step (Fast-Datafree's DeepInversion)")
    perturb_eps: float = opt(0.0, "data-free adversarial samples: every student batch is moved by delta, |delta| <= "
                                  "this (normalised units), maximising KL(T||S) by PGD; 0 = off", min=0.0)
    perturb_steps: int = opt(5, "PGD steps of that perturbation", min=1)
    perturb_step: float = opt(0.05, "PGD step size of that perturbation (normalised units)", min=0.0)
    ema_fraction: float = opt(0.5, "with ema > 0: fraction of each student batch drawn from the EMA "
                                   "generator (the rest from the current one)", min=0.0, max=1.0)


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
    ramp: dict[str, list[float]] = opt({}, "student terms whose weight is multiplied by a factor going linearly "
                                           "from START to END, reached at fraction AT of the run: "
                                           "objective.ramp.TERM=[START, END, AT] (BSS: clean KD [4, 1, 1], "
                                           "boundary-sample KD [2, 0, 0.75])")
    ramp_every: int = opt(0, "the ramps move in steps of this many rounds (an epoch: BSS's weights change per "
                             "epoch); 0 = every round", min=0)


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
                             "memory-mapped file pool.bin in the run directory, for pools larger than RAM",
                      choices=["cpu", "same", "disk"])
    sampling: str = opt("uniform", "how the student reads the pool: 'uniform' draws each batch with "
                                   "replacement; 'shuffled' reads shuffled passes without replacement, a new "
                                   "pass each round, its last batch short (the authors' DataLoader(shuffle=True) "
                                   "rebuilt after every synthesis: CMI, Fast, NAYER, Fast-Datafree's DeepInversion)",
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
