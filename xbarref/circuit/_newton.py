"""Numba kernels for Newton's method: device currents and Kirchhoff residuals in node space.

Node voltages are full (M, N) arrays ``vr`` (row nodes) and ``vc`` (column nodes),
terminals included. ``fcur(v, g, p)`` and ``fcond(v, g, p)`` are the device law's
current (A) and derivative (S), see :mod:`xbarref.circuit.laws`. The built-in laws run
through cached kernels that pick the law by number (``law``: 0 linear, 1 sinh); a user
law through the uncached ones that take its functions.

The batch kernels work on the inputs ``which`` of a batch: node voltages ``v`` (B, 2, M, N),
inputs ``Vin`` (B, M), conductances ``G_all`` (1, M, N) shared or (B, M, N) per input.
"""

import numpy as np
from numba import njit

from xbarref.circuit.laws import linear_conductance, linear_current, sinh_conductance, sinh_current

EPS = np.finfo(np.float64).eps


@njit  # not cached: numba cannot cache kernels that take jitted functions as arguments
def device_currents(vr, vc, G, fcur, fcond, params, i_dev, g_dev):
    """Current (A) and differential conductance (S) of every device at the voltages given."""
    M, N = G.shape
    for i in range(M):
        for j in range(N):
            g = G[i, j]
            if g > 0.0:
                v = vr[i, j] - vc[i, j]
                i_dev[i, j] = fcur(v, g, params)
                g_dev[i, j] = fcond(v, g, params)
            else:
                i_dev[i, j] = 0.0
                g_dev[i, j] = 0.0


@njit(cache=True)
def node_residual(vr, vc, Vin, i_dev, r_source, r_sink, r_wire_row, r_wire_col, res, mag, floor):
    """Current flowing *into* each node through its finite elements, and a scale.

    ``res[0]`` / ``res[1]`` (M, N): net current into row / column nodes (zero at the
    solution, summed over a merged group). ``mag`` (2, M, N): sum of the magnitudes of
    those branch currents, the scale of a relative Kirchhoff test. ``floor`` (2, M, N):
    the imbalance that rounding the node voltages alone can cause, ``8 eps sum_e g_e |v|``.
    Elements of zero resistance carry no term (they are inside a merged group).
    """
    M, N = vr.shape
    for i in range(M):
        for j in range(N):
            d = i_dev[i, j]
            rr = -d
            mr = abs(d)
            fr = 0.0
            rc = d
            mc = abs(d)
            fc = 0.0
            if j == 0 and r_source[i] > 0.0:
                t = (Vin[i] - vr[i, j]) / r_source[i]
                rr += t
                mr += abs(t)
                fr += abs(vr[i, j]) / r_source[i]
            if j > 0 and r_wire_row[i, j - 1] > 0.0:
                t = (vr[i, j - 1] - vr[i, j]) / r_wire_row[i, j - 1]
                rr += t
                mr += abs(t)
                fr += abs(vr[i, j]) / r_wire_row[i, j - 1]
            if j < N - 1 and r_wire_row[i, j] > 0.0:
                t = (vr[i, j + 1] - vr[i, j]) / r_wire_row[i, j]
                rr += t
                mr += abs(t)
                fr += abs(vr[i, j]) / r_wire_row[i, j]
            if i > 0 and r_wire_col[i - 1, j] > 0.0:
                t = (vc[i - 1, j] - vc[i, j]) / r_wire_col[i - 1, j]
                rc += t
                mc += abs(t)
                fc += abs(vc[i, j]) / r_wire_col[i - 1, j]
            if i < M - 1 and r_wire_col[i, j] > 0.0:
                t = (vc[i + 1, j] - vc[i, j]) / r_wire_col[i, j]
                rc += t
                mc += abs(t)
                fc += abs(vc[i, j]) / r_wire_col[i, j]
            if i == M - 1 and r_sink[j] > 0.0:
                t = -vc[i, j] / r_sink[j]
                rc += t
                mc += abs(t)
                fc += abs(vc[i, j]) / r_sink[j]
            res[0, i, j] = rr
            res[1, i, j] = rc
            mag[0, i, j] = mr
            mag[1, i, j] = mc
            floor[0, i, j] = 8.0 * EPS * fr
            floor[1, i, j] = 8.0 * EPS * fc


@njit(cache=True)
def group_sum(values, label, n_unknown):
    """Sum node values (2, M, N) into their unknown groups (n_unknown,); terminals dropped."""
    out = np.zeros(n_unknown)
    flat = values.reshape(-1)
    for k in range(flat.shape[0]):
        g = label[k]
        if g >= 0:
            out[g] += flat[k]
    return out


@njit(cache=True)
def group_spread(x, label, M, N):
    """Node values (2, M, N) of the unknown groups ``x``; terminal nodes get 0."""
    out = np.zeros(2 * M * N)
    for k in range(2 * M * N):
        g = label[k]
        if g >= 0:
            out[k] = x[g]
    return out.reshape(2, M, N)


@njit(cache=True)
def sink_currents_nodes(vc, res, r_sink, label):
    """Output currents (N,): ``v / r_sink``, or for a shorted sink the net current that
    its group of nodes (at 0 V) receives through finite elements, from ``res``."""
    M, N = vc.shape
    MN = M * N
    out = np.zeros(N)
    for j in range(N):
        if r_sink[j] > 0.0:
            out[j] = vc[M - 1, j] / r_sink[j]
        else:
            code = -(1 + M + j)
            for i in range(M):
                if label[MN + i * N + j] == code:
                    out[j] += res[1, i, j]
    return out


@njit(cache=True, nogil=True)
def builtin_currents(vr, vc, G, law, params, i_dev, g_dev):
    """:func:`device_currents` for a built-in law by number (0 linear, 1 sinh); cached."""
    M, N = G.shape
    for i in range(M):
        for j in range(N):
            g = G[i, j]
            if g > 0.0:
                v = vr[i, j] - vc[i, j]
                if law == 1:
                    # sinh_current's expression (bit for bit), and its derivative
                    # g cosh(k v) from the same sinh: cosh = sqrt(1 + sinh^2) (no
                    # cancellation), one transcendental per device instead of two
                    k = params[0]
                    s = np.sinh(k * v)
                    i_dev[i, j] = g * s / k
                    if abs(s) < 1e150:
                        g_dev[i, j] = g * np.sqrt(1.0 + s * s)
                    else:
                        g_dev[i, j] = sinh_conductance(v, g, params)
                else:
                    i_dev[i, j] = linear_current(v, g, params)
                    g_dev[i, j] = linear_conductance(v, g, params)
            else:
                i_dev[i, j] = 0.0
                g_dev[i, j] = 0.0


@njit(cache=True, nogil=True)
def kcl_measures(vr, vc, Vin, i_dev, r_source, r_sink, r_wire_row, r_wire_col, free, reltol, abstol,
                 res, mag, floor):
    """Residuals ``res`` and tolerances ``mag`` of one input; returns ``(2-norm, worst excess)``.

    The tolerance of a node is ``reltol * sum|branch currents| + rounding floor + abstol``
    (see :func:`node_residual`); the excess is ``|residual| / tolerance`` (converged where
    <= 1). Both are taken over the free nodes ``free`` (2, M, N) (grid layout).
    """
    node_residual(vr, vc, Vin, i_dev, r_source, r_sink, r_wire_row, r_wire_col, res, mag, floor)
    M, N = vr.shape
    sq = 0.0
    worst = 0.0
    for s in range(2):
        for i in range(M):
            for j in range(N):
                t = mag[s, i, j] * reltol + floor[s, i, j] + abstol
                mag[s, i, j] = t
                if free[s, i, j]:
                    r = res[s, i, j]
                    sq += r * r
                    worst = max(worst, abs(r) / t)
    return np.sqrt(sq), worst


@njit(cache=True, nogil=True)
def evaluate_builtin(which, Vin, v, G_all, law, params, r_source, r_sink, r_wire_row, r_wire_col, free,
                     reltol, abstol, i_dev, g_dev, res, mag, norm, excess):
    """Device currents, Kirchhoff residuals, norms and excesses of the inputs ``which``."""
    M, N = v.shape[2], v.shape[3]
    floor = np.empty((2, M, N))
    for t in range(which.shape[0]):
        k = which[t]
        G = G_all[0] if G_all.shape[0] == 1 else G_all[k]
        builtin_currents(v[k, 0], v[k, 1], G, law, params, i_dev[k], g_dev[k])
        norm[k], excess[k] = kcl_measures(v[k, 0], v[k, 1], Vin[k], i_dev[k], r_source, r_sink, r_wire_row,
                                          r_wire_col, free, reltol, abstol, res[k], mag[k], floor)


@njit  # not cached: takes the law's functions
def evaluate_user(which, Vin, v, G_all, fcur, fcond, params, r_source, r_sink, r_wire_row, r_wire_col, free,
                  reltol, abstol, i_dev, g_dev, res, mag, norm, excess):
    """:func:`evaluate_builtin` for a user law ``(fcur, fcond)``."""
    M, N = v.shape[2], v.shape[3]
    floor = np.empty((2, M, N))
    for t in range(which.shape[0]):
        k = which[t]
        G = G_all[0] if G_all.shape[0] == 1 else G_all[k]
        device_currents(v[k, 0], v[k, 1], G, fcur, fcond, params, i_dev[k], g_dev[k])
        norm[k], excess[k] = kcl_measures(v[k, 0], v[k, 1], Vin[k], i_dev[k], r_source, r_sink, r_wire_row,
                                          r_wire_col, free, reltol, abstol, res[k], mag[k], floor)


@njit(cache=True, nogil=True)
def line_search_start(which, v, dv, v_old, step_max, v_max):
    """Keep the iterates ``v_old[t] = v[which[t]]`` and their ``max|dv|``, ``max|v|``."""
    for t in range(which.shape[0]):
        k = which[t]
        a = 0.0
        b = 0.0
        src = v[k].reshape(-1)
        d = dv[k].reshape(-1)
        dst = v_old[t].reshape(-1)
        for m in range(src.shape[0]):
            dst[m] = src[m]
            a = max(a, abs(d[m]))
            b = max(b, abs(src[m]))
        step_max[t] = a
        v_max[t] = b


@njit(cache=True, nogil=True)
def line_search_trial(idx, which, v, v_old, dv, alpha):
    """``v[which[t]] = v_old[t] + alpha[t] dv[which[t]]`` for ``t`` in ``idx``."""
    for s in range(idx.shape[0]):
        t = idx[s]
        k = which[t]
        dst = v[k].reshape(-1)
        src = v_old[t].reshape(-1)
        d = dv[k].reshape(-1)
        a = alpha[t]
        for m in range(dst.shape[0]):
            dst[m] = src[m] + a * d[m]


@njit(cache=True, nogil=True)
def abs_max(which, v, out):
    """``out[t] = max|v[which[t]]|``."""
    for t in range(which.shape[0]):
        x = v[which[t]].reshape(-1)
        m = 0.0
        for q in range(x.shape[0]):
            m = max(m, abs(x[q]))
        out[t] = m
