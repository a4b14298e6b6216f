"""A run's config from its layers, validated: defaults <- recipe(method) <- its preset for the dataset
<- base <- YAML file <- --set items (`build_config`), and the checks across keys and registries that
a field-by-field check cannot make (`validate`)."""
from __future__ import annotations

import functools
from pathlib import Path

import torch

from dfkd.base.errors import DfkdError
from dfkd.config.load import deep_merge, flatten, from_dict, layer_list, provenance, to_dict
from dfkd.config.schema import Config
from dfkd.io.data import DATASETS
from dfkd.methods.registry import METHODS, SAME_IMAGES
from dfkd.synthesis.schedule import check_extensions


def build_config(config_file: str | list[str] | None = None, sets=(), method: str | None = None,
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
    from dfkd.objective.terms import resolve_params

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
    from dfkd.objective.terms import TERMS

    out = []
    for name in METHODS:
        r = METHODS.get(name).recipe
        if r.get("source", {}).get("name") in ("real", "unlabelled"):
            continue
        terms = [t for t, w in r.get("objective", {}).get("generator", {}).items() if w]
        if not any(TERMS.get(t).needs & {"bn", "contrast"} for t in terms):
            out.append(name)
    return out


def check_unlabelled(cfg: Config) -> None:
    """source.name=unlabelled: a dataset to read, and no term that reads its (absent) labels."""
    from dfkd.objective.terms import TERMS

    if not cfg.source.data:
        raise DfkdError("source.name=unlabelled reads the images of another dataset; set source.data (e.g. "
                        "source.data=digits_mosaic, see `dfkd list datasets`)")
    if cfg.source.data not in DATASETS and not Path(cfg.source.data).is_dir():
        DATASETS.get(cfg.source.data)  # raises with a suggestion (or name a folder of images)
    for owner in ("generator", "student"):
        for term, w in getattr(cfg.objective, owner).items():
            if w and "targets" in TERMS.get(term).needs:
                raise DfkdError(f"objective.{owner}.{term} reads true labels, and source.name=unlabelled has none; "
                                f"set objective.{owner}.{term}=0")


def no_batchnorm_message(cfg: Config, why: str) -> str:
    terms = [t for t in ("bn", "cmi") if cfg.objective.generator.get(t, 0)]
    return (f"method '{cfg.method}' matches the teacher's BatchNorm statistics (objective.generator."
            f"{'/'.join(terms) or 'bn'}), and the teacher {why}; use a method that works without them: "
            f"{', '.join(without_batchnorm())} (or set objective.generator.{terms[0] if terms else 'bn'}=0)")


@functools.lru_cache(maxsize=None)
def arch_has_batchnorm(arch: str) -> bool:
    """Whether a registry architecture has BatchNorm layers (they do not depend on the shapes): built on
    the meta device, so no weights are drawn (a table validates hundreds of cells' teachers)."""
    from dfkd.models import build_model
    from dfkd.objective.hooks import has_batchnorm

    try:
        with torch.device("meta"):
            model = build_model(arch, 10, 3)
    except Exception:  # a builder that cannot run on the meta device: build it for real
        model = build_model(arch, 10, 3)
    return has_batchnorm(model)


def validate(cfg: Config) -> None:
    """Checks across keys and registries that a field-by-field check cannot make."""
    from dfkd.generators import SOURCES
    from dfkd.io.data import get_entry
    from dfkd.models import MODELS
    from dfkd.objective.terms import TERMS
    from dfkd.synthesis.schedule import SCHEDULES

    entry = get_entry(cfg.data.name)
    from dfkd.synthesis.views import VIEWS, build_view, check_teacher_view

    VIEWS.get(cfg.view.student)
    if cfg.view.eval:
        VIEWS.get(cfg.view.eval)
    if cfg.data.name == "none":
        from dfkd.io.data import dataset_info

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
    real, per_batch = cfg.source.name in ("real", "unlabelled"), cfg.synth.schedule == "per_batch"
    if real != per_batch:
        raise DfkdError(f"source.name={'real' if per_batch else cfg.source.name} and synth.schedule=per_batch go "
                        f"together (real data is drawn one batch per round); set both, or neither")
    if cfg.source.name == "unlabelled":
        check_unlabelled(cfg)
    if real and cfg.synth.perturb_eps > 0:
        raise DfkdError("synth.perturb_eps perturbs synthesized samples; on real data use source.eps (PGD on the "
                        "real batch) instead")
    if cfg.distill.epochs > 0 and not real:
        raise DfkdError("distill.epochs counts passes over the real training split (source.name=real); a "
                        "data-free run's length is distill.rounds")
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
    if len(cfg.objective.self_paced) not in (0, 2):
        raise DfkdError(f"objective.self_paced={list(cfg.objective.self_paced)}: give [LAMBDA0, RATE] (CuDFKD: "
                        f"[2, 1e-4]) or [] for off")
    for t in cfg.objective.decay:
        if cfg.objective.student.get(t, 0) == 0:
            raise DfkdError(f"objective.decay names '{t}', which is not a weighted student term; "
                            f"student terms: {', '.join(k for k, w in cfg.objective.student.items() if w)}")
    for t, r in cfg.objective.ramp.items():
        if cfg.objective.student.get(t, 0) == 0 and cfg.objective.generator.get(t, 0) == 0:
            weighted = [k for o in (cfg.objective.generator, cfg.objective.student) for k, w in o.items() if w]
            raise DfkdError(f"objective.ramp names '{t}', which is not a weighted term; weighted terms: "
                            f"{', '.join(weighted)}")
        if len(r) not in (3, 4) or (len(r) == 4 and not 0 <= r[3] < r[2]) or r[2] <= 0:
            raise DfkdError(f"objective.ramp.{t}={list(r)}: give [START, END, AT] or [START, END, AT, FROM] with "
                            f"0 <= FROM < AT (fractions of the run)")
    attack = [t for t, w in cfg.objective.generator.items() if w != 0 and "attack" in TERMS.get(t).needs]
    if attack and cfg.synth.g_steps > 0 and not (real and cfg.source.eps > 0):
        raise DfkdError(f"objective.generator.{attack[0]} attacks real samples; use it with source.name=real and "
                        f"source.eps > 0 (e.g. --method bss)")
    clean = [t for t, w in cfg.objective.student.items() if w != 0 and "clean" in TERMS.get(t).needs]
    if clean and not (real and cfg.source.eps > 0):
        raise DfkdError(f"objective.student.{clean[0]} compares with the clean batch of a perturbed real source; "
                        f"use it with source.name=real and source.eps > 0 (e.g. --method rslad)")
    if cfg.synth.latent == "optimised" and cfg.synth.schedule not in ("reinit", "meta"):
        raise DfkdError(f"synth.latent=optimised optimises one latent code per round with a fresh optimizer: use it "
                        f"with synth.schedule=reinit or meta (not {cfg.synth.schedule})")
    if cfg.synth.student_mode == "train_after_first" and cfg.synth.schedule != "nayer":
        raise DfkdError("synth.student_mode=train_after_first switches the student to train mode after a round's "
                        "first batch (NAYER's code); use it with synth.schedule=nayer, or 'eval' / 'train'")
    if cfg.synth.clip and cfg.source.name != "pixels":
        raise DfkdError("synth.clip clamps free pixels to the image range; use it with source.name=pixels")
    if cfg.synth.reset_first_layer and cfg.synth.schedule != "meta":
        raise DfkdError("synth.reset_first_layer re-draws the shared generator of the meta schedule (Fast); "
                        "use it with synth.schedule=meta")
    check_extensions(cfg)  # each registered extension's own check (MAD's EMA, SpaceshipNet's exchange)
    if cfg.distill.order == "student_first" and cfg.distill.batch != "fresh":
        raise DfkdError("distill.order=student_first takes the student's steps before the round's synthesis, on "
                        "fresh samples; set distill.batch=fresh (or distill.order=synth_first)")
    if cfg.distill.batch == "pool" and cfg.pool.capacity == 0:
        raise DfkdError("distill.batch=pool needs a replay pool; set pool.capacity (e.g. pool.capacity=4096)")
    if cfg.synth.g_steps > 0 and cfg.objective.generator.get("bn", 0) != 0 and cfg.teacher.arch in MODELS:
        if not arch_has_batchnorm(cfg.teacher.arch):
            raise DfkdError(no_batchnorm_message(cfg, f"({cfg.teacher.arch}) has no BatchNorm layers"))
    if cfg.synth.g_steps > 0 and not any(w != 0 for w in cfg.objective.generator.values()):
        raise DfkdError("synth.g_steps > 0 but objective.generator has no weighted term; "
                        "add one (e.g. objective.generator.adv_l1=1) or set synth.g_steps=0")
