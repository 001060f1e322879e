"""Quantizers and converters: conductance levels, DAC, ADC.

Every converter has ``bits = 0`` meaning *off*: infinite precision, no clipping.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from xbarref.devices._checks import check_int, check_number
from xbarref.errors import XbarrefError

SIGNED_INPUT_MODES = ("bipolar", "two_phase")


def quantize_uniform(x, lo, hi, bits):
    """Clip ``x`` to ``[lo, hi]`` and round it to the nearest of ``2**bits`` evenly spaced levels.

    ``lo`` and ``hi`` are both levels. ``bits = 0`` returns ``x`` unchanged (infinite
    precision, no clipping). The map is idempotent and monotonic (non-decreasing).
    Ties round half to even (``numpy.rint``).
    """
    bits = check_int("bits", bits, lo=0, hi=52)
    x = np.asarray(x, dtype=np.float64)
    if bits == 0:
        return x.copy()
    lo = check_number("lo", lo)
    hi = check_number("hi", hi, lo=lo, lo_open=True)
    steps = 2 ** bits - 1
    k = np.rint((np.clip(x, lo, hi) - lo) * (steps / (hi - lo)))
    return lo + k * ((hi - lo) / steps)


def quantize_conductance(G, g_min, g_max, bits):
    """Conductances (S) to ``2**bits`` programmable levels in ``[g_min, g_max]`` (0 = off)."""
    return quantize_uniform(G, g_min, g_max, bits)


class DAC:
    r"""Input digital-to-analog conversion of the row drivers.

    An input vector ``x`` (any units) is first scaled digitally by ``x_scale`` (its own
    ``max |x|`` when ``input_range`` is None, otherwise the fixed ``input_range``) to
    ``u = clip(x / x_scale, -1, 1)`` and then driven as one or several voltage *phases*
    ``V_p`` in ``[-v_read, v_read]`` volts with digital weights ``c_p``, so that

    .. math:: u_q = \sum_p c_p V_p / v_\mathrm{read}

    is the quantized input. The array is read once per phase; the outputs are combined
    digitally with the same ``c_p`` (shift-and-add for bit-serial inputs).

    - ``signed = "bipolar"``: drivers output both polarities; ``bits`` includes the
      sign: ``n = 2**(bits-1) - 1`` magnitude levels, ``u_q = rint(u n) / n``.
    - ``signed = "two_phase"``: unipolar drivers; the positive part is applied in one
      read (``c = +1``) and the negative part in a second (``c = -1``), each with
      ``n = 2**bits - 1`` levels.
    - ``bit_serial``: each magnitude bit ``k`` is its own read of ``0`` or ``+-v_read``
      with ``c = +-2**k / n`` (needs ``bits``).
    - ``bits = 0``: infinite precision (one read of ``u v_read``, or two for
      ``two_phase``).

    Parameters
    ----------
    bits : int
        Resolution, 0 (off) or >= 2 (bipolar) / >= 1 (two_phase).
    v_read : float
        Full-scale read voltage, V, > 0.
    signed : {"bipolar", "two_phase"}
    bit_serial : bool
    input_range : float or None
        Fixed input full scale in input units (> 0), or None for per-input ``max |x|``.
    """

    def __init__(self, bits=0, v_read=0.2, signed="bipolar", bit_serial=False, input_range=None):
        self.bits = check_int("bits", bits, lo=0, hi=32)
        self.v_read = check_number("v_read", v_read, lo=0.0, lo_open=True, unit="V")
        if signed not in SIGNED_INPUT_MODES:
            raise XbarrefError(f"signed: expected one of {SIGNED_INPUT_MODES}, got {signed!r}")
        self.signed = signed
        if not isinstance(bit_serial, bool):
            raise XbarrefError(f"bit_serial: must be true or false, got {bit_serial!r}")
        self.bit_serial = bit_serial
        if signed == "bipolar" and self.bits == 1:
            raise XbarrefError("bits: a bipolar DAC needs >= 2 bits (one is the sign), or 0 for off")
        if bit_serial and self.bits == 0:
            raise XbarrefError("bits: bit-serial inputs need a finite number of bits (>= 1)")
        self.input_range = None if input_range is None else check_number(
            "input_range", input_range, lo=0.0, lo_open=True)

    @property
    def levels(self):
        """Number of magnitude steps ``n`` (None when off)."""
        if self.bits == 0:
            return None
        return 2 ** (self.bits - 1) - 1 if self.signed == "bipolar" else 2 ** self.bits - 1

    def scale(self, x):
        """Per-input digital scale ``x_scale`` (B,), in input units."""
        x = np.asarray(x, dtype=np.float64)
        if self.input_range is not None:
            return np.full(x.shape[0], self.input_range)
        s = np.max(np.abs(x), axis=1) if x.shape[1] else np.zeros(x.shape[0])
        return np.where(s > 0, s, 1.0)

    def phases(self, x):
        """Split inputs (B, M) into read phases.

        Returns
        -------
        phases : list of (V, c)
            ``V`` (B, M) volts and the digital weight ``c`` of that read.
        x_scale : ndarray, shape (B,)
            Digital input scale; the matrix product of ``x`` is
            ``x_scale * sum_p c_p (V_p @ W) / v_read``.
        """
        x = np.asarray(x, dtype=np.float64)
        x_scale = self.scale(x)
        u = np.clip(x / x_scale[:, None], -1.0, 1.0)
        v = self.v_read
        n = self.levels
        if self.signed == "bipolar":
            if n is None:
                return [(u * v, 1.0)], x_scale
            q = np.rint(u * n)
            if not self.bit_serial:
                return [(q * (v / n), 1.0)], x_scale
            mag = np.abs(q).astype(np.int64)
            sign = np.sign(q)
            out = []
            for k in range(self.bits - 1):
                out.append((sign * ((mag >> k) & 1) * v, 2.0 ** k / n))
            return out, x_scale
        pos, neg = np.maximum(u, 0.0), np.maximum(-u, 0.0)
        if n is None:
            return [(pos * v, 1.0), (neg * v, -1.0)], x_scale
        qp, qn = np.rint(pos * n), np.rint(neg * n)
        if not self.bit_serial:
            return [(qp * (v / n), 1.0), (qn * (v / n), -1.0)], x_scale
        mp, mn = qp.astype(np.int64), qn.astype(np.int64)
        out = []
        for k in range(self.bits):
            out.append((((mp >> k) & 1) * v, 2.0 ** k / n))
            out.append((((mn >> k) & 1) * v, -(2.0 ** k) / n))
        return out, x_scale

    def quantize(self, x):
        """The input as the crossbar sees it, back in input units (B, M)."""
        x = np.asarray(x, dtype=np.float64)
        phases, x_scale = self.phases(x)
        acc = np.zeros_like(x)
        for V, c in phases:
            acc += c * V
        return acc * (x_scale[:, None] / self.v_read)

    def __repr__(self):
        return (f"DAC(bits={self.bits}, v_read={self.v_read}, signed={self.signed!r}, "
                f"bit_serial={self.bit_serial}, input_range={self.input_range})")


class ADC:
    r"""Per-column analog-to-digital conversion of output currents, with saturation.

    A signed mid-tread quantizer with ``L = 2**(bits-1) - 1`` steps each side of 0:

    .. math:: I_q = \mathrm{clip}(\mathrm{rint}(I / \Delta), -L, L)\,\Delta,
              \qquad \Delta = i_\mathrm{max} / L,

    so any ``|I| >= i_max`` saturates to exactly ``+-i_max`` (A). ``i_max`` is a scalar
    or one value per column; a column with ``i_max = 0`` always reads 0. ``bits = 0`` is
    off: ``I`` unchanged, no saturation.

    Parameters
    ----------
    bits : int
        0 (off) or >= 2.
    """

    def __init__(self, bits=0):
        self.bits = check_int("bits", bits, lo=0, hi=32)
        if self.bits == 1:
            raise XbarrefError("bits: the ADC needs >= 2 bits (one is the sign), or 0 for off")

    @property
    def levels(self):
        """``L``, the number of steps each side of zero (None when off)."""
        return None if self.bits == 0 else 2 ** (self.bits - 1) - 1

    def convert(self, I, i_max, out=None):
        """Quantize currents ``I`` (..., N) in A with full scale ``i_max`` (A, scalar or (N,)).

        The one ADC quantizer of the package (the simulated crossbars call it too).
        ``out`` (same shape as ``I``, float64, C-contiguous) receives the result when
        given (it may be ``I`` itself).
        """
        I = np.asarray(I, dtype=np.float64)
        if self.bits == 0:
            if out is None:
                return I.copy()
            np.copyto(out, I)
            return out
        i_max = np.asarray(i_max, dtype=np.float64)
        if np.any(~np.isfinite(i_max)) or np.any(i_max < 0):
            raise XbarrefError("i_max: ADC full scale must be finite and >= 0 A")
        n = I.shape[-1] if I.ndim else 1
        full = np.ascontiguousarray(np.broadcast_to(i_max, (n,)) if i_max.ndim <= 1 and i_max.size in (1, n)
                                    else i_max)
        if full.shape != (n,):
            raise XbarrefError(f"i_max: expected a scalar or {n} values, got shape {i_max.shape}")
        if out is None:
            out = np.empty(I.shape)
        src = np.ascontiguousarray(I).reshape(-1, n)
        _adc_kernel(src, full, float(self.levels), out.reshape(-1, n))
        return out

    def __repr__(self):
        return f"ADC(bits={self.bits})"


@njit(cache=True)
def _adc_kernel(I, i_max, levels, out):
    """``out[p, j] = clip(rint(I[p, j] / step_j), -levels, levels) * step_j``,
    ``step_j = i_max[j] / levels`` (0 where ``i_max[j] = 0``); ``out`` may be ``I``."""
    P, N = I.shape
    step = i_max / levels
    for p in range(P):
        for j in range(N):
            s = step[j]
            if s > 0.0:
                code = np.rint(I[p, j] / s)
                if code > levels:
                    code = levels
                elif code < -levels:
                    code = -levels
                out[p, j] = code * s
            else:
                out[p, j] = 0.0
