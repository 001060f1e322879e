"""Compile the solver kernels once, before worker processes start.

Numba compiles a kernel on its first call and caches it on disk (``cache=True``).
Worker processes that start with a cold cache would each compile the same kernels at
the same time; :func:`warm_up`, called in the parent first (``golden make`` does),
compiles them once so that every worker only loads them from the cache.
"""

from __future__ import annotations

import numpy as np

from xbarref.circuit.crossbar import Crossbar
from xbarref.circuit.direct import DirectSolver
from xbarref.circuit.solve import solve, solve_per_read


def _crossbar(M, N, **kw):
    """A small deterministic crossbar (no random draws): G from 10 to 100 uS."""
    G = np.linspace(1e-5, 1e-4, M * N).reshape(M, N)
    args = dict(r_source=10.0, r_sink=10.0, r_wire_row=1.0, r_wire_col=1.0)
    args.update(kw)
    return Crossbar(G, **args)


def warm_up():
    """Run every common solver path once on tiny crossbars (compiles or loads the kernels).

    Covers the grid PCG solver (shared and per-input conductances), the direct solver and
    effective matrix (assembly kernels), and Newton's method for the built-in ``sinh``
    law. The two-level (coarse-space) variant, used only from 96 x 96 cells, is left to
    compile where it is first needed. Takes seconds on a cold cache and well under a
    second on a warm one.
    """
    xb = _crossbar(6, 5)
    V = np.linspace(-0.3, 0.3, 18).reshape(3, 6)
    solve(xb, V, method="pcg")
    solve_per_read(xb, np.stack([xb.G] * 3), V)
    DirectSolver(xb).solve(V)
    DirectSolver(xb.replace(r_wire_row=0.0)).effective_matrix()
    solve(_crossbar(6, 5, device="sinh", sinh_k=3.0), np.abs(V))
