"""Reading and checking configuration, for the dataclasses of dfkd/config/schema.py: YAML files, dotted
`--set key=value` overrides, their layering and provenance, type and range checks (unknown keys
rejected with the closest valid one), and the option listing of `dfkd options`."""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import yaml

from dfkd.base.errors import DfkdError, shown
from dfkd.base.registry import suggest


def deep_merge(base: dict, over: dict) -> dict:
    """A new dict: `over` merged into `base`, nested dicts merged key by key."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def parse_set(item: str) -> dict:
    """'a.b.c=1e-3' -> {'a': {'b': {'c': <value>}}}; the value is read as YAML ('[1, 2]', 'true', 'null')."""
    if "=" not in item:
        raise DfkdError(f"--set {shown(item)} needs the form key=value (e.g. --set distill.rounds=50)")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise DfkdError(f"--set {shown(item)}: empty key part; use dotted keys like student.optim.lr=0.1")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    out: dict = {}
    node = out
    parts = key.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
    return out


def read_yaml(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise DfkdError(f"config file '{p}' not found; pass an existing YAML file to --config")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DfkdError(f"config file '{p}' is not valid YAML ({first}); fix the file") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise DfkdError(f"config file '{p}' must hold a mapping of keys, not a {type(data).__name__}")
    return data


def layer_list(config_file: str | list[str] | None = None, sets=(), base: dict | None = None,
               base_origin: str = "base", set_origin: str = "--set") -> list[tuple[str, dict]]:
    """The user's layers in order, each as (where it comes from, plain dict): `base`, the YAML file
    (or each of a list of them, later ones winning), then each `--set` item."""
    layers = [(base_origin, dict(base))] if base else []
    for path in [config_file] if isinstance(config_file, str) else (config_file or []):
        layers.append((f"--config {path}", read_yaml(path)))
    for item in sets:
        layers.append((f"{set_origin} {item}", parse_set(item)))
    return layers


def user_layers(config_file: str | list[str] | None = None, sets=(), base: dict | None = None) -> dict:
    """The user's layers as one plain dict: `base` <- the YAML file <- each `--set` item."""
    raw: dict = {}
    for _, layer in layer_list(config_file, sets, base):
        raw = deep_merge(raw, layer)
    return raw


def flatten(d: dict | None, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}: nested dicts down to their leaves (lists are leaves;
    an empty dict has none)."""
    out = {}
    for k, v in (d or {}).items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def provenance(layers: list[tuple[str, dict]]) -> dict[str, str]:
    """Dotted key -> the origin of the last layer that set it (layers in merge order)."""
    out: dict[str, str] = {}
    for origin, layer in layers:
        for key in flatten(layer):
            out[key] = origin
    return out


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp)).replace("typing.", "")


def coerce_value(value: Any, tp, path: str):
    """Check (and gently convert: '1e-3' -> 0.001, 3 -> 3.0) a value against a type annotation."""
    if tp is Any:  # free-form values (e.g. an experiment cell's overrides, checked when applied)
        return value
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return coerce_value(value, inner[0], path)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise DfkdError(f"config key {shown(path)} must be a mapping of its sub-keys, got {value!r}")
        return from_dict(tp, value, prefix=path + ".")
    if origin is list:
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise DfkdError(f"config key {shown(path)} must be a list, got {value!r}")
        return [coerce_value(v, args[0], f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise DfkdError(f"config key {shown(path)} must be a mapping, got {value!r}")
        return {str(k): coerce_value(v, args[1], f"{path}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise DfkdError(f"config key {shown(path)} must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise DfkdError(f"config key {shown(path)} must be an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out = float(value)
        elif isinstance(value, str):
            try:
                out = float(value)
            except ValueError:
                raise DfkdError(f"config key {shown(path)} must be a number, got {value!r}") from None
        else:
            raise DfkdError(f"config key {shown(path)} must be a number, got {value!r}")
        if not math.isfinite(out):
            raise DfkdError(f"config key {shown(path)} must be finite, got {value!r}")
        return out
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise DfkdError(f"config key {shown(path)} must be a string, got {value!r}")
    raise TypeError(f"unsupported config type {tp} at {path}")


def check_range(value, meta: dict, path: str) -> None:
    if value is None:
        return
    choices = meta.get("choices")
    if choices and value not in choices:
        raise DfkdError(f"config key {shown(path)} is {shown(value)}{suggest(value, choices)}; "
                        f"choose one of: {', '.join(choices)}")
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None and value < lo:
        raise DfkdError(f"config key {shown(path)} is {value}; it must be >= {lo}")
    if hi is not None and value > hi:
        raise DfkdError(f"config key {shown(path)} is {value}; it must be <= {hi}")


# keys of earlier versions and where their values live now (loss terms own their parameters)
MOVED = {f"objective.{old}": f"objective.params.{new}" for old, new in {
    "bn_first": "bn.first", "bn_momentum": "bn.momentum", "bn_all_reduce": "bn.all_reduce",
    "contrast_tau": "cmi.tau", "contrast_bank": "cmi.bank", "contrast_dim": "cmi.dim",
    "dkd_alpha": "dkd.alpha", "dkd_beta": "dkd.beta", "critic_lr": "adv_critic.lr"}.items()}


def from_dict(cls, data: dict, prefix: str = ""):
    """Build dataclass `cls` from a plain dict, rejecting unknown keys with a suggestion."""
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    for key in data:
        if f"{prefix}{key}" in MOVED:
            raise DfkdError(f"config key '{prefix}{key}' is now {MOVED[prefix + key]} (loss terms own their "
                            f"parameters); rename it")
        if key not in known:
            raise DfkdError(f"unknown config key {shown(f'{prefix}{key}')}{suggest(str(key), known)}; "
                            f"valid keys here: {', '.join(known)}")
    kwargs = {}
    for name, f in known.items():
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise DfkdError(f"config key '{prefix}{name}' is required")
            continue
        raw = data[name]
        choices = f.metadata.get("choices") or ()
        if isinstance(raw, bool) and ("off" in choices or "on" in choices):
            raw = "on" if raw else "off"  # YAML reads a bare off/on as a boolean
        value = coerce_value(raw, hints[name], prefix + name)
        check_range(value, f.metadata, prefix + name)
        kwargs[name] = value
    return cls(**kwargs)


def to_dict(cfg) -> dict:
    return asdict(cfg)


def options(cls, prefix: str = "", defaults=None) -> list[tuple[str, str, Any, str]]:
    """(dotted key, type, default, help) for every leaf option of a config class; nested sections
    show the defaults their parent gives them (e.g. source.optim is Adam, not OptimConfig's SGD)."""
    rows = []
    hints = typing.get_type_hints(cls)
    defaults = cls() if defaults is None else defaults
    for f in fields(cls):
        tp = hints[f.name]
        default = getattr(defaults, f.name)
        if dataclasses.is_dataclass(tp):
            rows += options(tp, prefix + f.name + ".", default)
            continue
        help_ = f.metadata.get("help", "")
        if f.metadata.get("choices"):
            help_ += f" [{' | '.join(f.metadata['choices'])}]"
        rows.append((prefix + f.name, _type_name(tp), default, help_))
    return rows


def dump_yaml(cfg) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def provenance_yaml(cfg) -> str:
    """provenance.yaml of a run: every dotted key with its value and where that value came from."""
    flat = flatten(to_dict(cfg))
    rows = {k: {"value": flat[k], "from": (cfg.provenance or {}).get(k, "default")} for k in flat}
    head = ("# where each value of config.yaml came from (later layers win): default, recipe METHOD,\n"
            "# preset METHOD/DATASET, base, --config FILE, --set KEY=VALUE\n")
    if cfg.preset:
        head += f"# {cfg.preset[0]}: {cfg.preset[1]}\n"
    return head + yaml.safe_dump(rows, sort_keys=False, width=200)
