r"""Weights to target conductances: tiling, scaling, schemes, quantization and bit slicing.

Tiling
    A weight matrix ``W`` of shape (K, out) (``y = x @ W``) is cut into blocks of at most
    ``rows x cols``; block ``(r, c)`` holds rows ``K_r`` (inputs) and columns ``N_c``
    (outputs). The last blocks may be smaller.
Scaling
    Each weight is normalised by a positive scale ``s``: ``w_n = w / s`` in [-1, 1], with
    ``s = max|W|`` over the layer (``layer``), over the block (``tile``) or over the
    block's column (``column``); an all-zero set gets ``s = 1``. The scale is applied
    back digitally after the ADC.
Schemes (``dg = g_max - g_min``)
    ``differential``: two devices per weight, ``G+ = g_min + dg max(w_n, 0)``,
    ``G- = g_min + dg max(-w_n, 0)``, read as ``I+ - I-`` (``w_n = (G+ - G-) / dg``);
    ``reference``: one device per weight, ``G = g_min + dg (w_n + 1) / 2``, and one extra
    reference column at ``g_ref = (g_min + g_max) / 2`` whose current is subtracted from
    every column (``w_n = 2 (G - g_ref) / dg``).
Quantization and bit slicing (differential)
    With ``weight_bits = b`` and ``slices = S``, ``|w_n|`` becomes the integer
    ``q = rint(|w_n| (2^(S b) - 1))``, split into base-``2^b`` digits
    ``d_s = (q >> s b) & (2^b - 1)``; slice ``s`` is its own pair of devices holding
    ``g_min + dg d_s / (2^b - 1)`` (the other device of the pair at ``g_min``), read with
    the digital weight ``c_s = 2^(s b) (2^b - 1) / (2^(S b) - 1)`` (shift-and-add), so
    ``sum_s c_s (G+_s - G-_s) / dg = sign(w) q / (2^(S b) - 1)``. With ``S = 1`` this is
    ``2^b`` conductance levels per device; ``b = 0`` is infinite precision.
    For the reference scheme the single device is quantized to ``2^b`` levels.
"""

from __future__ import annotations

import numpy as np

from xbarref.config import check_bit_slicing
from xbarref.devices.converters import quantize_uniform
from xbarref.errors import XbarrefError


def tile_slices(n, size):
    """Consecutive slices of at most ``size`` covering ``range(n)``."""
    return [slice(a, min(a + size, n)) for a in range(0, n, size)]


def weight_scales(W, row_blocks, col_blocks, mode):
    """Scale ``s`` for every (row block, output column): array (len(row_blocks), out)."""
    W = np.asarray(W, dtype=np.float64)
    absW = np.abs(W)
    out = np.empty((len(row_blocks), W.shape[1]))
    if mode == "layer":
        out[...] = absW.max() if absW.size else 0.0
    elif mode == "tile":
        for r, rs in enumerate(row_blocks):
            for cs in col_blocks:
                out[r, cs] = absW[rs, cs].max()
    elif mode == "column":
        for r, rs in enumerate(row_blocks):
            out[r] = absW[rs].max(axis=0)
    else:
        raise XbarrefError(f"mapping.scale: expected 'layer', 'tile' or 'column', got {mode!r}")
    out[out == 0] = 1.0
    return out


def slice_coefficients(weight_bits, slices):
    """Digital weights ``c_s`` of the slices (see the module docstring)."""
    check_bit_slicing(weight_bits, slices)
    if weight_bits == 0:
        return np.array([1.0])
    base = 2 ** weight_bits
    total = float(2 ** (weight_bits * slices) - 1)
    return np.array([base**s * (base - 1) / total for s in range(slices)])


def differential_targets(w_n, g_min, g_max, weight_bits=0, slices=1):
    """Target conductances (S) of the pairs of each slice: list of (G_plus, G_minus)."""
    w_n = np.asarray(w_n, dtype=np.float64)
    dg = g_max - g_min
    pos = w_n > 0
    check_bit_slicing(weight_bits, slices)
    if weight_bits == 0:
        mag = np.minimum(np.abs(w_n), 1.0)
        G_p = g_min + dg * np.where(pos, mag, 0.0)
        G_m = g_min + dg * np.where(pos, 0.0, mag)
        return [(G_p, G_m)]
    levels = 2**weight_bits - 1
    q = np.rint(np.minimum(np.abs(w_n), 1.0) * (2 ** (weight_bits * slices) - 1)).astype(np.int64)
    pairs = []
    for s in range(slices):
        d = ((q >> (s * weight_bits)) & levels).astype(np.float64)
        G_d = g_min + dg * (d / levels)
        pairs.append((np.where(pos, G_d, g_min), np.where(pos, g_min, G_d)))
    return pairs


def reference_targets(w_n, g_min, g_max, weight_bits=0):
    """Target conductances (S) of one block plus its reference column: shape (m, n + 1)."""
    w_n = np.clip(np.asarray(w_n, dtype=np.float64), -1.0, 1.0)
    dg = g_max - g_min
    G = quantize_uniform(g_min + dg * (w_n + 1.0) / 2.0, g_min, g_max, weight_bits)
    ref = np.full((w_n.shape[0], 1), g_min + dg / 2.0)
    return np.concatenate([G, ref], axis=1)


def quantized_weights(W, row_blocks, col_blocks, mapping, g_min=0.0, g_max=1.0):
    """The weights the hardware represents exactly (no noise, no parasitics), (K, out).

    What :class:`~xbarref.mapping.AnalogMatrix` computes when everything but the weight
    quantization is ideal; useful as a reference in tests and studies.
    """
    W = np.asarray(W, dtype=np.float64)
    scales = weight_scales(W, row_blocks, col_blocks, mapping.scale)
    out = np.empty_like(W)
    dg = g_max - g_min
    coef = slice_coefficients(mapping.weight_bits, mapping.slices)
    for r, rs in enumerate(row_blocks):
        w_n = W[rs] / scales[r]
        if mapping.scheme == "differential":
            pairs = differential_targets(w_n, g_min, g_max, mapping.weight_bits, mapping.slices)
            acc = sum(c * (Gp - Gm) for c, (Gp, Gm) in zip(coef, pairs)) / dg
        else:
            G = reference_targets(w_n, g_min, g_max, mapping.weight_bits)
            acc = 2.0 * (G[:, :-1] - G[:, -1:]) / dg
        out[rs] = acc * scales[r]
    return out
