"""Hypothesis strategies for random crossbars and input batches.

Structural choices (shape, which parameters are zero, scalar or per-segment, the decades
spanned, the fraction of exact zeros) are drawn by hypothesis so that it can shrink
them; the values themselves come from a ``numpy.random.Generator`` seeded by a drawn
integer, which keeps the examples fast to generate for 12 x 12 arrays.

A crossbar is returned as a dict of keyword arguments for
``xbarref.circuit.Crossbar`` (``G`` in S, resistances in ohm), so the same dict also
feeds the independent reference in ``reference.py``.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

MAX_SIZE = 12
G_DECADES = (-9, -2)        # log10 of conductance in S
R_DECADES = (-2, 4)         # log10 of resistance in ohm

RESISTANCE_MODES = ("zero", "scalar", "array", "array_with_zeros", "array_all_zero")


def _log_uniform(rng, lo, hi, shape):
    return 10.0 ** rng.uniform(lo, hi, shape)


@st.composite
def decade_ranges(draw, lo, hi):
    """A sub-range [a, b] of the decades [lo, hi] (integers, a <= b)."""
    a = draw(st.integers(lo, hi))
    b = draw(st.integers(a, hi))
    return a, b


@st.composite
def resistances(draw, shape, rng, modes=RESISTANCE_MODES):
    """A resistance in ohm: exact 0, a scalar, or a per-element array (some exact zeros)."""
    mode = draw(st.sampled_from(modes))
    if mode == "zero":
        return 0.0
    lo, hi = draw(decade_ranges(*R_DECADES))
    if mode == "scalar":
        return float(_log_uniform(rng, lo, hi, ()))
    arr = _log_uniform(rng, lo, hi, shape)
    if mode == "array_with_zeros":
        arr[rng.random(shape) < 0.4] = 0.0
    elif mode == "array_all_zero":
        arr[...] = 0.0
    return arr


@st.composite
def shapes(draw, max_size=MAX_SIZE):
    """(M, N) with 1 <= M, N <= max_size, often 1 x n, n x 1 and non-square."""
    kind = draw(st.sampled_from(("any", "any", "one_row", "one_col", "square")))
    M = draw(st.integers(1, max_size))
    N = draw(st.integers(1, max_size))
    if kind == "one_row":
        M = 1
    elif kind == "one_col":
        N = 1
    elif kind == "square":
        N = M
    return M, N


@st.composite
def conductances(draw, shape, rng):
    """Conductances in S spanning some decades of 1e-9..1e-2, with open cells (exact 0)."""
    lo, hi = draw(decade_ranges(*G_DECADES))
    G = _log_uniform(rng, lo, hi, shape)
    open_fraction = draw(st.sampled_from((0.0, 0.0, 0.2, 0.6, 1.0)))
    G[rng.random(shape) < open_fraction] = 0.0
    return G


@st.composite
def crossbars(draw, max_size=MAX_SIZE, shape=None, resistance_modes=RESISTANCE_MODES):
    """Keyword arguments of a random linear ``Crossbar`` (G in S, resistances in ohm)."""
    M, N = shape if shape is not None else draw(shapes(max_size))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return {
        "G": draw(conductances((M, N), rng)),
        "r_source": draw(resistances((M,), rng, resistance_modes)),
        "r_sink": draw(resistances((N,), rng, resistance_modes)),
        "r_wire_row": draw(resistances((M, N - 1), rng, resistance_modes)),
        "r_wire_col": draw(resistances((M - 1, N), rng, resistance_modes)),
    }


@st.composite
def input_batches(draw, M, max_batch=4, v_max=None):
    """Bipolar input voltages (B, M) in V, sometimes with exact zeros or all zero.

    ``v_max`` fixes the largest magnitude; otherwise it is 10**u V with u in -3..1.
    """
    B = draw(st.integers(1, max_batch))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = v_max if v_max is not None else 10.0 ** draw(st.integers(-3, 1))
    V = rng.uniform(-scale, scale, (B, M))
    zeros = draw(st.sampled_from(("none", "none", "some", "row0_only", "all")))
    if zeros == "some":
        V[rng.random((B, M)) < 0.3] = 0.0
    elif zeros == "row0_only":
        V[:, 1:] = 0.0
    elif zeros == "all":
        V[0, :] = 0.0
    return V


@st.composite
def cases(draw, max_size=MAX_SIZE, max_batch=4, resistance_modes=RESISTANCE_MODES):
    """(crossbar kwargs, V) with V of shape (B, M)."""
    params = draw(crossbars(max_size, resistance_modes=resistance_modes))
    V = draw(input_batches(params["G"].shape[0], max_batch))
    return params, V


@st.composite
def sinh_cases(draw, max_size=8, max_batch=2, k_max=5.0, v_max=0.6):
    """(crossbar kwargs with device='sinh', V): k in (0, k_max] 1/V, |V| <= v_max V."""
    params = draw(crossbars(max_size))
    k = draw(st.sampled_from((1e-3, 0.1, 0.5, 1.0, 2.0, 3.0, k_max)))
    params = dict(params, device="sinh", sinh_k=k)
    V = draw(input_batches(params["G"].shape[0], max_batch, v_max=v_max))
    return params, V


@st.composite
def exact_arithmetic_cases(draw, max_size=MAX_SIZE):
    """G = integer * 2**-20 S and V = integer * 2**-6 V, so V @ G is exact in float64.

    Every product has at most 17 significant bits and every partial sum of at most 12
    of them fits in 53 bits, whatever the summation order.
    """
    M, N = draw(shapes(max_size))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    B = draw(st.integers(1, 4))
    G = rng.integers(0, 1024, (M, N)) * 2.0**-20
    V = rng.integers(-64, 65, (B, M)) * 2.0**-6
    return {"G": G}, V


def crossbar_kwargs(params):
    """The subset of ``params`` that the reference's ``build_network`` takes."""
    return {k: params[k] for k in ("G", "r_source", "r_sink", "r_wire_row", "r_wire_col")}


@st.composite
def per_read_cases(draw, max_size=MAX_SIZE, max_batch=6):
    """(crossbar kwargs, G_batch (B, M, N) in S, V (B, M)): every read its own conductances.

    Each read multiplies the base conductances by log-normal read noise (sigma drawn from
    0..0.5) and may open a few extra cells, as read noise and stuck-off cells would.
    """
    params = draw(crossbars(max_size))
    M, N = params["G"].shape
    V = draw(input_batches(M, max_batch))
    B = V.shape[0]
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    sigma = draw(st.sampled_from((0.0, 0.05, 0.5)))
    G_batch = params["G"][None] * np.exp(sigma * rng.standard_normal((B, M, N)))
    G_batch[rng.random((B, M, N)) < draw(st.sampled_from((0.0, 0.1)))] = 0.0
    return params, G_batch, V
