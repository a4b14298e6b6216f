"""Property test (hypothesis): whatever bytes or values reach the config loader, the outcome is a
valid Config or a DfkdError (one clear line) - never another exception, never a traceback."""
import string

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dfkd.base.errors import DfkdError
from dfkd.config.schema import Config
from dfkd.methods.configure import build_config
from dfkd.run.teacher import build_teacher_config
from dfkd.tables.spec import read_table

KEYS = ["method", "seed", "device", "out", "data.name", "data.image_size", "teacher.arch", "student.arch",
        "student.optim.lr", "student.optim.name", "student.optim.betas", "source.name", "source.nz",
        "synth.schedule", "synth.g_steps", "synth.batch_size", "synth.ema", "objective.generator",
        "objective.generator.bn", "objective.student.kd_kl", "objective.temperature", "distill.rounds",
        "distill.batch", "pool.capacity", "pool.storage", "tracking.mode", "tracking.tags", "distill.round",
        "nope", "synth", "objective.student.not_a_term", "data"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(string.printable, max_size=12))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                        st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                      max_leaves=6)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _only_config_errors(fn, *args, **kw):
    try:
        out = fn(*args, **kw)
    except DfkdError as e:
        assert str(e) and "\n" not in str(e).strip()  # one line
        return None
    return out


@FAST
@given(st.binary(max_size=300))
def test_random_bytes_as_a_config_file(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("cfg") / "c.yaml"
    path.write_bytes(data)
    cfg = _only_config_errors(build_config, str(path))
    assert cfg is None or isinstance(cfg, Config)
    _only_config_errors(build_teacher_config, str(path))
    _only_config_errors(read_table, str(path))


@FAST
@given(st.lists(st.tuples(st.sampled_from(KEYS), values), max_size=4))
def test_random_overrides(items):
    sets = [f"{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"
            for k, v in items]
    cfg = _only_config_errors(build_config, None, sets)
    if cfg is not None:  # whatever was accepted is in range
        assert cfg.distill.rounds >= 1 and cfg.synth.batch_size >= 1 and cfg.pool.capacity >= 0


@FAST
@given(st.dictionaries(st.sampled_from(["doc", "base", "seeds", "cells", "scales", "published", "x"]), values,
                       max_size=4))
@example(table={"cells": [{}]})  # found by this test: a cell without its required 'method' was a TypeError
@example(table={"cells": [{"method": "dfq", 1: 2}]})
@example(table={"cells": [{"method": "dfq", "\n": 0}]})  # found by this test: a two-line error (key shown raw)
def test_random_experiment_tables(tmp_path_factory, table):
    d = tmp_path_factory.mktemp("table")
    (d / "table.yaml").write_text(yaml.safe_dump(table))
    _only_config_errors(read_table, str(d))
