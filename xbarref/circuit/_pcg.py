"""Numba kernels: preconditioned conjugate gradients on the crossbar grid.

The unknowns are kept on the cell grid: ``x[0, i, j]`` is row node ``r(i, j)`` and
``x[1, i, j]`` column node ``c(i, j)`` (volts). This layout needs every wire segment to
be finite and non-zero (a zero segment merges nodes; the direct solver takes those
circuits). A zero source or sink resistance *pins* its node: that node's equation becomes
``x = value`` and its couplings move to the right-hand side, so the system stays SPD.

Symbols inside the kernels (all siemens unless said otherwise):

- ``gd[i, j]``: device conductance (or, for Newton, the device's differential conductance),
- ``gs[i]``, ``gk[j]``: source and sink conductances (unused where pinned),
- ``gr[i, j]``: row wire ``r(i, j)``--``r(i, j+1)``; ``gc[i, j]``: column wire ``c(i, j)``--``c(i+1, j)``,
- ``ps[i]``, ``pk[j]``: True where the source / sink resistance is 0 (node pinned).

The preconditioner solves every row wire and every column wire exactly: it is the
nodal matrix without the device couplings ``r(i, j)``--``c(i, j)`` (their conductances
stay on the diagonal), i.e. M independent tridiagonal systems along the rows and N along
the columns, factored once per matrix (LDL^T). Because wires conduct far better than
devices, the preconditioned matrix is close to the identity and CG converges in few
iterations.
"""

import numpy as np
from numba import njit, prange


@njit(cache=True)
def _setup(gd, gs, gk, gr, gc, ps, pk, diag, lrow, lcol, ginv):
    """Diagonal and LDL^T factors of the row and column tridiagonal preconditioner."""
    M, N = gd.shape
    for i in range(M):
        for j in range(N):
            dr = gd[i, j]
            if j > 0:
                dr += gr[i, j - 1]
            if j < N - 1:
                dr += gr[i, j]
            if j == 0:
                dr += gs[i]
            dc = gd[i, j]
            if i > 0:
                dc += gc[i - 1, j]
            if i < M - 1:
                dc += gc[i, j]
            if i == M - 1:
                dc += gk[j]
            diag[0, i, j] = dr
            diag[1, i, j] = dc
        if ps[i]:
            diag[0, i, 0] = 1.0
        if i == M - 1:
            for j in range(N):
                if pk[j]:
                    diag[1, i, j] = 1.0
    # rows: LDL^T along j
    for i in range(M):
        d = diag[0, i, 0]
        ginv[0, i, 0] = 1.0 / d
        lrow[i, 0] = 0.0
        for j in range(1, N):
            off = -_row_coupling(gr, ps, i, j - 1)
            l = off / d
            lrow[i, j] = l
            d = diag[0, i, j] - l * off
            ginv[0, i, j] = 1.0 / d
    # columns: LDL^T along i, vectorised across j
    for j in range(N):
        ginv[1, 0, j] = 1.0 / diag[1, 0, j]
        lcol[0, j] = 0.0
    for i in range(1, M):
        for j in range(N):
            off = -_col_coupling(gc, pk, i - 1, j, M)
            l = off * ginv[1, i - 1, j]
            lcol[i, j] = l
            ginv[1, i, j] = 1.0 / (diag[1, i, j] - l * off)


@njit(cache=True, inline="always")
def _row_coupling(gr, ps, i, j):
    """Conductance of row segment (i, j) as seen by the unknowns (0 next to a pinned node)."""
    if j == 0 and ps[i]:
        return 0.0
    return gr[i, j]


@njit(cache=True, inline="always")
def _col_coupling(gc, pk, i, j, M):
    if i + 1 == M - 1 and pk[j]:
        return 0.0
    return gc[i, j]


@njit(cache=True)
def _matvec(gd, gr, gc, ps, pk, diag, p, q):
    """``q = K p`` on the grid; returns ``p . q``."""
    M, N = gd.shape
    pq = 0.0
    for i in range(M):
        for j in range(N):
            pr = p[0, i, j]
            pc = p[1, i, j]
            dev = gd[i, j]
            if (j == 0 and ps[i]) or (i == M - 1 and pk[j]):
                dev = 0.0
            yr = diag[0, i, j] * pr - dev * pc
            yc = diag[1, i, j] * pc - dev * pr
            if j > 0:
                yr -= _row_coupling(gr, ps, i, j - 1) * p[0, i, j - 1]
            if j < N - 1:
                yr -= _row_coupling(gr, ps, i, j) * p[0, i, j + 1]
            if i > 0:
                yc -= _col_coupling(gc, pk, i - 1, j, M) * p[1, i - 1, j]
            if i < M - 1:
                yc -= _col_coupling(gc, pk, i, j, M) * p[1, i + 1, j]
            q[0, i, j] = yr
            q[1, i, j] = yc
            pq += pr * yr + pc * yc
    return pq


@njit(cache=True)
def _backward_error(gd, gr, gc, ps, pk, diag, x, b, r):
    """Residual ``r = b - K x`` and its componentwise backward error.

    Returns ``max_n |r_n| / (sum_m |K_nm x_m| + |b_n|)``: the largest relative
    Kirchhoff imbalance at any node, measured against the currents meeting there. A
    value ``w`` means ``x`` solves exactly a circuit whose every conductance is perturbed
    by a relative amount of at most ``w``.
    """
    M, N = gd.shape
    worst = 0.0
    for i in range(M):
        for j in range(N):
            for s in range(2):
                dev = gd[i, j]
                if (j == 0 and ps[i]) or (i == M - 1 and pk[j]):
                    dev = 0.0
                own = x[s, i, j]
                other = x[1 - s, i, j]
                y = diag[s, i, j] * own - dev * other
                den = abs(diag[s, i, j] * own) + abs(dev * other) + abs(b[s, i, j])
                if s == 0:
                    if j > 0:
                        t = _row_coupling(gr, ps, i, j - 1) * x[0, i, j - 1]
                        y -= t
                        den += abs(t)
                    if j < N - 1:
                        t = _row_coupling(gr, ps, i, j) * x[0, i, j + 1]
                        y -= t
                        den += abs(t)
                else:
                    if i > 0:
                        t = _col_coupling(gc, pk, i - 1, j, M) * x[1, i - 1, j]
                        y -= t
                        den += abs(t)
                    if i < M - 1:
                        t = _col_coupling(gc, pk, i, j, M) * x[1, i + 1, j]
                        y -= t
                        den += abs(t)
                rv = b[s, i, j] - y
                r[s, i, j] = rv
                if rv != 0.0:
                    w = abs(rv) / den if den > 0.0 else np.inf
                    if w > worst:
                        worst = w
    return worst


@njit(cache=True)
def _precondition(gr, gc, ps, pk, lrow, lcol, ginv, r, z):
    """``z = P^{-1} r``: exact solves along every row wire and every column wire; returns ``r . z``."""
    M, N = lrow.shape
    # rows
    for i in range(M):
        z[0, i, 0] = r[0, i, 0]
        for j in range(1, N):
            z[0, i, j] = r[0, i, j] - lrow[i, j] * z[0, i, j - 1]
        for j in range(N):
            z[0, i, j] *= ginv[0, i, j]
        for j in range(N - 2, -1, -1):
            z[0, i, j] -= lrow[i, j + 1] * z[0, i, j + 1]
    # columns, vectorised across j
    for j in range(N):
        z[1, 0, j] = r[1, 0, j]
    for i in range(1, M):
        for j in range(N):
            z[1, i, j] = r[1, i, j] - lcol[i, j] * z[1, i - 1, j]
    for i in range(M):
        for j in range(N):
            z[1, i, j] *= ginv[1, i, j]
    for i in range(M - 2, -1, -1):
        for j in range(N):
            z[1, i, j] -= lcol[i + 1, j] * z[1, i + 1, j]
    rz = 0.0
    for s in range(2):
        for i in range(M):
            for j in range(N):
                rz += r[s, i, j] * z[s, i, j]
    return rz


@njit(cache=True)
def _dot(a, b):
    s = 0.0
    for t in range(a.size):
        s += a.flat[t] * b.flat[t]
    return s


@njit(cache=True)
def pcg_core(gd, gs, gk, gr, gc, ps, pk, b, x, tol, max_iter):
    """Solve ``K x = b`` by PCG from the initial ``x`` (updated in place).

    CG runs until ``||r||_2 <= tol * ||b||_2``; then the true residual is recomputed and
    the solve stops when its componentwise backward error (:func:`_backward_error`) is
    at most ``tol``, else CG restarts with a hundred times tighter inner target.
    Returns ``(iterations, backward error)``; the caller checks convergence.
    """
    M, N = gd.shape
    diag = np.empty((2, M, N))
    ginv = np.empty((2, M, N))
    lrow = np.empty((M, N))
    lcol = np.empty((M, N))
    _setup(gd, gs, gk, gr, gc, ps, pk, diag, lrow, lcol, ginv)
    r = np.empty((2, M, N))
    z = np.empty((2, M, N))
    p = np.empty((2, M, N))
    q = np.empty((2, M, N))
    bnorm = np.sqrt(_dot(b, b))
    if bnorm == 0.0:
        x[:] = 0.0
        return 0, 0.0
    it = 0
    inner_tol = tol
    while True:
        # (re)start from the true residual; stop on the componentwise backward error
        omega = _backward_error(gd, gr, gc, ps, pk, diag, x, b, r)
        if omega <= tol or it >= max_iter:
            return it, omega
        rz = _precondition(gr, gc, ps, pk, lrow, lcol, ginv, r, z)
        p[:] = z
        inner = 0
        while it < max_iter:
            pq = _matvec(gd, gr, gc, ps, pk, diag, p, q)
            if pq <= 0.0:
                break
            alpha = rz / pq
            rr = 0.0
            for t in range(x.size):
                x.flat[t] += alpha * p.flat[t]
                rv = r.flat[t] - alpha * q.flat[t]
                r.flat[t] = rv
                rr += rv * rv
            it += 1
            inner += 1
            if np.sqrt(rr) <= inner_tol * bnorm:
                break
            rz_new = _precondition(gr, gc, ps, pk, lrow, lcol, ginv, r, z)
            beta = rz_new / rz
            rz = rz_new
            for t in range(p.size):
                p.flat[t] = z.flat[t] + beta * p.flat[t]
        if inner == 0:
            return it, _backward_error(gd, gr, gc, ps, pk, diag, x, b, r)
        inner_tol *= 1e-2


@njit(cache=True)
def linear_rhs(G, gs, gr, ps, pk, V, b):
    """Right-hand side of the linear crossbar for input voltages ``V`` (M,) into ``b`` (2, M, N)."""
    M, N = G.shape
    b[:] = 0.0
    for i in range(M):
        if ps[i]:
            b[0, i, 0] = V[i]
            if N > 1:
                b[0, i, 1] += gr[i, 0] * V[i]
            if not (i == M - 1 and pk[0]):  # a device between two pinned nodes adds nothing
                b[1, i, 0] += G[i, 0] * V[i]
        else:
            b[0, i, 0] = gs[i] * V[i]


@njit(cache=True)
def sink_current(G, gc, gk, pk, x, out):
    """Output currents (N,) from the grid voltages ``x`` (2, M, N): KCL at pinned sinks."""
    M, N = G.shape
    for j in range(N):
        if pk[j]:
            s = G[M - 1, j] * x[0, M - 1, j]
            if M > 1:
                s += gc[M - 2, j] * x[1, M - 2, j]
            out[j] = s
        else:
            out[j] = gk[j] * x[1, M - 1, j]


@njit(cache=True, parallel=True)
def pcg_batch_linear(G_all, gs, gk, gr, gc, ps, pk, V, tol, max_iter, want_nodes):
    """Solve a batch of linear crossbars in parallel over the batch.

    ``G_all`` is (1, M, N) for one shared conductance matrix or (B, M, N) for one per
    input (per-read noise). Returns currents (B, N), node voltages (B, 2, M, N) (empty
    unless ``want_nodes``), iterations (B,) and relative residuals (B,).
    """
    B, M = V.shape
    N = G_all.shape[2]
    I = np.empty((B, N))
    nodes = np.empty((B if want_nodes else 0, 2, M, N))
    iters = np.empty(B, np.int64)
    res = np.empty(B)
    gidx = np.zeros(B, np.int64)
    if G_all.shape[0] > 1:
        gidx = np.arange(B)
    for k in prange(B):
        G = G_all[gidx[k]]
        b = np.empty((2, M, N))
        linear_rhs(G, gs, gr, ps, pk, V[k], b)
        x = np.zeros((2, M, N))
        for i in range(M):  # start: row nodes at their drive voltage, columns at 0 V
            for j in range(N):
                x[0, i, j] = V[k, i]
        for j in range(N):
            if pk[j]:
                x[1, M - 1, j] = 0.0
        it, rel = pcg_core(G, gs, gk, gr, gc, ps, pk, b, x, tol, max_iter)
        iters[k] = it
        res[k] = rel
        out = np.empty(N)
        sink_current(G, gc, gk, pk, x, out)
        I[k] = out
        if want_nodes:
            nodes[k] = x
    return I, nodes, iters, res
