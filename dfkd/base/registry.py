"""One registry mechanism for models, datasets, sources, loss terms and methods.

    MODELS = Registry("model")
    @MODELS.register("lenet5")
    def lenet5(num_classes, in_channels): ...
    MODELS.get("lenet5")      # -> the function; unknown names raise DfkdError with a suggestion
"""
from __future__ import annotations

import difflib
from typing import Callable, Iterator, TypeVar

from dfkd.base.errors import DfkdError, shown

T = TypeVar("T")


def suggest(name: str, choices) -> str:
    """' (did you mean 'x'?)' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


class Registry:
    """A named table of factories. `kind` is used in error messages ("unknown model 'x'")."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, Callable] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._items[name] = obj
            return obj

        return add

    def get(self, name: str) -> Callable:
        if name not in self._items:
            raise DfkdError(
                f"unknown {self.kind} {shown(name)}{suggest(name, self._items)}; "
                f"choose one of: {', '.join(sorted(self._items))}"
            )
        return self._items[name]

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def names(self) -> list[str]:
        return sorted(self._items)
