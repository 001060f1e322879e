"""Quantizers and converters: conductance levels, DAC, ADC.

Every converter has ``bits = 0`` meaning *off*: infinite precision, no clipping.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from xbarref.devices._checks import check_int, check_number
from xbarref.errors import XbarrefError

SIGNED_INPUT_MODES = ("bipolar", "two_phase")
#: Largest DAC / ADC resolution, bits.
MAX_CONVERTER_BITS = 24


def check_dac(bits, v_read, signed="bipolar", bit_serial=False, input_range=None, *, where=""):
    """The value checks of a DAC's settings, the one set (the ``[dac]`` section of a
    hardware configuration is checked here too).

    Parameters
    ----------
    bits, v_read, signed, bit_serial, input_range
        As for :class:`DAC` (``input_range`` None or > 0).
    where : str
        Start of the names in the messages (``"dac."`` names the configuration keys).

    Returns
    -------
    tuple
        ``(bits, v_read, signed, bit_serial, input_range)`` as int, float, str, bool and
        float or None.
    """
    bits = check_int(f"{where}bits", bits, lo=0, hi=MAX_CONVERTER_BITS)
    v_read = check_number(f"{where}v_read", v_read, lo=0.0, lo_open=True, unit="V")
    if signed not in SIGNED_INPUT_MODES:
        modes = ", ".join(map(repr, SIGNED_INPUT_MODES))
        raise XbarrefError(f"{where}signed: expected one of {modes}, got {signed!r}")
    if not isinstance(bit_serial, bool):
        raise XbarrefError(f"{where}bit_serial: must be true or false, got {bit_serial!r}")
    if signed == "bipolar" and bits == 1:
        raise XbarrefError(f"{where}bits: a bipolar DAC needs >= 2 bits (one is the sign), "
                           "or 0 for off")
    if bit_serial and bits == 0:
        raise XbarrefError(f"{where}bit_serial: bit-serial inputs need {where}bits > 0")
    if input_range is not None:
        input_range = check_number(f"{where}input_range", input_range, lo=0.0, lo_open=True)
    return bits, v_read, signed, bit_serial, input_range


def check_adc_bits(bits, *, where=""):
    """The value check of an ADC's resolution, the one (the ``[adc]`` section of a
    hardware configuration is checked here too): 0 (off) or 2 to
    :data:`MAX_CONVERTER_BITS`; returns it as an int."""
    bits = check_int(f"{where}bits", bits, lo=0, hi=MAX_CONVERTER_BITS)
    if bits == 1:
        raise XbarrefError(f"{where}bits: the ADC needs >= 2 bits (one is the sign), or 0 for off")
    return bits


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
        Resolution, 0 (off) or >= 2 (bipolar) / >= 1 (two_phase), at most 24.
    v_read : float
        Full-scale read voltage, V, > 0.
    signed : {"bipolar", "two_phase"}
    bit_serial : bool
    input_range : float or None
        Fixed input full scale in input units (> 0), or None for per-input ``max |x|``.
    """

    def __init__(self, bits=0, v_read=0.2, signed="bipolar", bit_serial=False, input_range=None):
        (self.bits, self.v_read, self.signed, self.bit_serial,
         self.input_range) = check_dac(bits, v_read, signed, bit_serial, input_range)

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
        s = _abs_max(x)
        return np.where(s > 0, s, 1.0)

    def phases(self, x, check_finite=False, dtype=np.float64):
        """Split inputs (B, M) into read phases.

        Parameters
        ----------
        x : array_like, shape (B, M)
        check_finite : bool
            Raise :class:`~xbarref.errors.XbarrefError` when ``x`` holds NaN or inf
            (checked during the scaling pass, at no extra cost on the fast path).
        dtype : float64 or float32
            Of the voltages of a bipolar DAC without ``input_range`` or bit-serial reads
            (computed in float64 and each rounded to the nearest float32 as it is
            stored, for float32 reads) of a C- or F-ordered ``x``; other modes and
            layouts return float64 voltages.

        Returns
        -------
        phases : list of (V, c)
            ``V`` (B, M) volts and the digital weight ``c`` of that read.
        x_scale : ndarray, shape (B,)
            Digital input scale; the matrix product of ``x`` is
            ``x_scale * sum_p c_p (V_p @ W) / v_read``.

        Notes
        -----
        With ``input_range`` None, ``x_scale`` is the row's ``max |x|`` (a compiled pass
        over ``x`` in memory order), so ``|x / x_scale| <= 1`` holds exactly (IEEE
        division rounds monotonically and 1 is representable) and the clip to
        ``[-1, 1]`` is skipped; the finiteness check then reads the row maxima (NaN or
        inf exactly when the row holds one). With a fixed ``input_range`` the clip is
        applied. All arithmetic is in place, in the order of the formulas above.
        """
        x = np.asarray(x, dtype=np.float64)
        v = self.v_read
        n = self.levels
        if self.input_range is None and self.signed == "bipolar" and not self.bit_serial:
            volts = _bipolar_volts(x, v, n, dtype)
            if volts is not None:
                u, s = volts
                if check_finite and not np.isfinite(s).all():
                    raise XbarrefError("x: inputs must be finite")
                return [(u, 1.0)], np.where(s > 0, s, 1.0)
        if self.input_range is None:
            s = _abs_max(x)
            if check_finite and not np.isfinite(s).all():
                raise XbarrefError("x: inputs must be finite")
            x_scale = np.where(s > 0, s, 1.0)
        else:
            if check_finite and not np.isfinite(x).all():
                raise XbarrefError("x: inputs must be finite")
            x_scale = np.full(x.shape[0], self.input_range)
        u = np.empty_like(x)       # the layout of x: a matrix product of it runs as before
        np.divide(x, x_scale[:, None], out=u)
        if self.input_range is not None:
            np.clip(u, -1.0, 1.0, out=u)
        if self.signed == "bipolar":
            if n is None:
                u *= v
                return [(u, 1.0)], x_scale
            u *= n
            q = np.rint(u, out=u)
            if not self.bit_serial:
                q *= v / n
                return [(q, 1.0)], x_scale
            mag = np.abs(q).astype(np.int64)
            sign = np.sign(q)
            out = []
            for k in range(self.bits - 1):
                out.append((sign * ((mag >> k) & 1) * v, 2.0 ** k / n))
            return out, x_scale
        neg = np.negative(u)
        pos = np.maximum(u, 0.0, out=u)
        np.maximum(neg, 0.0, out=neg)
        if n is None:
            pos *= v
            neg *= v
            return [(pos, 1.0), (neg, -1.0)], x_scale
        pos *= n
        neg *= n
        qp, qn = np.rint(pos, out=pos), np.rint(neg, out=neg)
        if not self.bit_serial:
            qp *= v / n
            qn *= v / n
            return [(qp, 1.0), (qn, -1.0)], x_scale
        mp, mn = qp.astype(np.int64), qn.astype(np.int64)
        out = []
        for k in range(self.bits):
            out.append((((mp >> k) & 1) * v, 2.0 ** k / n))
            out.append((((mn >> k) & 1) * v, -(2.0 ** k) / n))
        return out, x_scale

    def volts_float32(self, x, check_finite=False):
        """``(V, x_scale)`` of a bipolar DAC with ``bits = 0`` and no fixed input range,
        ``V`` rounded to float32 (the float64 voltages of :meth:`phases`, each rounded to
        the nearest float32: a 24-bit DAC), for a single-precision product
        (:meth:`xbarref.mapping.AnalogMatrix.set_read_precision`)."""
        if self.bits != 0 or self.signed != "bipolar" or self.input_range is not None:
            raise XbarrefError("volts_float32: only for a bipolar DAC with bits = 0 and no input_range")
        x = np.asarray(x, dtype=np.float64)
        volts = _bipolar_volts(x, self.v_read, None, np.float32)
        if volts is None:
            phases, x_scale = self.phases(x, check_finite=check_finite)
            return phases[0][0].astype(np.float32), x_scale
        u, s = volts
        if check_finite and not np.isfinite(s).all():
            raise XbarrefError("x: inputs must be finite")
        return u, np.where(s > 0, s, 1.0)

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
        0 (off) or 2 to 24.
    """

    def __init__(self, bits=0):
        self.bits = check_adc_bits(bits)

    @property
    def levels(self):
        """``L``, the number of steps each side of zero (None when off)."""
        return None if self.bits == 0 else 2 ** (self.bits - 1) - 1

    def convert(self, I, i_max, out=None):
        """Quantize currents ``I`` (..., N) in A with full scale ``i_max`` (A, scalar or (N,)).

        The one ADC quantizer of the package (the simulated crossbars call it too).
        ``out`` (same shape and dtype as ``I``, C-contiguous) receives the result when
        given (it may be ``I`` itself). float32 currents (the single-precision reads of
        :meth:`xbarref.mapping.AnalogMatrix.set_read_precision`) stay float32: each code
        is computed in float64 from the float32 current and stored rounded to float32.
        """
        I = np.asarray(I)
        if I.dtype != np.float32:
            I = np.asarray(I, dtype=np.float64)
        if self.bits == 0:
            if out is None:
                return I.copy()
            if out is not I:
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
            out = np.empty(I.shape, I.dtype)
        src = np.ascontiguousarray(I).reshape(-1, n)
        _adc_kernel(src, full, float(self.levels), out.reshape(-1, n))
        return out

    def accumulate(self, I, i_max, scale, y):
        """``y += convert(I, i_max) * scale`` in one compiled pass (``I``, ``y`` (P, N)
        C-contiguous, ``scale`` (N,)): the same three roundings in the same order as the
        three NumPy statements, so the same bits for float64 ``I``; float32 ``I`` is
        quantized and scaled in float64 and added to the float64 ``y``. ``I`` is left
        unchanged."""
        I = np.asarray(I)
        n = I.shape[-1]
        scale = np.ascontiguousarray(np.broadcast_to(np.asarray(scale, dtype=np.float64), (n,)))
        if self.bits == 0:
            _scaled_add(I, scale, y)
            return y
        i_max = np.asarray(i_max, dtype=np.float64)
        if np.any(~np.isfinite(i_max)) or np.any(i_max < 0):
            raise XbarrefError("i_max: ADC full scale must be finite and >= 0 A")
        full = np.ascontiguousarray(np.broadcast_to(i_max, (n,)))
        _adc_accumulate(I, full, float(self.levels), scale, y)
        return y

    def __repr__(self):
        return f"ADC(bits={self.bits})"


def _abs_max(x):
    """``max |x|`` of every row of ``x`` (B, M), NaN for a row holding a NaN (as
    ``np.max(np.abs(x), axis=1)``, without its temporary): a compiled pass in memory
    order for C- and F-ordered ``x`` (the im2col matrices are F-ordered)."""
    B = x.shape[0]
    if x.ndim != 2 or not x.shape[1]:
        return np.max(np.abs(x), axis=1) if x.ndim == 2 and x.shape[1] else np.zeros(B)
    if x.flags.c_contiguous:
        return _row_absmax(x, True, B)
    if x.flags.f_contiguous:
        return _row_absmax(x.T, False, B)
    return np.max(np.abs(x), axis=1)


def _bipolar_volts(x, v, n, dtype=np.float64):
    """``(V, max |x|)`` of the bipolar DAC without a fixed input range in one compiled
    call, or None for a layout it does not take (neither C- nor F-contiguous, or empty).

    Per input ``b``: ``s = max |x_b|`` (NaN if the input holds one), ``u = x_b / s'`` with
    ``s' = s`` where ``s > 0`` and 1 elsewhere, and ``V = u v`` (``bits`` 0) or
    ``V = rint(u n) (v / n)`` - the operations and their order of :meth:`DAC.phases`, so
    the same bits, in two compiled passes over ``x`` instead of NumPy's three or four.
    ``V`` has the layout of ``x`` (a matrix product of it runs as before) and ``dtype``
    (float32: each float64 voltage rounded to the nearest float32 as it is stored)."""
    if x.ndim != 2 or not x.size:
        return None
    levels = 0.0 if n is None else float(n)
    step = 0.0 if n is None else v / n
    if x.flags.c_contiguous:
        u = np.empty_like(x, dtype=dtype)
        s = _volts_kernel(x, u, True, v, levels, step)
    elif x.flags.f_contiguous:
        u = np.empty_like(x, dtype=dtype)
        s = _volts_kernel(x.T, u.T, False, v, levels, step)
    else:
        return None
    return u, s


@njit(cache=True, error_model="numpy")   # IEEE division (no zero check per element: vectorized)
def _volts_kernel(a, out, rows, v, levels, step):
    """Kernel of :func:`_bipolar_volts`: input ``b`` is ``a[b, :]`` when ``rows`` else
    ``a[:, b]``; writes ``out`` (same shape as ``a``), returns ``max |x|`` per input."""
    if rows:
        B, K = a.shape
    else:
        K, B = a.shape
    s = _row_absmax(a, rows, B)     # one pass in memory order, then the voltages
    d = np.empty(B)
    for b in range(B):
        d[b] = s[b] if s[b] > 0 else 1.0     # NaN > 0 is false: a NaN input divides by 1
    if rows:
        for b in range(B):
            if levels == 0.0:
                for k in range(K):
                    out[b, k] = (a[b, k] / d[b]) * v
            else:
                for k in range(K):
                    out[b, k] = np.rint((a[b, k] / d[b]) * levels) * step
        return s
    # plain range loops over the inputs, which the compiler vectorizes
    for k in range(K):
        if levels == 0.0:
            for b in range(B):
                out[k, b] = (a[k, b] / d[b]) * v
        else:
            for b in range(B):
                out[k, b] = np.rint((a[k, b] / d[b]) * levels) * step
    return s


@njit(cache=True)
def _row_absmax(a, rows, B):
    """``max |x|`` of every input, NaN where the input holds a NaN (as ``np.max`` of
    ``np.abs``); input ``b`` is ``a[b, :]`` when ``rows`` else ``a[:, b]``."""
    s = np.zeros(B)
    nan = np.zeros(B, dtype=np.bool_)
    if rows:
        for b in range(B):
            m = 0.0
            bad = False
            for k in range(a.shape[1]):
                t = abs(a[b, k])
                m = max(m, t)
                bad |= t != t
            s[b] = m
            nan[b] = bad
    else:
        for k in range(a.shape[0]):
            for b in range(B):
                t = abs(a[k, b])
                s[b] = max(s[b], t)
                nan[b] |= t != t
    for b in range(B):
        if nan[b]:
            s[b] = np.nan
    return s


@njit(cache=True)
def _adc_accumulate(I, i_max, levels, scale, y):
    """``y[p, j] += (clip(rint(I[p, j] / step_j), -levels, levels) * step_j) * scale[j]``,
    the quantizer of :func:`_adc_kernel` (0 where ``i_max[j] = 0``)."""
    P, N = I.shape
    step = i_max / levels
    for p in range(P):
        for j in range(N):
            s = step[j]
            q = 0.0
            if s > 0.0:
                code = np.rint(I[p, j] / s)
                if code > levels:
                    code = levels
                elif code < -levels:
                    code = -levels
                q = code * s
            y[p, j] += q * scale[j]


@njit(cache=True)
def _scaled_add(I, scale, y):
    """``y[p, j] += I[p, j] * scale[j]`` (the ADC off)."""
    P, N = I.shape
    for p in range(P):
        for j in range(N):
            y[p, j] += I[p, j] * scale[j]


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
