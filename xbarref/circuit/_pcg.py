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

What the line solves leave are smooth couplings *between* lines. Optionally CG is
*deflated* by a coarse space (two-level method): the row nodes of each block of
``bi x bj`` cells form one aggregate, the column nodes of that block another; ``Z`` is
their indicator matrix and ``E = Z^T K Z`` the Galerkin coarse matrix (itself the nodal
matrix of a small crossbar). The coarse data is the tuple ``coarse = (cmap, Lp, Li, Lx,
Ld, Up, Ui, Ux, Ud, perm_r, perm_c)``: ``cmap`` (2, M, N) the aggregate of each node
(-1 for pinned nodes), the strict triangles of the sparse LU factors of ``E`` in CSR with
their diagonals, and the row and column permutations (``Pr E Pc = L U``, SciPy's
convention). ``coarse=None`` means no coarse space; Numba then compiles the kernels
without the coarse code (the ``is None`` branches are pruned at compile time), so the
two-level code is compiled only where it is used.

Every loop is bounded: by ``max_iter`` CG steps, by ``max_iter`` restarts, and by a
non-finite or stagnating error estimate; the caller checks the returned estimate
against its tolerance and falls back to the direct solver where it is not met.
"""

import numpy as np
from numba import njit, types
from numba.extending import intrinsic


@njit(cache=True, nogil=True)
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
    # rows: LDL^T along j, eight rows at a time (each row is a chain of divisions;
    # eight independent chains overlap)
    for i in range(M):
        ginv[0, i, 0] = 1.0 / diag[0, i, 0]
        lrow[i, 0] = 0.0
    for i0 in range(0, M, 8):
        i1 = min(M, i0 + 8)
        for j in range(1, N):
            for i in range(i0, i1):
                off = -cr[i, j - 1]
                l = off * ginv[0, i, j - 1]
                lrow[i, j] = l
                ginv[0, i, j] = 1.0 / (diag[0, i, j] - l * off)
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


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True)
def _preconditioner(gd, gs, gk, gr, gc, ps, pk):
    """The masked couplings and the line preconditioner of one crossbar (M, N):
    ``(cd, cr, cc, diag, lrow, lcol, ginv)`` (:func:`_masked_couplings`, :func:`_setup`)."""
    M, N = gd.shape
    diag = np.empty((2, M, N))
    ginv = np.empty((2, M, N))
    lrow = np.empty((M, N))
    lcol = np.empty((M, N))
    cd, cr, cc = _masked_couplings(gd, gr, gc, ps, pk)
    _setup(gd, gs, gk, gr, gc, ps, pk, cr, cc, diag, lrow, lcol, ginv)
    return cd, cr, cc, diag, lrow, lcol, ginv


#: Floating-point freedoms of the hot CG sweeps: re-association (so that the dot-product
#: sums vectorise) and fused multiply-adds. No assumption about NaN or infinity is made,
#: so the finiteness checks on the sums stay valid.
_FAST = {"reassoc", "contract"}


@njit(cache=True, nogil=True, fastmath=_FAST)
def _direction_matvec(cd, cr, cc, diag, p, q):
    """``q = K p`` on the grid; returns ``p . q``.

    Row by row in branch-free passes (diagonal and device terms, the two row-wire
    neighbours, the two column-wire neighbours, the dot product), which vectorise.
    """
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
            qr[i, j] = dr[i, j] * pr[i, j] - cd[i, j] * pc[i, j]
            qc[i, j] = dc[i, j] * pc[i, j] - cd[i, j] * pr[i, j]
        for j in range(N - 1):
            qr[i, j] -= cr[i, j] * pr[i, j + 1]
        for j in range(1, N):
            qr[i, j] -= cr[i, j - 1] * pr[i, j - 1]
        if i > 0:
            for j in range(N):
                qc[i, j] -= cc[i - 1, j] * pc[i - 1, j]
        if i < M - 1:
            for j in range(N):
                qc[i, j] -= cc[i, j] * pc[i + 1, j]
        s = 0.0
        for j in range(N):
            s += pr[i, j] * qr[i, j] + pc[i, j] * qc[i, j]
        pq += s
    return pq


@njit(cache=True, nogil=True)
def _new_direction(z, p, beta):
    """``p = z + beta p``."""
    M, N = z.shape[1], z.shape[2]
    for s in range(2):
        for i in range(M):
            for j in range(N):
                p[s, i, j] = z[s, i, j] + beta * p[s, i, j]


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True)
def _sink_current(gd, gc, gk, pk, x, j):
    """Current into sink ``j`` for node voltages ``x`` (KCL at a pinned sink)."""
    M = gd.shape[0]
    if pk[j]:
        s = gd[M - 1, j] * x[0, M - 1, j]
        if M > 1:
            s += gc[M - 2, j] * x[1, M - 2, j]
        return s
    return gk[j] * x[1, M - 1, j]


@njit(cache=True, nogil=True)
def _abs_max(a):
    """``max |a|`` of a (2, M, N) array (a plain loop: no array-expression machinery to compile)."""
    m = 0.0
    for s in range(a.shape[0]):
        for i in range(a.shape[1]):
            for j in range(a.shape[2]):
                m = max(m, abs(a[s, i, j]))
    return m


@njit(cache=True, nogil=True)
def _fill(y, value):
    """``y[:] = value`` for a 1-D array, as a loop."""
    for a in range(y.shape[0]):
        y[a] = value


@njit(cache=True, nogil=True)
def _fill3(y, value):
    """``y[...] = value`` for a (2, M, N) array, as a loop."""
    for s in range(y.shape[0]):
        for i in range(y.shape[1]):
            for j in range(y.shape[2]):
                y[s, i, j] = value


@njit(cache=True, nogil=True)
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
    x_max = _abs_max(x)
    z_max = _abs_max(z)
    e_i = di_max / i_max if i_max > 0.0 else (0.0 if di_max == 0.0 else np.inf)
    e_v = z_max / x_max if x_max > 0.0 else (0.0 if z_max == 0.0 else np.inf)
    return max(e_i, e_v)


#: The bits of a float64 but its sign: for ``|v|`` the integer order of the bit patterns is
#: the order of the values, with NaN above infinity.
_ABS_BITS = np.int64(0x7FFFFFFFFFFFFFFF)


@intrinsic
def _float_bits(typingctx, value):
    """The int64 bit pattern of a float64 (an LLVM bitcast: no code, nothing to compile)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.int64))
    return types.int64(types.float64), codegen


@intrinsic
def _bits_value(typingctx, bits):
    """The float64 whose bit pattern is the int64 ``bits`` (an LLVM bitcast)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))
    return types.float64(types.int64), codegen


@njit(cache=True, nogil=True, fastmath=_FAST)
def _advance(alpha, p, q, x, r):
    """``x += alpha p``, ``r -= alpha q`` on one layer (M, N); returns ``max|x|``.

    The maximum is taken on the bit patterns of ``|x|`` (integer compares vectorise where
    float ones with NaN semantics do not; a NaN comes out as NaN).
    """
    M, N = x.shape
    m = np.int64(0)
    for i in range(M):
        for j in range(N):
            x[i, j] += alpha * p[i, j]
            r[i, j] -= alpha * q[i, j]
        for j in range(N):
            a = _float_bits(x[i, j]) & _ABS_BITS
            m = a if a > m else m
    return _bits_value(m)


@njit(cache=True, nogil=True, fastmath=_FAST)
def _dot_max(r, z):
    """``(r . z, max|z|)`` of one layer (M, N) (the maximum as in :func:`_advance`)."""
    M, N = r.shape
    rz = 0.0
    m = np.int64(0)
    for i in range(M):
        s = 0.0
        for j in range(N):
            s += r[i, j] * z[i, j]
        rz += s
        for j in range(N):
            a = _float_bits(z[i, j]) & _ABS_BITS
            m = a if a > m else m
    return rz, _bits_value(m)


@njit(cache=True, nogil=True, fastmath=_FAST)
def _row_solve(i, rs, zs, lrow, gi):
    """``z = P^{-1} r`` along row wire ``i`` (forward and back substitution of its LDL^T)."""
    N = lrow.shape[1]
    prev = 0.0
    for j in range(N):
        prev = rs[i, j] - lrow[i, j] * prev
        zs[i, j] = prev
    nxt = zs[i, N - 1] * gi[i, N - 1]
    zs[i, N - 1] = nxt
    for j in range(N - 2, -1, -1):
        nxt = zs[i, j] * gi[i, j] - lrow[i, j + 1] * nxt
        zs[i, j] = nxt


@njit(cache=True, nogil=True, fastmath=_FAST)
def _step_rows(alpha, p, q, x, r, lrow, ginv, z):
    """Row nodes: ``x += alpha p``, ``r -= alpha q``, then
    ``z = P^{-1} r`` along each row wire (LDL^T). Returns their ``(r.z, max|z|, max|x|)``.

    The substitutions along a row are a chain of dependent operations; four rows are
    swept together so that four independent chains overlap.
    """
    M, N = lrow.shape
    rs = r[0]
    zs = z[0]
    gi = ginv[0]
    x_max = _advance(alpha, p[0], q[0], x[0], rs)
    i = 0
    while i + 4 <= M:
        a = 0.0
        b = 0.0
        c = 0.0
        d = 0.0
        for j in range(N):
            a = rs[i, j] - lrow[i, j] * a
            b = rs[i + 1, j] - lrow[i + 1, j] * b
            c = rs[i + 2, j] - lrow[i + 2, j] * c
            d = rs[i + 3, j] - lrow[i + 3, j] * d
            zs[i, j] = a
            zs[i + 1, j] = b
            zs[i + 2, j] = c
            zs[i + 3, j] = d
        a = zs[i, N - 1] * gi[i, N - 1]
        b = zs[i + 1, N - 1] * gi[i + 1, N - 1]
        c = zs[i + 2, N - 1] * gi[i + 2, N - 1]
        d = zs[i + 3, N - 1] * gi[i + 3, N - 1]
        zs[i, N - 1] = a
        zs[i + 1, N - 1] = b
        zs[i + 2, N - 1] = c
        zs[i + 3, N - 1] = d
        for j in range(N - 2, -1, -1):
            a = zs[i, j] * gi[i, j] - lrow[i, j + 1] * a
            b = zs[i + 1, j] * gi[i + 1, j] - lrow[i + 1, j + 1] * b
            c = zs[i + 2, j] * gi[i + 2, j] - lrow[i + 2, j + 1] * c
            d = zs[i + 3, j] * gi[i + 3, j] - lrow[i + 3, j + 1] * d
            zs[i, j] = a
            zs[i + 1, j] = b
            zs[i + 2, j] = c
            zs[i + 3, j] = d
        i += 4
    while i < M:
        _row_solve(i, rs, zs, lrow, gi)
        i += 1
    rz, z_max = _dot_max(rs, zs)
    return rz, z_max, x_max


@njit(cache=True, nogil=True, fastmath=_FAST)
def _step_columns(alpha, p, q, x, r, lcol, ginv, z):
    """Column nodes: the same as :func:`_step_rows` along each
    column wire, swept row by row (vectorised across the columns)."""
    M, N = lcol.shape
    rs = r[1]
    zs = z[1]
    gi = ginv[1]
    x_max = _advance(alpha, p[1], q[1], x[1], rs)
    for j in range(N):
        zs[0, j] = rs[0, j]
    for i in range(1, M):
        for j in range(N):
            zs[i, j] = rs[i, j] - lcol[i, j] * zs[i - 1, j]
    for j in range(N):
        zs[M - 1, j] *= gi[M - 1, j]
    for i in range(M - 2, -1, -1):
        for j in range(N):
            zs[i, j] = zs[i, j] * gi[i, j] - lcol[i + 1, j] * zs[i + 1, j]
    rz, z_max = _dot_max(rs, zs)
    return rz, z_max, x_max


@njit(cache=True, nogil=True)
def _step(alpha, p, q, x, r, lrow, lcol, ginv, z):
    """Step along rows and columns and precondition; returns ``(r.z, max|z|, max|x|)``."""
    rz_r, z_r, x_r = _step_rows(alpha, p, q, x, r, lrow, ginv, z)
    rz_c, z_c, x_c = _step_columns(alpha, p, q, x, r, lcol, ginv, z)
    return rz_r + rz_c, _nan_max(z_r, z_c), _nan_max(x_r, x_c)


@njit(cache=True, nogil=True)
def _nan_max(a, b):
    """The larger of ``a`` and ``b``, NaN if either is NaN."""
    if a != a or b != b:
        return np.nan
    return a if a > b else b


# -- coarse space ------------------------------------------------------------------------------

@njit(cache=True, nogil=True)
def aggregate_map(M, N, bi, bj, ps, pk):
    """Aggregate of each grid node (2, M, N) for blocks of ``bi x bj`` cells; -1 where pinned.

    Row aggregates are numbered first, then column aggregates; aggregates left without a
    free node are dropped (numbering stays dense). Returns ``(cmap, n_aggregates)``.
    """
    nbi = (M + bi - 1) // bi
    nbj = (N + bj - 1) // bj
    nA = nbi * nbj
    count = np.zeros(2 * nA, np.int64)
    raw = np.empty((2, M, N), np.int64)
    for i in range(M):
        for j in range(N):
            a = (i // bi) * nbj + (j // bj)
            raw[0, i, j] = -1 if (j == 0 and ps[i]) else a
            raw[1, i, j] = -1 if (i == M - 1 and pk[j]) else nA + a
    for s in range(2):
        for i in range(M):
            for j in range(N):
                if raw[s, i, j] >= 0:
                    count[raw[s, i, j]] += 1
    index = np.full(2 * nA, -1, np.int64)
    n = 0
    for a in range(2 * nA):
        if count[a] > 0:
            index[a] = n
            n += 1
    cmap = np.empty((2, M, N), np.int64)
    for s in range(2):
        for i in range(M):
            for j in range(N):
                a = raw[s, i, j]
                cmap[s, i, j] = -1 if a < 0 else index[a]
    return cmap, n


@njit(cache=True, nogil=True)
def _add_entry(cols, vals, count, a, b, g):
    """Add ``g`` to entry ``(a, b)`` of a row-slot table (at most 4 entries per row)."""
    for t in range(count[a]):
        if cols[a, t] == b:
            vals[a, t] += g
            return
    cols[a, count[a]] = b
    vals[a, count[a]] = g
    count[a] += 1


@njit(cache=True, nogil=True)
def coarse_matrix(gd, gs, gk, gr, gc, ps, pk, cmap, n):
    """CSR arrays ``(indptr, indices, data)`` of ``E = Z^T K Z`` (n x n), summed in place.

    An aggregate couples only to itself, to its neighbours along its lines and to the
    aggregate of the other layer in the same block, so each row has at most 4 entries.
    """
    M, N = gd.shape
    cd, cr, cc, diag, lrow, lcol, ginv = _preconditioner(gd, gs, gk, gr, gc, ps, pk)
    cols = np.empty((n, 4), np.int64)
    vals = np.zeros((n, 4))
    count = np.zeros(n, np.int64)
    for a in range(n):
        cols[a, 0] = a
        count[a] = 1
    for s in range(2):
        for i in range(M):
            for j in range(N):
                a = cmap[s, i, j]
                if a >= 0:
                    vals[a, 0] += diag[s, i, j]
    for i in range(M):
        for j in range(N):
            for t in range(3):
                if t == 0:
                    a, b, g = cmap[0, i, j], cmap[1, i, j], cd[i, j]
                elif t == 1:
                    if j + 1 >= N:
                        continue
                    a, b, g = cmap[0, i, j], cmap[0, i, j + 1], cr[i, j]
                else:
                    if i + 1 >= M:
                        continue
                    a, b, g = cmap[1, i, j], cmap[1, i + 1, j], cc[i, j]
                if a < 0 or b < 0 or g == 0.0:
                    continue
                if a == b:
                    vals[a, 0] -= 2.0 * g
                else:
                    _add_entry(cols, vals, count, a, b, -g)
                    _add_entry(cols, vals, count, b, a, -g)
    indptr = np.zeros(n + 1, np.int64)
    for a in range(n):
        indptr[a + 1] = indptr[a] + count[a]
    indices = np.empty(indptr[n], np.int64)
    data = np.empty(indptr[n])
    for a in range(n):
        order = np.argsort(cols[a, :count[a]])
        for t in range(count[a]):
            indices[indptr[a] + t] = cols[a, order[t]]
            data[indptr[a] + t] = vals[a, order[t]]
    return indptr, indices, data


@njit(cache=True, nogil=True)
def _restrict(r, cmap, y):
    """``y = Z^T r``: sum of ``r`` over each aggregate."""
    _fill(y, 0.0)
    M, N = r.shape[1], r.shape[2]
    for s in range(2):
        for i in range(M):
            for j in range(N):
                a = cmap[s, i, j]
                if a >= 0:
                    y[a] += r[s, i, j]


@njit(cache=True, nogil=True)
def _restrict_two(cd, cr, cc, diag, r, z, cmap, yr_, yd):
    """``yr_ = Z^T r`` and ``yd = Z^T (r - K z)``, with ``K z`` formed node by node, never stored."""
    M, N = cd.shape
    _fill(yr_, 0.0)
    _fill(yd, 0.0)
    zr = z[0]
    zc = z[1]
    for i in range(M):
        for j in range(N):
            kr = diag[0, i, j] * zr[i, j] - cd[i, j] * zc[i, j]
            kc = diag[1, i, j] * zc[i, j] - cd[i, j] * zr[i, j]
            if j > 0:
                kr -= cr[i, j - 1] * zr[i, j - 1]
            if j < N - 1:
                kr -= cr[i, j] * zr[i, j + 1]
            if i > 0:
                kc -= cc[i - 1, j] * zc[i - 1, j]
            if i < M - 1:
                kc -= cc[i, j] * zc[i + 1, j]
            a = cmap[0, i, j]
            if a >= 0:
                yr_[a] += r[0, i, j]
                yd[a] += r[0, i, j] - kr
            a = cmap[1, i, j]
            if a >= 0:
                yr_[a] += r[1, i, j]
                yd[a] += r[1, i, j] - kc


@njit(cache=True, nogil=True)
def _coarse_correct(r, x, coarse):
    """``x += Z E^-1 Z^T r``: the exact coarse correction of ``x`` for its residual ``r``."""
    n = coarse[9].shape[0]
    y = np.empty(n)
    w = np.empty(n)
    c = np.empty(n)
    _restrict(r, coarse[0], y)
    _coarse_solve(coarse, y, w, c)
    _prolong_add(x, coarse[0], c, 1.0)


@njit(cache=True, nogil=True)
def _coarse_augment(cd, cr, cc, diag, r, z, coarse):
    """Two-level preconditioner: ``z += Z E^-1 Z^T (r - K z)`` for ``z = P^-1 r``.

    This is the A-DEF2 form of the coarse correction (robust to rounding, one pass over
    the grid and one coarse solve). Returns the change of ``r . z``.
    """
    n = coarse[9].shape[0]
    y1 = np.empty(n)
    y2 = np.empty(n)
    w = np.empty(n)
    c = np.empty(n)
    _restrict_two(cd, cr, cc, diag, r, z, coarse[0], y1, y2)
    _coarse_solve(coarse, y2, w, c)
    _prolong_add(z, coarse[0], c, 1.0)
    d = 0.0
    for a in range(c.shape[0]):
        d += c[a] * y1[a]
    return d


@njit(cache=True, nogil=True)
def _coarse_solve(coarse, y, w, c):
    """``c = E^{-1} y`` with the sparse LU factors of ``E`` (``Pr E Pc = L U``)."""
    cmap, Lp, Li, Lx, Ld, Up, Ui, Ux, Ud, perm_r, perm_c = coarse
    n = y.shape[0]
    for k in range(n):
        w[perm_r[k]] = y[k]
    for i in range(n):
        s = w[i]
        for t in range(Lp[i], Lp[i + 1]):
            s -= Lx[t] * w[Li[t]]
        w[i] = s / Ld[i]
    for i in range(n - 1, -1, -1):
        s = w[i]
        for t in range(Up[i], Up[i + 1]):
            s -= Ux[t] * w[Ui[t]]
        w[i] = s / Ud[i]
    for k in range(n):
        c[k] = w[perm_c[k]]


@njit(cache=True, nogil=True)
def _prolong_add(x, cmap, c, scale):
    """``x += scale * Z c``."""
    M, N = x.shape[1], x.shape[2]
    for s in range(2):
        for i in range(M):
            for j in range(N):
                a = cmap[s, i, j]
                if a >= 0:
                    x[s, i, j] += scale * c[a]


#: A CG cycle runs until the preconditioned residual is below this fraction of ``tol``
#: (relative to the solution; see :func:`pcg_core`), then restarts from the true residual.
STOP_FRACTION = 0.01


# -- the solver --------------------------------------------------------------------------------

@njit(cache=True, nogil=True)
def pcg_core(gd, gs, gk, gr, gc, ps, pk, b, x, tol, max_iter, coarse):
    """Solve ``K x = b`` by (deflated) PCG from the initial ``x`` (updated in place).

    Convergence is judged on the forward error, not on the raw residual (whose floor is
    set by the wire conductances times the rounding of node voltages, not by the
    accuracy of the solution): at every (re)start the residual is recomputed from
    branch currents and the preconditioned correction ``z = P^{-1} r`` estimates the
    error (:func:`_error_estimate`). Since the error is ``(P^-1 K)^-1 z``, the estimate is
    divided by the smallest eigenvalue of the (deflated) preconditioned matrix,
    estimated from CG's own coefficients (:func:`_lanczos_min`): close to 1 when wires
    dominate, much smaller when strong devices meet weak drivers and sinks. With a
    coarse space (``coarse``, see the module docstring) each restart first adds the
    exact coarse correction ``Z E^-1 Z^T r`` and the preconditioner is two-level
    (:func:`_coarse_augment`). CG iterates until ``max|z| <= lambda * tol/100 *
    max|x|``, then restarts; the solve ends when the estimate is at most ``tol``, when a
    restart no longer halves it (the rounding floor), when it is not finite, or at
    ``max_iter`` steps or restarts. Returns ``(iterations, error estimate)``; the
    caller checks convergence (a non-finite estimate is returned as ``inf``).
    """
    M, N = gd.shape
    cd, cr, cc, diag, lrow, lcol, ginv = _preconditioner(gd, gs, gk, gr, gc, ps, pk)
    r = np.empty((2, M, N))
    z = np.empty((2, M, N))
    p = np.zeros((2, M, N))
    q = np.zeros((2, M, N))
    it = 0
    restarts = 0
    previous = np.inf
    lam = 1.0  # estimate of the smallest eigenvalue of P^-1 K (from Lanczos), <= 1
    alphas = np.empty(max_iter + 1)
    betas = np.empty(max_iter + 1)
    while True:
        _kcl_residual(gd, gs, gk, gr, gc, ps, pk, x, b, r)
        if coarse is not None:
            _coarse_correct(r, x, coarse)
            _kcl_residual(gd, gs, gk, gr, gc, ps, pk, x, b, r)
        rz, z_max, x_max = _step(0.0, p, q, x, r, lrow, lcol, ginv, z)
        # the error is (P^-1 K)^-1 z: z understates it by up to 1 / lambda_min;
        # stagnation (the rounding floor) is judged on z itself
        raw = _error_estimate(gd, gc, gk, pk, x, z)
        est = raw / lam
        if np.isnan(est):  # (infinite at the start, while the outputs are still 0)
            return it, np.inf
        if est <= tol or it >= max_iter or raw > 0.5 * previous or restarts >= max_iter:
            return it, est
        previous = raw
        restarts += 1
        if coarse is not None:
            rz += _coarse_augment(cd, cr, cc, diag, r, z, coarse)
        beta = 0.0
        k = 0
        while it < max_iter:
            _new_direction(z, p, beta)
            pq = _direction_matvec(cd, cr, cc, diag, p, q)
            if not pq > 0.0:  # no direction left (x exact to rounding), or not finite
                break
            alpha = rz / pq
            rz_new, z_max, x_max = _step(alpha, p, q, x, r, lrow, lcol, ginv, z)
            if coarse is not None:
                rz_new += _coarse_augment(cd, cr, cc, diag, r, z, coarse)
            it += 1
            beta = rz_new / rz
            rz = rz_new
            alphas[k] = alpha
            betas[k] = beta
            k += 1
            if not (np.isfinite(z_max) and np.isfinite(rz)):
                break
            if z_max <= STOP_FRACTION * tol * lam * x_max:
                break
        if k == 0:  # no step was possible: x is what it is; the caller judges est
            return it, est
        lam = min(lam, _lanczos_min(alphas, betas, k))


@njit(cache=True, nogil=True)
def _lanczos_min(alphas, betas, k):
    """Smallest eigenvalue of the Lanczos matrix of ``k`` CG steps (estimates lambda_min).

    CG's coefficients define the tridiagonal ``T_k`` (diagonal ``1/a_j + b_{j-1}/a_{j-1}``,
    off-diagonal ``sqrt(b_j)/a_j``) whose eigenvalues approximate those of ``P^-1 K``
    from inside the spectrum. Its smallest eigenvalue is found by bisection on the
    Sturm sequence count, from the Gershgorin interval. Clamped to (1e-12, 1]; 1e-12 if
    a coefficient is not finite.
    """
    d = np.empty(k)
    e2 = np.zeros(k)
    e = np.zeros(k)
    for j in range(k):
        a = alphas[j]
        d[j] = 1.0 / a
        if j > 0:
            d[j] += betas[j - 1] / alphas[j - 1]
        if j + 1 < k:
            e2[j] = max(betas[j], 0.0) / (a * a)
            e[j] = np.sqrt(e2[j])
    lo = np.inf
    hi = -np.inf
    for j in range(k):
        rad = e[j] + (e[j - 1] if j > 0 else 0.0)
        lo = min(lo, d[j] - rad)
        hi = max(hi, d[j] + rad)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return 1e-12
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if hi - lo <= 1e-15 * max(abs(lo), abs(hi)) or mid <= lo or mid >= hi:
            break
        # number of eigenvalues below mid (Sturm sequence of the LDL^T of T - mid)
        count = 0
        qv = d[0] - mid
        if qv < 0.0:
            count += 1
        for j in range(1, k):
            if qv == 0.0:
                qv = 1e-300
            qv = d[j] - mid - e2[j - 1] / qv
            if qv < 0.0:
                count += 1
        if count >= 1:
            hi = mid
        else:
            lo = mid
    return min(1.0, max(lo, 1e-12))


@njit(cache=True, nogil=True)
def linear_rhs(G, gs, gr, ps, pk, V, b):
    """Right-hand side of the linear crossbar for input voltages ``V`` (M,) into ``b`` (2, M, N)."""
    M, N = G.shape
    _fill3(b, 0.0)
    for i in range(M):
        if ps[i]:
            b[0, i, 0] = V[i]
            if N > 1:
                b[0, i, 1] += gr[i, 0] * V[i]
            if not (i == M - 1 and pk[0]):  # a device between two pinned nodes adds nothing
                b[1, i, 0] += G[i, 0] * V[i]
        else:
            b[0, i, 0] = gs[i] * V[i]


@njit(cache=True, nogil=True)
def start_voltages(G, pk, V, x):
    """Initial voltages into ``x``: row nodes at their drive voltage, column nodes at 0 V."""
    M, N = G.shape
    for i in range(M):
        for j in range(N):
            x[0, i, j] = V[i]
            x[1, i, j] = 0.0


@njit(cache=True, nogil=True)
def pcg_range(G_all, gs, gk, gr, gc, ps, pk, V, b_all, tol, max_iter, coarse, which, k0, k1,
              I, x_all, iters, res):
    """Solve the inputs ``which[k0:k1]`` of a batch (serial; releases the GIL).

    One kernel for both uses, so that it is compiled once:

    - linear crossbars (``b_all`` empty): input ``k`` applies ``V[k]``; the solve starts
      from rows at their drive voltage; currents go to ``I[k]`` and, if ``x_all`` is not
      empty, node voltages to ``x_all[k]``;
    - Newton steps (``b_all`` (B, 2, M, N)): ``K_k x = b_all[k]`` from ``x = 0`` into
      ``x_all[k]`` (``G_all`` holds the differential conductances; pinned entries of ``b``
      must be 0; ``I`` and ``V`` are not used).

    ``G_all`` is (1, M, N) for one shared conductance matrix or (B, M, N) for one per
    input (then ``coarse`` must be ``None``). Writes iterations ``iters[k]`` and error
    estimates ``res[k]``. Several threads may run disjoint ranges of one batch at once.
    """
    M, N = G_all.shape[1], G_all.shape[2]
    shared = G_all.shape[0] == 1
    linear = b_all.shape[0] == 0
    b = np.empty((2, M, N))
    x = np.empty((2, M, N))
    for t in range(k0, k1):
        k = which[t]
        G = G_all[0] if shared else G_all[k]
        if linear:
            linear_rhs(G, gs, gr, ps, pk, V[k], b)
            start_voltages(G, pk, V[k], x)
            rhs = b
        else:
            rhs = b_all[k]
            _fill3(x, 0.0)
        it, rel = pcg_core(G, gs, gk, gr, gc, ps, pk, rhs, x, tol, max_iter, coarse)
        iters[k] = it
        res[k] = rel
        if linear:
            for j in range(N):
                I[k, j] = _sink_current(G, gc, gk, pk, x, j)
        if x_all.shape[0] > 0:
            for s in range(2):
                for i in range(M):
                    for j in range(N):
                        x_all[k, s, i, j] = x[s, i, j]
