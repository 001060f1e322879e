"""Newton's named steps (attempt, line search, convergence test, source stepping) and the
Jacobian whose pattern is built once and refilled at every iteration (direct path)."""

import numpy as np
import pytest

from xbarref.circuit import Crossbar
from xbarref.circuit.newton import (AttemptResult, LineSearchResult, NewtonOptions, NewtonSolver,
                                    SteppingResult, _Jacobian, solve_newton)
from xbarref.circuit.system import NodalSystem


def _direct_crossbar(seed=0, M=12, N=9, k=4.0):
    """sinh devices, some zero row-wire segments and a shorted sink: the direct path."""
    rng = np.random.default_rng(seed)
    G = rng.uniform(1e-6, 1e-4, (M, N))
    G[rng.random((M, N)) < 0.1] = 0.0
    rw = np.full((M, N - 1), 2.0)
    rw[rng.random(rw.shape) < 0.3] = 0.0
    r_sink = np.full(N, 20.0)
    r_sink[0] = 0.0
    return Crossbar(G, r_source=50.0, r_sink=r_sink, r_wire_row=rw, r_wire_col=3.0, device="sinh", sinh_k=k)


class TestJacobianRefill:
    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_refilled_matrix_is_the_assembled_one_to_the_bit(self, seed):
        xb = _direct_crossbar(seed)
        system = NodalSystem.from_crossbar(xb)
        jac = _Jacobian(xb, system, xb.G * 1.0)
        assert jac.exact
        rng = np.random.default_rng(seed + 10)
        for _ in range(3):
            g = xb.G * rng.uniform(1.0, 3.0, xb.shape)   # a Jacobian: di/dv >= G where G > 0
            fresh = NodalSystem.from_crossbar(xb, G=g, like=system).matrix
            values = jac._values(g)
            np.testing.assert_array_equal(values, fresh.data)
            np.testing.assert_array_equal(jac.matrix.indices, fresh.indices)

    def test_refill_is_not_the_old_values(self):
        xb = _direct_crossbar(3)
        system = NodalSystem.from_crossbar(xb)
        jac = _Jacobian(xb, system, xb.G * 1.0)
        assert not np.array_equal(jac._values(2.0 * xb.G), jac._values(xb.G))

    def test_a_new_open_cell_per_read_rebuilds_the_pattern(self):
        """Per-read conductances with an extra open cell: the batch gives what each read
        solved alone gives (a stale pattern would keep the cell's element)."""
        xb = _direct_crossbar(4)
        V = np.random.default_rng(5).uniform(-0.4, 0.4, (2, xb.shape[0]))
        G_batch = np.stack([xb.G, xb.G.copy()])
        i, j = np.argwhere(xb.G > 0)[7]
        G_batch[0, i, j] = 0.0   # the first read builds the pattern, without that cell
        both = solve_newton(xb, V, G_batch=G_batch)
        for k in range(2):
            alone = solve_newton(xb.replace(G=G_batch[k]), V[k:k + 1])
            np.testing.assert_array_equal(both.I[k], alone.I[0])
        assert not np.allclose(both.I[0], both.I[1], rtol=1e-9, atol=0)


class TestNamedSteps:
    def test_attempt_converges_and_says_so(self):
        xb = _direct_crossbar(0)
        solver = NewtonSolver(xb)
        Vin = np.full(xb.shape[0], 0.3)
        v = solver._linear_start(xb.G, Vin)
        out = solver._attempt(xb.G, Vin, v)
        assert isinstance(out, AttemptResult) and out.converged and out.worst is None
        assert 1 <= out.iterations <= solver.options.max_iter

    def test_failed_attempt_names_the_worst_node(self):
        xb = _direct_crossbar(0, k=12.0)
        solver = NewtonSolver(xb, NewtonOptions(max_iter=1))
        Vin = np.full(xb.shape[0], 0.6)
        out = solver._attempt(xb.G, Vin, solver._linear_start(xb.G, Vin))
        assert not out.converged and out.iterations == 1 and out.residual > 0
        kind, i, j = out.worst
        assert kind in ("row", "column") and 0 <= i < xb.shape[0] and 0 <= j < xb.shape[1]

    def test_line_search_decreases_the_residual(self):
        xb = _direct_crossbar(1, k=8.0)
        solver = NewtonSolver(xb)
        Vin = np.full(xb.shape[0], 0.5)
        v = solver._linear_start(xb.G, Vin)
        from xbarref.circuit.newton import _Work

        work = _Work(*xb.shape)
        solver._evaluate(xb.G, Vin, v, work.i_dev, work.g_dev, work.res, work.mag)
        norm = solver._norm(work.res)
        dv = solver._step(xb.G, work.g_dev, work.res)
        out = solver._line_search(xb.G, Vin, v, dv, norm, work)
        assert isinstance(out, LineSearchResult) and out.accepted
        assert 0 < out.alpha <= 1 and out.norm < norm

    def test_convergence_test_rejects_a_large_update(self):
        xb = _direct_crossbar(0)
        solver = NewtonSolver(xb)
        Vin = np.full(xb.shape[0], 0.3)
        v = solver._linear_start(xb.G, Vin)
        assert solver._attempt(xb.G, Vin, v).converged
        from xbarref.circuit.newton import _Work

        work = _Work(*xb.shape)
        solver._evaluate(xb.G, Vin, v, work.i_dev, work.g_dev, work.res, work.mag)
        assert solver._converged(0.0, v, work)
        assert not solver._converged(1e-3, v, work)     # a 1 mV update is not converged

    def test_source_stepping_reaches_the_inputs(self):
        xb = _direct_crossbar(2, k=10.0)
        solver = NewtonSolver(xb)
        Vin = np.full(xb.shape[0], 0.5)
        v = np.zeros((2,) + xb.shape)
        out = solver._source_stepping(xb.G, Vin, v)
        assert isinstance(out, SteppingResult) and out.converged and out.reached == 1.0
        # the ramp ends where plain Newton from the linear start ends
        v_plain = solver._linear_start(xb.G, Vin)
        assert solver._attempt(xb.G, Vin, v_plain).converged
        np.testing.assert_allclose(v, v_plain, rtol=1e-9, atol=1e-12)

    def test_source_stepping_gives_up_below_the_smallest_increment(self):
        xb = _direct_crossbar(2, k=10.0)
        solver = NewtonSolver(xb, NewtonOptions(max_iter=1, min_source_step=0.2))
        out = solver._source_stepping(xb.G, np.full(xb.shape[0], 0.9), np.zeros((2,) + xb.shape))
        assert not out.converged and out.reached < 1.0 and out.last is not None
        assert not out.last.converged


def test_linear_start_is_factored_once_for_the_crossbar_and_anew_per_read():
    xb = _direct_crossbar(5)
    solver = NewtonSolver(xb)
    V = np.random.default_rng(6).uniform(-0.3, 0.3, (2, xb.shape[0]))
    v0, I0, _, _ = solver.solve_one(V[0])
    first = solver._linear_solver
    v1, I1, _, _ = solver.solve_one(V[1])
    assert first is not None and solver._linear_solver is first
    # the shared factorization gives what a fresh solver gives, to the bit
    np.testing.assert_array_equal(I1, NewtonSolver(xb).solve_one(V[1])[1])
    # per-read conductances are not the crossbar's: their own linear start
    G = xb.G * 1.05
    _, I_read, _, _ = solver.solve_one(V[0], G)
    np.testing.assert_array_equal(I_read, NewtonSolver(xb.replace(G=G)).solve_one(V[0])[1])
    assert not np.allclose(I_read, I0, rtol=1e-6, atol=0)
