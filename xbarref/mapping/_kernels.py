"""Numba kernels of the AnalogMatrix read-out (plain arrays in and out)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def adc_accumulate(I, inv_step, levels, weight, n_out, y):
    """Quantize column currents with a saturating ADC and add them, weighted, to ``y``.

    For every read ``p`` and column ``j`` of ``I`` (P, S * n_out):
    ``code = clip(rint(I[p, j] * inv_step[j]), -levels, levels)`` and
    ``y[p, j % n_out] += code * weight[j]`` (``weight`` = digital weight x ADC step x
    scale back to weight units). Columns with ``inv_step[j] = 0`` read 0.
    """
    P, NJ = I.shape
    S = NJ // n_out
    lo = -float(levels)
    hi = float(levels)
    for p in range(P):
        for s in range(S):
            base = s * n_out
            for k in range(n_out):
                j = base + k
                code = np.rint(I[p, j] * inv_step[j])
                if code > hi:
                    code = hi
                elif code < lo:
                    code = lo
                y[p, k] += code * weight[j]
