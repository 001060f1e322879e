"""Error paths of the circuit API: bad input raises XbarrefError naming the argument.

Grouped by what is being checked: the crossbar description, the input voltages given
to each solver entry point, and the device choice.
"""

import re

import numpy as np
import pytest

from xbarref.circuit import Crossbar, DirectSolver, effective_matrix, solve, solve_per_read
from xbarref.errors import XbarrefError

M, N = 3, 4


def good(**changes):
    kwargs = dict(G=np.full((M, N), 1e-5), r_source=10.0, r_sink=5.0, r_wire_row=1.0, r_wire_col=1.0)
    kwargs.update(changes)
    return kwargs


def raises_naming(name):
    """pytest.raises for an XbarrefError whose message starts with the argument's name."""
    return pytest.raises(XbarrefError, match=rf"^{re.escape(name)}\b")


class TestErrorType:
    def test_xbarref_error_is_a_value_error(self):
        assert issubclass(XbarrefError, ValueError)

    def test_good_crossbar_is_accepted(self):
        xb = Crossbar(**good())
        assert xb.shape == (M, N)
        assert solve(xb, np.ones(M)).I.shape == (1, N)


class TestConductances:
    @pytest.mark.parametrize("shape", [(N,), (1, M, N), (0, N), (M, 0), ()])
    def test_bad_shape(self, shape):
        with raises_naming("G"):
            Crossbar(**good(G=np.full(shape, 1e-5)))

    @pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, -1e-6])
    def test_bad_value(self, bad):
        G = np.full((M, N), 1e-5)
        G[1, 2] = bad
        with raises_naming("G"):
            Crossbar(**good(G=G))

    def test_not_numbers(self):
        with raises_naming("G"):
            Crossbar(**good(G=[["a", "b"], ["c", "d"]]))

    def test_zero_conductance_is_an_open_cell_not_an_error(self):
        G = np.full((M, N), 1e-5)
        G[:, 0] = 0.0
        I = solve(Crossbar(**good(G=G)), np.ones(M)).I
        assert I[0, 0] == 0.0 and np.all(I[0, 1:] > 0)


RESISTANCES = {
    "r_source": (M,),
    "r_sink": (N,),
    "r_wire_row": (M, N - 1),
    "r_wire_col": (M - 1, N),
}


class TestResistances:
    @pytest.mark.parametrize("name", sorted(RESISTANCES))
    def test_wrong_shape(self, name):
        shape = RESISTANCES[name]
        for bad_shape in ((shape[0] + 1,) + shape[1:], shape + (1,), (M, N)):
            if bad_shape == shape:
                continue
            with raises_naming(name):
                Crossbar(**good(**{name: np.ones(bad_shape)}))

    @pytest.mark.parametrize("name", sorted(RESISTANCES))
    @pytest.mark.parametrize("bad", [np.nan, np.inf, -1.0, -1e-300])
    def test_bad_value_in_array(self, name, bad):
        arr = np.ones(RESISTANCES[name])
        arr.flat[-1] = bad
        with raises_naming(name):
            Crossbar(**good(**{name: arr}))

    @pytest.mark.parametrize("name", sorted(RESISTANCES))
    @pytest.mark.parametrize("bad", [np.nan, np.inf, -0.5])
    def test_bad_scalar(self, name, bad):
        with raises_naming(name):
            Crossbar(**good(**{name: bad}))

    @pytest.mark.parametrize("name", sorted(RESISTANCES))
    def test_zero_is_an_ideal_short_not_an_error(self, name):
        xb = Crossbar(**good(**{name: 0.0}))
        assert np.all(np.isfinite(solve(xb, np.ones(M)).I))

    def test_one_row_and_one_column_take_empty_wire_arrays(self):
        xb = Crossbar(np.full((1, N), 1e-5), r_wire_col=np.zeros((0, N)), r_wire_row=np.ones((1, N - 1)))
        assert xb.r_wire_col.shape == (0, N)
        xb = Crossbar(np.full((M, 1), 1e-5), r_wire_row=np.zeros((M, 0)), r_wire_col=np.ones((M - 1, 1)))
        assert xb.r_wire_row.shape == (M, 0)


class TestDevice:
    def test_unknown_device(self):
        with raises_naming("device"):
            Crossbar(**good(device="diode"))

    def test_sinh_needs_k(self):
        with raises_naming("sinh_k"):
            Crossbar(**good(device="sinh"))

    @pytest.mark.parametrize("k", [0.0, -1.0, np.nan, np.inf, "fast"])
    def test_sinh_bad_k(self, k):
        with raises_naming("sinh_k"):
            Crossbar(**good(device="sinh", sinh_k=k))

    def test_k_only_for_sinh(self):
        with raises_naming("sinh_k"):
            Crossbar(**good(sinh_k=1.0))

    def test_direct_solver_is_linear_only(self):
        with pytest.raises(XbarrefError, match="DirectSolver"):
            DirectSolver(Crossbar(**good(device="sinh", sinh_k=1.0)))


BAD_V = {
    "too_many_rows": np.ones(M + 1),
    "too_few_rows_batch": np.ones((2, M - 1)),
    "three_d": np.ones((2, M, 1)),
    "scalar": np.float64(1.0),
    "nan": np.array([0.1, np.nan, 0.2]),
    "inf": np.array([[0.1, 0.2, np.inf]]),
    "text": ["a", "b", "c"],
}


def _solve(V):
    return solve(Crossbar(**good()), V)


def _direct(V):
    return DirectSolver(Crossbar(**good())).solve(V)


def _solve_sinh(V):
    return solve(Crossbar(**good(device="sinh", sinh_k=2.0)), V)


class TestInputVoltages:
    @pytest.mark.parametrize("entry", [_solve, _direct, _solve_sinh], ids=["solve", "DirectSolver.solve", "solve-sinh"])
    @pytest.mark.parametrize("case", sorted(BAD_V))
    def test_bad_V(self, entry, case):
        with raises_naming("V"):
            entry(BAD_V[case])

    @pytest.mark.parametrize("entry", [_solve, _direct, _solve_sinh], ids=["solve", "DirectSolver.solve", "solve-sinh"])
    def test_one_vector_is_a_batch_of_one(self, entry):
        V = np.array([0.1, -0.2, 0.3])
        np.testing.assert_array_equal(entry(V).I, entry(V[None, :]).I)

    def test_empty_batch(self):
        sol = _solve(np.zeros((0, M)))
        assert sol.I.shape == (0, N)

    def test_effective_matrix_is_linear_only(self):
        with pytest.raises(XbarrefError):
            effective_matrix(Crossbar(**good(device="sinh", sinh_k=1.0)))

    def test_unknown_method(self):
        with raises_naming("method"):
            solve(Crossbar(**good()), np.ones(M), method="magic")


class TestPerReadArguments:
    B = 2

    def _call(self, G_batch=None, V=None):
        G_batch = np.full((self.B, M, N), 1e-5) if G_batch is None else G_batch
        V = np.ones((self.B, M)) if V is None else V
        return solve_per_read(Crossbar(**good()), G_batch, V)

    def test_good_call(self):
        assert self._call().I.shape == (self.B, N)

    @pytest.mark.parametrize("shape", [(M, N), (B, M, N + 1), (B, M + 1, N), (B + 1, M, N), (B, M, N, 1)])
    def test_bad_G_batch_shape(self, shape):
        with raises_naming("G_batch"):
            self._call(G_batch=np.full(shape, 1e-5))

    @pytest.mark.parametrize("bad", [np.nan, np.inf, -1e-6])
    def test_bad_G_batch_value(self, bad):
        G_batch = np.full((self.B, M, N), 1e-5)
        G_batch[1, 2, 3] = bad
        with raises_naming("G_batch"):
            self._call(G_batch=G_batch)

    @pytest.mark.parametrize("case", sorted(BAD_V))
    def test_bad_V(self, case):
        V = BAD_V[case]
        with pytest.raises(XbarrefError, match=r"^(V|G_batch)\b"):
            self._call(V=V)
