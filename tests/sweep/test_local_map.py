"""local_map: short numerical jobs on local processes, in order; errors raised here."""

import math
import os

import pytest

from xbarref.sweep.backends import local_map


def _pid_and_root(x):
    if x < 0:
        raise ValueError(f"negative input {x}")
    return os.getpid(), math.sqrt(x)


def test_in_order_on_other_processes():
    out = local_map(_pid_and_root, range(12), 2)
    assert [r for _, r in out] == [math.sqrt(x) for x in range(12)]
    assert os.getpid() not in {p for p, _ in out}
    assert local_map(_pid_and_root, [4.0], 2) == [(os.getpid(), 2.0)]   # one item: here


def test_an_error_in_a_job_is_raised_here():
    with pytest.raises(ValueError, match="negative input -1"):
        local_map(_pid_and_root, [1, 2, -1, 3], 2)
