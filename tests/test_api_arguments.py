"""Every argument of dfkd.distill / dfkd.train_teacher / dfkd.load_model given a value of the wrong
type, or an impossible one, raises one DfkdError line that names it, before anything is written
(hypothesis over argument types, derandomized: see conftest.py)."""
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st  # noqa: E402

import dfkd  # noqa: E402

ANY = st.one_of(st.integers(-3, 3), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                st.lists(st.integers(0, 3), max_size=2), st.tuples(st.integers(0, 3)), st.binary(max_size=2),
                st.dictionaries(st.integers(0, 3), st.integers(0, 3), max_size=1), st.just(""), st.just(object()))
TINY = {"tracking.mode": "disabled", "device": "cpu", "distill.rounds": 1, "distill.eval_every": 1,
        "synth.batch_size": 8, "source.width": 16}


def _is_path(v) -> bool:
    return isinstance(v, (str, Path)) and str(v) != ""


# (argument, which of its values are fine: those are not drawn; an empty `set` is a valid one)
DISTILL = [("teacher", lambda v: False), ("student", lambda v: v is None), ("method", lambda v: v is None),
           ("data", lambda v: v is None), ("eval_set", lambda v: v is None), ("set", lambda v: v is None or v == {}),
           ("out", lambda v: v is None), ("seed", lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool))),
           ("quiet", lambda v: isinstance(v, bool)), ("resume", lambda v: v is None)]
TRAIN = [("dataset", lambda v: False), ("arch", lambda v: v is None), ("set", lambda v: v is None or v == {}),
         ("out", lambda v: False), ("seed", lambda v: isinstance(v, int) and not isinstance(v, bool)),
         ("quiet", lambda v: isinstance(v, bool))]
LOAD = [("path", lambda v: False), ("arch", lambda v: v is None or callable(v)),
        ("num_classes", lambda v: v is None), ("in_channels", lambda v: v is None)]


def _refused(data, table, fn, **base) -> None:
    """Draw an argument of `fn` and a wrong value for it; the call must raise one DfkdError line naming it."""
    name, fine = data.draw(st.sampled_from(table))
    value = data.draw(ANY.filter(lambda v: not fine(v)))
    with pytest.raises(dfkd.DfkdError) as e:
        fn(**{**base, name: value})
    text = str(e.value)
    assert "\n" not in text and name in text, text


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_distill_argument_of_the_wrong_type_is_one_line_naming_it(digits_teacher, tmp_path, data):
    _refused(data, DISTILL, dfkd.distill, teacher=str(digits_teacher), set=TINY, out=tmp_path / "out", quiet=True)
    assert not (tmp_path / "out").exists()


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_train_teacher_argument_of_the_wrong_type_is_one_line_naming_it(tmp_path, data):
    _refused(data, TRAIN, dfkd.train_teacher, dataset="digits", set={"train.epochs": 1, "tracking.mode": "disabled"},
             out=tmp_path / "teachers", quiet=True)
    assert not (tmp_path / "teachers").exists()


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_load_model_argument_of_the_wrong_type_is_one_line_naming_it(digits_teacher, data):
    _refused(data, LOAD, dfkd.load_model, path=str(digits_teacher))
