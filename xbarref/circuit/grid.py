"""The grid solver: batched (deflated) PCG on the cell grid, and its coarse space.

Machinery behind :func:`xbarref.circuit.solve`: the conductances the kernels of
:mod:`xbarref.circuit._pcg` take, the two-level coarse space (aggregates of
``block x block`` cells, factored once per conductance matrix) and the batch driver,
which splits a batch over threads running the serial, GIL-free kernel.
"""

from __future__ import annotations

import os
import weakref
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
import scipy.sparse as sp

from xbarref.circuit import _pcg
from xbarref.circuit.system import factorize

#: Default error target of the iterative solvers (relative to outputs and node voltages).
TOL = 1e-13
#: Smallest problem (cells) on which the coarse space is used (below, the line solves alone
#: converge in a handful of iterations and the coarse set-up does not pay).
COARSE_MIN_CELLS = 96 * 96
#: Coupling strength above which the coarse space is used (see :func:`coupling_strength`).
COARSE_MIN_COUPLING = 2.0
#: Largest number of coarse unknowns (the coarse grid is at most about 32 x 32 cells: its
#: factorization and solves stay a small part of a solve).
COARSE_MAX_UNKNOWNS = 2 * 32 * 32
#: Inputs per thread below which a batch is not split over threads.
THREAD_MIN_INPUTS = 2


def grid_parameters(crossbar):
    """Conductances (siemens) and pin masks of a crossbar for the grid kernels.

    Returns a dict with ``gs`` (M,), ``gk`` (N,) source and sink conductances (0 where the
    resistance is 0: that node is pinned), ``gr`` (M, N-1) and ``gc`` (M-1, N) wire
    conductances, and the masks ``ps``, ``pk`` of zero source and sink resistances.
    """
    with np.errstate(divide="ignore"):
        gs = np.where(crossbar.r_source > 0, 1.0 / crossbar.r_source, 0.0)
        gk = np.where(crossbar.r_sink > 0, 1.0 / crossbar.r_sink, 0.0)
        gr = 1.0 / crossbar.r_wire_row
        gc = 1.0 / crossbar.r_wire_col
    return dict(gs=gs, gk=gk, gr=gr, gc=gc, ps=np.ascontiguousarray(crossbar.r_source == 0),
                pk=np.ascontiguousarray(crossbar.r_sink == 0))


#: Per crossbar (its arrays are read-only): grid parameters, and the coarse space of its own ``G``.
_PARAMETERS = weakref.WeakKeyDictionary()
_COARSE = weakref.WeakKeyDictionary()


def cached_parameters(crossbar):
    """:func:`grid_parameters` of ``crossbar``, computed once per crossbar."""
    p = _PARAMETERS.get(crossbar)
    if p is None:
        p = _PARAMETERS[crossbar] = grid_parameters(crossbar)
    return p


def cached_coarse(crossbar):
    """The coarse space of ``crossbar.G`` (:func:`coarse_block`, :func:`build_coarse`, or
    ``None``), built once per crossbar: repeated solves on one crossbar share it."""
    if crossbar not in _COARSE:
        p = cached_parameters(crossbar)
        block = coarse_block(crossbar.G, p)
        _COARSE[crossbar] = (build_coarse(crossbar.G, p, block) if block else no_coarse(),)
    return _COARSE[crossbar][0]


def grid_solvable(crossbar):
    """True when the grid kernels apply: every wire segment finite and non-zero."""
    return bool(np.all(crossbar.r_wire_row > 0) and np.all(crossbar.r_wire_col > 0))


def default_max_iter(M, N):
    """Iteration limit of the grid PCG solver for an M x N crossbar."""
    return int(200 + 4 * (M + N))


#: The empty right-hand sides that select the linear mode of :func:`_pcg.pcg_range`.
_NO_RHS = np.zeros((0, 2, 1, 1))


def _kernel_args(p):
    return p["gs"], p["gk"], p["gr"], p["gc"], p["ps"], p["pk"]


def no_coarse():
    """No coarse space (plain line-preconditioned CG): ``None``, which the kernels are
    compiled for separately, without the two-level code."""
    return None


def coupling_strength(G, p):
    """How strongly the lines couple: ``max(n^2 r_wire g_device)`` over rows and columns.

    A line of ``n`` cells with wire segments ``r_wire`` and devices ``g_device`` is nearly
    equipotential when this is small; then the line solves leave little to a coarse
    space. It is large (1e2-1e3) in the strong-coupling regime (tens of ohms per segment,
    0.1-1 mS devices).
    """
    M, N = G.shape
    row = (1.0 / p["gr"]).sum(axis=1) * G.sum(axis=1) if N > 1 else np.zeros(M)
    col = (1.0 / p["gc"]).sum(axis=0) * G.sum(axis=0) if M > 1 else np.zeros(N)
    return float(max(row.max(initial=0.0), col.max(initial=0.0)))


def coarse_block(G, p):
    """Side (cells) of the coarse aggregates for conductances ``G``, or 0 for none."""
    M, N = G.shape
    if M * N < COARSE_MIN_CELLS or coupling_strength(G, p) < COARSE_MIN_COUPLING:
        return 0
    block = 4
    while 2 * -(-M // block) * -(-N // block) > COARSE_MAX_UNKNOWNS:
        block *= 2
    return block


def build_coarse(G, p, block):
    """The coarse space of aggregates of ``block x block`` cells for conductances ``G``.

    ``E = Z^T K Z`` is assembled by a kernel and factored by SuperLU
    (:func:`~xbarref.circuit.system.factorize` with minimum-degree ordering on ``E + E^T``); the
    factors are handed to the kernels as CSR triangles. Returns the tuple the kernels take.
    """
    M, N = G.shape
    cmap, n = _pcg.aggregate_map(M, N, block, block, p["ps"], p["pk"])
    indptr, indices, data = _pcg.coarse_matrix(G, *_kernel_args(p), cmap, n)
    E = sp.csr_matrix((data, indices, indptr), shape=(n, n))
    lu = factorize(E, ordering="MMD_AT_PLUS_A")
    L = lu.L.tocsr()
    U = lu.U.tocsr()
    Ls = sp.tril(L, k=-1, format="csr")
    Us = sp.triu(U, k=1, format="csr")

    def arrays(T):
        return (T.indptr.astype(np.int64), T.indices.astype(np.int64), np.ascontiguousarray(T.data, np.float64))

    return (cmap, *arrays(Ls), np.ascontiguousarray(L.diagonal()), *arrays(Us),
            np.ascontiguousarray(U.diagonal()), lu.perm_r.astype(np.int64), lu.perm_c.astype(np.int64))


def n_threads():
    """Threads a batch is split over (``NUMBA_NUM_THREADS``, else the CPU count)."""
    return max(1, int(numba.config.NUMBA_NUM_THREADS or os.cpu_count() or 1))


def solve_batch(G_all, p, V, tol, max_iter, nodes, coarse="auto"):
    """Solve a batch on the grid; returns ``(I, x, iterations, error estimates)``.

    ``G_all`` is (1, M, N) (shared) or (B, M, N) (per input); ``coarse`` is a coarse
    space of the shared ``G`` (from :func:`build_coarse`), ``None`` for none, or
    ``"auto"``: picked by :func:`coarse_block` (per-input batches get none). The batch is split in contiguous ranges over :func:`n_threads`
    threads, each running the serial kernel with the GIL released.
    """
    B, M = V.shape
    N = G_all.shape[2]
    if isinstance(coarse, str):
        block = coarse_block(G_all[0], p) if G_all.shape[0] == 1 else 0
        coarse = build_coarse(G_all[0], p, block) if block else no_coarse()
    I = np.empty((B, N))
    x = np.empty((B if nodes else 0, 2, M, N))
    iters = np.zeros(B, np.int64)
    res = np.full(B, np.inf)
    args = (G_all, *_kernel_args(p), V, _NO_RHS, float(tol), int(max_iter), coarse, np.arange(B))
    _run_split(_pcg.pcg_range, args, B, (I, x, iters, res))
    return I, x, iters, res


def _run_split(kernel, args, n, outs):
    """Run ``kernel(*args, k0, k1, *outs)`` over ``0..n`` split across threads."""
    threads = min(n_threads(), n // THREAD_MIN_INPUTS)
    if threads <= 1:
        kernel(*args, 0, n, *outs)
        return
    bounds = np.linspace(0, n, threads + 1).astype(int)
    with ThreadPoolExecutor(threads) as pool:
        jobs = [pool.submit(kernel, *args, int(bounds[t]), int(bounds[t + 1]), *outs) for t in range(threads)]
        for job in jobs:
            job.result()


def solve_rhs_batch(gd_all, p, b_all, which, tol, max_iter, x_all=None):
    """Solve ``K_k x = b_k`` on the grid for the inputs ``which`` (Newton steps).

    ``gd_all`` (B, M, N) device conductances per input, ``b_all`` (B, 2, M, N) right-hand
    sides (0 at pinned nodes). Returns ``(x_all, iterations, error estimates)``, each over
    the whole batch (only the entries ``which`` are written).
    """
    B = b_all.shape[0]
    if x_all is None:
        x_all = np.zeros_like(b_all)
    iters = np.zeros(B, np.int64)
    res = np.zeros(B)
    which = np.ascontiguousarray(which, np.int64)
    V = np.zeros((B, gd_all.shape[1]))
    I = np.zeros((0, gd_all.shape[2]))
    args = (gd_all, *_kernel_args(p), V, b_all, float(tol), int(max_iter), no_coarse(), which)
    _run_split(_pcg.pcg_range, args, which.shape[0], (I, x_all, iters, res))
    return x_all, iters, res


def run_split(fn, which):
    """Call ``fn(part)`` on contiguous parts of the index array ``which``, one per thread
    (``fn`` must release the GIL to gain anything, as the Numba kernels here do)."""
    threads = min(n_threads(), which.shape[0] // THREAD_MIN_INPUTS)
    if threads <= 1:
        fn(which)
        return
    parts = np.array_split(which, threads)
    with ThreadPoolExecutor(threads) as pool:
        for job in [pool.submit(fn, part) for part in parts]:
            job.result()
