"""The grid PCG solver: coarse space, bounded loops, threads, the Lanczos estimate."""

import subprocess
import sys

import numpy as np
import pytest

from xbarref.circuit import Crossbar, DirectSolver, _pcg, grid, solve


def strong(M, N, rng, **kw):
    """The strong-coupling regime: 30 ohm segments, 0.1-1 mS devices, 10 ohm terminals."""
    args = dict(r_source=10.0, r_sink=10.0, r_wire_row=30.0, r_wire_col=30.0)
    args.update(kw)
    return Crossbar(rng.uniform(1e-4, 1e-3, (M, N)), **args)


def rel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("shape,block", [((64, 64), 4), ((70, 45), 4), ((33, 70), 8), ((9, 13), 2)])
def test_coarse_space_agrees_with_direct(shape, block):
    """With and without the coarse space, pinned terminals and partial blocks: the direct answer."""
    rng = np.random.default_rng([7, *shape])
    M, N = shape
    r_source = np.full(M, 10.0)
    r_source[::3] = 0.0
    r_sink = np.full(N, 10.0)
    r_sink[1::4] = 0.0
    xb = strong(M, N, rng, r_source=r_source, r_sink=r_sink)
    V = rng.uniform(-0.3, 0.3, (3, M))
    ref = DirectSolver(xb).solve(V, nodes=True)
    p = grid.grid_parameters(xb)
    for coarse in (grid.no_coarse(), grid.build_coarse(xb.G, p, block)):
        I, x, iters, est = grid.solve_batch(xb.G[None], p, V, 1e-13, 2000, True, coarse)
        assert np.all(est <= 1e-13)
        assert rel(I, ref.I) <= 1e-12
        assert rel(x[:, 0], ref.V_row) <= 1e-12
        assert rel(x[:, 1], ref.V_col) <= 1e-12


def test_coarse_space_cuts_iterations_in_the_strong_regime():
    """The two-level method needs far fewer iterations, and fewer still relative to size."""
    counts = {}
    for n in (32, 128):
        rng = np.random.default_rng(n)
        xb = strong(n, n, rng)
        p = grid.grid_parameters(xb)
        V = rng.uniform(-0.3, 0.3, (1, n))
        plain = grid.solve_batch(xb.G[None], p, V, 1e-13, 5000, False, grid.no_coarse())
        two = grid.solve_batch(xb.G[None], p, V, 1e-13, 5000, False, grid.build_coarse(xb.G, p, 4))
        assert plain[3][0] <= 1e-13 and two[3][0] <= 1e-13
        assert rel(two[0], plain[0]) <= 1e-12
        counts[n] = (int(plain[2][0]), int(two[2][0]))
    assert counts[128][1] * 2 < counts[128][0]
    # 4x the size: the plain count grows about linearly, the two-level one much less
    assert counts[128][1] / counts[32][1] < 0.6 * counts[128][0] / counts[32][0]


def test_auto_picks_the_coarse_space_only_where_lines_couple():
    rng = np.random.default_rng(3)
    weak = Crossbar(rng.uniform(5e-6, 50e-6, (64, 64)), r_source=500.0, r_sink=100.0,
                    r_wire_row=1.0, r_wire_col=1.0)
    assert grid.coarse_block(weak.G, grid.grid_parameters(weak)) == 0
    assert grid.coarse_block(strong(64, 64, rng).G, grid.grid_parameters(strong(64, 64, rng))) == 0  # small
    xb = strong(128, 128, rng)
    assert grid.coarse_block(xb.G, grid.grid_parameters(xb)) == 4
    big = strong(512, 512, rng)
    block = grid.coarse_block(big.G, grid.grid_parameters(big))
    assert 2 * (512 // block) ** 2 <= grid.COARSE_MAX_UNKNOWNS


def test_threads_give_the_serial_answer(monkeypatch):
    rng = np.random.default_rng(5)
    xb = strong(20, 24, rng)
    V = rng.uniform(-0.3, 0.3, (9, 20))
    monkeypatch.setattr(grid, "n_threads", lambda: 1)
    one = solve(xb, V, method="pcg")
    monkeypatch.setattr(grid, "n_threads", lambda: 3)
    three = solve(xb, V, method="pcg")
    assert np.array_equal(one.I, three.I)
    assert np.array_equal(one.iterations, three.iterations)


def test_lanczos_bisection_matches_eigvalsh():
    rng = np.random.default_rng(11)
    for k in (1, 2, 5, 17, 40):
        alphas = rng.uniform(0.2, 3.0, k + 1)
        betas = rng.uniform(0.0, 0.9, k + 1)
        T = np.zeros((k, k))
        for j in range(k):
            T[j, j] = 1 / alphas[j] + (betas[j - 1] / alphas[j - 1] if j else 0.0)
            if j + 1 < k:
                T[j, j + 1] = T[j + 1, j] = np.sqrt(betas[j]) / alphas[j]
        expect = min(1.0, max(np.linalg.eigvalsh(T)[0], 1e-12))
        assert abs(_pcg._lanczos_min(alphas, betas, k) - expect) <= 1e-12 * max(1.0, abs(expect))


TINY = """
import numpy as np
from xbarref.circuit import Crossbar, solve
from xbarref.errors import ComputationError
for g in (1e-170, 1e-300):
    xb = Crossbar(np.full((4, 5), g), r_source=10.0, r_sink=10.0, r_wire_row=1.0, r_wire_col=1.0)
    sol = solve(xb, np.ones((1, 4)), method="pcg")
    assert np.all(np.isfinite(sol.I))
# subnormal conductances: currents below float64's resolution are refused, not returned
xb = Crossbar(np.full((4, 5), 5e-324), r_source=10.0, r_sink=10.0, r_wire_row=1.0, r_wire_col=1.0)
try:
    solve(xb, np.ones((1, 4)), method="pcg")
    raise SystemExit("subnormal currents were returned")
except ComputationError as exc:
    assert "resolution of float64" in str(exc), exc
xb = Crossbar(np.full((4, 5), 1e-3), r_source=1e170, r_sink=10.0, r_wire_row=1.0, r_wire_col=1.0)
assert np.all(np.isfinite(solve(xb, np.ones((1, 4)), method="pcg").I))
print("ok")
"""


def test_tiny_conductances_end():
    """Conductances near underflow once made the error estimate infinite and the loop endless."""
    out = subprocess.run([sys.executable, "-c", TINY], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_batched_newton_matches_the_one_input_path():
    """All inputs iterating together give the one-input answers (and pass the same tests)."""
    from xbarref.circuit.newton import NewtonSolver

    rng = np.random.default_rng(21)
    r_source = np.full(12, 100.0)
    r_source[0] = 0.0  # a pinned row too
    xb = Crossbar(rng.uniform(1e-5, 1e-4, (12, 10)), r_source=r_source, r_sink=50.0, r_wire_row=2.0,
                  r_wire_col=2.0, device="sinh", sinh_k=4.0)
    V = rng.uniform(0.0, 0.6, (7, 12))
    sol = solve(xb, V, nodes=True)
    one = NewtonSolver(xb)
    for k in range(7):
        v, I, _, rel = one.solve_one(V[k])
        assert rel <= 1e-11 and sol.residuals[k] <= 1e-11
        assert rel_diff(sol.I[k], I) <= 1e-10
        assert rel_diff(sol.V_row[k], v[0]) <= 1e-10
    assert len(sol.info["one_input_path"]) == 0


@pytest.mark.parametrize("cells", [1, 120, 360])
def test_batched_newton_chunks_give_the_one_chunk_answer(monkeypatch, cells):
    """A batch split in chunks (every chunk at least two inputs per thread, a partial last
    chunk) gives the same bits as one chunk: inputs are independent."""
    import importlib

    newton_module = importlib.import_module("xbarref.circuit.newton")
    rng = np.random.default_rng(22)
    xb = Crossbar(rng.uniform(1e-5, 1e-4, (12, 10)), r_source=100.0, r_sink=50.0, r_wire_row=2.0,
                  r_wire_col=2.0, device="sinh", sinh_k=4.0)
    V = rng.uniform(0.0, 0.6, (11, 12))
    whole = solve(xb, V, nodes=True)
    seen = []
    solve_batch = newton_module.NewtonSolver.solve_batch

    def spy(self, V_part, G_all):
        seen.append(V_part.shape[0])
        return solve_batch(self, V_part, G_all)

    monkeypatch.setattr(newton_module, "BATCH_CELLS", cells)
    monkeypatch.setattr(newton_module.NewtonSolver, "solve_batch", spy)
    parts = solve(xb, V, nodes=True)
    assert sum(seen) == 11 and len(seen) > 1
    assert min(seen[:-1]) >= newton_module.THREAD_MIN_INPUTS * newton_module.n_threads()
    assert np.array_equal(parts.I, whole.I) and np.array_equal(parts.V_row, whole.V_row)
    assert np.array_equal(parts.iterations, whole.iterations)


def test_batched_newton_hands_hard_inputs_to_source_stepping():
    """Inputs plain Newton cannot do go through the one-input path, and still converge."""
    rng = np.random.default_rng(22)
    xb = Crossbar(rng.uniform(1e-3, 2e-3, (6, 6)), r_source=1.0, r_sink=1.0, r_wire_row=0.5, r_wire_col=0.5,
                  device="sinh", sinh_k=40.0)
    V = np.vstack([np.full(6, 0.05), np.full(6, 3.0)])
    sol = solve(xb, V)
    assert list(sol.info["one_input_path"]) == [1]  # the 3 V input needed source stepping
    assert np.all(sol.residuals <= 1e-11)
    assert np.all(np.isfinite(sol.I))
    # Kirchhoff at the sinks: the output equals the sink voltage over r_sink
    full = solve(xb, V, nodes=True)
    assert rel_diff(full.I, full.V_col[:, -1, :] / 1.0) <= 1e-12


def rel_diff(a, b):
    return float(np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(np.asarray(b)).max())


@pytest.mark.parametrize("M,N", [(7, 5), (8, 3), (1, 6), (13, 1)])
def test_line_steps_against_numpy(M, N):
    """The swept line solves (four rows at a time, with a remainder) are the exact
    tridiagonal solves of the row and column wires; the maxima are those of NumPy."""
    import scipy.linalg as sla

    rng = np.random.default_rng([3, M, N])
    xb = Crossbar(rng.uniform(1e-3, 1e-1, (M, N)), r_source=rng.uniform(1, 5, M),
                  r_sink=rng.uniform(1, 5, N), r_wire_row=rng.uniform(0.5, 2, (M, N - 1)),
                  r_wire_col=rng.uniform(0.5, 2, (M - 1, N)))
    p = grid.grid_parameters(xb)
    args = (xb.G, p["gs"], p["gk"], p["gr"], p["gc"], p["ps"], p["pk"])
    diag = np.empty((2, M, N))
    ginv = np.empty((2, M, N))
    lrow = np.empty((M, N))
    lcol = np.empty((M, N))
    cd, cr, cc = _pcg._masked_couplings(xb.G, p["gr"], p["gc"], p["ps"], p["pk"])
    _pcg._setup(*args, cr, cc, diag, lrow, lcol, ginv)
    x, r, pd, q = (rng.uniform(-1, 1, (2, M, N)) for _ in range(4))
    alpha = 0.37
    x_new, r_new = x + alpha * pd, r - alpha * q
    z = np.empty((2, M, N))
    rz, z_max, x_max = _pcg._step(alpha, pd, q, x, r, lrow, lcol, ginv, z)
    ref = np.empty((2, M, N))
    for i in range(M):  # row wire i: tridiagonal (diag[0, i], -cr[i])
        T = np.diag(diag[0, i]) - np.diag(cr[i], 1) - np.diag(cr[i], -1)
        ref[0, i] = sla.solve(T, r_new[0, i])
    for j in range(N):
        T = np.diag(diag[1, :, j]) - np.diag(cc[:, j], 1) - np.diag(cc[:, j], -1)
        ref[1, :, j] = sla.solve(T, r_new[1, :, j])
    np.testing.assert_allclose(x, x_new, rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(r, r_new, rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(z, ref, rtol=1e-12, atol=1e-13 * np.abs(ref).max())
    assert z_max == np.abs(z).max() and x_max == np.abs(x).max()
    assert rz == pytest.approx(float(np.sum(r * z)), rel=1e-13)
    # K p from the grid product against the assembled-by-hand couplings
    pq = _pcg._direction_matvec(cd, cr, cc, diag, pd, q)
    Kp = diag * pd
    Kp[0] -= cd * pd[1]
    Kp[1] -= cd * pd[0]
    Kp[0, :, :-1] -= cr * pd[0, :, 1:]
    Kp[0, :, 1:] -= cr * pd[0, :, :-1]
    Kp[1, :-1] -= cc * pd[1, 1:]
    Kp[1, 1:] -= cc * pd[1, :-1]
    np.testing.assert_allclose(q, Kp, rtol=1e-13, atol=1e-14 * np.abs(Kp).max())
    assert pq == pytest.approx(float(np.sum(pd * Kp)), rel=1e-12)


def test_bit_maxima_propagate_nan_and_infinity():
    """The bit-pattern maxima of the sweeps report a NaN or an infinity (never hide one)."""
    M, N = 5, 6
    rng = np.random.default_rng(0)
    xb = Crossbar(rng.uniform(1e-3, 1e-2, (M, N)), r_source=1.0, r_sink=1.0, r_wire_row=1.0, r_wire_col=1.0)
    p = grid.grid_parameters(xb)
    diag = np.empty((2, M, N))
    ginv = np.empty((2, M, N))
    lrow = np.empty((M, N))
    lcol = np.empty((M, N))
    cd, cr, cc = _pcg._masked_couplings(xb.G, p["gr"], p["gc"], p["ps"], p["pk"])
    _pcg._setup(xb.G, p["gs"], p["gk"], p["gr"], p["gc"], p["ps"], p["pk"], cr, cc, diag, lrow, lcol, ginv)
    for bad in (np.nan, np.inf, -np.inf):
        for layer in (0, 1):
            x, r, pd, q = (rng.uniform(-1, 1, (2, M, N)) for _ in range(4))
            x[layer, 2, 3] = bad
            _, z_max, x_max = _pcg._step(0.0, pd, q, x, r, lrow, lcol, ginv, np.empty((2, M, N)))
            assert (np.isnan(x_max) if np.isnan(bad) else x_max == np.inf)
            r[layer, 4, 5] = bad
            _, z_max, _ = _pcg._step(0.0, pd, q, x, r, lrow, lcol, ginv, np.empty((2, M, N)))
            assert not np.isfinite(z_max)


def test_repeated_solves_reuse_the_set_up_exactly():
    """The conditioned circuit, the grid parameters and the coarse space are kept per
    crossbar: a second solve gives the same bits as the first, at either tolerance, and
    the reported changes are the caller's own dict."""
    import importlib

    solve_module = importlib.import_module("xbarref.circuit.solve")

    rng = np.random.default_rng(5)
    xb = strong(100, 100, rng)  # large and coupled enough for the coarse space
    assert grid.coarse_block(xb.G, grid.grid_parameters(xb)) > 0
    V = rng.uniform(-0.3, 0.3, (2, 100))
    first = solve(xb, V, method="pcg")
    first.info["conditioned"]["scale"] = -1.0
    second = solve(xb, V, method="pcg")
    assert second.info["conditioned"]["scale"] != -1.0
    assert np.array_equal(first.I, second.I)
    loose = solve(xb, V, method="pcg", tol=1e-10)
    assert np.all(loose.residuals <= 1e-10)
    # the same as a set-up built from scratch
    c, _, scale, _ = solve_module._conditioned(xb, V, 1e-13, None)
    p = grid.grid_parameters(c)
    fresh = grid.solve_batch(c.G[None], p, V, 1e-13, grid.default_max_iter(100, 100), False,
                             grid.build_coarse(c.G, p, grid.coarse_block(c.G, p)))
    assert np.array_equal(fresh[0] / scale, first.I)


def test_set_up_kept_per_crossbar_is_freed_with_it():
    """What is kept per crossbar does not keep the crossbar alive (also when conditioning
    leaves it unchanged, G about 1 S: no scaling)."""
    import gc
    import weakref

    rng = np.random.default_rng(8)
    for G in (rng.uniform(1e-5, 1e-4, (100, 100)), rng.uniform(0.6, 0.9, (6, 5))):
        M, N = G.shape
        xb = Crossbar(G, r_source=10.0, r_sink=10.0, r_wire_row=30.0, r_wire_col=30.0)
        solve(xb, rng.uniform(0, 0.3, (2, M)), method="pcg")
        ref = weakref.ref(xb)
        del xb
        gc.collect()
        assert ref() is None
