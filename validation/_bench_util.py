"""Helpers of ``validation/bench_solver.py``: the benchmark circuit, timers, the naive baseline.

The naive baseline is written here in plain NumPy/SciPy on purpose (it shares no code
with :mod:`xbarref.circuit`): the nodal matrix of the crossbar of
``docs/case-format.md`` with every resistance non-zero, one unknown per row node
``r(i, j)`` (index ``i * N + j``) and per column node ``c(i, j)`` (index
``M * N + i * N + j``), assembled as a ``scipy.sparse.coo_matrix`` and converted to CSC.
"""

from __future__ import annotations

import os
import resource
import tempfile
import time

import numpy as np
import scipy.sparse as sp

#: Circuit of the benchmark (a typical PCM-like regime): ohms and siemens.
R_SOURCE = 500.0
R_SINK = 100.0
R_WIRE = 1.0
G_MIN, G_MAX = 5e-6, 50e-6
V_MAX = 0.3


def make_crossbar(M, N, rng, device="linear", sinh_k=None):
    """The benchmark crossbar: G uniform in [5, 50] uS, 500 / 100 / 1 ohm."""
    from xbarref.circuit import Crossbar

    G = rng.uniform(G_MIN, G_MAX, size=(M, N))
    return Crossbar(G, r_source=R_SOURCE, r_sink=R_SINK, r_wire_row=R_WIRE, r_wire_col=R_WIRE,
                    device=device, sinh_k=sinh_k)


def inputs(B, M, rng, low=-V_MAX, high=V_MAX):
    """Input voltages (B, M) uniform in [low, high] volts."""
    return rng.uniform(low, high, size=(B, M))


def timed(fn, repeat_below=1.0, repeat=3):
    """Run ``fn``; if it took less than ``repeat_below`` seconds, run it ``repeat`` times in
    all and keep the best. Returns ``(seconds, result of the last run)``."""
    t0 = time.perf_counter()
    out = fn()
    best = time.perf_counter() - t0
    if best < repeat_below:
        for _ in range(repeat - 1):
            t0 = time.perf_counter()
            out = fn()
            best = min(best, time.perf_counter() - t0)
    return best, out


def peak_rss_mb():
    """Peak resident set size of this process so far, MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def load_average():
    """The 1, 5 and 15 minute load averages as a string."""
    a, b, c = os.getloadavg()
    return f"{a:.2f} {b:.2f} {c:.2f}"


def atomic_write_text(path, text):
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# -- the naive baseline -----------------------------------------------------------------------

class NaiveSystem:
    """Plain nodal system of a crossbar (no merging, no ordering), built with ``coo_matrix``.

    Attributes
    ----------
    K : scipy.sparse.csc_matrix, shape (2 M N, 2 M N)
        Nodal conductance matrix in siemens.
    src_node, sink_node : ndarray of int
        Unknown index of ``r(i, 0)`` (M,) and of ``c(M-1, j)`` (N,).
    gs, gk : ndarray
        Source (M,) and sink (N,) conductances in siemens.
    """

    def __init__(self, G, r_source, r_sink, r_wire_row, r_wire_col):
        G = np.asarray(G, dtype=np.float64)
        M, N = G.shape
        n = 2 * M * N
        r = np.arange(M * N).reshape(M, N)
        c = r + M * N
        gs = 1.0 / np.broadcast_to(np.asarray(r_source, float), (M,))
        gk = 1.0 / np.broadcast_to(np.asarray(r_sink, float), (N,))
        grow = 1.0 / np.broadcast_to(np.asarray(r_wire_row, float), (M, N - 1))
        gcol = 1.0 / np.broadcast_to(np.asarray(r_wire_col, float), (M - 1, N))
        # two-terminal branches between unknowns: devices, row wires, column wires
        a = np.concatenate([r.ravel(), r[:, :-1].ravel(), c[:-1, :].ravel()])
        b = np.concatenate([c.ravel(), r[:, 1:].ravel(), c[1:, :].ravel()])
        g = np.concatenate([G.ravel(), grow.ravel(), gcol.ravel()])
        # branches to a terminal only add to the diagonal
        self.src_node = r[:, 0].copy()
        self.sink_node = c[-1, :].copy()
        rows = np.concatenate([a, b, a, b, self.src_node, self.sink_node])
        cols = np.concatenate([a, b, b, a, self.src_node, self.sink_node])
        vals = np.concatenate([g, g, -g, -g, gs, gk])
        self.K = sp.coo_matrix((vals, (rows, cols)), shape=(n, n)).tocsc()
        self.gs, self.gk = gs, gk
        self.M, self.N, self.n = M, N, n

    def rhs(self, V):
        """Dense right-hand sides (2 M N, B) in amperes for inputs ``V`` (B, M)."""
        out = np.zeros((self.n, V.shape[0]))
        out[self.src_node, :] = self.gs[:, None] * V.T
        return out

    def currents(self, x):
        """Output currents (B, N) from node voltages ``x`` (2 M N, B)."""
        return (self.gk[:, None] * x[self.sink_node, :]).T

    def sink_rhs(self, cols):
        """Dense sink-coupling right-hand sides (2 M N, len(cols)): ``gk[j]`` at ``c(M-1, j)``."""
        out = np.zeros((self.n, len(cols)))
        out[self.sink_node[cols], np.arange(len(cols))] = self.gk[cols]
        return out

    def effective_columns(self, Y, cols):
        """Columns ``cols`` of the effective matrix from ``Y = K^-1 sink_rhs(cols)``.

        ``I_j = gk_j x_c(M-1, j)`` with ``x = K^-1 Ps V`` and ``K`` symmetric, so
        ``A[:, j] = Ps^T K^-1 (gk_j e_c(M-1, j))`` where ``Ps`` has ``gs[i]`` at ``r(i, 0)``.
        """
        return self.gs[:, None] * Y[self.src_node, :]
