"""The method registry: a method is a named recipe (a dict of config values over the defaults) with
per-dataset presets (docs/design.md, "Methods are recipes"). The recipes themselves are in
dfkd/methods/generative.py, dfkd/methods/inversion.py and dfkd/methods/real.py, registered when
dfkd.methods is imported."""
from __future__ import annotations

from dataclasses import dataclass, field

from dfkd.base.registry import Registry
from dfkd.config.load import flatten

METHODS = Registry("method")


@dataclass(frozen=True)
class Preset:
    """Config values a recipe takes on one dataset unless the user sets them, and where they come
    from (the paper, the authors' script or README, or our own measurement)."""

    values: dict
    source: str


@dataclass(frozen=True)
class Method:
    name: str
    summary: str  # one line for listings
    doc: str  # the paper, what the recipe does, where it knowingly differs
    recipe: dict
    presets: dict[str, Preset] = field(default_factory=dict)  # dataset name -> its preset

    def preset(self, dataset: str) -> Preset | None:
        """The preset for `dataset` (a dataset holding another's images takes its presets)."""
        return self.presets.get(SAME_IMAGES.get(dataset, dataset))

    def describe(self) -> str:
        """The doc, then each preset with its source."""
        lines = [self.doc]
        for ds, p in self.presets.items():
            values = ", ".join(f"{k}={v}" for k, v in flatten(p.values).items())
            lines.append(f"Preset {ds}: {values}. Source: {p.source}")
        return "\n".join(lines)


# datasets whose presets are another's: the same images in another encoding
SAME_IMAGES = {"cifar10_jpeg": "cifar10"}


def recipe(name: str, summary: str, doc: str, values: dict, presets: dict[str, Preset] | None = None) -> Method:
    m = Method(name, summary, doc, values, dict(presets or {}))
    METHODS.register(name)(m)
    return m
