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
def _setup(gd, gs, gk, gr, gc, ps, pk, cr, cc, diag, lrow, lcol, ginv):
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
            off = -cr[i, j - 1]
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
            off = -cc[i - 1, j]
            l = off * ginv[1, i - 1, j]
            lcol[i, j] = l
            ginv[1, i, j] = 1.0 / (diag[1, i, j] - l * off)


@njit(cache=True)
def _masked_couplings(gd, gr, gc, ps, pk):
    """Device, row-wire and column-wire couplings between unknowns (0 next to a pinned node)."""
    M, N = gd.shape
    cd = gd.copy()
    cr = gr.copy()
    cc = gc.copy()
    for i in range(M):
        if ps[i]:
            cd[i, 0] = 0.0
            if N > 1:
                cr[i, 0] = 0.0
    for j in range(N):
        if pk[j]:
            cd[M - 1, j] = 0.0
            if M > 1:
                cc[M - 2, j] = 0.0
    return cd, cr, cc


@njit(cache=True)
def _direction_matvec(cd, cr, cc, diag, p, q):
    """``q = K p`` on the grid; returns ``p . q``."""
    M, N = cd.shape
    pr = p[0]
    pc = p[1]
    qr = q[0]
    qc = q[1]
    dr = diag[0]
    dc = diag[1]
    pq = 0.0
    for i in range(M):
        for j in range(N):
            yr = dr[i, j] * pr[i, j] - cd[i, j] * pc[i, j]
            yc = dc[i, j] * pc[i, j] - cd[i, j] * pr[i, j]
            if j > 0:
                yr -= cr[i, j - 1] * pr[i, j - 1]
            if j < N - 1:
                yr -= cr[i, j] * pr[i, j + 1]
            if i > 0:
                yc -= cc[i - 1, j] * pc[i - 1, j]
            if i < M - 1:
                yc -= cc[i, j] * pc[i + 1, j]
            qr[i, j] = yr
            qc[i, j] = yc
            pq += pr[i, j] * yr + pc[i, j] * yc
    return pq


@njit(cache=True)
def _new_direction(z, p, beta):
    """``p = z + beta p``."""
    M, N = z.shape[1], z.shape[2]
    for s in range(2):
        for i in range(M):
            for j in range(N):
                p[s, i, j] = z[s, i, j] + beta * p[s, i, j]


@njit(cache=True)
def _kcl_residual(gd, gs, gk, gr, gc, ps, pk, x, b, r):
    """Residual ``r = b - K x``, with ``K x`` summed from branch currents.

    Each branch current is ``g * (v_a - v_b)``; differences of nearby voltages are exact
    in floating point, so ``r`` is accurate to rounding in the branch currents rather
    than in the much larger products ``g * v``. A branch to a pinned node ``m`` is not in
    ``K`` as a coupling (its ``g x_m`` sits in ``b``), so ``g x_m`` is taken off ``b``
    and the branch counted whole. Pinned nodes hold their values and have zero residual.
    """
    M, N = gd.shape
    for i in range(M):
        for j in range(N):
            dv = gd[i, j] * (x[0, i, j] - x[1, i, j])
            if j == 0 and ps[i]:
                r[0, i, j] = 0.0
            else:
                rv = b[0, i, j] - dv
                if i == M - 1 and pk[j]:
                    rv -= gd[i, j] * x[1, i, j]
                if j > 0:
                    rv -= gr[i, j - 1] * (x[0, i, j] - x[0, i, j - 1])
                    if j == 1 and ps[i]:
                        rv -= gr[i, 0] * x[0, i, 0]
                if j < N - 1:
                    rv -= gr[i, j] * (x[0, i, j] - x[0, i, j + 1])
                if j == 0:
                    rv -= gs[i] * x[0, i, j]
                r[0, i, j] = rv
            if i == M - 1 and pk[j]:
                r[1, i, j] = 0.0
            else:
                rv = b[1, i, j] + dv
                if j == 0 and ps[i]:
                    rv -= gd[i, j] * x[0, i, j]
                if i > 0:
                    rv -= gc[i - 1, j] * (x[1, i, j] - x[1, i - 1, j])
                if i < M - 1:
                    rv -= gc[i, j] * (x[1, i, j] - x[1, i + 1, j])
                    if i == M - 2 and pk[j]:
                        rv -= gc[i, j] * x[1, i + 1, j]
                if i == M - 1:
                    rv -= gk[j] * x[1, i, j]
                r[1, i, j] = rv


@njit(cache=True)
def _sink_current(gd, gc, gk, pk, x, j):
    """Current into sink ``j`` for node voltages ``x`` (KCL at a pinned sink)."""
    M = gd.shape[0]
    if pk[j]:
        s = gd[M - 1, j] * x[0, M - 1, j]
        if M > 1:
            s += gc[M - 2, j] * x[1, M - 2, j]
        return s
    return gk[j] * x[1, M - 1, j]


@njit(cache=True)
def _error_estimate(gd, gc, gk, pk, x, z):
    """Relative size of the correction ``z = P^{-1} r`` of the outputs and node voltages.

    ``P`` holds every wire exactly and misses only the (weak) device couplings, so
    ``z`` approximates the error ``K^{-1} r`` of ``x``. Returns the larger of
    ``max_j |dI_j| / max_j |I_j|`` and ``max |z| / max |x|``.
    """
    N = gd.shape[1]
    i_max = 0.0
    di_max = 0.0
    for j in range(N):
        i_max = max(i_max, abs(_sink_current(gd, gc, gk, pk, x, j)))
        di_max = max(di_max, abs(_sink_current(gd, gc, gk, pk, z, j)))
    x_max = np.abs(x).max()
    z_max = np.abs(z).max()
    e_i = di_max / i_max if i_max > 0.0 else (0.0 if di_max == 0.0 else np.inf)
    e_v = z_max / x_max if x_max > 0.0 else (0.0 if z_max == 0.0 else np.inf)
    return max(e_i, e_v)


@njit(cache=True)
def _step_rows(alpha, p, q, x, r, lrow, ginv, z):
    """Row nodes: ``x += alpha p``, ``r -= alpha q``, then
    ``z = P^{-1} r`` along each row wire (LDL^T). Returns their ``(r.z, max|z|, max|x|)``."""
    M, N = lrow.shape
    xs = x[0]
    rs = r[0]
    ps = p[0]
    qs = q[0]
    zs = z[0]
    gi = ginv[0]
    rz = 0.0
    z_max = 0.0
    x_max = 0.0
    for i in range(M):
        prev = 0.0
        for j in range(N):
            xv = xs[i, j] + alpha * ps[i, j]
            xs[i, j] = xv
            x_max = max(x_max, abs(xv))
            rv = rs[i, j] - alpha * qs[i, j]
            rs[i, j] = rv
            prev = rv - lrow[i, j] * prev
            zs[i, j] = prev
        nxt = zs[i, N - 1] * gi[i, N - 1]
        zs[i, N - 1] = nxt
        for j in range(N - 2, -1, -1):
            nxt = zs[i, j] * gi[i, j] - lrow[i, j + 1] * nxt
            zs[i, j] = nxt
        for j in range(N):
            rz += rs[i, j] * zs[i, j]
            z_max = max(z_max, abs(zs[i, j]))
    return rz, z_max, x_max


@njit(cache=True)
def _step_columns(alpha, p, q, x, r, lcol, ginv, z):
    """Column nodes: the same as :func:`_step_rows` along each
    column wire, swept row by row (vectorised across the columns)."""
    M, N = lcol.shape
    xs = x[1]
    rs = r[1]
    ps = p[1]
    qs = q[1]
    zs = z[1]
    gi = ginv[1]
    rz = 0.0
    z_max = 0.0
    x_max = 0.0
    for i in range(M):
        for j in range(N):
            xv = xs[i, j] + alpha * ps[i, j]
            xs[i, j] = xv
            x_max = max(x_max, abs(xv))
            rv = rs[i, j] - alpha * qs[i, j]
            rs[i, j] = rv
            zs[i, j] = rv if i == 0 else rv - lcol[i, j] * zs[i - 1, j]
    for j in range(N):
        zs[M - 1, j] *= gi[M - 1, j]
    for i in range(M - 1, -1, -1):
        if i < M - 1:
            for j in range(N):
                zs[i, j] = zs[i, j] * gi[i, j] - lcol[i + 1, j] * zs[i + 1, j]
        for j in range(N):
            rz += rs[i, j] * zs[i, j]
            z_max = max(z_max, abs(zs[i, j]))
    return rz, z_max, x_max


@njit(cache=True)
def _step(alpha, p, q, x, r, lrow, lcol, ginv, z):
    """Step along rows and columns and precondition; returns ``(r.z, max|z|, max|x|)``."""
    M, N = lrow.shape
    rz_r, z_r, x_r = _step_rows(alpha, p, q, x, r, lrow, ginv, z)
    rz_c, z_c, x_c = _step_columns(alpha, p, q, x, r, lcol, ginv, z)
    return rz_r + rz_c, max(z_r, z_c), max(x_r, x_c)


@njit(cache=True)
def pcg_core(gd, gs, gk, gr, gc, ps, pk, b, x, tol, max_iter):
    """Solve ``K x = b`` by PCG from the initial ``x`` (updated in place).

    Convergence is judged on the forward error, not on the raw residual (whose floor is
    set by the wire conductances times the rounding of node voltages, not by the
    accuracy of the solution): at every (re)start the residual is recomputed from
    branch currents and the preconditioned correction ``z = P^{-1} r`` estimates the
    error (:func:`_error_estimate`). Since the error is ``(P^-1 K)^-1 z``, the estimate is
    divided by the smallest eigenvalue of ``P^-1 K``, estimated from CG's own
    coefficients (:func:`_lanczos_min`): close to 1 when wires dominate, much smaller
    when strong devices meet weak drivers and sinks. CG iterates until
    ``max|z| <= lambda * tol/100 * max|x|``, then restarts; the solve ends when the estimate is at most ``tol``, when a restart no
    longer halves it (the rounding floor) or at ``max_iter``. Returns
    ``(iterations, error estimate)``; the caller checks convergence.
    """
    M, N = gd.shape
    diag = np.empty((2, M, N))
    ginv = np.empty((2, M, N))
    lrow = np.empty((M, N))
    lcol = np.empty((M, N))
    cd, cr, cc = _masked_couplings(gd, gr, gc, ps, pk)
    _setup(gd, gs, gk, gr, gc, ps, pk, cr, cc, diag, lrow, lcol, ginv)
    r = np.empty((2, M, N))
    z = np.empty((2, M, N))
    p = np.zeros((2, M, N))
    q = np.zeros((2, M, N))
    it = 0
    previous = np.inf
    lam = 1.0  # estimate of the smallest eigenvalue of P^-1 K (from Lanczos), <= 1
    alphas = np.empty(max_iter + 1)
    betas = np.empty(max_iter + 1)
    while True:
        _kcl_residual(gd, gs, gk, gr, gc, ps, pk, x, b, r)
        rz, z_max, x_max = _step(0.0, p, q, x, r, lrow, lcol, ginv, z)
        # the error is (P^-1 K)^-1 z: z understates it by up to 1 / lambda_min;
        # stagnation (the rounding floor) is judged on z itself
        raw = _error_estimate(gd, gc, gk, pk, x, z)
        est = raw / lam
        if est <= tol or it >= max_iter or raw > 0.5 * previous:
            return it, est
        previous = raw
        beta = 0.0
        k = 0
        while it < max_iter:
            _new_direction(z, p, beta)
            pq = _direction_matvec(cd, cr, cc, diag, p, q)
            if pq <= 0.0:  # no direction left: x is exact to rounding
                break
            alpha = rz / pq
            rz_new, z_max, x_max = _step(alpha, p, q, x, r, lrow, lcol, ginv, z)
            it += 1
            beta = rz_new / rz
            rz = rz_new
            alphas[k] = alpha
            betas[k] = beta
            k += 1
            if z_max <= 0.01 * tol * lam * x_max:
                break
        if k > 0:
            lam = min(lam, _lanczos_min(alphas, betas, k))


@njit(cache=True)
def _lanczos_min(alphas, betas, k):
    """Smallest eigenvalue of the Lanczos matrix of ``k`` CG steps (estimates lambda_min).

    CG's coefficients define the tridiagonal ``T_k`` (diagonal ``1/a_j + b_{j-1}/a_{j-1}``,
    off-diagonal ``sqrt(b_j)/a_j``) whose eigenvalues approximate those of ``P^-1 K``
    from inside the spectrum. Clamped to (1e-12, 1].
    """
    T = np.zeros((k, k))
    for j in range(k):
        T[j, j] = 1.0 / alphas[j]
        if j > 0:
            T[j, j] += betas[j - 1] / alphas[j - 1]
        if j + 1 < k:
            off = np.sqrt(max(betas[j], 0.0)) / alphas[j]
            T[j, j + 1] = off
            T[j + 1, j] = off
    smallest = np.linalg.eigvalsh(T)[0]
    return min(1.0, max(smallest, 1e-12))


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
    for j in range(G.shape[1]):
        out[j] = _sink_current(G, gc, gk, pk, x, j)


@njit(cache=True)
def pcg_single_linear(G, gs, gk, gr, gc, ps, pk, V, tol, max_iter, want_nodes):
    """One input (``V`` of shape (1, M)) without the thread start-up of the batch kernel.

    Returns the same as :func:`pcg_batch_linear`.
    """
    M, N = G.shape
    b = np.empty((2, M, N))
    linear_rhs(G, gs, gr, ps, pk, V[0], b)
    x = _start(G, pk, V[0])
    it, rel = pcg_core(G, gs, gk, gr, gc, ps, pk, b, x, tol, max_iter)
    I = np.empty((1, N))
    sink_current(G, gc, gk, pk, x, I[0])
    nodes = np.empty((1 if want_nodes else 0, 2, M, N))
    if want_nodes:
        nodes[0] = x
    return I, nodes, np.full(1, it, np.int64), np.full(1, rel)


@njit(cache=True)
def _start(G, pk, V):
    """Initial voltages: row nodes at their drive voltage, column nodes at 0 V."""
    M, N = G.shape
    x = np.zeros((2, M, N))
    for i in range(M):
        for j in range(N):
            x[0, i, j] = V[i]
    return x


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
        x = _start(G, pk, V[k])
        it, rel = pcg_core(G, gs, gk, gr, gc, ps, pk, b, x, tol, max_iter)
        iters[k] = it
        res[k] = rel
        out = np.empty(N)
        sink_current(G, gc, gk, pk, x, out)
        I[k] = out
        if want_nodes:
            nodes[k] = x
    return I, nodes, iters, res
