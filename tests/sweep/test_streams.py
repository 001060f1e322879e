"""Named random streams: keyed by the run seed, the task's key and the stream's name."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xbarref.errors import XbarrefError
from xbarref.sweep import make_tasks, named_streams, streams, task_seed

KEY = {"scenario": "drift", "seed": 3}


def _draw(gen, n=64):
    return gen.standard_normal(n)


def test_same_key_same_numbers_whatever_else_is_asked():
    a = streams(5, KEY, "programming", "read")
    b = streams(5, dict(reversed(list(KEY.items()))), "read", "calibration", "programming")
    np.testing.assert_array_equal(_draw(a["programming"]), _draw(b["programming"]))
    np.testing.assert_array_equal(_draw(a["read"]), _draw(b["read"]))


def test_stream_of_a_task_does_not_depend_on_its_position():
    forward = make_tasks([{"i": i} for i in range(6)], 9)
    backward = {t.id: t for t in make_tasks([{"i": i} for i in reversed(range(6))], 9)}
    for t in forward:
        np.testing.assert_array_equal(_draw(t.streams("x")["x"]),
                                      _draw(backward[t.id].streams("x")["x"]))
        np.testing.assert_array_equal(_draw(t.streams("x")["x"]),
                                      _draw(streams(9, t.key, "x")["x"]))


def test_other_key_seed_or_name_gives_other_numbers():
    ref = _draw(streams(5, KEY, "programming")["programming"])
    for other in (streams(6, KEY, "programming")["programming"],
                  streams(5, {**KEY, "seed": 4}, "programming")["programming"],
                  streams(5, KEY, "read")["read"]):
        assert not np.array_equal(ref, _draw(other))


@settings(max_examples=25, deadline=None)
@given(st.text(min_size=1, max_size=12), st.text(min_size=1, max_size=12),
       st.integers(0, 2**32 - 1))
def test_different_names_give_uncorrelated_streams(a, b, run_seed):
    """Two names' streams are independent: the sample correlation of 4000 standard
    normals from each stays within 5 standard errors (1 / sqrt(n)) of 0."""
    if a == b:
        return
    s = streams(run_seed, KEY, a, b)
    n = 4000
    r = np.corrcoef(_draw(s[a], n), _draw(s[b], n))[0, 1]
    assert abs(r) < 5 / np.sqrt(n)


def test_named_streams_of_a_task_seed_equal_streams_of_its_key():
    ss = task_seed(2, KEY)
    np.testing.assert_array_equal(_draw(named_streams(ss, "a")["a"]),
                                  _draw(streams(2, KEY, "a")["a"]))


def test_bad_names_and_seeds():
    with pytest.raises(XbarrefError, match="distinct"):
        streams(0, KEY, "a", "a")
    with pytest.raises(XbarrefError, match="non-empty"):
        streams(0, KEY, "")
    with pytest.raises(XbarrefError, match="SeedSequence"):
        named_streams(3, "a")
    with pytest.raises(XbarrefError, match="sweep_seed"):
        streams(-1, KEY, "a")
