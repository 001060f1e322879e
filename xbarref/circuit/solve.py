"""The solver front door: pick the right exact method for a crossbar and a batch of inputs."""

from __future__ import annotations

import time

import numpy as np

from xbarref.circuit.crossbar import check_inputs
from xbarref.circuit.direct import SCHUR_WORK, CrossbarSolution, DirectSolver
from xbarref.circuit.grid import TOL, default_max_iter, grid_parameters, grid_solvable, solve_batch
from xbarref.circuit.newton import solve_newton
from xbarref.errors import XbarrefError

METHODS = ("auto", "pcg", "direct")


def _check_method(method):
    if method not in METHODS:
        raise XbarrefError(f"method: expected one of {METHODS}, got {method!r}")


def solve(crossbar, V, nodes=False, method="auto", tol=TOL, max_iter=None, newton_options=None):
    """Solve a crossbar for a batch of input voltages.

    Parameters
    ----------
    crossbar : Crossbar
        The circuit.
    V : array_like, shape (B, M) or (M,)
        Row driver voltages in volts.
    nodes : bool
        Also return row and column node voltages (B, M, N).
    method : {"auto", "pcg", "direct"}
        ``pcg``: the batched preconditioned conjugate-gradient solver (needs non-zero
        wire segments; inputs it does not converge on are re-solved directly);
        ``direct``: sparse factorization; ``auto``: PCG where it applies, except for
        batches of currents only of more than ``max(M, N) / 8`` inputs on arrays large
        enough for the Schur-complement effective matrix (see
        :meth:`DirectSolver.effective_matrix`), which then costs less than the solves;
        direct where PCG does not apply. Non-linear devices are
        always solved by Newton's method (:func:`xbarref.circuit.newton.solve_newton`).
    tol : float
        Relative residual of the iterative solvers.
    max_iter : int, optional
        Iteration limit of the iterative solver.
    newton_options : NewtonOptions, optional
        Convergence settings for non-linear devices.

    Returns
    -------
    CrossbarSolution
    """
    _check_method(method)
    M, N = crossbar.shape
    V = check_inputs(V, M)
    if not crossbar.is_linear:
        return solve_newton(crossbar, V, nodes=nodes, options=newton_options)
    B = V.shape[0]
    if method == "pcg" and not grid_solvable(crossbar):
        method = "direct"
    if method == "auto":
        if not grid_solvable(crossbar):
            method = "direct"
        elif not nodes and B > max(M, N) // 8 and 2 * M * N * min(M, N) > SCHUR_WORK:
            solver = DirectSolver(crossbar)
            t0 = time.perf_counter()
            A = solver.effective_matrix()
            I = V @ A
            info = dict(solver.timings, matmul=time.perf_counter() - t0)
            # no per-input residual: the currents are as exact as A (see effective_matrix)
            return CrossbarSolution(I=I, residuals=np.full(B, np.nan), method="effective-matrix", info=info)
        else:
            method = "pcg"
    if method == "direct":
        return DirectSolver(crossbar).solve(V, nodes=nodes)
    return _solve_pcg(crossbar, crossbar.G[None], V, nodes, tol, max_iter)


def solve_per_read(crossbar, G_batch, V, nodes=False, tol=TOL, max_iter=None, newton_options=None):
    """Solve a batch in which every input has its own conductance matrix.

    This is what read noise needs: read ``k`` applies ``V[k]`` to the crossbar with
    conductances ``G_batch[k]`` (the resistances of ``crossbar`` are shared; its own
    ``G`` is ignored). Each read is its own circuit, solved by the batched PCG solver;
    reads on which it does not reach ``tol`` (and circuits with zero wire segments) are
    solved by the direct solver.

    Parameters
    ----------
    crossbar : Crossbar
        Resistances and device (linear).
    G_batch : array_like, shape (B, M, N)
        Conductances in siemens of each read, finite and >= 0.
    V : array_like, shape (B, M)
        Input voltages of each read.
    newton_options : NewtonOptions, optional
        Convergence settings for non-linear devices (each read is its own Newton solve).

    Returns
    -------
    CrossbarSolution
    """
    M, N = crossbar.shape
    V = check_inputs(V, M)
    G_batch = np.asarray(G_batch, dtype=np.float64)
    if G_batch.ndim != 3 or G_batch.shape[1:] != (M, N) or G_batch.shape[0] != V.shape[0]:
        raise XbarrefError(
            f"G_batch: expected shape ({V.shape[0]}, {M}, {N}) (one conductance matrix per input), "
            f"got {G_batch.shape}"
        )
    if not np.all(np.isfinite(G_batch)) or np.any(G_batch < 0):
        raise XbarrefError("G_batch: conductances must be finite and >= 0 S")
    if not crossbar.is_linear:
        return solve_newton(crossbar, V, nodes=nodes, G_batch=G_batch, options=newton_options)
    if not grid_solvable(crossbar):
        return _direct_per_read(crossbar, G_batch, V, nodes, np.arange(V.shape[0]))
    return _solve_pcg(crossbar, np.ascontiguousarray(G_batch), V, nodes, tol, max_iter)


def _solve_pcg(crossbar, G_all, V, nodes, tol, max_iter):
    M, N = crossbar.shape
    if max_iter is None:
        max_iter = default_max_iter(M, N)
    t0 = time.perf_counter()
    I, x, iters, res = solve_batch(G_all, grid_parameters(crossbar), V, tol, max_iter, nodes)
    info = {"solve": time.perf_counter() - t0}
    sol = CrossbarSolution(I=I, residuals=res, iterations=iters, method="pcg", info=info)
    if nodes:
        sol.V_row = np.ascontiguousarray(x[:, 0])
        sol.V_col = np.ascontiguousarray(x[:, 1])
    bad = np.flatnonzero(~(res <= tol))
    if bad.size:
        # fall back to the direct solver for the inputs PCG did not converge on
        fix = _direct_per_read(crossbar, G_all, V, nodes, bad)
        sol.I[bad] = fix.I
        sol.residuals[bad] = fix.residuals
        if nodes:
            sol.V_row[bad] = fix.V_row
            sol.V_col[bad] = fix.V_col
        sol.method = "pcg+direct"
        sol.info["direct_fallback"] = bad
    return sol


def _direct_per_read(crossbar, G_all, V, nodes, which):
    """Direct solves of the inputs ``which``; ``G_all`` is (1, M, N) or (B, M, N)."""
    M, N = crossbar.shape
    n = len(which)
    I = np.empty((n, N))
    res = np.empty(n)
    V_row = np.empty((n, M, N)) if nodes else None
    V_col = np.empty((n, M, N)) if nodes else None
    if G_all.shape[0] == 1:
        s = DirectSolver(crossbar.replace(G=G_all[0])).solve(V[which], nodes=nodes)
        return s
    for t, k in enumerate(which):
        s = DirectSolver(crossbar.replace(G=G_all[k])).solve(V[k:k + 1], nodes=nodes)
        I[t] = s.I[0]
        res[t] = s.residuals[0]
        if nodes:
            V_row[t] = s.V_row[0]
            V_col[t] = s.V_col[0]
    return CrossbarSolution(I=I, V_row=V_row, V_col=V_col, residuals=res, method="direct")
