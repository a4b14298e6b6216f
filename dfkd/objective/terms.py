"""A weighted objective of named loss terms, built from config, reporting every term.

    obj = Objective({"adv_l1": 1.0, "bn": 0.1}, temperature=1.0, params={"bn": {"first": 10.0}})
    total, parts = obj(signals)        # parts: {"adv_l1": tensor, "bn": tensor} (detached)

Terms live in the `TERMS` registry. Each declares the signals it needs, from the checked vocabulary
`NEEDS` (`dfkd.objective.signals`; so the loop runs the student forward and the hooks only when some
weighted term asks for them), and its own hyperparameters with their defaults (`Param`): CMI's
temperature is `objective.params.cmi.tau`, DKD's are `objective.params.dkd.alpha/beta`. The
objective hands each term its resolved parameters untouched: `fn(signals, objective, params) ->
scalar`. A term with trainable state (FitNets' adapter, the adversarial critic, CMI's head and bank)
declares a factory of its `Component` (dfkd/base/component.py, registered in `COMPONENTS`); the run
builds it when the term is weighted and keeps it in `Objective.components`, where the term reads it.
Sign convention: every term is *minimised* by whoever owns the objective; adversarial terms
(`adv_*`) are negated disagreements, so the source minimising them maximises the teacher-student
gap.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable

import torch.nn.functional as F
from torch import Tensor, nn

from dfkd.base.errors import DfkdError
from dfkd.base.registry import Registry, suggest
from dfkd.config.load import check_range, coerce_value
from dfkd.objective import cam, critic, kd_losses, losses
from dfkd.objective.hint import HintAdapter
from dfkd.objective.signals import NEEDS, Signals


@dataclass(frozen=True)
class Param:
    """A term's hyperparameter: default (its type is the parameter's: float, int, bool or str), help,
    range (numbers) or choices (strings)."""

    default: float | int | bool | str
    help: str
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Term:
    fn: Callable[[Signals, "Objective", dict], Tensor]  # (signals, objective, this term's params) -> scalar
    needs: frozenset[str]
    doc: str
    params: dict[str, Param] = field(default_factory=dict)


TERMS = Registry("loss term")
COMPONENTS = Registry("term component")  # term name -> factory(ComponentBuild) -> Component


@dataclass
class ComponentBuild:
    """What a term's component factory is given: the built models, the term's resolved parameters and
    the run's sizes. Shapes: t_shape / s_shape (2, C, H, W), a batch of the teacher's / student's inputs."""

    teacher: nn.Module
    student: nn.Module
    num_classes: int
    device: object  # torch.device
    t_shape: tuple
    s_shape: tuple
    params: dict = field(default_factory=dict)  # this term's, resolved
    t_blocks: list = field(default_factory=list)  # matched teacher stage names ("blocks" terms)
    s_blocks: list = field(default_factory=list)  # the student's, paired with them
    info: object = None  # the dataset's DatasetInfo
    source_lr: float = 0.0  # source.optim.lr
    run_rounds: int = 1  # distill.rounds
    epoch_rounds: int = 1  # an epoch of the run's schedules, in rounds (objective.ramp_every or 1)
    data: object = None  # the run's DataConfig (a component that reads another dataset: MosaicKD's)
    seed: int = 0  # the run's seed
    batch_size: int = 0  # synth.batch_size


def term(name: str, doc: str, *needs: str, component: Callable | None = None, **params: Param):
    """Register `fn(signals, objective, params) -> scalar` as loss term `name`, needing these signals
    (from `NEEDS`) and owning these parameters; `component(ComponentBuild) -> Component` builds the
    trainable part it reads as `objective.components[key]`, if it has one."""
    unknown = [n for n in needs if n not in NEEDS]
    if unknown:
        raise ValueError(f"loss term '{name}' needs {unknown[0]!r}{suggest(unknown[0], NEEDS)}, which is not a "
                         f"signal; one of: {', '.join(NEEDS)}")

    def add(fn):
        TERMS.register(name)(Term(fn, frozenset(needs), doc, dict(params)))
        if component is not None:
            COMPONENTS.register(name)(component)
        return fn

    return add


def term_params(params: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    """Term `name`'s entry of resolved `objective.params`, or its defaults where the config does not
    weight it (the `bn` term's statistics settings shape the teacher probe either way)."""
    return params.get(name) or {k: p.default for k, p in TERMS.get(name).params.items()}


def build_components(objective: "Objective", build: ComponentBuild) -> None:
    """The components of `objective`'s weighted terms, in term order, into `objective.components`."""
    for name in objective.weights:
        if name in COMPONENTS:
            c = COMPONENTS.get(name)(replace(build, params=objective.params.get(name, {})))
            objective.components[c.key] = c


def resolve_params(given: dict[str, dict[str, Any]], used: Iterable[str] = ()) -> dict[str, dict[str, Any]]:
    """`objective.params` checked against the terms' declarations and completed with their defaults,
    for every term in `used` that has parameters and every term named in `given`."""
    for name, values in given.items():
        declared = TERMS.get(name).params  # an unknown term raises with a suggestion
        if not declared:
            raise DfkdError(f"config key 'objective.params.{name}': the {name} term has no parameters")
        for key in values:
            if key not in declared:
                raise DfkdError(f"unknown config key 'objective.params.{name}.{key}'{suggest(key, declared)}; "
                                f"the {name} term's parameters: {', '.join(declared)}")
    out: dict[str, dict[str, Any]] = {}
    for name in [*dict.fromkeys(used), *given]:
        declared = TERMS.get(name).params
        if not declared or name in out:
            continue
        out[name] = {}
        for key, p in declared.items():
            path = f"objective.params.{name}.{key}"
            value = coerce_value(given.get(name, {}).get(key, p.default), type(p.default), path)
            check_range(value, {"min": p.min, "max": p.max, "choices": p.choices}, path)
            out[name][key] = value
    return out


_REDUCTION = Param("batchmean", "KL averaged over the batch ('batchmean': summed over classes, as Hinton KD) or "
                                "over batch and classes ('mean': batchmean / K, PyTorch's element-wise mean, as "
                                "ZSKT, ARD, RSLAD)", choices=("batchmean", "mean"))
term("kd_kl", "KL(T||S) at the objective's temperature, x T^2", "student", reduction=_REDUCTION)(
    lambda s, o, p: losses.kl_div(s.s_logits, s.t_logits, o.temperature, p["reduction"]))
term("kd_l1", "L1 between student and teacher logits (DFAD)", "student")(
    lambda s, o, p: losses.l1_logits(s.s_logits, s.t_logits))
term("adv_l1", "-L1(S, T) logits: maximises disagreement (DFAD)", "student")(
    lambda s, o, p: -losses.l1_logits(s.s_logits, s.t_logits))


def _adv_kl(s: Signals, o, p) -> Tensor:
    mask = losses.agree_mask(s.s_logits, s.t_logits) if p["mask"] == "agree" else None
    return -losses.kl_div(s.s_logits, s.t_logits, p["T"], p["reduction"], mask)


term("adv_kl", "-KL(T||S) at its own temperature: maximises disagreement (ZSKT, DFQ; with mask=agree only "
               "on samples where student and teacher agree: CMI, Fast, NAYER)", "student",
     T=Param(1.0, "softmax temperature (x T^2); the authors' generators all use 1", min=1e-6),
     mask=Param("none", "'agree': keep only samples whose student and teacher arg-max agree, averaged over "
                        "the whole batch (CMI, Fast, NAYER: 'decision adversarial distillation')",
                choices=("none", "agree")),
     reduction=_REDUCTION)(_adv_kl)
term("adv_js", "-JS(S, T) at its own temperature: ADI's competition term (1 - JS up to a constant)", "student",
     T=Param(3.0, "softmax temperature (ADI: 3)", min=1e-6),
     form=Param("exact", "'exact' JS; 'clamped': the authors' code, KL(m||p) on probabilities clamped to "
                         "[0.01, 0.99] (Fast-Datafree); 'capped': that, clamped to [0, 1] (NVlabs)",
                choices=("exact", "clamped", "capped")))(
    lambda s, o, p: -losses.js_div(s.s_logits, s.t_logits, p["T"], p["form"]))
term("oh", "one-hot CE of the teacher on its arg-max (DAFL)")(
    lambda s, o, p: losses.one_hot_ce(s.t_logits))
term("ce", "CE of the teacher on the source's sampled target classes (DeepInversion)", "targets")(
    lambda s, o, p: losses.target_ce(s.t_logits, s.targets))
term("t_entropy", "mean entropy of the teacher's prediction per sample: low for samples it is sure of "
                   "(MosaicKD's alignment term)")(
    lambda s, o, p: losses.prediction_entropy(s.t_logits))
term("patch_gan", "MosaicKD's local term: a patch discriminator must call every patch of the sample real, "
                  "BCE summed over patches, mean over samples (Fang et al. 2021)",
     data=Param("", "the out-of-domain images whose patches the generator imitates: a folder of image files "
                    "or a dataset (`dfkd list datasets`: its training images, labels never read)"),
     lr=Param(1e-3, "Adam learning rate of the discriminator (betas 0.5, 0.999; its own step before each "
                    "source step)", min=0.0),
     ndf=Param(128, "width of the discriminator's first layer", min=1))(
    lambda s, o, p: o.components["mosaic"].fool(s.x_seen if s.x_seen is not None else s.x))
term("ie", "class balance: negative entropy of the mean teacher prediction (DAFL)",
     T=Param(1.0, "softmax temperature of the teacher's predictions (CuDFKD: the KD temperature, 20)", min=1e-6))(
    lambda s, o, p: losses.class_balance(s.t_logits, p["T"]))
term("act", "-mean|penultimate teacher features| (DAFL)", "features",
     layer=Param("", "the teacher module whose input is the feature ('' = its last nn.Linear; DAFL's LeNet-5: "
                     "fc1, the 120-d conv3 output)"))(
    lambda s, o, p: losses.activation_norm(s.t_features))
term("at", "attention transfer on matched stage outputs (Zagoruyko & Komodakis 2017; ZSKT)",
      "student", "blocks")(
    lambda s, o, p: losses.attention_transfer(s.s_blocks, s.t_blocks))
term("sarc_cam", "SpaceshipNet's CAM consistency: MSE between student and teacher class-activation maps of the "
                 "last matched stage, every class (Yu et al. 2023)", "student", "blocks",
     component=cam.Classifiers.build)(
    lambda s, o, p: cam.cam_mse(s.s_blocks[-1], s.t_blocks[-1], o.components["sarc_cam"].student.weight,
                                o.components["sarc_cam"].teacher.weight))
term("sarc_gradcam", "SpaceshipNet's multi-scale Grad-CAM consistency: MSE between student and teacher "
                     "Grad-CAMs of every matched stage for the teacher's class, summed (Yu et al. 2023)",
     "student", "blocks", "gradcam")(
    lambda s, o, p: cam.gradcam_mse(s.s_logits, s.s_blocks, s.t_gradcams, s.t_logits.argmax(1)))
term("cmi", "CMI's contrastive term: each sample's local-view embedding must pick its own global-view one "
            "(detached) among the batch's and the memory bank's, InfoNCE (Fang et al. 2021)", "contrast",
     tau=Param(0.1, "InfoNCE temperature (the authors' default 0.1; their CIFAR-10 script 0.2)", min=1e-6),
     bank=Param(40960, "raw embeddings kept in the memory bank, one round's kept batch at a time", min=0),
     negatives=Param(4096, "bank rows read (without replacement) at every step", min=1),
     dim=Param(256, "output size of the projection head", min=1),
     hidden=Param(0, "hidden width of the projection head; 0 = the embedding's width (the authors')", min=0),
     lr=Param(0.0, "Adam learning rate of the head (its own optimizer, default betas, kept across rounds); "
                   "0 = source.optim.lr", min=0.0),
     layers=Param("bn", "what embeds a sample: 'bn' = the inputs of every teacher BatchNorm layer, or "
                        "comma-separated teacher module names whose inputs do (the authors' ResNet-34: "
                        "layer1,layer2,layer3,layer4)"))(
    lambda s, o, p: losses.cmi_contrast(s.embed_local, s.embed, s.x.shape[0], p["tau"]))
_PROJECT = Param("none", "student features of another width than the teacher's: 'none' refuses them, 'random' "
                         "maps them through a fresh random nn.Linear at every step (AdaDFKD's code)",
                 choices=("none", "random"))
term("r2m", "AdaDFKD's relationship refinement: each sample's teacher feature must pick the student's against "
            "a window of earlier student features, sliding from easy to hard negatives (Li et al. 2024)",
     "student", "features", "s_features",
     tau=Param(0.07, "InfoNCE temperature", min=1e-6),
     bank=Param(6144, "student features kept in the queue (the authors': a multiple of the batch)", min=1),
     length=Param(0.9, "the window of negatives kept, as a fraction of the queue", min=0.0, max=1.0),
     begin=Param(0.25, "fraction of the run's epochs after which the window starts sliding", min=0.0, max=1.0),
     end=Param(0.75, "fraction at which it reaches the hardest negatives", min=0.0, max=1.0), project=_PROJECT)(
    lambda s, o, p: losses.relation_infonce(s.t_features, o.components["r2m"].keys(s), o.components["r2m"].queue,
                                            o.components["r2m"].hard, p["length"], p["tau"]))
term("bn", "distance of batch statistics to the teacher's BN running statistics (first layer x first)",
      "bn",
      first=Param(1.0, "multiplier of the first BN layer (DeepInversion: 10)", min=0.0),
      momentum=Param(0.0, "blend the statistics with earlier batches' (Fast: 0.9); 0 = off", min=0.0, max=0.999),
      all_reduce=Param(False, "under torchrun: match the statistics of the global batch (all ranks, a "
                              "differentiable all-reduce) instead of each rank's own"))(
    lambda s, o, p: losses.bn_stat_distance(s.bn_stats, p["first"]))
term("adv_sbn", "-distance of the batch statistics to the student's BN running statistics: inputs the "
                "student's BN layers have not seen (Fast-Datafree's DeepInversion: weight bn x 0.001)",
     "student", "s_bn")(
    lambda s, o, p: -losses.bn_stat_distance(s.s_bn_stats))
term("tv_norm", "sum of the whole-batch L2 norms of the four neighbouring-pixel differences of what the teacher "
                "saw (NVlabs DeepInversion's CIFAR-10 TV prior)")(
    lambda s, o, p: losses.total_variation_norm(s.x if s.x_seen is None else s.x_seen))
term("label_ce", "CE of the student on the batch's true labels (data-driven KD; real data only)",
      "student", "targets")(
    lambda s, o, p: kd_losses.label_ce(s.s_logits, s.targets))
term("dkd", "decoupled KD, alpha x TCKD + beta x NCKD at the objective's temperature "
      "(Zhao et al. 2022; real data only)", "student", "targets",
      alpha=Param(1.0, "weight of target-class KD (TCKD)", min=0.0),
      beta=Param(8.0, "weight of non-target-class KD (NCKD)", min=0.0))(
    lambda s, o, p: kd_losses.dkd(s.s_logits, s.t_logits, s.targets, p["alpha"], p["beta"], o.temperature))
term("hint", "FitNets hint: MSE between the teacher's middle matched stage and the student's through a "
      "learned 1x1-conv adapter (Romero et al. 2015)", "student", "blocks", component=HintAdapter.build)(
    lambda s, o, p: kd_losses.hint_mse(o.components["hint"](s.s_blocks[len(s.s_blocks) // 2]),
                                     s.t_blocks[len(s.t_blocks) // 2]))
term("rkd_d", "RKD distance: Huber between normalised pairwise distances of penultimate features "
      "(Park et al. 2019)", "student", "features", "s_features")(
    lambda s, o, p: kd_losses.rkd_distance(s.s_features, s.t_features))
term("rkd_a", "RKD angle: Huber between triplet-angle cosines of penultimate features (Park et al. 2019)",
      "student", "features", "s_features")(
    lambda s, o, p: kd_losses.rkd_angle(s.s_features, s.t_features))
term("kd_nce", "in-batch InfoNCE: each teacher penultimate feature picks the student's of its own sample "
               "among the batch's (AdaDFKD, Li et al. 2024)", "student", "features", "s_features",
     tau=Param(0.07, "InfoNCE temperature (the authors' 0.07)", min=1e-6), project=_PROJECT)(
    lambda s, o, p: kd_losses.feature_infonce(
        s.t_features, kd_losses.to_width(s.s_features, s.t_features.shape[1], p["project"], "kd_nce"), p["tau"]))
term("kd_kl_clean", "KL(T||S) with the student on the clean batch (robust distillation: RSLAD)",
      "student", "clean", reduction=_REDUCTION)(
    lambda s, o, p: losses.kl_div(s.s_logits_clean, s.t_logits if s.t_logits_clean is None else s.t_logits_clean,
                                  o.temperature, p["reduction"]))
def _soft_ce(s_logits: Tensor, t_logits: Tensor, t: float) -> Tensor:
    if s_logits.shape[0] == 0:  # no sample (BSS: none attacked this batch)
        return s_logits.sum() * 0.0
    return losses.soft_cross_entropy(s_logits, t_logits, t)


term("kd_soft_ce", "soft-target cross-entropy -sum p_T log p_S at the objective's temperature, no T^2 "
                   "(BSS's KD form; its gradient is the KL's / T^2); 0 on an empty batch", "student")(
    lambda s, o, p: _soft_ce(s.s_logits, s.t_logits, o.temperature))
term("kd_gd", "generalized distillation's imitation: CE of the student's softmax against the teacher's at the "
              "objective's temperature, the student not tempered (Lopez-Paz et al. 2016)", "student")(
    lambda s, o, p: losses.teacher_tempered_ce(s.s_logits, s.t_logits, o.temperature))
term("kd_soft_ce_clean", "the same with the student on the clean batch (BSS's KD on the real samples)",
     "student", "clean")(
    lambda s, o, p: _soft_ce(s.s_logits_clean, s.t_logits if s.t_logits_clean is None else s.t_logits_clean,
                             o.temperature))
term("label_ce_clean", "CE of the student on the clean batch's true labels (robust distillation: ARD)",
      "student", "clean", "targets")(
    lambda s, o, p: kd_losses.label_ce(s.s_logits_clean, s.targets))
term("adv_ce", "-CE of the student on the true labels: the perturbation maximises it (ARD's attack)",
      "student", "targets")(
    lambda s, o, p: -kd_losses.label_ce(s.s_logits, s.targets))
term("adv_critic", "fool a learned critic that tells teacher from student output distributions: "
      "BCE(D(p_S), 1) (Belagiannis et al. 2018; KDGAN)", "student",
      component=critic.CriticTrainer.build,
      lr=Param(2e-4, "Adam learning rate of the critic (one step per student step)", min=0.0))(
    lambda s, o, p: critic.fool_loss(o.components["critic"].critic,
                                     F.softmax(s.s_logits.float() / o.temperature, dim=1)))
term("bss", "-(z_T[attack target] - z_T[label]): moves real samples toward the teacher's decision boundary "
      "(boundary-supporting samples, Heo et al. 2019)", "targets", "attack")(
    lambda s, o, p: -losses.margin(s.t_logits, s.attack_targets, s.targets))
term("tv_l1", "L1 total variation of the synthesized input (DeepInversion)")(
    lambda s, o, p: losses.total_variation(s.x, 1))
term("tv_l2", "squared total variation of the synthesized input (DeepInversion)")(
    lambda s, o, p: losses.total_variation(s.x, 2))
term("l2", "mean squared value of the synthesized input (DeepInversion)")(
    lambda s, o, p: losses.l2_prior(s.x))


class Objective:
    """Weighted sum of registered terms; zero-weighted terms are dropped. `params`: the terms'
    parameters (`objective.params`), completed with their defaults unless every weighted term's are
    there already (a configured run's, resolved once by `dfkd.methods.configure`)."""

    def __init__(self, weights: dict[str, float], temperature: float = 1.0, owner: str = "objective",
                 params: dict[str, dict[str, Any]] | None = None):
        self.weights = {k: float(w) for k, w in weights.items() if w != 0}
        self.terms = {k: TERMS.get(k) for k in self.weights}
        self.temperature = temperature
        params = params or {}
        complete = all(set(self.terms[k].params) <= set(params.get(k, {})) for k in self.weights)
        # a run's config holds them resolved (dfkd.methods.configure): taken as they are
        self.params = dict(params) if complete else resolve_params(params, self.weights)
        self.components: dict = {}  # the terms' trainable parts by key (build_components)
        self.factors: dict[str, float] = {}  # per-term multipliers (decay, ramp)
        self.decay: list[str] = []  # terms whose weight decays linearly to 0 over the run (objective.decay)
        self.ramp: dict[str, list[float]] = {}  # term -> [start, end, at(, from)] (objective.ramp: BSS, CuDFKD)
        self.ramp_every = 1  # the ramps move in steps of this many rounds (objective.ramp_every)
        self.needs = frozenset().union(*(t.needs for t in self.terms.values()))
        if not self.weights:
            raise DfkdError(f"the {owner} objective has no term with a non-zero weight; "
                            f"set e.g. objective.{owner}.kd_kl=1 (see `dfkd list terms`)")

    def weighted_terms(self, sig: Signals):
        """(name, weight now, value) of each term on `sig`: its weight times its decay/ramp factor."""
        for name, w in self.weights.items():
            yield name, w * self.factors.get(name, 1.0), self.terms[name].fn(sig, self, self.params.get(name, {}))

    def __call__(self, sig: Signals) -> tuple[Tensor, dict[str, Tensor]]:
        total = None
        parts = {}
        for name, w, value in self.weighted_terms(sig):
            parts[name] = value.detach()
            total = w * value if total is None else total + w * value
        return total, parts

    def progress(self, done: float, ramp_done: float | None = None) -> None:
        """The run is this fraction done: the decaying terms' multipliers follow (1 - done); a ramped
        term's stays at `start` until fraction `from` (default 0) of the run, goes linearly to `end`,
        reached at fraction `at` (of `ramp_done`, which counts in steps of objective.ramp_every
        rounds), and stays there."""
        for name in self.decay:
            self.factors[name] = max(0.0, 1.0 - done)
        p = done if ramp_done is None else ramp_done
        for name, (start, end, at, *frm) in self.ramp.items():
            f = frm[0] if frm else 0.0
            self.factors[name] = start + (end - start) * min(1.0, max(0.0, p - f) / (at - f))

    def at_round(self, rnd: int, rounds: int) -> None:
        """`progress` at the start of round `rnd` (1-based) of `rounds`."""
        every = self.ramp_every
        self.progress((rnd - 1) / rounds, min(rounds, -(-rnd // every) * every) / rounds)

    def without(self, prefix: str) -> "Objective | None":
        """The same objective minus the terms whose names start with `prefix` (None if nothing is left)."""
        kept = {k: w for k, w in self.weights.items() if not k.startswith(prefix)}
        if not kept:
            return None
        out = Objective(kept, self.temperature, params=self.params)
        out.components = self.components
        return out

    def __repr__(self) -> str:
        return " + ".join(f"{w:g}*{k}" for k, w in self.weights.items())
