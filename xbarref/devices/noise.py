"""Programming noise, device-to-device variation and read noise of resistive devices.

Every draw takes an explicit ``numpy.random.Generator``. Conductances are in siemens;
``g_n = G / g_max`` is the normalised conductance.
"""

from __future__ import annotations

import math

import numpy as np

from xbarref.devices._checks import check_conductances, check_number, check_reads, check_rng


class ProgrammingNoise:
    r"""Conductance-dependent Gaussian programming (write) noise.

    After programming (iterative write-verify) a device lands near its target with a
    Gaussian error whose standard deviation depends on the target:

    .. math::

        \sigma_\mathrm{prog}(G) = s\,(c_0 + c_1 g_n + c_2 g_n^2)\, g_\mathrm{max},
        \qquad g_n = G_\mathrm{target} / g_\mathrm{max},

        G_\mathrm{prog} = \max(G_\mathrm{target} + \sigma_\mathrm{prog}\, \xi, 0),
        \quad \xi \sim N(0, 1),

    with ``s`` = ``scale``. Units: ``c_k`` are dimensionless (fractions of ``g_max``),
    ``sigma`` and ``G`` in siemens. The quadratic form is the fit of Nandakumar et al.
    (2019) used by Joshi et al. (2020) for PCM, where (per 25 uS of ``g_max``)
    ``c = (0.26348, 1.9650, -1.1731) / 25``; any other device fills in its own
    coefficients (a constant ``sigma`` is ``c_1 = c_2 = 0``).

    Parameters
    ----------
    c0, c1, c2 : float
        Polynomial coefficients, dimensionless.
    scale : float
        Multiplier of ``sigma`` (0 switches the noise off), >= 0.

    References
    ----------
    S. R. Nandakumar et al., "Phase-change memory models for deep learning training and
    inference", IEEE ICECS 2019. V. Joshi et al., "Accurate deep neural network inference
    using computational phase-change memory", Nat. Commun. 11, 2473 (2020).
    """

    def __init__(self, c0, c1=0.0, c2=0.0, scale=1.0):
        self.c0 = check_number("c0", c0)
        self.c1 = check_number("c1", c1)
        self.c2 = check_number("c2", c2)
        self.scale = check_number("scale", scale, lo=0.0)

    def sigma(self, G_target, g_max):
        """Standard deviation in S for each target conductance (clipped at >= 0)."""
        g_n = np.asarray(G_target, dtype=np.float64) / g_max
        sig = self.scale * (self.c0 + self.c1 * g_n + self.c2 * g_n * g_n) * g_max
        return np.maximum(sig, 0.0)

    def apply(self, G_target, g_max, rng):
        """Return programmed conductances in S (same shape as ``G_target``)."""
        G_target = check_conductances("G_target", G_target)
        rng = check_rng(rng)
        xi = rng.standard_normal(G_target.shape)
        return np.maximum(G_target + self.sigma(G_target, g_max) * xi, 0.0)

    def __repr__(self):
        return f"ProgrammingNoise(c0={self.c0!r}, c1={self.c1!r}, c2={self.c2!r}, scale={self.scale!r})"


class DeviceVariation:
    r"""Device-to-device variation: a fixed gain per device, drawn once.

    Nominally identical devices differ in their conductance range (for example in the
    cross-section of the filament or the amorphous plug). Each device gets a gain
    ``gamma_ij = max(1 + sigma_d2d * xi_ij, 0)``, ``xi ~ N(0, 1)``, fixed for its life,
    and reaches ``gamma_ij * G_target`` where it is programmed to ``G_target`` (open
    loop, before the programming noise). ``sigma_d2d`` is dimensionless; ``0`` is off.
    A Gaussian gain of a few percent is the usual assumption of crossbar simulators
    (e.g. the "device-to-device variation" of Gokmen & Vlasov, Front. Neurosci. 10,
    333 (2016), there for the update step).

    Parameters
    ----------
    sigma : float
        Relative standard deviation of the gain, >= 0.
    """

    def __init__(self, sigma):
        self.sigma = check_number("sigma", sigma, lo=0.0)

    def gains(self, shape, rng):
        """Draw the per-device gains (dimensionless) of an array of ``shape``."""
        rng = check_rng(rng)
        return np.maximum(1.0 + self.sigma * rng.standard_normal(shape), 0.0)

    def apply(self, G_target, rng):
        """Return ``gamma * G_target`` in S."""
        G_target = check_conductances("G_target", G_target)
        return self.gains(G_target.shape, rng) * G_target

    def __repr__(self):
        return f"DeviceVariation(sigma={self.sigma!r})"


#: Named read-noise time models (see :class:`ReadNoise`).
READ_TIME_MODELS = ("split", "per_read", "per_session")


class ReadNoise:
    r"""Read (1/f) noise growing with time since programming, split in time into a
    *session* part and a *per-read* part.

    Integrating a 1/f spectrum ``S(f) = Q_s^2 / f`` between two frequencies ``f_1 < f_2``
    gives the variance ``Q_s^2 ln(f_2 / f_1)``. From ``1 / (2 t)`` (the time since
    programming) to the read bandwidth ``1 / (2 t_read)`` that is the relative variance
    of Joshi et al. 2020 (Methods) and Nandakumar et al. 2019:

    .. math::

        Q_s(G) = \min\!\left(\frac{q_a}{\max((G_\mathrm{ref}/g_\mathrm{max})^{q_b},
                 q_\mathrm{floor})}, q_\mathrm{max}\right),
        \qquad
        \sigma^2_\mathrm{rel}(t) = s^2 Q_s^2 \ln\frac{t + t_\mathrm{read}}{2 t_\mathrm{read}},

    ``t`` in seconds since programming, ``s`` = ``scale``. This is the noise accumulated
    between programming and ``t``. Fluctuations slower than the time between two reads
    of the same device are the same for both reads; faster ones are independent. With a
    correlation time ``t_corr`` the variance splits exactly into

    - the **per-read** band ``[1/(2 t_corr), 1/(2 t_read)]``, redrawn on every read:
      ``sigma_read^2 = s^2 Q_s^2 ln((min(t_corr, t) + t_read) / (2 t_read))``;
    - the **session** band ``[1/(2 t), 1/(2 t_corr)]``, drawn once per inference session
      at time ``t`` and frozen during it (what aihwkit's ``drift_weights(t)`` draws):
      ``sigma_session^2 = sigma_rel^2 - sigma_read^2``.

    ``mode`` selects the split: ``"split"`` (the above), ``"per_read"`` (all of it
    redrawn on every read: ``t_corr = t``) or ``"per_session"`` (all of it frozen per
    session: ``sigma_read = 0``). The session draw is
    ``G_s = max(G + |G| sigma_session xi, 0)``, ``G`` the conductance at the time of the
    session (after drift); a read is ``max(G_s + |G_s| sigma_read xi', 0)``.
    For PCM ``q_a = 0.0088``, ``q_b = 0.65``, ``q_floor = 1e-3``, ``q_max = 0.2``,
    ``t_read = 250 ns``.

    Parameters
    ----------
    q_a : float
        Relative noise amplitude at ``G_ref = g_max``, >= 0.
    q_b : float
        Exponent of the conductance dependence, >= 0 (0: constant relative noise).
    q_floor : float
        Lower bound of the denominator, > 0.
    q_max : float
        Upper bound of ``Q_s``, >= 0.
    t_read : float
        Read duration in seconds, > 0.
    scale : float
        Multiplier (0 is off), >= 0.
    mode : {"split", "per_read", "per_session"}
    t_corr : float
        Correlation time, s (> 0): reads further apart than this see independent
        per-read noise. Default 1 us, the read cycle of one device (assumption).
    """

    def __init__(self, q_a, q_b=0.0, q_floor=1e-3, q_max=1.0, t_read=250e-9, scale=1.0,
                 mode="split", t_corr=1e-6):
        self.q_a = check_number("q_a", q_a, lo=0.0)
        self.q_b = check_number("q_b", q_b, lo=0.0)
        self.q_floor = check_number("q_floor", q_floor, lo=0.0, lo_open=True)
        self.q_max = check_number("q_max", q_max, lo=0.0)
        self.t_read = check_number("t_read", t_read, lo=0.0, lo_open=True, unit="s")
        self.scale = check_number("scale", scale, lo=0.0)
        if mode not in READ_TIME_MODELS:
            from xbarref.errors import XbarrefError

            raise XbarrefError(f"mode: expected one of {', '.join(READ_TIME_MODELS)}, got {mode!r}")
        self.mode = mode
        self.t_corr = check_number("t_corr", t_corr, lo=0.0, lo_open=True, unit="s")

    def _q(self, G_ref, g_max):
        g = np.abs(np.asarray(G_ref, dtype=np.float64)) / g_max
        return np.minimum(self.q_a / np.maximum(g ** self.q_b, self.q_floor), self.q_max)

    def _growth(self, t):
        return max(math.log((t + self.t_read) / (2.0 * self.t_read)), 0.0)

    def growth(self, t):
        """``(total, session, per_read)``: the factors ``ln(...)`` of the three variances
        (multiply by ``(s Q_s)^2``); ``session + per_read == total``."""
        t = check_number("t", t, lo=0.0, unit="s")
        total = self._growth(t)
        if self.mode == "per_read":
            per_read = total
        elif self.mode == "per_session":
            per_read = 0.0
        else:
            per_read = min(self._growth(min(self.t_corr, t)), total)
        return total, total - per_read, per_read

    def sigma(self, G_ref, g_max, t):
        """Relative standard deviation of all the noise accumulated up to ``t`` s."""
        return self.scale * self._q(G_ref, g_max) * math.sqrt(self.growth(t)[0])

    def session_sigma(self, G_ref, g_max, t):
        """Relative standard deviation of the part drawn once per session at ``t`` s."""
        return self.scale * self._q(G_ref, g_max) * math.sqrt(self.growth(t)[1])

    def read_sigma(self, G_ref, g_max, t):
        """Relative standard deviation of the part redrawn on every read at ``t`` s."""
        return self.scale * self._q(G_ref, g_max) * math.sqrt(self.growth(t)[2])

    def has_session(self, t=1.0):
        """True when the session part is not zero."""
        return self.scale > 0 and self.growth(t)[1] > 0

    def has_per_read(self, t=1.0):
        """True when the per-read part is not zero."""
        return self.scale > 0 and self.growth(t)[2] > 0

    def draw_session(self, G, G_ref, g_max, t, rng):
        """Session conductances ``max(G + |G| sigma_session xi, 0)``, S (one draw)."""
        rng = check_rng(rng)
        G = np.asarray(G, dtype=np.float64)
        out = rng.standard_normal(G.shape)
        out *= np.abs(G) * self.session_sigma(G_ref, g_max, t)
        out += G
        return np.maximum(out, 0.0, out=out)

    def apply(self, G, G_ref, g_max, t, rng, reads=None):
        """Draw per-read conductances in S from session conductances ``G``.

        Parameters
        ----------
        G : ndarray
            Conductances of the session (after drift and the session draw), S.
        G_ref : ndarray
            Conductances at which ``Q_s`` is evaluated, S, same shape as ``G``.
        g_max : float
            Maximum conductance, S.
        t : float
            Time since programming, s.
        rng : numpy.random.Generator
        reads : int, optional
            Number of independent reads; the result then has a leading axis of that
            length. ``None`` is one read with the shape of ``G``.
        """
        rng = check_rng(rng)
        reads = check_reads(reads)
        G = np.asarray(G, dtype=np.float64)
        sig = np.abs(G) * self.read_sigma(G_ref, g_max, t)
        shape = G.shape if reads is None else (reads,) + G.shape
        out = rng.standard_normal(shape)
        out *= sig
        out += G
        return np.maximum(out, 0.0, out=out)

    def __repr__(self):
        return (f"ReadNoise(q_a={self.q_a!r}, q_b={self.q_b!r}, q_floor={self.q_floor!r}, "
                f"q_max={self.q_max!r}, t_read={self.t_read!r}, scale={self.scale!r}, "
                f"mode={self.mode!r}, t_corr={self.t_corr!r})")
