"""Closed forms of small or structured crossbars against the solver and the reference.

The closed forms are series/parallel reductions written out here, independent of any
nodal solver:

* 1 x 1: ``I = V G / (1 + G (r_source + r_sink))`` (source, device and sink in series).
* one row (1 x N) is a ladder: each column is the device in series with its sink,
  ``g_j = G_j / (1 + G_j r_sink[j])``; the admittance looking right from row node j is
  ``Y_j = g_j + Y_{j+1} / (1 + r_wire_row[j] Y_{j+1})``; then
  ``V_0 = V / (1 + r_source Y_0)``, ``V_{j+1} = V_j / (1 + r_wire_row[j] Y_{j+1})`` and
  ``I_j = g_j V_j``. With zero row wires this is
  ``V_r = V / (1 + r_source sum_j g_j)``.
* one column (M x 1) is a chain of Norton sources: row i feeds ``c(i)`` through
  ``g_i = G_i / (1 + G_i r_source[i])``; moving the Norton pair (J, Y) down a column
  wire r divides both by ``1 + r Y``; at the bottom ``I = J / (1 + Y r_sink)``.
* M x N with r_source = r_sink = 0 and zero column wires: every column node is at 0 V,
  so each row is an independent one-row ladder with zero sinks; currents add.
* M x N with r_source = 0 and zero row wires: every row node is at V[i], so each column
  is an independent one-column chain with zero source resistance.

Tolerance: every recursion step rounds a few times, so the closed form and the solver
agree to a small multiple of machine epsilon times the current scale, taken as the
closed form evaluated at ``|V|`` (all inputs of one sign: no cancellation). We allow
1e-12 of that scale.
"""

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from .reference import broadcast_params, solve_rational, solve_reference
from .strategies import cases, crossbars, input_batches

RTOL = 1e-12


def row_ladder(V, G, r_source, r_wire, r_sink):
    """Output currents (B, N) of a one-row crossbar driven by V (B,) volts."""
    V = np.asarray(V, dtype=np.float64)
    N = len(G)
    g = G / (1.0 + G * r_sink)
    Y = np.empty(N)
    Y[N - 1] = g[N - 1]
    for j in range(N - 2, -1, -1):
        Y[j] = g[j] + Y[j + 1] / (1.0 + r_wire[j] * Y[j + 1])
    Vr = np.empty((len(V), N))
    Vr[:, 0] = V / (1.0 + r_source * Y[0])
    for j in range(N - 1):
        Vr[:, j + 1] = Vr[:, j] / (1.0 + r_wire[j] * Y[j + 1])
    return g * Vr


def column_chain(V, G, r_source, r_wire, r_sink):
    """Output current (B,) of a one-column crossbar driven by V (B, M) volts."""
    V = np.asarray(V, dtype=np.float64)
    g = G / (1.0 + G * r_source)
    J = g[0] * V[:, 0]
    Y = g[0]
    for i in range(1, len(G)):
        d = 1.0 + Y * r_wire[i - 1]
        J = J / d + g[i] * V[:, i]
        Y = Y / d + g[i]
    return J / (1.0 + Y * r_sink)


def closed_form(params, V):
    """Closed-form output currents (B, N) for the structures listed in the module docstring."""
    p = broadcast_params(**params)
    G = p["G"]
    M, N = G.shape
    V = np.atleast_2d(V)
    if M == 1:
        return row_ladder(V[:, 0], G[0], p["r_source"][0], p["r_wire_row"][0], p["r_sink"])
    if N == 1:
        return column_chain(V, G[:, 0], p["r_source"], p["r_wire_col"][:, 0], p["r_sink"][0])[:, None]
    if not (p["r_source"].any() or p["r_sink"].any() or p["r_wire_col"].any()):
        return sum(row_ladder(V[:, i], G[i], 0.0, p["r_wire_row"][i], np.zeros(N)) for i in range(M))
    if not (p["r_source"].any() or p["r_wire_row"].any()):
        return np.stack([column_chain(V, G[:, j], np.zeros(M), p["r_wire_col"][:, j], p["r_sink"][j])
                         for j in range(N)], axis=1)
    raise ValueError("no closed form for this crossbar")


def xbarref_currents(params, V):
    from xbarref.circuit import Crossbar, solve

    return solve(Crossbar(**params), V).I


def xbarref_direct_currents(params, V):
    from xbarref.circuit import DirectSolver, Crossbar

    return DirectSolver(Crossbar(**params)).solve(V).I


def reference_currents(params, V):
    return solve_reference(params, V)["I"]


SOLVERS = {"xbarref": xbarref_currents, "xbarref_direct": xbarref_direct_currents,
           "reference": reference_currents}


def assert_matches_closed_form(params, V, solver):
    expected = closed_form(params, V)
    scale = np.max(np.abs(closed_form(params, np.abs(V))), axis=1, keepdims=True, initial=0.0)
    got = SOLVERS[solver](params, V)
    assert got.shape == expected.shape
    err = np.abs(got - expected)
    assert np.all(err <= RTOL * scale), (
        f"max |I - closed form| / current scale = {np.max(err / np.where(scale > 0, scale, 1.0)):.3e}")


@st.composite
def structured(draw, kind):
    if kind == "1x1":
        shape = (1, 1)
    elif kind == "one_row":
        shape = (1, draw(st.integers(1, 12)))
    elif kind == "one_col":
        shape = (draw(st.integers(1, 12)), 1)
    else:
        shape = (draw(st.integers(1, 12)), draw(st.integers(1, 12)))
    params = draw(crossbars(shape=shape))
    if kind == "row_wires_only":
        params.update(r_source=0.0, r_sink=0.0, r_wire_col=0.0)
    elif kind == "col_wires_only":
        params.update(r_source=0.0, r_wire_row=0.0)
    V = draw(input_batches(shape[0]))
    return params, V


@pytest.mark.parametrize("solver", sorted(SOLVERS))
class TestClosedForms:
    @given(structured("1x1"))
    def test_one_by_one(self, solver, case):
        params, V = case
        assert_matches_closed_form(params, V, solver)

    @given(structured("one_row"))
    @example((  # found by test_properties: the default (PCG) solve is 1.04e-12 off (direct: 2e-16)
        {"G": np.full((1, 7), 0.01), "r_source": 1e4, "r_sink": 1e4, "r_wire_row": 10.0, "r_wire_col": 0.0},
        np.array([[-0.0013481670608312124]]),
    ))
    def test_one_row_ladder(self, solver, case):
        assert_matches_closed_form(*case, solver)

    @given(structured("one_col"))
    def test_one_column_chain(self, solver, case):
        assert_matches_closed_form(*case, solver)

    @settings(max_examples=30)
    @given(structured("row_wires_only"))
    def test_independent_row_ladders(self, solver, case):
        assert_matches_closed_form(*case, solver)

    @settings(max_examples=30)
    @given(structured("col_wires_only"))
    def test_independent_column_chains(self, solver, case):
        assert_matches_closed_form(*case, solver)

    def test_one_by_one_by_hand(self, solver):
        # 1 V through 100 ohm + 1 kohm (1 mS) + 900 ohm: 1 V / 2000 ohm = 0.5 mA
        params = {"G": [[1e-3]], "r_source": 100.0, "r_sink": 900.0}
        I = SOLVERS[solver](params, np.array([[1.0], [-2.0]]))
        np.testing.assert_allclose(I, [[5e-4], [-1e-3]], rtol=1e-15)

    def test_one_row_zero_wires_by_hand(self, solver):
        # zero row wires: V_r = V / (1 + r_source sum g_j), g_j = G_j / (1 + G_j r_sink_j)
        G = np.array([[1e-3, 2e-3, 0.0, 5e-4]])
        r_sink = np.array([1000.0, 0.0, 10.0, 1000.0])
        g = G[0] / (1 + G[0] * r_sink)          # 5e-4, 2e-3, 0, 3.333e-4
        Vr = 0.3 / (1 + 50.0 * g.sum())
        params = {"G": G, "r_source": 50.0, "r_sink": r_sink, "r_wire_row": 0.0}
        np.testing.assert_allclose(SOLVERS[solver](params, [0.3]), [g * Vr], rtol=1e-14)


class TestExactArithmetic:
    """Tiny random crossbars solved in rational arithmetic (no rounding at all)."""

    @settings(max_examples=40)
    @given(cases(max_size=4, max_batch=2))
    def test_reference_is_exact_to_rounding(self, case):
        # the oracle itself: long-double refinement leaves a few float64 roundings
        params, V = case
        exact = solve_rational(params, V)
        scale = np.max(np.abs(solve_rational(params, np.abs(V))), axis=1, keepdims=True, initial=0.0)
        assert np.all(np.abs(solve_reference(params, V)["I"] - exact) <= 1e-15 * scale)

    @settings(max_examples=40)
    @given(cases(max_size=4, max_batch=2))
    @pytest.mark.parametrize("solver", ["xbarref", "xbarref_direct"])
    def test_solver_is_exact_to_rtol(self, solver, case):
        params, V = case
        exact = solve_rational(params, V)
        scale = np.max(np.abs(solve_rational(params, np.abs(V))), axis=1, keepdims=True, initial=0.0)
        assert np.all(np.abs(SOLVERS[solver](params, V) - exact) <= RTOL * scale)


class TestEffectiveMatrixClosedForms:
    """Row i of the effective matrix is the closed form driven by e_i."""

    @staticmethod
    def check(params):
        from xbarref.circuit import Crossbar, effective_matrix

        M = np.asarray(params["G"]).shape[0]
        expected = closed_form(params, np.eye(M))
        A = effective_matrix(Crossbar(**params))
        row_scale = expected.max(axis=1, keepdims=True)
        err = np.abs(A - expected)
        assert np.all(err <= RTOL * row_scale), (
            f"max |A - closed form| / row scale = {np.max(err / np.where(row_scale > 0, row_scale, 1.0)):.3e}")

    @given(structured("one_row"))
    def test_one_row(self, case):
        self.check(case[0])

    @given(structured("one_col"))
    @example((  # found by test_properties: A 1.07e-12 off in every row (direct solves: 1.7e-16)
        {"G": np.full((4, 1), 0.01), "r_source": 0.0, "r_sink": 71.58925736252974,
         "r_wire_row": 0.0, "r_wire_col": 0.01106926831967968},
        np.ones((1, 4)),
    ))
    def test_one_column(self, case):
        self.check(case[0])

    @settings(max_examples=30)
    @given(structured("col_wires_only"))
    def test_independent_column_chains(self, case):
        self.check(case[0])
