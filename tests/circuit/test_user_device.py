"""User-defined device laws (numba-compiled current and derivative) through Newton."""

import numpy as np
import pytest
from numba import njit

from xbarref.circuit import Crossbar, solve
from xbarref.circuit.newton import NewtonOptions, solve_newton
from xbarref.devices import Device
from xbarref.errors import ConvergenceError, XbarrefError


@njit
def cubic_current(v, g, p):
    return g * (v + p[0] * v ** 3)


@njit
def cubic_conductance(v, g, p):
    return g * (1.0 + 3.0 * p[0] * v ** 2)


@njit
def sinh_like_current(v, g, p):
    return g * np.sinh(p[0] * v) / p[0]


@njit
def sinh_like_conductance(v, g, p):
    return g * np.cosh(p[0] * v)


def _crossbar(device, shape=(6, 5), seed=0, **kw):
    rng = np.random.default_rng(seed)
    G = rng.uniform(1e-6, 1e-4, shape)
    return Crossbar(G, r_source=50.0, r_sink=20.0, r_wire_row=2.0, r_wire_col=2.0, device=device, **kw)


def test_user_law_equal_to_builtin_sinh_gives_the_same_solution():
    k = 3.0
    user = Device(sinh_like_current, sinh_like_conductance, params=[k], name="user-sinh")
    V = np.random.default_rng(1).uniform(-0.5, 0.5, (3, 6))
    a = solve(_crossbar(user), V)
    b = solve(_crossbar("sinh", sinh_k=k), V)
    np.testing.assert_allclose(a.I, b.I, rtol=0, atol=1e-12 * np.abs(b.I).max())


def test_cubic_law_satisfies_kirchhoff_at_every_node():
    cubic = Device(cubic_current, cubic_conductance, params=[2.0], name="cubic")
    xb = _crossbar(cubic, shape=(4, 7))
    V = np.random.default_rng(2).uniform(-0.6, 0.6, (2, 4))
    sol = solve(xb, V, nodes=True)
    for k in range(2):
        vr, vc = sol.V_row[k], sol.V_col[k]
        dev = cubic_current(vr - vc, xb.G, np.array([2.0]))
        # column node KCL: device current in = wire currents out (+ sink at the bottom)
        flow = dev.copy()
        flow[:-1] -= (vc[:-1] - vc[1:]) / xb.r_wire_col
        flow[1:] += (vc[:-1] - vc[1:]) / xb.r_wire_col
        flow[-1] -= vc[-1] / xb.r_sink
        assert np.abs(flow).max() <= 1e-9 * np.abs(dev).max()
        np.testing.assert_allclose(sol.I[k], vc[-1] / xb.r_sink, rtol=1e-12)
    # odd law: V -> -V gives I -> -I
    np.testing.assert_allclose(solve(xb, -V).I, -sol.I, rtol=0, atol=1e-13 * np.abs(sol.I).max())


def test_device_rejects_plain_python_functions():
    with pytest.raises(XbarrefError, match="numba"):
        Device(lambda v, g, p: g * v, cubic_conductance)


def test_check_catches_a_wrong_derivative():
    wrong = Device(cubic_current, sinh_like_conductance, params=[2.0])
    with pytest.raises(XbarrefError, match="conductance"):
        wrong.check(v_max=0.5)


def test_convergence_error_names_iterations_and_node():
    cubic = Device(cubic_current, cubic_conductance, params=[50.0], name="cubic")
    xb = _crossbar(cubic, shape=(5, 5))
    opts = NewtonOptions(max_iter=1, source_stepping=False)
    with pytest.raises(ConvergenceError, match=r"after \d+ iterations.*worst node"):
        solve_newton(xb, np.full((1, 5), 0.6), options=opts)


class TestArrayCurrents:
    """``Device.currents``: the law's one expression evaluated on arrays (used by the
    approximate models and the diagnosis) agrees with the compiled scalar law."""

    @pytest.mark.parametrize("device, k", [("sinh", 2.5), ("sinh", 0.3), ("linear", None)])
    def test_matches_the_compiled_scalar_law(self, device, k):
        from xbarref.circuit.laws import device_law

        xb = _crossbar(device, sinh_k=k) if k else _crossbar(device)
        law = device_law(xb)
        v = np.random.default_rng(3).uniform(-1.5, 1.5, xb.shape)
        arr = law.currents(v, xb.G)
        scalar = np.array([[law.current(v[i, j], xb.G[i, j], law.params) for j in range(xb.shape[1])]
                           for i in range(xb.shape[0])])
        np.testing.assert_allclose(arr, scalar, rtol=4e-16, atol=0)

    def test_sinh_closed_form_and_broadcasting(self):
        from xbarref.circuit.laws import device_law

        xb = _crossbar("sinh", sinh_k=4.0)
        v = np.linspace(-0.4, 0.4, 3 * 6 * 5).reshape(3, 6, 5)
        got = device_law(xb).currents(v, xb.G)
        assert got.shape == (3, 6, 5)
        np.testing.assert_allclose(got, xb.G * np.sinh(4.0 * v) / 4.0, rtol=1e-15)
        # small-signal conductance G at 0 V, odd in v
        np.testing.assert_allclose(device_law(xb).currents(1e-9, xb.G), xb.G * 1e-9, rtol=1e-12)
        np.testing.assert_array_equal(device_law(xb).currents(-v, xb.G), -got)

    def test_approx_models_use_the_solver_law(self):
        from xbarref.validate import approx

        xb = _crossbar("sinh", sinh_k=2.0)
        V = np.full((1, 6), 0.3)
        # with every resistance 0 the first-order model is exact: I_j = sum_i G_ij sinh(k V_i)/k
        xb0 = xb.replace(r_source=0.0, r_sink=0.0, r_wire_row=0.0, r_wire_col=0.0)
        np.testing.assert_allclose(approx.first_order(xb0, V), np.sinh(0.6) / 2.0 * xb.G.sum(axis=0)[None],
                                   rtol=1e-14)
        with pytest.raises(XbarrefError, match="crossbar.device"):
            approx.first_order(_crossbar(Device(cubic_current, cubic_conductance, params=[0.5])), V)
