"""Fuzzing: valid case, suite, model and spec files with one byte changed.

Every mutated file gives either a clear error (an xbarref error class, one line from the
command) or exactly the original content - never a traceback, a hang or different
numbers accepted as valid. Time-bounded: each read has an alarm, each command a
subprocess timeout, and a watchdog ends a hung test run.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xbarref.circuit import Crossbar, solve
from xbarref.errors import ERRORS
from xbarref.io.case import Case, read_case, write_case

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: Seconds one in-process read may take before the example counts as a hang.
READ_SECONDS = 20
FUZZ = settings(max_examples=100, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang("a read took more than %d s" % READ_SECONDS)


def bounded(fn, *args):
    """``fn(*args)`` with an alarm; a watchdog ends the process if C code ignores it."""
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(READ_SECONDS)
    faulthandler.dump_traceback_later(READ_SECONDS * 6, exit=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*args)
    finally:
        signal.alarm(0)
        faulthandler.cancel_dump_traceback_later()
        signal.signal(signal.SIGALRM, old)


def mutate(data, position, value):
    data = bytearray(data)
    k = position % len(data)
    if data[k] == value:
        value ^= 0xFF
    data[k] = value
    return bytes(data)


mutations = st.tuples(st.integers(0, 2**31), st.integers(0, 255))


# --------------------------------------------------------------------------- files

def _case():
    rng = np.random.default_rng(7)
    xb = Crossbar(rng.uniform(1e-6, 1e-4, (6, 5)), r_source=10.0, r_sink=rng.uniform(1, 5, 5),
                  r_wire_row=1.5, r_wire_col=2.0)
    V = rng.uniform(0, 0.3, (2, 6))
    sol = solve(xb, V)
    return Case(xb, V, I=sol.I, solver="test")


@pytest.fixture(scope="module")
def case_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "case.h5"
    write_case(_case(), path)
    return path.read_bytes()


@pytest.fixture(scope="module")
def suite_bytes(tmp_path_factory):
    from tests.validate.helpers import make, spec
    from xbarref.validate.suite import write_suite

    path = tmp_path_factory.mktemp("fuzz") / "suite.h5"
    write_suite(make([("a_4x4", spec(4, 4, "moderate", B=2)), ("b_3x5", spec(3, 5, "weak", B=2))]),
                path)
    return path.read_bytes()


@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory):
    from xbarref.io.model import save_model
    from xbarref.nn import mlp

    path = tmp_path_factory.mktemp("fuzz") / "model.h5"
    save_model(mlp((1, 8, 8), hidden=(6,), rng=np.random.default_rng(1)), path)
    return path.read_bytes()


SPEC = """[sweep]
name = "fuzz"
seed = 3
seeds = 2
samples = 8
batch_size = 4

[grid]
"parasitics.r_wire_row" = [0.5, 2.0]
"noise.read_scale" = [0.0]
"""


def _case_values(case):
    xb = case.crossbar
    return [xb.G, xb.r_source, xb.r_sink, xb.r_wire_row, xb.r_wire_col, case.V, case.I,
            xb.device, xb.sinh_k, case.solver]


def _same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            assert np.array_equal(np.asarray(x), np.asarray(y))
        else:
            assert x == y


def _read_mutated(tmp_path, data, m, reader):
    """``(want, got)``: ``reader`` of the intact file ``data`` and of its mutation ``m``
    (read within the time bound), ``got`` None when the mutation was refused with a clear
    error."""
    good = tmp_path / "good.h5"
    good.write_bytes(data)
    want = reader(good)
    path = tmp_path / "mutated.h5"
    path.write_bytes(mutate(data, *m))
    try:
        return want, bounded(reader, path)
    except ERRORS:
        return want, None


# --------------------------------------------------------------------------- in-process

class TestReaders:
    @FUZZ
    @given(m=mutations)
    def test_case(self, tmp_path, case_bytes, m):
        want, got = _read_mutated(tmp_path, case_bytes, m, read_case)
        if got is not None:
            _same(_case_values(got), _case_values(want))

    @FUZZ
    @given(m=mutations)
    def test_suite(self, tmp_path, suite_bytes, m):
        from xbarref.validate.suite import read_suite

        want, got = _read_mutated(tmp_path, suite_bytes, m, read_suite)
        if got is None:
            return
        assert got.names == want.names and got.seed == want.seed and got.preset == want.preset
        for a, b in zip(got.cases, want.cases):
            _same(_case_values(a.case), _case_values(b.case))
            assert a.params == b.params and a.residual == b.residual
            assert a.ngspice_verified == b.ngspice_verified

    @FUZZ
    @given(m=mutations)
    def test_model(self, tmp_path, model_bytes, m):
        from xbarref.io.model import load_model

        want, got = _read_mutated(tmp_path, model_bytes, m, load_model)
        if got is None:
            return
        assert [n.name for n in got.nodes] == [n.name for n in want.nodes]
        assert got.input_shape == want.input_shape
        for a, b in zip(got.nodes, want.nodes):
            assert a.inputs == b.inputs and type(a.layer) is type(b.layer)
            for key in b.layer.params:
                assert np.array_equal(a.layer.params[key], b.layer.params[key])
            for key in b.layer.buffers:
                assert np.array_equal(a.layer.buffers[key], b.layer.buffers[key])

    @FUZZ
    @given(m=mutations)
    def test_spec(self, tmp_path, m):
        """A spec has no checksum (it is hand-written text): any mutation is either refused
        or parsed into a spec whose counts stay within the limits."""
        from xbarref.sweep.spec import load_spec, max_tasks

        path = tmp_path / "spec.toml"
        path.write_bytes(mutate(SPEC.encode(), *m))
        try:
            spec = bounded(load_spec, path)
        except ERRORS:
            return
        assert 1 <= spec.n_tasks <= max_tasks()


# --------------------------------------------------------------------------- commands

def _cli(*args):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "xbarref.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=120, env=env)


class TestCommands:
    @settings(max_examples=4, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(m=mutations)
    def test_solve(self, tmp_path, case_bytes, m):
        path = tmp_path / "case.h5"
        out = tmp_path / "out.h5"
        path.write_bytes(mutate(case_bytes, *m))
        if out.exists():
            out.unlink()
        proc = _cli("solve", path, "-o", out)
        assert "Traceback" not in proc.stderr, proc.stderr
        assert proc.returncode in (0, 2), proc.stderr
        if proc.returncode == 2:
            assert len([ln for ln in proc.stderr.splitlines() if "error" in ln]) == 1
            assert not out.exists()
            return
        good = _case()
        got = bounded(read_case, out)
        assert np.max(np.abs(got.I - good.I)) <= 1e-12 * np.max(np.abs(good.I))
