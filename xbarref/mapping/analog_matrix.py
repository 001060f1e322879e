r"""The AnalogMatrix: ``x @ W`` computed by simulated crossbar tiles.

Signal chain of one product ``y = x @ W`` (``x`` (P, K), ``W`` (K, out)):

1. **DAC** (:class:`~xbarref.devices.DAC`): each input vector is scaled digitally by
   ``x_scale`` and driven as one or more voltage phases ``V_p`` (volts) with digital
   weights ``c_p`` (two-phase signed inputs, bit-serial inputs).
2. **Tiles**: ``W`` is cut into blocks of ``tiles.rows x tiles.cols``; each block is
   stored as target conductances (:mod:`xbarref.mapping.conductance`), one crossbar per
   conductance *plane* (``G+`` and ``G-`` of every bit slice for the differential scheme;
   one crossbar with an extra reference column for the reference scheme), each with the
   configured parasitic resistances. The devices are programmed once
   (:meth:`xbarref.devices.DeviceModel.program`) when the AnalogMatrix is built.
3. **Circuit**: for every read the output currents of every plane are the exact solution
   of its crossbar circuit:

   - linear devices with fixed conductances (no read noise): the cached effective matrix
     ``A`` of each plane (``I = V @ A``, exact; ``A = G`` without parasitics);
   - read noise: every read (every input vector and every DAC phase) draws new
     conductances, so each read is its own circuit; solved by ``V @ G`` per read without
     parasitics, else by :func:`xbarref.circuit.solve_per_read` when available, else one
     direct solve per read (exact but slow);
   - non-linear devices (``sinh``): :func:`xbarref.circuit.solve` (Newton) per plane.

   With ``parasitics.reads = "first_order"`` (and parasitic resistances), reads that
   would need a circuit each use a **first-order surrogate** instead, built once per
   session from exact linear solves of every plane (effective matrix ``A``, and the
   device voltages ``a_ij v`` at the uniform reference input ``v = v_read / 2``):

   - sinh devices: the device law as a secant conductance at the attenuated row voltage,
     carried through the exact linear circuit,
     ``I_j = sum_i A_ij sinh(k a_ij V_i) / (k a_ij)``, evaluated as the series
     ``V @ A + sum_n c_n V^(2n+1) @ (A * a^(2n))``, ``c_n = k^(2n) / (2n+1)!``, truncated
     below ``SERIES_TOL`` of the linear term. Exact without resistances (``a = 1``,
     ``A = G``) and for ``k -> 0``; what it neglects is the interaction of the extra
     sinh current with the IR drop and the input dependence of ``a``.
   - per-read noise: first order in the conductance change, ``I = V @ A + sum_i (A_ij /
     G_ij) dG_ij V_i``, whose column currents are Gaussian with variance
     ``sum_i V_i^2 (sigma_ij A_ij / G_ij)^2``: drawn directly, as for ideal wires.

   Its error is *measured*, never assumed: :meth:`AnalogMatrix.surrogate_check` reads
   given inputs through the surrogate and through the exact circuits (Newton; per-read
   circuits with the same conductance draws) and the study does so in every chip task
   (:func:`xbarref.tune.surrogate_errors`). Measured on 16-row tiles: error below 1e-4
   of the output variance and below 5 % of the circuit's distortion for 0.2-3 ohm wires
   with 100 ohm drivers and k = 1-5 /V; with far stronger IR drop (10 ohm wires,
   3 kohm drivers) the first-order noise spread is 10-20 % too large.

   The sense circuit forms the differential current ``I+ - I-`` (or ``I - I_ref``) of each
   column of each slice.
4. **ADC** (:class:`~xbarref.devices.ADC`) per column and slice, saturating at ``i_max``
   (``adc.range = "fixed"``: ``adc.i_max``; ``"calibrated"``: per column
   ``v_read * sum_i |G+_ij - G-_ij|`` of the programmed, drifted, noise-free conductances,
   the largest current the column can carry with ideal wires for inputs in ``+-v_read``).
5. **Digital**: shift-and-add over DAC phases and weight slices, accumulation of the
   partial sums of the row blocks, scaling back to weight units
   (``x_scale / v_read * s / dg``), and the drift-compensation factor ``alpha``
   (``drift.compensation``: the identity input is read through the hardware at
   ``t_inference`` and ``alpha = ref / mean|y|``, with ``ref`` the same read at
   ``t_inference = 0``, or ``mean|W|`` for ``drift.reference = "ideal"``).

The input gradient (:meth:`AnalogMatrix.backward`) is ``grad_y @ W_lin.T`` with
``W_lin`` the exact linear map from ``x`` to ``y`` of the same effective matrices (the
quantizers are passed straight through). With read noise or non-linear devices,
``W_lin`` is that of the noise-free drifted conductances (linear, small-signal); this is
an approximation of the per-read Jacobian.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib

import numpy as np

from xbarref.config import as_hardware
from xbarref.devices import ADC, DAC
from xbarref.checks import check_number, check_rng
from xbarref.devices.drift import drift_compensation_reference, drift_compensation_scale
from xbarref.errors import XbarrefError
from xbarref.mapping.conductance import (
    differential_targets,
    reference_targets,
    slice_coefficients,
    tile_slices,
    weight_scales,
)

#: Size (float64 elements) of one chunk of per-read conductances.
_READ_CHUNK_ELEMENTS = 1 << 18
#: Truncation of the sinh series of the first-order surrogate (relative to the linear term).
SERIES_TOL = 1e-12


@dataclasses.dataclass(frozen=True)
class _RowBlock:
    """The fast path's matrices of one row block, flattened over (slice, column)."""

    D: np.ndarray            #: (m, S * out) differential effective conductances, S
    gain: np.ndarray         #: (S * out,) digital gain of each slice and column
    i_max: np.ndarray        #: (S * out,) ADC full scales, A
    var: np.ndarray | None   #: (m, S * out) per-read current variance per V^2, or None
    poly: tuple = ()         #: first-order sinh surrogate: (m, S * out) matrices C_n, A / V^(2n+1)


@dataclasses.dataclass(frozen=True)
class _Snapshot:
    """Everything the reads of one session at time ``t`` (s) need.

    ``mean``, ``session`` and ``sigma`` are per tile and plane (S); ``i_max`` per tile
    (S, n) in A (empty until the ranges are set); ``blocks`` and ``lin`` (W_lin) are the
    fast path's matrices, built on demand.
    """

    t: float
    mean: list
    session: list
    sigma: list
    fast: bool
    i_max: tuple = ()
    blocks: tuple | None = None
    lin: np.ndarray | None = None


class _Tile:
    """One weight block: its rows/cols in W and its programmed conductance planes."""

    __slots__ = ("r", "c", "rows", "cols", "states")

    def __init__(self, r, c, rows, cols, states):
        self.r, self.c, self.rows, self.cols, self.states = r, c, rows, cols, states


class AnalogMatrix:
    """A weight matrix programmed onto simulated crossbar tiles; computes ``x @ W``.

    Parameters
    ----------
    W : array_like, shape (K, out)
        Weights, any finite floats (``y = x @ W``).
    hardware : HardwareConfig, str or path, optional
        Hardware configuration, preset name or TOML file (default preset when None).
    rng : numpy.random.Generator
        Source of every random draw: programming (now) and read noise (on every
        :meth:`forward`). The same seed and the same calls give bit-identical results.
    t_inference : float, optional
        Seconds since programming (overrides ``hardware.drift.t_inference``).

    Attributes
    ----------
    alpha : float or ndarray
        Drift-compensation output scale (1 when off).

    Examples
    --------
    >>> import numpy as np
    >>> from xbarref.mapping import AnalogMatrix
    >>> W = np.arange(6.0).reshape(3, 2)
    >>> am = AnalogMatrix(W, "ideal", np.random.default_rng(0))
    >>> np.allclose(am.forward(np.ones((1, 3))), np.ones((1, 3)) @ W)
    True
    """

    def __init__(self, W, hardware=None, rng=None, *, t_inference=None):
        hw = as_hardware(hardware)
        self.hardware = hw
        self.rng = check_rng(rng)
        W = _check_weight(W)
        self.K, self.out = W.shape
        self.row_blocks = tile_slices(self.K, hw.tiles.rows)
        self.col_blocks = tile_slices(self.out, hw.tiles.cols)
        self.scales = weight_scales(W, self.row_blocks, self.col_blocks, hw.mapping.scale)
        self.model = hw.device_model()
        self.dac = DAC(hw.dac.bits, hw.dac.v_read, hw.dac.signed, hw.dac.bit_serial,
                       hw.dac.input_range or None)
        self.adc = ADC(hw.adc.bits)
        g = hw.conductance
        dg = g.g_max - g.g_min
        m = hw.mapping
        if m.scheme == "differential":
            self.slice_gain = slice_coefficients(m.weight_bits, m.slices) / dg
        else:
            self.slice_gain = np.array([2.0 / dg])
        self.n_slices = len(self.slice_gain)
        self.t_inference = hw.drift.t_inference if t_inference is None else check_number(
            "t_inference", t_inference, lo=0.0, unit="s")
        self.per_read = self.model.has_read_noise
        self.linear = hw.device.iv == "linear"
        # the first-order surrogate replaces the per-read circuits (read noise or sinh devices
        # with parasitic resistances); see the module notes and surrogate_check
        self.first_order = (hw.parasitics.reads == "first_order" and not hw.parasitics.ideal
                            and (self.per_read or not self.linear))
        if self.first_order and hw.mapping.scheme != "differential":
            raise XbarrefError("parasitics.reads: \"first_order\" needs mapping.scheme = \"differential\"")
        if not self.linear:
            try:
                import xbarref.circuit.newton  # noqa: F401
            except ImportError:
                raise XbarrefError(
                    "device.iv: the non-linear 'sinh' device needs the Newton solver "
                    "(xbarref.circuit.newton), which this installation does not have yet"
                ) from None
        self._program(W)
        self.alpha = 1.0
        self._compensation_on = True
        self._last = None
        self._compensation_ref = None
        self._adc_range = None
        self._W = W
        self._ready = not (hw.adc.range == "programmed" and hw.adc.bits > 0)
        self._snap = None
        self.read_precision = "float64"
        self._lin32 = None
        if self._ready:
            self._start(self.t_inference)

    def set_read_precision(self, precision):
        """Arithmetic of the reads on the cached effective matrices: ``"float64"``
        (default) or ``"float32"``.

        With ``"float32"`` every read of the fast path (linear devices with or without
        wires, per-read noise drawn as column currents, the first-order surrogate: all
        reads that are products with matrices cached per session) computes in float32:
        the DAC voltages rounded to float32 (for ``bits = 0`` a 24-bit DAC instead of an
        ideal one; for the plain product the inputs themselves, see :attr:`plain_single`),
        the products, the sinh series and the noise spread in float32
        (relative rounding about 1e-7 per term, against the per-cent effects the hardware
        model describes); the random draws are the same float64 draws, the ADC quantizes
        the float32 currents, and the partial sums are added in float64. Reads solved as
        circuits (exact per-read circuits, Newton), :meth:`calibrate_adc`,
        :meth:`linear_map` and :meth:`backward` stay float64. The study measures what it
        changes in every chip task that uses it (:func:`xbarref.tune.precision_errors`).
        """
        if precision not in ("float64", "float32"):
            raise XbarrefError(f"read_precision: expected 'float64' or 'float32', got {precision!r}")
        self.read_precision = precision

    def single_precision_reads(self, snap=None):
        """True when the reads of ``snap`` (default: the current session) compute in
        float32 (:meth:`set_read_precision`: float32 and the fast path)."""
        snap = self._snap if snap is None else snap
        return bool(self.read_precision == "float32" and snap is not None and snap.fast)

    def _single(self, snap):
        """The fast path's matrices of ``snap`` in float32, ``(blocks, lin)``, cast once per
        session (kept while ``snap``'s matrices are the current ones)."""
        if self._lin32 is None or self._lin32[0] is not snap.blocks:
            blocks = tuple(dataclasses.replace(
                b, D=b.D.astype(np.float32), var=None if b.var is None else b.var.astype(np.float32),
                poly=tuple(C.astype(np.float32) for C in b.poly)) for b in snap.blocks)
            self._lin32 = (snap.blocks, blocks, snap.lin.astype(np.float32))
        return self._lin32[1], self._lin32[2]

    def _start(self, t_inference):
        """Store the drift-compensation reference and open the first session at ``t_inference``."""
        hw = self.hardware
        mode = hw.drift.compensation
        if mode != "none":
            # reference stored at programming time (Joshi et al. 2020)
            if hw.drift.reference == "ideal":
                self._compensation_ref = drift_compensation_reference(self._W, mode)   # eye @ W
            else:
                snap0 = self._snap if (self._snap is not None and self._snap.t == 0.0) \
                    else self._snapshot(0.0)
                self._compensation_ref = drift_compensation_reference(
                    self._forward(np.eye(self.K), snap0), mode)
                if t_inference == 0.0:
                    self._snap = snap0
        if (self._snap is None or self._snap.t != t_inference or self._compensation_ref is None
                or hw.drift.reference == "ideal"):
            self._snap = self._snapshot(t_inference)
        self._compensate()

    @property
    def ready(self):
        """False until the ADC range of ``adc.range = "programmed"`` is calibrated."""
        return self._ready

    def _compensate(self):
        mode = self.hardware.drift.compensation
        if mode == "none" or not self._compensation_on:
            self.alpha = 1.0
            return
        self.alpha = drift_compensation_scale(
            self._compensation_ref, self._forward(np.eye(self.K), self._snap), mode)

    def set_compensation(self, enabled):
        """Switch the drift-compensation output scale on (measured again now: a
        calibration read) or off (``alpha = 1``, raw outputs). Returns self."""
        if enabled and self.hardware.drift.compensation == "none":
            raise XbarrefError("enabled: this matrix was mapped with drift.compensation = \"none\"")
        self._check_ready()
        self._compensation_on = bool(enabled)
        self._compensate()
        return self

    @property
    def compensation(self):
        """True when the drift-compensation scale is applied."""
        return self.hardware.drift.compensation != "none" and self._compensation_on

    def set_time(self, t_inference, rng=None):
        """Open a new inference session ``t_inference`` seconds after programming.

        The programmed state (programming noise, drift exponents, faults) is kept; the
        drifted conductances, the session draw of the read noise (new), effective
        matrices and, for ``adc.range = "calibrated"``, the ADC ranges are rebuilt, and
        the drift-compensation scale is measured again against the reference stored at
        programming time (a calibration read). ``rng`` (optional) replaces the generator
        of the session and of every later read.
        """
        self.t_inference = check_number("t_inference", t_inference, lo=0.0, unit="s")
        if rng is not None:
            self.rng = check_rng(rng)
        self._check_ready()
        self._snap = self._snapshot(self.t_inference)
        self._compensate()
        return self

    new_session = set_time

    def _check_ready(self):
        if not self._ready:
            raise XbarrefError("adc.range: \"programmed\" needs the ADC range calibrated first "
                               "(AnalogMatrix.calibrate_adc, or map_model(..., calibration=x))")

    def calibrate_adc(self, x, percentile=None):
        """Set every column's ADC full scale from calibration inputs, then keep it fixed.

        Reads the layer inputs ``x`` (P, K) once through the current session with the ADC
        bypassed and sets, per tile, slice and column, ``i_max`` to the ``percentile``
        (default ``adc.percentile``) of ``|I|`` over all reads (rows of ``x`` and DAC
        phases). A column whose percentile is 0 A gets its largest calibration current,
        and the conductance bound of ``adc.range = "calibrated"`` if that is 0 as well.
        With ``adc.range = "programmed"`` the first call happens right after
        programming (:func:`xbarref.map_model` with ``calibration``); a later call is
        the ``adc_recal`` mitigation (re-ranging). Returns self.
        """
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.K or x.shape[0] < 1:
            raise XbarrefError(f"x: expected calibration inputs of shape (P, {self.K}), got {x.shape}")
        if not np.all(np.isfinite(x)):
            raise XbarrefError("x: calibration inputs must be finite")
        p = self.hardware.adc.percentile if percentile is None else check_number(
            "percentile", percentile, lo=0.0, hi=100.0, lo_open=True)
        snap = self._snap if self._snap is not None else self._snapshot(self.t_inference, ranges=False)
        if self.first_order and snap.blocks is None:
            snap = self._with_linear(snap)       # the surrogate's matrices
        phases, _ = self.dac.phases(x)
        ranges = []
        v = self.dac.v_read
        for k, tile in enumerate(self.tiles):
            cur = np.concatenate([np.abs(self._tile_currents(k, tile, np.ascontiguousarray(V[:, tile.rows]),
                                                             snap, noise=False))
                                  for V, _c in phases])                     # (P * phases, S, n)
            r = np.percentile(cur, p, axis=0)
            r = np.where(r > 0, r, cur.max(axis=0))
            bound = np.stack([v * np.abs(D).sum(axis=0) for D in self._diff(snap.mean[k])])
            ranges.append(np.where(r > 0, r, bound))
        self._adc_range = ranges
        if not self._ready:
            self._ready = True
            self._snap = self._with_ranges(snap)
            self._start(self.t_inference)
        else:
            self._snap = self._with_ranges(self._snap)
        return self

    def adc_ranges(self):
        """Per tile, the ADC full scales ``i_max`` (S, n) in A now in use (copies)."""
        self._check_ready()
        return [np.array(a) for a in self._snap.i_max]

    # ------------------------------------------------------------- programming
    def _program(self, W):
        hw = self.hardware
        g, m = hw.conductance, hw.mapping
        self.tiles = []
        for r, rs in enumerate(self.row_blocks):
            for c, cs in enumerate(self.col_blocks):
                w_n = W[rs, cs] / self.scales[r, cs]
                if m.scheme == "differential":
                    pairs = differential_targets(w_n, g.g_min, g.g_max, m.weight_bits, m.slices)
                    targets = [G for pair in pairs for G in pair]
                else:
                    targets = [reference_targets(w_n, g.g_min, g.g_max, m.weight_bits)]
                states = [self.model.program(Gt, self.rng) for Gt in targets]
                self.tiles.append(_Tile(r, c, rs, cs, states))

    def _crossbar(self, G, linear=None):
        from xbarref.circuit import Crossbar

        p, d = self.hardware.parasitics, self.hardware.device
        lin = self.linear if linear is None else linear
        if lin:
            return Crossbar(G, r_source=p.r_source, r_sink=p.r_sink, r_wire_row=p.r_wire_row,
                            r_wire_col=p.r_wire_col)
        return Crossbar(G, r_source=p.r_source, r_sink=p.r_sink, r_wire_row=p.r_wire_row,
                        r_wire_col=p.r_wire_col, device="sinh", sinh_k=d.sinh_k)

    def _effective(self, G):
        """Exact effective matrix of a plane with the linear device (``G`` without parasitics).

        Kept in :data:`_CIRCUIT_CACHE` by content: a session drawn again with the same
        generator state (the validation and test sessions of the study, for every
        mitigation) gives the same conductances and reuses the solve (read-only array)."""
        if self.hardware.parasitics.ideal:
            return np.array(G, dtype=np.float64, copy=True)
        from xbarref.circuit import effective_matrix

        return _CIRCUIT_CACHE.get(("effective", self._circuit_key(G)),
                                  lambda: effective_matrix(self._crossbar(G, linear=True)))

    def _circuit_key(self, G):
        p = self.hardware.parasitics
        G = np.ascontiguousarray(G, dtype=np.float64)
        return (G.shape, hashlib.blake2b(G.view(np.uint8), digest_size=20).digest(), p.r_source, p.r_sink,
                p.r_wire_row, p.r_wire_col, float(self.dac.v_read))

    def _diff(self, planes):
        """Differential quantity per slice from per-plane arrays (..., m, ncols) -> list."""
        if self.hardware.mapping.scheme == "differential":
            return [planes[2 * s] - planes[2 * s + 1] for s in range(self.n_slices)]
        (A,) = planes
        return [A[..., :-1] - A[..., -1:]]

    # ------------------------------------------------- first-order surrogate
    def _sinh_terms(self):
        """Coefficients ``k^(2n) / (2n+1)!`` of the series ``sinh(k v) / k - v =
        sum_n c_n v^(2n+1)``, n = 1, 2, ..., up to the first term below ``SERIES_TOL`` of
        the linear term at 1.5 ``v_read`` (device voltages stay below the drive voltage)."""
        k = self.hardware.device.sinh_k
        x = 1.5 * k * self.dac.v_read
        out, n, c = [], 1, 1.0
        while True:
            c *= k * k / ((2 * n) * (2 * n + 1))              # k^(2n) / (2n+1)!
            if c * (x / k) ** (2 * n) < SERIES_TOL or n > 40:
                return tuple(out)
            out.append(c)
            n += 1

    def _attenuation(self, G):
        """Device voltage over row drive, (m, n), of a plane's linear circuit at the uniform
        reference input ``v_read / 2`` on every row (one exact node-voltage solve)."""
        from xbarref.circuit import solve

        def attenuation():
            v = 0.5 * self.dac.v_read
            sol = solve(self._crossbar(G, linear=True), np.full((1, G.shape[0]), v), nodes=True)
            return (sol.V_row[0] - sol.V_col[0]) / v

        return _CIRCUIT_CACHE.get(("attenuation", self._circuit_key(G)), attenuation)

    def _sinh_matrices(self, eff, planes, terms):
        """Per series term n (coefficients ``terms``, :meth:`_sinh_terms`), per plane:
        ``C_n = c_n A * a^(2n)`` with ``A`` the plane's exact effective matrix and ``a`` its
        device-voltage attenuation (see the module notes)."""
        atts = [self._attenuation(G) for G in planes]
        out = []
        for n, c in enumerate(terms, start=1):
            out.append([c * A * a ** (2 * n) for A, a in zip(eff, atts)])
        return out

    def surrogate_check(self, x, rng=None):
        """Measure the first-order surrogate against the exact per-read circuits.

        The inputs ``x`` (P, K) are read through every tile and plane both ways, before the
        ADC: ``exact`` - a Newton solve of the sinh circuit, or, with read noise, one
        circuit per read with conductances drawn from ``rng`` (the surrogate then uses the
        same draws); ``surrogate`` - what :meth:`forward` computes; ``ideal`` - ``V @ G`` of
        the mean conductances without parasitic resistances, linear devices.

        Returns
        -------
        dict
            ``exact``, ``surrogate``, ``ideal``: 1-D arrays of differential currents (A),
            every tile, DAC phase, slice and column; ``seconds_exact``,
            ``seconds_surrogate``: CPU time (s) of the two; ``reads``: P.
        """
        import time

        if not self.first_order:
            raise XbarrefError("surrogate_check: this matrix has no first-order surrogate "
                               "(parasitics.reads = \"exact\", or nothing needs one)")
        self._check_ready()
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.K or x.shape[0] < 1 or not np.all(np.isfinite(x)):
            raise XbarrefError(f"x: expected finite inputs of shape (P, {self.K})")
        rng = self.rng if rng is None else check_rng(rng)
        snap = self._snap
        phases, _ = self.dac.phases(x)
        exact, sur, ideal = [], [], []
        t_exact = t_sur = 0.0
        for k, tile in enumerate(self.tiles):
            for V, _c in phases:
                Vt = np.ascontiguousarray(V[:, tile.rows])
                c0 = time.process_time()
                Is = self._tile_currents(k, tile, Vt, snap, noise=False)      # (P, S, n)
                c1 = time.process_time()
                if self.per_read:
                    ex, noise = [], []
                    for st, G_s, G in zip(tile.states, snap.session[k], snap.mean[k]):
                        G_r = self.model.read_from(st, G_s, snap.t, rng, reads=Vt.shape[0])
                        c2 = time.process_time()
                        ex.append(self._per_read_solve(G_r, Vt))
                        c3 = time.process_time()
                        noise.append(np.einsum("pm,pmn->pn", Vt, (G_r - G) * _transfer(self._effective(G), G)))
                        t_exact += c3 - c2
                        t_sur += time.process_time() - c3
                    Ie = np.stack(self._diff(ex), axis=1)
                    Is = Is + np.stack(self._diff(noise), axis=1)
                else:
                    from xbarref.circuit import solve

                    c2 = time.process_time()
                    Ie = np.stack(self._diff([solve(self._crossbar(G), Vt).I for G in snap.mean[k]]), axis=1)
                    t_exact += time.process_time() - c2
                t_sur += c1 - c0
                Ii = np.stack(self._diff([Vt @ G for G in snap.mean[k]]), axis=1)
                exact.append(Ie.ravel())
                sur.append(Is.ravel())
                ideal.append(Ii.ravel())
        return dict(exact=np.concatenate(exact), surrogate=np.concatenate(sur), ideal=np.concatenate(ideal),
                    seconds_exact=t_exact, seconds_surrogate=t_sur, reads=int(x.shape[0]))

    # --------------------------------------------------------------- snapshots
    def _snapshot(self, t, ranges=True):
        """Everything the reads of one session at time ``t`` need: the session conductances
        (drift, the session draw of the read noise, faults), per-read noise sigmas,
        effective matrices and ADC ranges. Draws the session noise from ``rng``."""
        mean, session, sigma = [], [], []
        model = self.model
        for tile in self.tiles:
            planes, bare, sig = [], [], []
            for st in tile.states:
                G = model.session_conductances(st, t, self.rng, faults=False)
                bare.append(G)
                Gf = G if st.faults is None else _apply_faults(model, st, G)
                planes.append(Gf)
                if self.per_read:
                    s_abs = np.abs(Gf) * model.read_sigma(st, t)
                    if st.faults is not None:
                        s_abs = np.where(st.faults != 0, 0.0, s_abs)
                    sig.append(s_abs)
            mean.append(planes)
            session.append(bare)
            sigma.append(sig if self.per_read else None)
        # per-read noise on the fast path: exact Gaussian column currents (differential
        # scheme, linear devices, ideal wires; see the module notes); with the first-order
        # surrogate, per-read noise and sinh devices with parasitic resistances as well
        fast = self.first_order or (self.linear and (not self.per_read or (
            self.hardware.parasitics.ideal and self.hardware.mapping.scheme == "differential")))
        snap = _Snapshot(t=t, mean=mean, session=session, sigma=sigma, fast=fast)
        return self._with_ranges(snap) if ranges else snap

    def _with_ranges(self, snap):
        """``snap`` with the ADC ranges of its time (and the fast path's matrices)."""
        hw = self.hardware
        v = self.dac.v_read
        i_max = []
        for k, tile in enumerate(self.tiles):
            n = tile.cols.stop - tile.cols.start
            if hw.adc.range == "fixed":
                i_max.append(np.full((self.n_slices, n), hw.adc.i_max))
            elif hw.adc.range == "programmed":
                i_max.append(self._adc_range[k] if self._adc_range is not None
                             else np.zeros((self.n_slices, n)))
            else:
                mean = [self.model.mean_conductances(st, snap.t) for st in tile.states]
                i_max.append(np.stack([v * np.abs(D).sum(axis=0) for D in self._diff(mean)]))
        snap = dataclasses.replace(snap, i_max=tuple(i_max))
        return self._with_linear(snap) if snap.fast else snap

    def _with_linear(self, snap):
        """``snap`` with the effective matrices of every plane, assembled per row block
        (fast path) and as W_lin."""
        S, out = self.n_slices, self.out
        blocks = []
        W_lin = np.zeros((self.K, out))
        for r, rs in enumerate(self.row_blocks):
            m = rs.stop - rs.start
            D = np.zeros((m, S, out))
            var = np.zeros((m, S, out)) if (self.per_read and snap.fast) else None
            nonlinear = self.first_order and not self.linear
            terms = self._sinh_terms() if nonlinear else ()
            poly = [np.zeros((m, S, out)) for _ in terms]
            i_max = np.zeros((S, out))
            for k, tile in enumerate(self.tiles):
                if tile.r != r:
                    continue
                eff = [self._effective(G) for G in snap.mean[k]]
                for s_, Ds in enumerate(self._diff(eff)):
                    D[:, s_, tile.cols] = Ds
                if var is not None and snap.sigma[k] is not None:
                    sig = snap.sigma[k]
                    if self.first_order:
                        sig = [a * _transfer(A, G) for a, A, G in zip(sig, eff, snap.mean[k])]
                    sq = [a * a for a in sig]
                    for s_ in range(S):
                        var[:, s_, tile.cols] = sq[2 * s_] + sq[2 * s_ + 1]
                if nonlinear:
                    for n, C in enumerate(self._sinh_matrices(eff, snap.mean[k], terms)):
                        for s_, Cs in enumerate(self._diff(C)):
                            poly[n][:, s_, tile.cols] = Cs
                if snap.i_max:
                    i_max[:, tile.cols] = snap.i_max[k]
            gain = self.slice_gain[:, None] * self.scales[r][None, :]      # (S, out)
            W_lin[rs] = np.einsum("mso,so->mo", D, gain)
            blocks.append(_RowBlock(D=D.reshape(m, S * out), gain=gain.reshape(S * out),
                                    i_max=i_max.reshape(S * out),
                                    var=None if var is None else var.reshape(m, S * out),
                                    poly=tuple(C.reshape(m, S * out) for C in poly)))
        return dataclasses.replace(snap, blocks=tuple(blocks), lin=W_lin)

    def linear_map(self):
        """``W_lin`` (K, out): the exact linear map ``x -> y`` of the noise-free circuit.

        For linear devices with fixed conductances this is what :meth:`forward` computes
        when the DAC and ADC are off; it equals ``W`` for the ideal hardware.
        """
        self._check_ready()
        if self._snap.lin is None:
            self._snap = self._with_linear(self._snap)
        return self._snap.lin * self.alpha

    # ------------------------------------------------------------------ reads
    @property
    def batch_invariant(self):
        """True when row ``p`` of :meth:`forward` depends on input row ``p`` only: ready,
        no per-read noise (no draws) and the cached effective matrices (linear devices;
        no iterative solve over the batch)."""
        return bool(self._ready and not self.per_read and self._snap is not None and self._snap.fast)

    def forward(self, x):
        """``x @ W`` through the simulated hardware.

        Parameters
        ----------
        x : array_like, shape (P, K) or (K,)
            Inputs in the units of the layer.

        Returns
        -------
        ndarray, shape (P, out) (or (out,) for a 1-D input)

        Raises
        ------
        XbarrefError
            A wrong shape, NaN or inf in ``x`` (checked by the DAC's scaling pass), or
            an ADC range still to calibrate.
        """
        x = np.asarray(x, dtype=np.float64)
        one = x.ndim == 1
        if one:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != self.K:
            raise XbarrefError(f"x: expected shape (P, {self.K}) or ({self.K},), got {np.shape(x)}")
        if not self._ready:
            if not np.all(np.isfinite(x)):
                raise XbarrefError("x: inputs must be finite")
            self._check_ready()
        # the DAC refuses NaN / inf inputs in its scaling pass (no extra pass over x)
        y = self._forward(x, self._snap, check_finite=True)
        if not (isinstance(self.alpha, float) and self.alpha == 1.0):
            y *= self.alpha
        self._last = x.shape
        return y[0] if one else y

    __call__ = forward

    def backward(self, grad_y):
        """Input gradient ``grad_y @ W_lin.T`` of the last :meth:`forward` (see module notes)."""
        if self._last is None:
            raise XbarrefError("grad_y: AnalogMatrix.backward called before forward")
        grad_y = np.asarray(grad_y, dtype=np.float64)
        if grad_y.shape != (self._last[0], self.out):
            raise XbarrefError(f"grad_y: expected shape {(self._last[0], self.out)}, got {grad_y.shape}")
        return grad_y @ self.linear_map().T

    @property
    def plain_single(self):
        """True when a read is the plain float32 product ``float32(x) @ float32(W_lin)``
        (:meth:`forward_single`): float32 reads (:meth:`set_read_precision`) of linear
        cached matrices without per-read noise, a bipolar DAC with ``bits = 0`` and no
        fixed input range, and the ADC off. The DAC's scaling of each input to
        ``v_read / max |x|`` and the scaling of the currents back are then exact inverses
        of each other around a linear map, and are left out; what remains is the
        rounding of the inputs and the product to float32."""
        return bool(self._ready and self._plain_reads(self._snap))

    def _plain_reads(self, snap):
        """The condition of :attr:`plain_single` for the session ``snap``."""
        dac = self.dac
        return bool(self.single_precision_reads(snap) and self.adc.bits == 0 and not self.per_read
                    and not snap.blocks[0].poly and dac.bits == 0 and dac.signed == "bipolar"
                    and dac.input_range is None)

    def forward_single(self, x32):
        """The read of :meth:`forward` for float32 inputs ``x32`` (P, K) when
        :attr:`plain_single` holds, or None when the float32 product is not finite (a
        NaN or inf input, or a sum beyond the float32 range): then read the float64
        inputs with :meth:`forward`, which scales them first (or refuses them)."""
        if not self.plain_single:
            raise XbarrefError("forward_single: only for plain float32 reads (see plain_single)")
        if x32.dtype != np.float32 or x32.ndim != 2 or x32.shape[1] != self.K:
            raise XbarrefError(f"x32: expected a float32 array of shape (P, {self.K}), "
                               f"got {x32.dtype} {x32.shape}")
        y = _plain_product(x32, self._single(self._snap)[1])
        if y is None:
            return None
        if not (isinstance(self.alpha, float) and self.alpha == 1.0):
            y *= self.alpha
        self._last = x32.shape
        return y

    def _forward(self, x, snap, check_finite=False):
        single = self.single_precision_reads(snap)
        dac = self.dac
        if self._plain_reads(snap):
            # the plain product (see plain_single): the inputs rounded to float32; a
            # product that is not finite (NaN / inf inputs, float32 overflow) goes through
            # the DAC's scaling pass, which refuses non-finite inputs
            with np.errstate(over="ignore"):
                y = _plain_product(x.astype(np.float32), self._single(snap)[1])
            if y is not None:
                return y
            V, x_scale = dac.volts_float32(x, check_finite=check_finite)
            y = (V @ self._single(snap)[1]).astype(np.float64)
            y *= (x_scale / dac.v_read)[:, None]
            return y
        # float32 reads on the fast path take the voltages in float32 from the DAC pass
        phases, x_scale = self.dac.phases(x, check_finite=check_finite,
                                          dtype=np.float32 if single else np.float64)
        P = x.shape[0]
        if len(phases) > 1 and not self.per_read:
            # A phase whose voltages are all exactly 0 V (the negative phase of a ReLU
            # output, an empty bit plane) is skipped: its currents are exactly +-0 A
            # (I = V @ A for linear devices, and I(0) = 0 for the sinh law: the circuit
            # has no source), the ADC maps +-0 to +-0 and adding +-0 changes no sum.
            # Reads with per-read noise are never skipped: each read draws noise.
            phases = [(V, c) for V, c in phases if V.any()]
            if not phases:
                return np.zeros((P, self.out))
        if snap.fast:
            y = self._forward_fast(phases, snap, P, np.float32 if single else np.float64)
        else:
            y = self._forward_circuit(phases, snap, P)
        y *= (x_scale / self.dac.v_read)[:, None]
        return y

    def _forward_fast(self, phases, snap, P, dtype=np.float64):
        noisy = self.per_read
        single = dtype == np.float32
        blocks, lin = self._single(snap) if single else (snap.blocks, snap.lin)
        if self.adc.bits == 0 and not noisy and not blocks[0].poly:
            V, c = phases[0]
            U = V if c == 1.0 else V * c      # V * 1.0 == V exactly
            for V, c in phases[1:]:
                U = U + c * V
            return U @ lin if not single else (U.astype(np.float32) @ lin).astype(np.float64)
        S, out = self.n_slices, self.out
        y = np.zeros((P, out))
        # Reused buffers: a fresh multi-megabyte array per block costs more in page faults
        # than the product itself. The row block of V is copied contiguous (BLAS is much
        # slower on the strided slice), in the arithmetic of the read (``dtype``): in float64
        # C-ordered, as it always was (the same bits); in float32 in the layout of V when V
        # is F-ordered (im2col inputs: a straight cast instead of a transposing copy).
        f_order = single and all(V.flags.f_contiguous for V, _c in phases)
        currents = np.empty((P, S * out), dtype)
        spread = np.empty((P, S * out), dtype) if noisy else None
        m_max = max(rs.stop - rs.start for rs in self.row_blocks)
        v_flat = np.empty(P * m_max, dtype)
        if blocks[0].poly:
            p_flat, q_flat = np.empty(P * m_max, dtype), np.empty(P * m_max, dtype)
            extra = np.empty((P, S * out), dtype)
        for r, rs in enumerate(self.row_blocks):
            blk = blocks[r]
            for V, c in phases:
                if f_order and V.dtype == dtype and not noisy:
                    # float32 volts of an F-ordered input: the row block is F-contiguous
                    # already (the copy would have its layout and values); the noisy read
                    # below squares its block in place, so it keeps the copy
                    v_block = V[:, rs]
                else:
                    v_block = _like(v_flat, V[:, rs], f_order)
                    np.copyto(v_block, V[:, rs])
                np.matmul(v_block, blk.D, out=currents)
                if blk.poly:
                    # first-order sinh surrogate: sum_n V^(2n+1) @ C_n
                    sq = np.multiply(v_block, v_block, out=_like(q_flat, v_block, f_order))
                    pw = _like(p_flat, v_block, f_order)
                    np.copyto(pw, v_block)
                    for C in blk.poly:
                        pw *= sq
                        currents += np.matmul(pw, C, out=extra)
                if noisy:
                    # per-read part of the read noise: I_j = sum_i V_i G_ij (1 + s_ij xi_ij)
                    # is Gaussian with variance sum_i V_i^2 (G_ij s_ij)^2
                    np.square(v_block, out=v_block)
                    np.matmul(v_block, blk.var, out=spread)
                    np.sqrt(spread, out=spread)
                    spread *= self.rng.standard_normal(spread.shape)
                    currents += spread
                if S == 1:
                    # y += ADC(currents) * c * gain, one compiled pass (the same bits)
                    self.adc.accumulate(currents, blk.i_max, c * blk.gain, y)
                else:
                    self.adc.convert(currents, blk.i_max, out=currents)
                    currents *= c * blk.gain
                    y += currents.reshape(P, S, out).sum(axis=1)
        return y

    def _forward_circuit(self, phases, snap, P):
        """Generic path: per-read noise and/or non-linear devices, tile by tile."""
        y = np.zeros((P, self.out))
        for k, tile in enumerate(self.tiles):
            rs, cs = tile.rows, tile.cols
            i_max = snap.i_max[k]                              # (S, n)
            gain = self.slice_gain[:, None] * self.scales[tile.r, cs][None, :]
            for V, c in phases:
                Vt = np.ascontiguousarray(V[:, rs])
                diff = self._tile_currents(k, tile, Vt, snap)    # (P, S, n)
                diff = self._quantize_tile(diff, i_max)
                y[:, cs] += c * np.einsum("psn,sn->pn", diff, gain)
        return y

    def _quantize_tile(self, diff, i_max):
        """ADC of a tile's currents (P, S, n) with full scales (S, n)."""
        P, S, n = diff.shape
        flat = np.ascontiguousarray(diff).reshape(P, S * n)
        return self.adc.convert(flat, i_max.reshape(S * n), out=flat).reshape(P, S, n)

    def _tile_currents(self, k, tile, V, snap, noise=True):
        """Differential currents (P, S, n) of one tile for input voltages V (P, m)."""
        P = V.shape[0]
        if snap.fast or not (self.per_read and noise):
            if self.linear or self.first_order:
                eff = [self._effective(G) for G in snap.mean[k]] if snap.blocks is None \
                    else None
                if eff is None:
                    blk = snap.blocks[tile.r]
                    S = self.n_slices
                    D = blk.D.reshape(V.shape[1], S, self.out)[:, :, tile.cols]
                    I = np.einsum("pm,msn->psn", V, D)
                    pw, sq = V, V * V
                    for C in blk.poly:
                        pw = pw * sq
                        I += np.einsum("pm,msn->psn", pw, C.reshape(V.shape[1], S, self.out)[:, :, tile.cols])
                    if noise and self.per_read:
                        var = blk.var.reshape(V.shape[1], S, self.out)[:, :, tile.cols]
                        I += np.sqrt(np.einsum("pm,msn->psn", V * V, var)) * self.rng.standard_normal(I.shape)
                    return I
                return np.stack(self._diff([V @ A for A in eff]), axis=1)
            from xbarref.circuit import solve

            currents = [solve(self._crossbar(G), V).I for G in snap.mean[k]]
            return np.stack(self._diff(currents), axis=1)
        currents = []
        for st, G_s in zip(tile.states, snap.session[k]):
            chunk = max(1, _READ_CHUNK_ELEMENTS // G_s.size)
            I = np.empty((P, G_s.shape[1]))
            for a in range(0, P, chunk):
                b = min(P, a + chunk)
                G = self.model.read_from(st, G_s, snap.t, self.rng, reads=b - a)
                I[a:b] = self._per_read_solve(G, V[a:b])
            currents.append(I)
        return np.stack(self._diff(currents), axis=1)

    def _per_read_solve(self, G, V):
        """Output currents (B, ncols) of B circuits, read b with conductances G[b]."""
        if self.linear and self.hardware.parasitics.ideal:
            return np.einsum("bm,bmn->bn", V, G)
        import xbarref.circuit as circuit

        xb = self._crossbar(G[0])
        per_read = getattr(circuit, "solve_per_read", None)
        if per_read is not None:
            return per_read(xb, G, V).I
        return np.concatenate([circuit.solve(xb.replace(G=G[b]), V[b:b + 1]).I for b in range(len(G))])

    def __repr__(self):
        return (f"AnalogMatrix(K={self.K}, out={self.out}, tiles={len(self.row_blocks)}x"
                f"{len(self.col_blocks)}, hardware={self.hardware.name!r})")


def _plain_product(x32, W32):
    """``x32 @ W32`` in float32 returned in float64, or None when it is not finite.

    Computed as ``(W32.T @ x32.T).T``: for the F-ordered im2col matrices BLAS runs this
    orientation 10-25 % faster; the result is the F-ordered (P, out) view of the
    C-ordered (out, P) product (a convolution's output then lies channel-major)."""
    with np.errstate(over="ignore", invalid="ignore"):    # a non-finite product: None
        yt = W32.T @ x32.T
    if not np.isfinite(yt).all():
        return None
    return yt.astype(np.float64).T


class _ContentCache:
    """A least-recently-used store of exact linear solves keyed by circuit content (the
    conductances' digest and the resistances), at most ``max_bytes`` of arrays, per
    process. Values are returned read-only."""

    def __init__(self, max_bytes):
        self.max_bytes = int(max_bytes)
        self._items = collections.OrderedDict()
        self._bytes = 0

    def get(self, key, compute):
        hit = self._items.get(key)
        if hit is not None:
            self._items.move_to_end(key)
            return hit
        value = np.asarray(compute())
        value.flags.writeable = False
        if value.nbytes <= self.max_bytes:
            self._items[key] = value
            self._bytes += value.nbytes
            while self._bytes > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self._bytes -= old.nbytes
        return value

    def clear(self):
        self._items.clear()
        self._bytes = 0


#: Effective matrices and attenuations of recently solved planes (256 MB at most).
_CIRCUIT_CACHE = _ContentCache(256 << 20)


def _like(flat, block, f_order):
    """A view of the start of buffer ``flat`` shaped (and ordered) like ``block`` (P, m)."""
    P, m = block.shape
    return flat[: P * m].reshape(m, P).T if f_order else flat[: P * m].reshape(P, m)


def _transfer(A, G):
    """``A / G`` elementwise where ``G > 0`` (0 elsewhere): the first-order sensitivity of a
    column current to its device's conductance, relative to the no-wire value."""
    out = np.zeros_like(A)
    np.divide(A, G, out=out, where=G > 0)
    return out


def _apply_faults(model, state, G):
    """``G`` with the stuck devices of ``state`` at their stuck values."""
    from xbarref.devices import StuckAtFaults

    return StuckAtFaults.apply(G, state.faults, model.g_min, model.g_max)


def _check_weight(W):
    try:
        W = np.asarray(W, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise XbarrefError(f"W: cannot be read as an array of floats ({exc})") from None
    if W.ndim != 2 or W.shape[0] < 1 or W.shape[1] < 1:
        raise XbarrefError(f"W: expected a 2-D (K, out) weight matrix, got shape {W.shape}")
    if not np.all(np.isfinite(W)):
        raise XbarrefError("W: weights must be finite")
    return W


__all__ = ["AnalogMatrix"]
