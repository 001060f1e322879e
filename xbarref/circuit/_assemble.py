"""Numba kernels: node grouping, nested-dissection ordering and CSR assembly.

Node numbering of the full circuit: row node ``r(i, j)`` is ``i*N + j`` and column node
``c(i, j)`` is ``M*N + i*N + j``. Terminals are the ideal sources ``s_i`` (voltage
``V[i]``) and the sinks ``t_j`` (0 V, the sense amplifier's virtual ground).

Zero resistances are ideal shorts, solved exactly by *merging*: a run of zero row-wire
segments joins its row nodes into one group (one unknown), likewise down a column, and a
group joined to a terminal by a zero source or sink resistance *is* that terminal (its
voltage is known). Every other element is an edge of finite conductance ``g`` (siemens)
between two groups. Kernels take and return plain arrays and know nothing of the API.

Group labels: ``label[node] >= 0`` is the index of the node's unknown; ``-(1 + i)`` is
source terminal ``s_i``; ``-(1 + M + j)`` is sink terminal ``t_j``.
"""

import numpy as np
from numba import njit


@njit(cache=True)
def nested_dissection_rank(M, N, leaf):
    """Rank of each of the 2*M*N nodes in a geometric nested-dissection order.

    The cell rectangle is cut in half along its longer side: a vertical cut at column
    ``jm`` is separated by the row nodes ``r(:, jm)`` (column nodes only couple
    vertically), a horizontal cut at row ``im`` by the column nodes ``c(im, :)``. Both
    halves come first, the separator last; rectangles of at most ``leaf`` cells are
    numbered naturally. Ranks are assigned from the top down with a stack (pre-order of
    node, right, left), which is the reverse of the post-order an elimination needs.
    """
    MN = M * N
    rank = np.empty(2 * MN, np.int64)
    pos = 2 * MN
    stack = np.empty((64 + 4 * (M + N), 4), np.int64)
    top = 0
    stack[0, 0] = 0
    stack[0, 1] = M
    stack[0, 2] = 0
    stack[0, 3] = N
    top = 1
    while top > 0:
        top -= 1
        i0 = stack[top, 0]
        i1 = stack[top, 1]
        j0 = stack[top, 2]
        j1 = stack[top, 3]
        h = i1 - i0
        w = j1 - j0
        if h <= 0 or w <= 0:
            continue
        if h * w <= leaf or (h <= 2 and w <= 2):
            for i in range(i1 - 1, i0 - 1, -1):
                for j in range(j1 - 1, j0 - 1, -1):
                    pos -= 1
                    rank[MN + i * N + j] = pos
                    pos -= 1
                    rank[i * N + j] = pos
            continue
        if w >= h:
            jm = (j0 + j1) // 2
            # separator block, forward order: c(i0..i1-1, jm) then r(i0..i1-1, jm)
            for i in range(i1 - 1, i0 - 1, -1):
                pos -= 1
                rank[i * N + jm] = pos
            for i in range(i1 - 1, i0 - 1, -1):
                pos -= 1
                rank[MN + i * N + jm] = pos
            stack[top, 0] = i0
            stack[top, 1] = i1
            stack[top, 2] = j0
            stack[top, 3] = jm
            top += 1
            stack[top, 0] = i0
            stack[top, 1] = i1
            stack[top, 2] = jm + 1
            stack[top, 3] = j1
            top += 1
        else:
            im = (i0 + i1) // 2
            # separator block, forward order: r(im, j0..j1-1) then c(im, j0..j1-1)
            for j in range(j1 - 1, j0 - 1, -1):
                pos -= 1
                rank[MN + im * N + j] = pos
            for j in range(j1 - 1, j0 - 1, -1):
                pos -= 1
                rank[im * N + j] = pos
            stack[top, 0] = i0
            stack[top, 1] = im
            stack[top, 2] = j0
            stack[top, 3] = j1
            top += 1
            stack[top, 0] = im + 1
            stack[top, 1] = i1
            stack[top, 2] = j0
            stack[top, 3] = j1
            top += 1
    return rank


@njit(cache=True)
def group_nodes(r_source, r_sink, r_wire_row, r_wire_col, rank):
    """Merge nodes joined by zero resistances and number the unknown groups.

    Returns ``(label, n_unknown, is_boundary)``. Unknown groups are numbered by the
    smallest ``rank`` among their nodes, except that groups coupled to a terminal by a
    finite element (the boundary) come last, in the same relative order.
    """
    M = r_source.shape[0]
    N = r_sink.shape[0]
    MN = M * N
    rep = np.empty(2 * MN, np.int64)  # representative node of each node's group
    for i in range(M):
        rep[i * N] = i * N
        for j in range(1, N):
            k = i * N + j
            rep[k] = rep[k - 1] if r_wire_row[i, j - 1] == 0.0 else k
    for j in range(N):
        rep[MN + j] = MN + j
        for i in range(1, M):
            k = MN + i * N + j
            rep[k] = rep[k - N] if r_wire_col[i - 1, j] == 0.0 else k
    # terminal groups
    term = np.zeros(2 * MN, np.int64)  # 0: unknown, else terminal code (negative)
    for i in range(M):
        if r_source[i] == 0.0:
            term[rep[i * N]] = -(1 + i)
    for j in range(N):
        if r_sink[j] == 0.0:
            term[rep[MN + (M - 1) * N + j]] = -(1 + M + j)
    # boundary: unknown groups touching a terminal through a finite element
    boundary = np.zeros(2 * MN, np.bool_)
    for i in range(M):
        g = rep[i * N]
        if r_source[i] > 0.0 and term[g] == 0:
            boundary[g] = True
    for j in range(N):
        g = rep[MN + (M - 1) * N + j]
        if r_sink[j] > 0.0 and term[g] == 0:
            boundary[g] = True
    for i in range(M):
        for j in range(N):
            a = rep[i * N + j]
            b = rep[MN + i * N + j]
            if term[a] != 0 and term[b] == 0:
                boundary[b] = True
            if term[b] != 0 and term[a] == 0:
                boundary[a] = True
            if j + 1 < N and r_wire_row[i, j] > 0.0:
                c = rep[i * N + j + 1]
                if term[a] != 0 and term[c] == 0:
                    boundary[c] = True
                if term[c] != 0 and term[a] == 0:
                    boundary[a] = True
            if i + 1 < M and r_wire_col[i, j] > 0.0:
                c = rep[MN + (i + 1) * N + j]
                if term[b] != 0 and term[c] == 0:
                    boundary[c] = True
                if term[c] != 0 and term[b] == 0:
                    boundary[b] = True
    # key of each group: min rank of its nodes, boundary groups shifted last
    BIG = 4 * MN
    key = np.full(2 * MN, 8 * MN, np.int64)
    for k in range(2 * MN):
        g = rep[k]
        if term[g] == 0:
            kk = rank[k] + (BIG if boundary[g] else 0)
            if kk < key[g]:
                key[g] = kk
    order = np.argsort(key)
    index = np.full(2 * MN, -1, np.int64)
    n_unknown = 0
    for t in range(2 * MN):
        g = order[t]
        if key[g] >= 8 * MN:
            break
        index[g] = n_unknown
        n_unknown += 1
    label = np.empty(2 * MN, np.int64)
    is_boundary = np.zeros(n_unknown, np.bool_)
    for k in range(2 * MN):
        g = rep[k]
        if term[g] != 0:
            label[k] = term[g]
        else:
            label[k] = index[g]
            if boundary[g]:
                is_boundary[index[g]] = True
    return label, n_unknown, is_boundary


@njit(cache=True)
def edge_list(G, r_source, r_sink, r_wire_row, r_wire_col):
    """All finite-conductance elements as ``(node_a, node_b, g)``; terminals as negative codes.

    Source edges join ``s_i`` (code ``-(1+i)``) to ``r(i, 0)``; sink edges join
    ``c(M-1, j)`` to ``t_j`` (code ``-(1+M+j)``). Zero resistances and open cells
    (``G == 0``) give no edge.
    """
    M, N = G.shape
    MN = M * N
    cap = M + N + MN + M * (N - 1) + (M - 1) * N
    a = np.empty(cap, np.int64)
    b = np.empty(cap, np.int64)
    g = np.empty(cap, np.float64)
    e = 0
    for i in range(M):
        if r_source[i] > 0.0:
            a[e] = -(1 + i)
            b[e] = i * N
            g[e] = 1.0 / r_source[i]
            e += 1
    for j in range(N):
        if r_sink[j] > 0.0:
            a[e] = MN + (M - 1) * N + j
            b[e] = -(1 + M + j)
            g[e] = 1.0 / r_sink[j]
            e += 1
    for i in range(M):
        for j in range(N):
            if G[i, j] > 0.0:
                a[e] = i * N + j
                b[e] = MN + i * N + j
                g[e] = G[i, j]
                e += 1
            if j + 1 < N and r_wire_row[i, j] > 0.0:
                a[e] = i * N + j
                b[e] = i * N + j + 1
                g[e] = 1.0 / r_wire_row[i, j]
                e += 1
            if i + 1 < M and r_wire_col[i, j] > 0.0:
                a[e] = MN + i * N + j
                b[e] = MN + (i + 1) * N + j
                g[e] = 1.0 / r_wire_col[i, j]
                e += 1
    return a[:e], b[:e], g[:e]


@njit(cache=True)
def _group_of(node, label):
    return node if node < 0 else label[node]


@njit(cache=True)
def assemble_csr(edge_a, edge_b, edge_g, label, n_unknown, n_terminal):
    """Assemble the nodal (Laplacian) matrix of the unknown groups straight into CSR.

    Returns ``(indptr, indices, data, coup_u, coup_t, coup_g, direct_t1, direct_t2,
    direct_g)``: the SPD matrix of the unknowns (sorted indices, no duplicates: two
    groups share at most one element), the couplings unknown--terminal (terminal index
    ``0..M-1`` for sources, ``M..M+N-1`` for sinks) and terminal--terminal conductances.
    """
    n_edges = edge_a.shape[0]
    count = np.ones(n_unknown, np.int64)  # diagonal
    n_coup = 0
    n_direct = 0
    for e in range(n_edges):
        ga = _group_of(edge_a[e], label)
        gb = _group_of(edge_b[e], label)
        if ga >= 0 and gb >= 0:
            count[ga] += 1
            count[gb] += 1
        elif ga >= 0 or gb >= 0:
            n_coup += 1
        else:
            n_direct += 1
    indptr = np.zeros(n_unknown + 1, np.int64)
    for u in range(n_unknown):
        indptr[u + 1] = indptr[u] + count[u]
    nnz = indptr[n_unknown]
    indices = np.empty(nnz, np.int64)
    data = np.zeros(nnz, np.float64)
    fill = indptr[:-1].copy()
    diag = np.zeros(n_unknown, np.float64)
    coup_u = np.empty(n_coup, np.int64)
    coup_t = np.empty(n_coup, np.int64)
    coup_g = np.empty(n_coup, np.float64)
    direct_t1 = np.empty(n_direct, np.int64)
    direct_t2 = np.empty(n_direct, np.int64)
    direct_g = np.empty(n_direct, np.float64)
    c = 0
    d = 0
    for u in range(n_unknown):
        indices[fill[u]] = u
        fill[u] += 1
    for e in range(n_edges):
        ga = _group_of(edge_a[e], label)
        gb = _group_of(edge_b[e], label)
        g = edge_g[e]
        if ga >= 0 and gb >= 0:
            indices[fill[ga]] = gb
            data[fill[ga]] = -g
            fill[ga] += 1
            indices[fill[gb]] = ga
            data[fill[gb]] = -g
            fill[gb] += 1
            diag[ga] += g
            diag[gb] += g
        elif ga >= 0 or gb >= 0:
            u = ga if ga >= 0 else gb
            t = -(gb if ga >= 0 else ga) - 1
            diag[u] += g
            coup_u[c] = u
            coup_t[c] = t
            coup_g[c] = g
            c += 1
        else:
            direct_t1[d] = -ga - 1
            direct_t2[d] = -gb - 1
            direct_g[d] = g
            d += 1
    # diagonal first in each row; sort each row's column indices
    for u in range(n_unknown):
        data[indptr[u]] = diag[u]
        lo = indptr[u]
        hi = indptr[u + 1]
        idx = np.argsort(indices[lo:hi])
        indices[lo:hi] = indices[lo:hi][idx]
        data[lo:hi] = data[lo:hi][idx]
    return indptr, indices, data, coup_u, coup_t, coup_g, direct_t1, direct_t2, direct_g


@njit(cache=True)
def source_rhs(V, coup_u, coup_t, coup_g, n_unknown, M):
    """Right-hand sides (n_unknown, B): current injected by the sources, ``g * V[i]``."""
    B = V.shape[0]
    rhs = np.zeros((n_unknown, B), np.float64)
    for c in range(coup_u.shape[0]):
        t = coup_t[c]
        if t < M:
            u = coup_u[c]
            for k in range(B):
                rhs[u, k] += coup_g[c] * V[k, t]
    return rhs


@njit(cache=True)
def sink_currents(x, V, coup_u, coup_t, coup_g, direct_t1, direct_t2, direct_g, M, N):
    """Output currents (B, N): current into each sink terminal from the network."""
    B = V.shape[0]
    current = np.zeros((B, N), np.float64)
    for c in range(coup_u.shape[0]):
        t = coup_t[c]
        if t >= M:
            u = coup_u[c]
            for k in range(B):
                current[k, t - M] += coup_g[c] * x[u, k]
    for d in range(direct_t1.shape[0]):
        t1 = direct_t1[d]
        t2 = direct_t2[d]
        if t1 < M and t2 >= M:
            for k in range(B):
                current[k, t2 - M] += direct_g[d] * V[k, t1]
        elif t2 < M and t1 >= M:
            for k in range(B):
                current[k, t1 - M] += direct_g[d] * V[k, t2]
    return current


@njit(cache=True)
def node_voltages(x, V, label, M, N):
    """Row and column node voltages (B, M, N) from the unknowns and the terminal values."""
    B = V.shape[0]
    MN = M * N
    v_row = np.empty((B, M, N), np.float64)
    v_col = np.empty((B, M, N), np.float64)
    for k in range(B):
        for i in range(M):
            for j in range(N):
                for side in range(2):
                    node = side * MN + i * N + j
                    lab = label[node]
                    if lab >= 0:
                        val = x[lab, k]
                    elif -lab - 1 < M:
                        val = V[k, -lab - 1]
                    else:
                        val = 0.0
                    if side == 0:
                        v_row[k, i, j] = val
                    else:
                        v_col[k, i, j] = val
    return v_row, v_col


@njit(cache=True)
def branch_residual(indptr, indices, data, x, Vt, coup_u, coup_t, coup_g):
    """Kirchhoff residual (n, B) of the unknowns ``x``, summed from branch currents.

    Each branch current is ``g * (v_a - v_b)`` (elements to other unknowns and to
    terminals at their voltages ``Vt`` (B, M + N): sources, then sinks); differences of nearby
    voltages are exact in floating point, so the residual is accurate to rounding in the
    branch currents rather than in the much larger products ``g * v``.
    """
    n, B = x.shape
    r = np.zeros((n, B))
    for c in range(coup_u.shape[0]):
        t = coup_t[c]
        u = coup_u[c]
        for k in range(B):
            r[u, k] += coup_g[c] * (Vt[k, t] - x[u, k])
    for u in range(n):
        for p in range(indptr[u], indptr[u + 1]):
            v = indices[p]
            if v != u:
                for k in range(B):
                    r[u, k] += data[p] * (x[u, k] - x[v, k])  # data = -g: current from v into u
    return r


@njit(cache=True)
def refill_csr(edge_g, group_a, group_b, pos_a, pos_b, diag_pos, n_unknown, data):
    """Refill the values ``data`` of a matrix that :func:`assemble_csr` assembled, for new
    edge conductances ``edge_g`` on the same edges (same pattern and order).

    ``group_a`` / ``group_b``: the group of each edge's ends (negative: a terminal);
    ``pos_a`` / ``pos_b``: where the edge's off-diagonal entries stand in ``data`` (rows
    ``group_a`` and ``group_b``); ``diag_pos``: where each row's diagonal stands. The
    diagonal sums run over the edges in the same order as in :func:`assemble_csr`, so the
    values are the same to the bit.
    """
    diag = np.zeros(n_unknown, np.float64)
    for e in range(edge_g.shape[0]):
        g = edge_g[e]
        ga = group_a[e]
        gb = group_b[e]
        if ga >= 0 and gb >= 0:
            data[pos_a[e]] = -g
            data[pos_b[e]] = -g
            diag[ga] += g
            diag[gb] += g
        elif ga >= 0:
            diag[ga] += g
        elif gb >= 0:
            diag[gb] += g
    for u in range(n_unknown):
        data[diag_pos[u]] = diag[u]
