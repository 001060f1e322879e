"""A plain-NumPy, dense, independent statement of the crossbar circuit (test oracle).

Nothing here imports xbarref: the circuit of ``docs/case-format.md`` is written out
again as an explicit list of two-terminal elements between numbered nodes, and solved
with dense linear algebra. It is meant for small crossbars only (up to ~12 x 12).

Node numbering (``M`` rows, ``N`` columns)::

    r(i, j)  -> i * N + j                 row nodes
    c(i, j)  -> M * N + i * N + j         column nodes
    s(i)     -> 2 * M * N + i             ideal source of row i (fixed at V[i])
    ground   -> 2 * M * N + M             0 V (virtual ground of the sense amplifiers)

Elements (current counted from end ``a`` to end ``b``):

    source   s(i)      -> r(i, 0)      resistance r_source[i]
    wire_row r(i, j)   -> r(i, j+1)    resistance r_wire_row[i, j]
    wire_col c(i, j)   -> c(i+1, j)    resistance r_wire_col[i, j]
    sink     c(M-1, j) -> ground       resistance r_sink[j]
    device   r(i, j)   -> c(i, j)      conductance G[i, j] (linear or sinh law)

A resistance of exactly 0 is an ideal short. It is never replaced by a small value: the
nodes it joins are merged into one *class* (union-find); a class holding s(i) or the
ground is fixed at that voltage, every other class is an unknown. The current through a
short is found afterwards by Kirchhoff's current law on the tree of shorts in its class
(in this topology the shorts never form a loop). The dense nodal system of the free
classes is solved in float64 and refined with residuals in ``numpy.longdouble``
(x87 80-bit extended precision), so the reference voltages and currents are accurate to
about one float64 rounding even when wire and device conductances differ by many decades.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import scipy.linalg

try:  # small dense LAPACK calls are ~100x slower with OpenBLAS threads on a loaded 2-core box
    from threadpoolctl import threadpool_limits
except ImportError:  # optional: only speed depends on it
    threadpool_limits = None


def _one_blas_thread():
    if threadpool_limits is None:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")

KINDS = ("source", "wire_row", "wire_col", "sink", "device")
LD = np.longdouble


def broadcast_params(G, r_source=0.0, r_sink=0.0, r_wire_row=0.0, r_wire_col=0.0):
    """Broadcast scalar or per-element resistances (ohm) to full float64 arrays."""
    G = np.array(G, dtype=np.float64)
    M, N = G.shape
    out = {"G": G}
    for name, value, shape in (
        ("r_source", r_source, (M,)),
        ("r_sink", r_sink, (N,)),
        ("r_wire_row", r_wire_row, (M, N - 1)),
        ("r_wire_col", r_wire_col, (M - 1, N)),
    ):
        arr = np.empty(shape, dtype=np.float64)
        arr[...] = np.asarray(value, dtype=np.float64)
        out[name] = arr
    return out


@dataclass
class Network:
    """The crossbar as an element list with its classes of short-circuited nodes."""

    M: int
    N: int
    a: np.ndarray          # (E,) first node of each element
    b: np.ndarray          # (E,) second node
    kind: np.ndarray       # (E,) index into KINDS
    where: list            # (E,) (i,) or (i, j) index of the element in its array
    g: np.ndarray          # (E,) conductance in S (devices: G; resistors: 1/R; shorts: nan)
    short: np.ndarray      # (E,) True for a zero resistance
    cls: np.ndarray        # (n_nodes,) class of each node
    n_classes: int
    fixed: np.ndarray      # (n_classes,) -1 free, 0..M-1 the source it is pinned to, M ground

    @property
    def n_nodes(self):
        return 2 * self.M * self.N + self.M + 1

    def row(self, i, j):
        return i * self.N + j

    def col(self, i, j):
        return self.M * self.N + i * self.N + j

    def src(self, i):
        return 2 * self.M * self.N + i

    @property
    def ground(self):
        return 2 * self.M * self.N + self.M

    def elements_of(self, kind):
        """Indices of the elements of one kind, in the order they were listed."""
        return np.flatnonzero(self.kind == KINDS.index(kind))


def build_network(params):
    """Element list and short-circuit classes of the crossbar ``params``.

    Parameters
    ----------
    params : dict
        ``G`` (M, N) in S and ``r_source``, ``r_sink``, ``r_wire_row``, ``r_wire_col``
        in ohm (scalars or full arrays).
    """
    p = broadcast_params(**params)
    G = p["G"]
    M, N = G.shape
    net = Network(M, N, None, None, None, [], None, None, None, 0, None)
    a, b, kind, g, short = [], [], [], [], []

    def add(na, nb, k, where, value, is_resistance):
        a.append(na)
        b.append(nb)
        kind.append(KINDS.index(k))
        net.where.append(where)
        if is_resistance:
            short.append(value == 0.0)
            g.append(np.nan if value == 0.0 else 1.0 / value)
        else:
            short.append(False)
            g.append(value)

    for i in range(M):
        add(net.src(i), net.row(i, 0), "source", (i,), p["r_source"][i], True)
    for i in range(M):
        for j in range(N - 1):
            add(net.row(i, j), net.row(i, j + 1), "wire_row", (i, j), p["r_wire_row"][i, j], True)
    for i in range(M - 1):
        for j in range(N):
            add(net.col(i, j), net.col(i + 1, j), "wire_col", (i, j), p["r_wire_col"][i, j], True)
    for j in range(N):
        add(net.col(M - 1, j), net.ground, "sink", (j,), p["r_sink"][j], True)
    for i in range(M):
        for j in range(N):
            add(net.row(i, j), net.col(i, j), "device", (i, j), G[i, j], False)
    net.a = np.array(a)
    net.b = np.array(b)
    net.kind = np.array(kind)
    net.g = np.array(g, dtype=np.float64)
    net.short = np.array(short, dtype=bool)

    # union-find over the shorts
    parent = list(range(net.n_nodes))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for e in np.flatnonzero(net.short):
        ra, rb = find(net.a[e]), find(net.b[e])
        if ra != rb:
            parent[ra] = rb
    roots = np.array([find(x) for x in range(net.n_nodes)])
    _, cls = np.unique(roots, return_inverse=True)
    net.cls = cls
    net.n_classes = int(cls.max()) + 1
    fixed = np.full(net.n_classes, -1)
    for i in range(M):
        if fixed[cls[net.src(i)]] != -1:
            raise AssertionError("two sources shorted together: not possible in this topology")
        fixed[cls[net.src(i)]] = i
    if fixed[cls[net.ground]] != -1:
        raise AssertionError("a source shorted to ground: not possible in this topology")
    fixed[cls[net.ground]] = M
    net.fixed = fixed
    return net


def node_voltages(net, V, V_row, V_col):
    """All node voltages (B, n_nodes) from sources ``V`` (B, M) and node arrays (B, M, N)."""
    V = np.atleast_2d(V)
    B = V.shape[0]
    dtype = np.result_type(V, V_row, V_col)
    x = np.zeros((B, net.n_nodes), dtype=dtype)
    MN = net.M * net.N
    x[:, :MN] = np.reshape(V_row, (B, MN))
    x[:, MN:2 * MN] = np.reshape(V_col, (B, MN))
    x[:, 2 * MN:2 * MN + net.M] = V
    x[:, net.ground] = 0.0
    return x


def device_current(G, v, device="linear", sinh_k=None):
    """Device current (A) at voltage v (V): ``G v`` or ``G sinh(k v) / k``."""
    if device == "linear":
        return G * v
    if device == "sinh":
        return G * np.sinh(sinh_k * v) / sinh_k
    raise ValueError(f"device: unknown {device!r}")


def device_slope(G, v, device="linear", sinh_k=None):
    """d(device current)/dv in S."""
    if device == "linear":
        return G + 0.0 * v
    return G * np.cosh(sinh_k * v)


def element_currents(net, x, device="linear", sinh_k=None):
    """Currents (B, E) from end a to end b of every element; shorts from KCL on their tree.

    Returns
    -------
    i : ndarray (B, E)
        Element currents in A.
    injection : ndarray (B, n_classes)
        Net current flowing *out* of each class through its non-short elements. For a
        free class this is its Kirchhoff residual (zero for an exact solution); for a
        class fixed to source ``i`` it is the current that source delivers (the ground
        class gives minus the total sink current).
    """
    B = x.shape[0]
    va, vb = x[:, net.a], x[:, net.b]
    v = va - vb
    i = np.full((B, len(net.a)), np.nan, dtype=x.dtype)
    dev = net.kind == KINDS.index("device")
    res = ~net.short & ~dev
    i[:, res] = v[:, res] * net.g[res].astype(x.dtype)
    i[:, dev] = device_current(net.g[dev].astype(x.dtype), v[:, dev], device, sinh_k)
    # net current out of every node through non-short elements
    out = np.zeros((B, net.n_nodes), dtype=x.dtype)
    ns = ~net.short
    np.add.at(out.T, net.a[ns], i[:, ns].T)
    np.add.at(out.T, net.b[ns], -i[:, ns].T)
    injection = np.zeros((B, net.n_classes), dtype=x.dtype)
    np.add.at(injection.T, net.cls, out.T)
    # shorts: peel the forest of shorts from its leaves; the current through the short
    # joining a leaf to the rest is what leaves the leaf's subtree through other elements
    shorts = [int(e) for e in np.flatnonzero(net.short)]
    adj = {}
    for e in shorts:
        adj.setdefault(net.a[e], []).append(e)
        adj.setdefault(net.b[e], []).append(e)
    sub = out.copy()
    remaining = set(shorts)
    # roots that must never be peeled: the fixed nodes (their short carries source current)
    keep = {net.src(k) for k in range(net.M)} | {net.ground}
    progress = True
    while remaining and progress:
        progress = False
        for node in list(adj):
            live = [e for e in adj[node] if e in remaining]
            if len(live) != 1 or node in keep:
                continue
            e = live[0]
            # current leaves `node` through its subtree: it arrives through short e
            if net.b[e] == node:
                i[:, e] = sub[:, node]
                other = net.a[e]
            else:
                i[:, e] = -sub[:, node]
                other = net.b[e]
            sub[:, other] += sub[:, node]
            remaining.discard(e)
            progress = True
    if remaining:
        raise AssertionError("shorts form a loop or join two fixed nodes")
    return i, injection


def _class_operators(net):
    """Non-short elements and the classes of their ends."""
    ns = np.flatnonzero(~net.short)
    return ns, net.cls[net.a[ns]], net.cls[net.b[ns]]


def _laplacian(n, ca, cb, g, dtype):
    """Dense nodal matrix (n, n) of conductances ``g`` between classes ``ca`` and ``cb``."""
    L = np.zeros((n, n), dtype=dtype)
    g = g.astype(dtype)
    np.add.at(L, (ca, ca), g)
    np.add.at(L, (cb, cb), g)
    np.add.at(L, (ca, cb), -g)
    np.add.at(L, (cb, ca), -g)
    return L


def _branch_residual(xc, free, ca, cb, g_ld, is_dev, device, k_ld):
    """Net current (B, F) out of every free class, summed branch by branch in long double.

    Each branch current is ``g (x_a - x_b)`` with the difference taken first, so a weak
    element next to strong wires keeps all its digits: assembling ``L x`` with a summed
    diagonal would round the weak conductances away (a 8 S wire plus a 1e-4 S source
    loses 1e-14 of the source in long double, which then shows in the currents).
    """
    v = xc[:, ca] - xc[:, cb]
    cur = np.where(is_dev, device_current(g_ld, v, device, k_ld), v * g_ld)
    out = np.zeros(xc.shape, dtype=LD)
    np.add.at(out.T, ca, cur.T)
    np.add.at(out.T, cb, -cur.T)
    return out[:, free], v


def _check_settled(last_step, x, what):
    """The last correction must be below float64 resolution: 1e-16 of each component
    (half an ulp) plus 1e-18 of the largest one (a node near 0 V between bipolar inputs
    keeps long-double noise of its neighbours' size). It is typically ~1e-19."""
    x = np.atleast_2d(x)
    last_step = np.atleast_2d(last_step)
    floor = 1e-18 * np.max(np.abs(x), axis=1, keepdims=True) + 1e-300
    if np.any(np.abs(last_step) > 1e-16 * np.abs(x) + floor):
        worst = float(np.max(np.abs(last_step) / (np.abs(x) + floor)))
        raise RuntimeError(f"reference {what} did not settle: last relative step {worst:.3e}")


def _solve_free(net, V, xc, free, fixed, L, L_ld, g, ca, cb, is_dev, device, sinh_k, tol, max_newton,
                n_refine=20):
    """Fill the free class voltages of ``xc`` (B, n_classes); return Newton iterations.

    Linear: float64 LU of the nodal matrix, refined with long-double branch residuals
    until no component moves by more than ``tol`` of itself. sinh: Newton from there.
    """
    if not len(free):
        return 0
    lu = scipy.linalg.lu_factor(L[np.ix_(free, free)])
    rhs = -(xc[:, fixed] @ L_ld[np.ix_(fixed, free)])  # (B, F)
    xc[:, free] = scipy.linalg.lu_solve(lu, rhs.T.astype(np.float64)).T
    g_ld = g.astype(LD)
    k_ld = None if sinh_k is None else LD(sinh_k)
    lin_dev = "linear"
    previous = np.inf
    for it in range(n_refine):
        F, _v = _branch_residual(xc, free, ca, cb, g_ld, is_dev, lin_dev, None)
        d = scipy.linalg.lu_solve(lu, -F.T.astype(np.float64)).T.astype(LD)
        xc[:, free] += d
        size = float(np.max(np.abs(d)))
        if np.all(np.abs(d) <= tol * np.abs(xc[:, free])) or (it >= 2 and size >= 0.5 * previous):
            break           # converged, or stalled at long-double rounding
        previous = size
    _check_settled(d, xc[:, free], "refinement")
    if device == "linear":
        return 0
    n = net.n_classes

    def residual(xcl):
        """Net current out of every free class (F,) and the element voltages."""
        F, v = _branch_residual(xcl[None], free, ca, cb, g_ld, is_dev, device, k_ld)
        return F[0], v[0]

    iterations = 0
    for b in range(xc.shape[0]):
        x = xc[b].copy()
        F, v = residual(x)
        previous = np.inf
        for it in range(max_newton):
            slope = np.where(is_dev, device_slope(g, v.astype(np.float64), device, sinh_k), g)
            J = _laplacian(n, ca, cb, slope, np.float64)[np.ix_(free, free)]
            step = scipy.linalg.solve(J, -F.astype(np.float64), assume_a="pos").astype(LD)
            norm0 = np.linalg.norm(F.astype(np.float64))
            lam = LD(1.0)
            for _ in range(60):       # halve the step until the residual norm does not grow
                trial = x.copy()
                trial[free] += lam * step
                F1, v1 = residual(trial)
                if np.linalg.norm(F1.astype(np.float64)) <= norm0 or lam < 1e-12:
                    break
                lam /= 2
            x, F, v = trial, F1, v1
            iterations = max(iterations, it + 1)
            size = float(np.max(np.abs(lam * step)))
            if np.all(np.abs(lam * step) <= tol * np.abs(x[free])):
                break
            if it >= 3 and size >= 0.5 * previous:
                break       # stalled at long-double rounding
            previous = size
        _check_settled(lam * step, x[free], "Newton")
        xc[b] = x
    return iterations


def solve_reference(params, V, device="linear", sinh_k=None, tol=1e-18, max_newton=100):
    """Solve the crossbar ``params`` for inputs ``V`` (B, M) or (M,) volts.

    Linear device: one dense solve with iterative refinement in long double. ``sinh``
    device: Newton on the free classes from the linear solution, with step halving on
    the norm of the Kirchhoff residual; residuals in long double. It stops when a step
    changes no class voltage by more than ``tol`` times that voltage.

    Returns
    -------
    dict
        ``I`` (B, N) output currents in A (through r_sink into 0 V), ``V_row``,
        ``V_col`` (B, M, N) node voltages, ``I_source`` (B, M) current delivered by each
        source, ``x`` (B, n_nodes) all node voltages (long double), ``i`` (B, E) element
        currents (long double), ``net`` the :class:`Network`, ``iterations`` (Newton).
    """
    net = params if isinstance(params, Network) else build_network(params)
    V = np.atleast_2d(np.asarray(V, dtype=np.float64))
    B, M = V.shape
    if M != net.M:
        raise ValueError("V: wrong number of rows")
    free = np.flatnonzero(net.fixed < 0)
    fixed = np.flatnonzero(net.fixed >= 0)
    xc = np.zeros((B, net.n_classes), dtype=LD)   # class voltages
    for c in fixed:
        k = net.fixed[c]
        xc[:, c] = V[:, k] if k < M else 0.0
    ns, ca, cb = _class_operators(net)
    g = net.g[ns].copy()
    is_dev = net.kind[ns] == KINDS.index("device")
    L = _laplacian(net.n_classes, ca, cb, g, np.float64)   # small-signal (devices: G)
    L_ld = _laplacian(net.n_classes, ca, cb, g, LD)
    with _one_blas_thread():
        iterations = _solve_free(net, V, xc, free, fixed, L, L_ld, g, ca, cb, is_dev, device, sinh_k, tol, max_newton)

    x = xc[:, net.cls]
    i, inj = element_currents(net, x, device, None if sinh_k is None else LD(sinh_k))
    MN = M * net.N
    sink = net.elements_of("sink")
    src = net.elements_of("source")
    return {
        "I": i[:, sink].astype(np.float64),
        "I_source": i[:, src].astype(np.float64),
        "V_row": x[:, :MN].astype(np.float64).reshape(B, M, net.N),
        "V_col": x[:, MN:2 * MN].astype(np.float64).reshape(B, M, net.N),
        "x": x,
        "i": i,
        "injection": inj,
        "net": net,
        "iterations": iterations,
        "device": device,
        "sinh_k": sinh_k,
    }


def sink_elements(net, params):
    """For each output j, the elements whose currents add up to I[j], with signs.

    With ``r_sink[j] > 0`` that is the sink resistor itself. With ``r_sink[j] == 0`` the
    column's tail of nodes shorted to 0 V collects the current: I[j] is the sum of the
    currents flowing into that tail through the non-short elements that enter it.
    Returns a list of (element indices, signs) with ``I[j] = sum(sign * i[e])``.
    """
    p = broadcast_params(**params)
    ground = net.cls[net.ground]
    out = []
    for j, e in enumerate(net.elements_of("sink")):
        if p["r_sink"][j] > 0:
            out.append((np.array([e]), np.array([1.0])))
            continue
        tail = [net.col(i, j) for i in range(net.M) if net.cls[net.col(i, j)] == ground]
        in_a = np.isin(net.a, tail)
        in_b = np.isin(net.b, tail)
        touch = np.flatnonzero(~net.short & (in_a ^ in_b))
        # current a -> b enters the tail when b is in it
        out.append((touch, np.where(in_b[touch], 1.0, -1.0)))
    return out


def term_scales(net, x, device="linear", sinh_k=None):
    """Rounding scale of every element's current, ``T_e = g_e (|x_a| + |x_b|) + |i_e|``.

    ``g_e`` is the small-signal conductance (sinh: ``G cosh(k v)``); shorts get 0.
    Returns ``T`` (B, E), the small-signal conductances (B, E) and the currents (B, E).
    """
    x = np.asarray(x, dtype=np.float64)
    i, _ = element_currents(net, x, device, sinh_k)
    ns = ~net.short
    va, vb = x[:, net.a], x[:, net.b]
    g = np.where(ns, net.g, 0.0)
    slope = np.where(net.kind == KINDS.index("device"), device_slope(g, va - vb, device, sinh_k), g)
    T = np.where(ns, slope * (np.abs(va) + np.abs(vb)) + np.abs(np.where(ns, i, 0.0)), 0.0)
    return T, slope, i


def effective_matrix_reference(params):
    """The (M, N) matrix A with I = V @ A (linear device), column by column of eye(M)."""
    net = params if isinstance(params, Network) else build_network(params)
    return solve_reference(net, np.eye(net.M))["I"]


def solve_rational(params, V, float_conductances=False):
    """Exact output currents (B, N) by Gaussian elimination in rational arithmetic.

    Every element value and input is taken as the exact rational number its float64
    holds (conductances of resistors as exactly 1/R); the result is rounded once to
    float64. Only for tiny crossbars (a few dozen nodes): it checks the float solvers,
    the reference included, against arithmetic with no rounding at all. With
    ``float_conductances`` a resistor's conductance is the float64 ``1 / R`` instead.
    """
    from fractions import Fraction

    p = broadcast_params(**params)
    net = build_network(p)
    V = np.atleast_2d(np.asarray(V, dtype=np.float64))
    ns, ca, cb = _class_operators(net)
    g_exact = []
    for e in ns:
        kind = KINDS[net.kind[e]]
        w = net.where[e]
        if kind == "device":
            g_exact.append(Fraction(float(p["G"][w])))
        elif float_conductances:
            g_exact.append(Fraction(1.0 / float(p["r_" + kind][w])))
        else:
            g_exact.append(1 / Fraction(float(p["r_" + kind][w])))
    free = [int(c) for c in np.flatnonzero(net.fixed < 0)]
    pos = {c: k for k, c in enumerate(free)}
    terms = sink_elements(net, p)
    out = np.zeros((V.shape[0], net.N))
    for b in range(V.shape[0]):
        val = {}
        for c in np.flatnonzero(net.fixed >= 0):
            k = net.fixed[c]
            val[int(c)] = Fraction(float(V[b, k])) if k < net.M else Fraction(0)
        n = len(free)
        A = [[Fraction(0)] * n for _ in range(n)]
        rhs = [Fraction(0)] * n
        for g, u, w in zip(g_exact, ca, cb):
            if u == w:
                continue
            for s, o in ((int(u), int(w)), (int(w), int(u))):
                if s in pos:
                    A[pos[s]][pos[s]] += g
                    if o in pos:
                        A[pos[s]][pos[o]] -= g
                    else:
                        rhs[pos[s]] += g * val[o]
        for i in range(n):                       # SPD: no pivoting needed
            for r in range(i + 1, n):
                if A[r][i]:
                    f = A[r][i] / A[i][i]
                    for c in range(i, n):
                        A[r][c] -= f * A[i][c]
                    rhs[r] -= f * rhs[i]
        x = [Fraction(0)] * n
        for i in range(n - 1, -1, -1):
            x[i] = (rhs[i] - sum(A[i][c] * x[c] for c in range(i + 1, n))) / A[i][i]
        for c in free:
            val[c] = x[pos[c]]
        g_of = dict(zip((int(e) for e in ns), g_exact))
        for j, (elems, signs) in enumerate(terms):
            total = Fraction(0)
            for e, s in zip(elems, signs):
                v = val[int(net.cls[net.a[e]])] - val[int(net.cls[net.b[e]])]
                total += int(s) * g_of[int(e)] * v
            out[b, j] = float(total)
    return out
