"""A weighted objective of named loss terms, built from config, reporting every term.

    obj = Objective({"adv_l1": 1.0, "bn": 0.1}, temperature=1.0, params={"bn": {"first": 10.0}})
    total, parts = obj(signals)        # parts: {"adv_l1": tensor, "bn": tensor} (detached)

Terms live in the `TERMS` registry; this module is the mechanism and declares none of them. Each
is declared, with `term(...)`, by the module of its role beside its loss function or its trainable
part (`dfkd.objective.disagreement`, `priors`, `kd_losses`, `hint`, `critic`, `cam`, `relation`),
and those register when `dfkd.objective` is imported. Each declares the signals it needs, from the
checked vocabulary `NEEDS` (`dfkd.objective.signals`; so the loop runs the student forward and the
hooks only when some weighted term asks for them), and its own hyperparameters with their defaults (`Param`): CMI's
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

from torch import Tensor, nn

from dfkd.base.errors import DfkdError
from dfkd.base.registry import Registry, suggest
from dfkd.config.load import check_range, coerce_value
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
