"""Numba kernels of the layers' forward passes (private to :mod:`xbarref.nn`).

Each kernel computes, value for value and bit for bit, what a NumPy statement of
:mod:`xbarref.nn.layers` computes (the statement is in its docstring and in the
tests), in one compiled pass that follows the arrays' memory order. The kernels take
and fill plain float64 arrays; the layers choose them, allocate the outputs in the
layout the NumPy statement would give, and keep the NumPy statement for the layouts the
kernels do not cover. No kernel uses ``fastmath``: LLVM then neither reorders nor fuses
(no fused multiply-add) floating-point operations.
"""

from __future__ import annotations

import numpy as np
from numba import njit


# Indices are cast to unsigned integers: Numba then omits the negative-index wraparound
# test that otherwise keeps LLVM from vectorising the loops.

@njit(cache=True)
def maxpool2x2_planes(x, y):
    """Running maximum of the non-overlapping 2 x 2 windows of image planes, as NumPy's

        y[...] = x[:, 0::2, 0::2]
        for (i, j) in (0, 1), (1, 0), (1, 1):
            np.maximum(x[:, i::2, j::2], y, out=y)

    (windows cut at ``2 * H_out`` rows and ``2 * W_out`` columns). ``np.maximum(v, m)``
    returns ``m`` on ties (so the sign of a zero maximum is that of its first zero) and
    a NaN when either is NaN: here ``m`` is replaced when ``v > m`` or ``v`` is NaN.

    Parameters
    ----------
    x : ndarray (P, H, W), C-contiguous
        P image planes (one per image and channel).
    y : ndarray (P, H_out, W_out), C-contiguous
        Filled in place; plane ``p`` of ``y`` is the pooled plane ``p`` of ``x``.

    Returns
    -------
    bool
        True when an output is NaN (a window holds a NaN).
    """
    planes, ho, wo = y.shape
    _, h, w = x.shape
    xf = x.ravel()
    yf = y.ravel()
    nan = False
    for p in range(planes):
        for r in range(ho):
            x0 = (p * h + 2 * r) * w
            y0 = (p * ho + r) * wo
            for q in range(wo):
                a = x0 + 2 * q
                m = xf[np.uint64(a)]
                v = xf[np.uint64(a + 1)]
                if v > m or v != v:
                    m = v
                v = xf[np.uint64(a + w)]
                if v > m or v != v:
                    m = v
                v = xf[np.uint64(a + w + 1)]
                if v > m or v != v:
                    m = v
                nan |= m != m
                yf[np.uint64(y0 + q)] = m
    return nan


@njit(cache=True)
def maxpool2x2_channels_last(x, y):
    """:func:`maxpool2x2_planes` for an input stored channels last: ``x`` (N, H, W, C)
    C-contiguous (the memory of an (N, C, H, W) view), ``y`` (C, N, H_out, W_out)
    C-contiguous. One output row at a time goes through a (W_out, C) buffer, so the
    channels are read side by side and each channel's output row is written in one run.
    Returns True when an output is NaN."""
    n, h, w, c = x.shape
    _, _, ho, wo = y.shape
    xf = x.ravel()
    yf = y.ravel()
    row = np.empty(wo * c)
    nan = False
    for b in range(n):
        for r in range(ho):
            x0 = (b * h + 2 * r) * w * c
            for q in range(wo):
                a = x0 + 2 * q * c
                o = q * c
                for ch in range(c):
                    m = xf[np.uint64(a + ch)]
                    v = xf[np.uint64(a + c + ch)]
                    if v > m or v != v:
                        m = v
                    v = xf[np.uint64(a + w * c + ch)]
                    if v > m or v != v:
                        m = v
                    v = xf[np.uint64(a + w * c + c + ch)]
                    if v > m or v != v:
                        m = v
                    row[np.uint64(o + ch)] = m
            for ch in range(c):
                y0 = ((ch * n + b) * ho + r) * wo
                for q in range(wo):
                    m = row[np.uint64(q * c + ch)]
                    nan |= m != m
                    yf[np.uint64(y0 + q)] = m
    return nan


@njit(cache=True)
def im2col_t(x, strides, shape, kh, kw, sh, sw, ph, pw, out):
    """The transposed im2col matrix of an (N, C, H, W) input zero-padded by ``ph`` rows
    and ``pw`` columns on each side: ``out[(c * kh + i) * kw + j, (b * ho + r) * wo + q]
    = xp[b, c, r * sh + i, q * sw + j]`` with ``xp`` the padded input (``+0.0`` in the
    padding), i.e. NumPy's ``sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh,
    ::sw].transpose(1, 4, 5, 0, 2, 3).reshape(K, P)``, written row after row.

    Parameters
    ----------
    x : ndarray (M,), C-contiguous
        The input's memory: element ``[b, c, t, u]`` is ``x[b * s0 + c * s1 + t * s2 + u * s3]``.
    strides : 4 ints ``(s0, s1, s2, s3)``
        The input's strides in elements (>= 0).
    shape : 4 ints ``(N, C, H, W)``
    kh, kw, sh, sw, ph, pw : int
        Kernel size, stride and padding (rows, columns).
    out : ndarray (C * kh * kw, N * H_out * W_out), C-contiguous
        Filled in place.
    """
    n, c, h, w = shape
    s0, s1, s2, s3 = strides
    ho = (h + 2 * ph - kh) // sh + 1
    wo = (w + 2 * pw - kw) // sw + 1
    of = out.ravel()
    P = n * ho * wo
    step = sw * s3
    for ch in range(c):
        for i in range(kh):
            for j in range(kw):
                base = ((ch * kh + i) * kw + j) * P
                u = j - pw
                # output columns q whose input column q * sw + u lies in [0, w)
                q_lo = min(wo, max(0, -(u // sw)))
                q_hi = max(q_lo, min(wo, (w - 1 - u) // sw + 1))
                for b in range(n):
                    plane = b * s0 + ch * s1
                    for r in range(ho):
                        col = base + (b * ho + r) * wo
                        t = r * sh + i - ph
                        if t < 0 or t >= h:
                            for q in range(wo):
                                of[np.uint64(col + q)] = 0.0
                            continue
                        src = plane + t * s2 + u * s3
                        for q in range(q_lo):
                            of[np.uint64(col + q)] = 0.0
                        if step == 1:
                            for q in range(q_lo, q_hi):
                                of[np.uint64(col + q)] = x[np.uint64(src + q)]
                        else:
                            for q in range(q_lo, q_hi):
                                of[np.uint64(col + q)] = x[np.uint64(src + q * step)]
                        for q in range(q_hi, wo):
                            of[np.uint64(col + q)] = 0.0


@njit(cache=True)
def affine_channels(x, scale, shift, y, relu=False):
    """``y[a, c, b] = fl(fl(x[a, c, b] * scale[c]) + shift[c])``: NumPy's
    ``y = x * scale; y += shift`` per channel (two roundings, no fused multiply-add);
    with ``relu`` each value then goes through :func:`relu` in the same pass (the same
    bits as the two passes).

    Parameters
    ----------
    x, y : ndarray (A, C, B), C-contiguous
        The input and the output, both seen in the input's memory order (channel axis in
        the middle; ``A`` or ``B`` may be 1).
    scale, shift : ndarray (C,)
    relu : bool
    """
    na, nc, nb = x.shape
    xf = x.ravel()
    yf = y.ravel()
    if nb == 1:     # channels last: the channel loop is the inner one
        for a in range(na):
            o = a * nc
            for c in range(nc):
                v = xf[np.uint64(o + c)] * scale[np.uint64(c)]
                v = v + shift[np.uint64(c)]
                if relu and not (v > 0.0 or v != v):
                    v = 0.0
                yf[np.uint64(o + c)] = v
        return
    for a in range(na):
        for c in range(nc):
            s = scale[c]
            t = shift[c]
            o = (a * nc + c) * nb
            if relu:
                for b in range(nb):
                    v = xf[np.uint64(o + b)] * s
                    v = v + t
                    yf[np.uint64(o + b)] = v if (v > 0.0 or v != v) else 0.0
            else:
                for b in range(nb):
                    v = xf[np.uint64(o + b)] * s
                    yf[np.uint64(o + b)] = v + t


@njit(cache=True)
def relu(x, y):
    """``y = np.maximum(x, 0.0)``: ``x`` where ``x > 0`` or ``x`` is NaN (its bits kept),
    else ``+0.0`` (NumPy returns the second operand on ties, so ``-0.0`` gives ``+0.0``).

    Parameters
    ----------
    x, y : ndarray (M,), C-contiguous
    """
    for k in range(x.shape[0]):
        v = x[np.uint64(k)]
        y[np.uint64(k)] = v if (v > 0.0 or v != v) else 0.0


@njit(cache=True)
def maxpool_tiled_backward(x, xs, g, gs, shape, kh, kw, out):
    """Input gradient of max pooling over non-overlapping ``kh x kw`` windows without
    padding (stride = kernel), the first maximum of each window taking the gradient, as
    NumPy's ``MaxPool2d._tiled_index`` + ``MaxPool2d._backward_tiled``::

        m = x[:, :, 0:ho * kh:kh, 0:wo * kw:kw]; index = 0
        for k in 1 .. kh * kw - 1 (k = i * kw + j, row-major kernel offsets):
            part = x[:, :, i:ho * kh:kh, j:wo * kw:kw]
            where part > m: m = part, index = k
        gx = 0 (every element, also the rows / columns past ho * kh / wo * kw)
        gx[:, :, i:ho * kh:kh, j:wo * kw:kw] = np.where(index == k, g, 0.0)

    An element replaces the running maximum only when strictly greater (so the first of
    equal maxima wins, a NaN first element stays, a later NaN never replaces); the chosen
    element gets the bits of ``g`` (NaN payloads and zero signs kept), every other one
    ``+0.0``.

    Parameters
    ----------
    x : ndarray (M,), C-contiguous
        The input's memory: element ``[b, c, t, u]`` is ``x[b * s0 + c * s1 + t * s2 + u * s3]``
        with ``xs = (s0, s1, s2, s3)`` (elements, >= 0).
    xs : 4 ints
    g : ndarray (L,), C-contiguous
        The output gradient's memory, element ``[b, c, r, q]`` at ``g[b * gs[0] + c * gs[1]
        + r * gs[2] + q * gs[3]]``.
    gs : 4 ints
    shape : 4 ints ``(N, C, H, W)``
        Shape of the input; the output gradient is (N, C, H // kh, W // kw).
    kh, kw : int
        Kernel (= stride) size.
    out : ndarray (C, N, H, W), C-contiguous
        Filled in place with the input gradient (stored channel-major).
    """
    n, c, h, w = shape
    s0, s1, s2, s3 = xs
    t0, t1, t2, t3 = gs
    ho = h // kh
    wo = w // kw
    # the gradient is copied as bits, masked to +0.0 off the maximum (no branch there)
    gb = g.view(np.uint64)
    ob = out.ravel().view(np.uint64)
    zero = np.uint64(0)
    for b in range(n):
        for ch in range(c):
            plane = (ch * n + b) * h * w
            for r in range(ho):
                xo = b * s0 + ch * s1 + r * kh * s2
                go = b * t0 + ch * t1 + r * t2
                oo = plane + r * kh * w
                if kh == 2 and kw == 2:
                    for q in range(wo):
                        a = xo + 2 * q * s3
                        m = x[np.uint64(a)]
                        best = 0
                        v = x[np.uint64(a + s3)]
                        if v > m:
                            m = v
                            best = 1
                        v = x[np.uint64(a + s2)]
                        if v > m:
                            m = v
                            best = 2
                        v = x[np.uint64(a + s2 + s3)]
                        if v > m:
                            best = 3
                        gv = gb[np.uint64(go + q * t3)]
                        o = oo + 2 * q
                        ob[np.uint64(o)] = gv & -np.uint64(best == 0)
                        ob[np.uint64(o + 1)] = gv & -np.uint64(best == 1)
                        ob[np.uint64(o + w)] = gv & -np.uint64(best == 2)
                        ob[np.uint64(o + w + 1)] = gv & -np.uint64(best == 3)
                else:
                    for q in range(wo):
                        a = xo + q * kw * s3
                        m = x[np.uint64(a)]
                        best = 0
                        k = 0
                        for i in range(kh):
                            for j in range(kw):
                                v = x[np.uint64(a + i * s2 + j * s3)]
                                if v > m:
                                    m = v
                                    best = k
                                k += 1
                        gv = gb[np.uint64(go + q * t3)]
                        k = 0
                        for i in range(kh):
                            o = oo + i * w + q * kw
                            for j in range(kw):
                                ob[np.uint64(o + j)] = gv & -np.uint64(best == k)
                                k += 1
                for i in range(kh):      # columns past wo * kw
                    for u in range(wo * kw, w):
                        ob[np.uint64(oo + i * w + u)] = zero
            for t in range(ho * kh, h):  # rows past ho * kh
                for u in range(w):
                    ob[np.uint64(plane + t * w + u)] = zero
