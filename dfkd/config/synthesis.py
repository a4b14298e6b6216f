"""The options of the input source (`source.*`: the generator's architecture, the real data's
perturbation) and of its synthesis schedule (`synth.*`: steps per round, what a round keeps, the
student's mode, augmentation), sections of `dfkd.config.schema.Config`."""
from __future__ import annotations

from dataclasses import dataclass

from dfkd.config.fields import OptimConfig, opt


@dataclass
class SourceConfig:
    name: str = opt("dcgan", "input source: a generator architecture (see `dfkd list sources`)")
    nz: int = opt(100, "latent dimension of the generator", min=1)
    width: int = opt(128, "channels of the generator's first feature map", min=1)
    output: str = opt("tanh_bn", "dcgan/nayer: how the generator ends: 'tanh_bn' = tanh then an affine-free "
                                 "BatchNorm (DAFL's generator: zero mean, unit variance per channel in normalised "
                                 "space); 'sigmoid' = pixels in [0, 1], then normalised with data.mean/data.std "
                                 "(the generator of Fast-Datafree, CMI, Fast and NAYER); 'bn' = a learned "
                                 "(affine) BatchNorm, no squashing (ZSKT's); 'bn_tanh' = an affine-free BatchNorm "
                                 "then tanh (DFME's)", choices=["tanh_bn", "sigmoid", "bn", "bn_tanh"])
    bn_eps: float = opt(1e-5, "dcgan: eps of the generator's two inner BatchNorms (DAFL's code: 0.8)", min=0.0)
    taper: str = opt("late", "dcgan: where the generator halves its width: 'late' = width, width, width/2 "
                             "(DAFL, Fast-Datafree) or 'early' = width, width/2, width/4 (CuDFKD's)",
                     choices=["late", "early"])
    init: str = opt("torch", "the generator's initial weights: 'torch' (PyTorch's defaults), 'dcgan' (weights "
                             "N(0, 0.02), BN scales N(1, 0.02), biases 0, drawn once after building: CuDFKD) or "
                             "'kaiming' (weights Kaiming-normal, fan-in, gain sqrt(2), BN scales N(1, 0.02), "
                             "biases 0: SpaceshipNet)", choices=["torch", "dcgan", "kaiming"])
    embed: str = opt("random", "nayer: class embedding: 'random' (fixed), 'learned', or a path to a "
                               "(num_classes, E) tensor file (e.g. text-encoder embeddings)")
    embed_dim: int = opt(64, "nayer: size of the random or learned class embedding", min=1)
    nayer_z: bool = opt(False, "nayer: add z ~ N(0, I) to the noisy layers' output (the authors' generator has no "
                               "latent code)")
    data: str = opt("", "unlabelled: a folder of image files (read recursively) or a dataset (`dfkd list "
                        "datasets`: its training images, labels never read) the student learns from: "
                        "out-of-domain images, resized to the teacher's input and normalised as its data (e.g. "
                        "digits_mosaic for a digits teacher)")
    select: int = opt(0, "unlabelled: DFND's data collection: keep the N images the teacher is most confident on "
                         "(lowest cross-entropy against its own arg-max; one pass over the dataset before the "
                         "run, its queries counted); 0 = all", min=0)
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
    sample_mode: str = opt("train", "the source's mode when it draws fresh student batches (distill.batch=fresh): "
                                    "'train' (batch statistics in its BN layers, as Fast-Datafree) or 'eval' "
                                    "(running statistics: CuDFKD)", choices=["train", "eval"])
    latent: str = opt("fresh", "latent codes of a generator: 'fresh' = new z ~ N(0, I) every step (DAFL, DFAD, "
                               "ZSKT, DFQ); 'optimised' = one z per round, optimised with the generator (CMI, "
                               "Fast); 'round' = one z per round, held fixed (SpaceshipNet)",
                      choices=["fresh", "optimised", "round"])
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
                                "'default' initialisation, 'dcgan' = weights N(0, 0.02), BatchNorm scales "
                                "N(1, 0.02), biases 0 (CMI), or 'none' = kept as it is, only the optimizer is "
                                "fresh (SpaceshipNet)", choices=["default", "dcgan", "none"])
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
    exchange: float = opt(0.0, "SpaceshipNet's channel-wise feature exchange: the generator's intermediate features "
                               "of every kept batch are pooled and each student batch is decoded from one level's "
                               "pool by the current generator (eval mode), half its channels exchanged with "
                               "another sample's with this probability (0.7); 0 = off; needs "
                               "distill.batch=fresh and source.name=dcgan", min=0.0, max=1.0)
    exchange_levels: list[int] = opt([0, 1, 2], "synth.exchange: the generator levels pooled and drawn from "
                                                "(dcgan: 0 = bn0, 1 = block1, 2 = block2 outputs)")
    exchange_capacity: int = opt(0, "synth.exchange: samples each level's feature pool holds (stored as "
                                    "pool.storage); 0 = every round's batch (the authors' never-trimmed pools)",
                                 min=0)
    zo_directions: int = opt(1, "synth.schedule=zeroth_order: random directions per sample of the forward-"
                                "difference gradient estimate (DFME's m; each source step queries the teacher "
                                "on N (m + 1) points)", min=1)
    zo_eps: float = opt(1e-3, "synth.schedule=zeroth_order: the step of the forward differences (DFME's epsilon)",
                        min=0.0)
    ema_fraction: float = opt(0.5, "with ema > 0: fraction of each student batch drawn from the EMA "
                                   "generator (the rest from the current one)", min=0.0, max=1.0)
