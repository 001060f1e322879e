"""Statistical device models: the fixed sequence from target conductances to a read.

A :class:`DeviceModel` runs, for an array of target conductances (siemens),

1. device-to-device variation (a fixed gain per device),
2. programming noise -> ``G_prog``,
3. drift exponents ``nu`` (from the targets),
4. stuck-at fault map,

once, in :meth:`DeviceModel.program`, and then for every read

5. drift to ``t_inference`` -> ``G_drift``,
6. the session part of the read noise (one draw per inference session,
   :meth:`DeviceModel.session_conductances`),
7. the per-read part of the read noise (new draw on every read),
8. stuck devices forced to ``g_min`` / ``g_max``,

in :meth:`DeviceModel.conductances` (see :class:`~xbarref.devices.ReadNoise` for the
split of the 1/f read noise in time). Each step is a method; a subclass overrides only the
steps that differ. The random draws happen in exactly this order, so one seed gives one
result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xbarref.devices._checks import check_conductances, check_number, check_reads, check_rng
from xbarref.devices.drift import PowerLawDrift
from xbarref.devices.faults import StuckAtFaults
from xbarref.devices.noise import DeviceVariation, ProgrammingNoise, ReadNoise


@dataclass(frozen=True, eq=False)
class ProgrammedDevices:
    """The state of an array right after programming.

    Attributes
    ----------
    G_target : ndarray
        Target conductances, S.
    G_prog : ndarray
        Programmed conductances (variation and programming noise applied), S.
    nu : ndarray
        Drift exponents, dimensionless (zeros when the model has no drift).
    faults : ndarray or None
        int8 stuck-at codes (see :mod:`xbarref.devices.faults`), None when fault-free.
    """

    G_target: np.ndarray
    G_prog: np.ndarray
    nu: np.ndarray
    faults: np.ndarray | None = None


class DeviceModel:
    """A statistical model of the devices of a crossbar (base class; also the ideal device).

    With no components given it is the ideal device: ``G_prog = G_target``, no drift,
    no read noise, no faults.

    Parameters
    ----------
    g_max : float
        Largest programmable conductance, S, > 0.
    g_min : float, optional
        Smallest programmable conductance (the value of a stuck-at-min device), S, >= 0.
    programming : ProgrammingNoise, optional
    variation : DeviceVariation, optional
    drift : PowerLawDrift, optional
    read_noise : ReadNoise, optional
    faults : StuckAtFaults, optional
    t0 : float, optional
        Time of the first read after programming, s (used by the read noise when there is
        no drift model; the drift model's own ``t0`` otherwise).
    """

    name = "ideal"

    def __init__(self, g_max, g_min=0.0, programming=None, variation=None, drift=None,
                 read_noise=None, faults=None, t0=20.0):
        self.g_max = check_number("g_max", g_max, lo=0.0, lo_open=True, unit="S")
        self.g_min = check_number("g_min", g_min, lo=0.0, hi=self.g_max, hi_open=True, unit="S")
        for name, value, cls in (("programming", programming, ProgrammingNoise),
                                 ("variation", variation, DeviceVariation),
                                 ("drift", drift, PowerLawDrift),
                                 ("read_noise", read_noise, ReadNoise),
                                 ("faults", faults, StuckAtFaults)):
            if value is not None and not isinstance(value, cls):
                from xbarref.errors import XbarrefError

                raise XbarrefError(f"{name}: expected a {cls.__name__} or None, got {type(value).__name__}")
        self.programming = programming
        self.variation = variation
        self.drift_model = drift
        self.read_noise_model = read_noise
        self.faults = faults
        self.t0 = drift.t0 if drift is not None else check_number("t0", t0, lo=0.0, lo_open=True, unit="s")

    # ------------------------------------------------------------------ steps
    def device_variation(self, G_target, rng):
        """Step 1: fixed per-device gain (identity without a variation model)."""
        if self.variation is None or self.variation.sigma == 0.0:
            return G_target.copy()
        return self.variation.apply(G_target, rng)

    def programming_noise(self, G_target, rng):
        """Step 2: programmed conductances, S."""
        if self.programming is None or self.programming.scale == 0.0:
            return G_target.copy()
        return self.programming.apply(G_target, self.g_max, rng)

    def drift_exponents(self, G_target, rng):
        """Step 3: drift exponents drawn from the targets (zeros without drift)."""
        if self.drift_model is None or self.drift_model.scale == 0.0:
            return np.zeros(G_target.shape)
        return self.drift_model.exponents(G_target, self.g_max, rng)

    def fault_map(self, shape, rng):
        """Step 4: stuck-at codes, or None."""
        if self.faults is None or not self.faults.active:
            return None
        return self.faults.draw(shape, rng)

    def drift(self, G_prog, nu, t_inference):
        """Step 5: conductances at ``t_inference`` seconds, S."""
        if self.drift_model is None:
            check_number("t_inference", t_inference, lo=0.0, unit="s")
            return np.array(G_prog, dtype=np.float64, copy=True)
        return self.drift_model.apply(G_prog, nu, t_inference)

    def session(self, G_drift, G_prog, t_inference, rng):
        """Step 6: the session part of the read noise, drawn once per session, S."""
        if not self.has_session_noise:
            return G_drift
        return self.read_noise_model.draw_session(G_drift, G_prog, self.g_max, t_inference + self.t0,
                                                  check_rng(rng))

    def read(self, G_session, G_prog, t_inference, rng, reads=None):
        """Step 7: the per-read part of the read noise; a leading axis of length ``reads``
        when given."""
        if not self.has_read_noise:
            if reads is None:
                return G_session
            return np.broadcast_to(G_session, (reads,) + G_session.shape).copy()
        return self.read_noise_model.apply(G_session, G_prog, self.g_max,
                                           t_inference + self.t0, rng, reads=reads)

    def read_sigma(self, state, t_inference):
        """Relative standard deviation of the per-read part (array like ``state.G_prog``)."""
        if not self.has_read_noise:
            return np.zeros(state.G_prog.shape)
        return np.broadcast_to(self.read_noise_model.read_sigma(state.G_prog, self.g_max,
                                                                t_inference + self.t0),
                               state.G_prog.shape)

    # --------------------------------------------------------------- sequence
    @property
    def has_read_noise(self):
        """True when every read draws new conductances (the per-read part is not zero)."""
        return self.read_noise_model is not None and self.read_noise_model.has_per_read(self.t0)

    @property
    def has_session_noise(self):
        """True when every session draws new conductances (the session part is not zero)."""
        return self.read_noise_model is not None and self.read_noise_model.has_session(self.t0)

    def program(self, G_target, rng):
        """Program an array of target conductances (S); returns :class:`ProgrammedDevices`."""
        G_target = check_conductances("G_target", G_target)
        rng = check_rng(rng)
        G_set = self.device_variation(G_target, rng)
        G_prog = self.programming_noise(G_set, rng)
        nu = self.drift_exponents(G_target, rng)
        faults = self.fault_map(G_target.shape, rng)
        return ProgrammedDevices(G_target, G_prog, nu, faults)

    def conductances(self, state, t_inference=0.0, rng=None, reads=None):
        """Conductances (S) seen by reads of one new session ``t_inference`` s after programming.

        Draws the session part of the read noise once, then ``reads`` per-read draws.

        Parameters
        ----------
        state : ProgrammedDevices
        t_inference : float
            Seconds since the first read (``t0``); 0 is no drift.
        rng : numpy.random.Generator, optional
            Required when the model has read noise.
        reads : int, optional
            Number of independent reads (leading axis of the result).
        """
        return self.read_from(state, self.session_conductances(state, t_inference, rng, faults=False),
                              t_inference, rng, reads)

    def session_conductances(self, state, t_inference=0.0, rng=None, faults=True):
        """Steps 5-6 (and 8 with ``faults``): drifted conductances with one session draw, S."""
        G = self.drift(state.G_prog, state.nu, t_inference)
        if self.has_session_noise:
            G = self.session(G, state.G_prog, t_inference, rng)
        if faults and state.faults is not None:
            G = StuckAtFaults.apply(G, state.faults, self.g_min, self.g_max)
        return G

    def read_from(self, state, G_session, t_inference, rng=None, reads=None):
        """Steps 7-8 from session conductances ``G_session`` (S): per-read noise, faults."""
        reads = check_reads(reads)
        if self.has_read_noise:
            G = self.read(G_session, state.G_prog, t_inference, check_rng(rng), reads=reads)
        else:
            G = self.read(G_session, state.G_prog, t_inference, rng, reads=reads)
        if state.faults is not None:
            G = StuckAtFaults.apply(G, state.faults, self.g_min, self.g_max)
        return G

    def mean_conductances(self, state, t_inference=0.0):
        """Drifted conductances with faults but without read noise, S (the noise-free read)."""
        G = self.drift(state.G_prog, state.nu, t_inference)
        if state.faults is not None:
            G = StuckAtFaults.apply(G, state.faults, self.g_min, self.g_max)
        return G

    def __repr__(self):
        parts = [f"g_max={self.g_max!r}", f"g_min={self.g_min!r}"]
        for name in ("programming", "variation", "drift_model", "read_noise_model", "faults"):
            value = getattr(self, name)
            if value is not None:
                parts.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(parts)})"


class _StatisticalModel(DeviceModel):
    """The shared construction of :class:`PCMLikeModel` and :class:`RRAMModel`.

    Subclasses give the constants ``G_MAX`` (S), ``PROG_COEFFS``, ``READ``, ``T0`` (s)
    and the drift law ``_drift(scale)``.
    """

    def __init__(self, g_max=None, prog_noise_scale=1.0, read_noise_scale=1.0, drift_scale=1.0,
                 d2d_sigma=0.0, rate_stuck_min=0.0, rate_stuck_max=0.0, g_min=0.0,
                 read_time_model="split", read_correlation_time=1e-6):
        super().__init__(
            self.G_MAX if g_max is None else g_max, g_min=g_min,
            programming=ProgrammingNoise(*self.PROG_COEFFS, scale=prog_noise_scale),
            variation=DeviceVariation(d2d_sigma),
            drift=self._drift(drift_scale),
            read_noise=ReadNoise(**self.READ, scale=read_noise_scale, mode=read_time_model,
                                 t_corr=read_correlation_time),
            faults=StuckAtFaults(rate_stuck_min, rate_stuck_max),
        )


class PCMLikeModel(_StatisticalModel):
    r"""Statistical phase-change-memory model of Nandakumar et al. (2019) / Joshi et al. (2020).

    Same formulas and constants as IBM aihwkit 1.1 ``PCMLikeNoiseModel`` (see
    ``shared/spec/pcm-model.md``), in SI units (``g_max`` in S, default 25 uS):

    - programming noise (:class:`ProgrammingNoise`):
      ``sigma = (0.26348 + 1.9650 g_n - 1.1731 g_n^2) * g_max / 25`` S,
      ``G_prog = max(G_target + sigma xi, 0)``;
    - drift exponents (:class:`PowerLawDrift`), from ``g_n = G_target / g_max``:
      ``mu = clip(-0.0155 ln g_n + 0.0244, 0.049, 0.1)``,
      ``sigma = clip(-0.0125 ln g_n - 0.0059, 0.008, 0.045)``, ``nu = |mu + sigma xi|``;
      ``G(t) = G_prog ((t_inference + t0) / t0)^-nu``, ``t0 = 20 s``;
    - read noise (:class:`ReadNoise`):
      ``Q_s = min(0.0088 / max((G_prog / g_max)^0.65, 1e-3), 0.2)``,
      ``sigma = Q_s sqrt(ln((t + 250 ns) / 500 ns))``, ``t = t_inference + t0``, split
      in time (``read_time_model``) into a draw per session and a draw per read at the
      correlation time ``read_correlation_time`` (s).

    Parameters
    ----------
    g_max : float
        S, default 25e-6.
    prog_noise_scale, read_noise_scale, drift_scale : float
        Multipliers of the three effects (0 is off).
    d2d_sigma : float
        Optional device-to-device gain variation (not part of the published model; 0).
    read_time_model : {"split", "per_read", "per_session"}
    read_correlation_time : float
        s, see :class:`ReadNoise`.
    rate_stuck_min, rate_stuck_max : float
        Optional stuck-at fault rates (0).

    References
    ----------
    S. R. Nandakumar et al., IEEE ICECS 2019 (PCM models for training and inference).
    V. Joshi et al., Nat. Commun. 11, 2473 (2020).
    """

    name = "pcm"
    PROG_COEFFS = (0.26348 / 25.0, 1.9650 / 25.0, -1.1731 / 25.0)
    DRIFT = dict(a_mu=-0.0155, b_mu=0.0244, mu_lo=0.049, mu_hi=0.1,
                 a_sigma=-0.0125, b_sigma=-0.0059, sigma_lo=0.008, sigma_hi=0.045)
    READ = dict(q_a=0.0088, q_b=0.65, q_floor=1e-3, q_max=0.2, t_read=250e-9)
    T0 = 20.0

    G_MAX = 25e-6

    @classmethod
    def _drift(cls, scale):
        return PowerLawDrift(**cls.DRIFT, t0=cls.T0, scale=scale)


class RRAMModel(_StatisticalModel):
    r"""A generic filamentary RRAM (HfOx / TaOx) model; the constants are assumptions.

    The same sequence and component laws as :class:`PCMLikeModel`, with:

    - ``g_max = 40 uS``: a window of a few tens of uS, the order of the write-verify
      windows of recent RRAM compute-in-memory chips (e.g. W. Wan et al., "A
      compute-in-memory chip based on resistive random-access memory", Nature 608, 504
      (2022)); an assumption, not a fit;
    - programming noise: a Gaussian with a constant ``sigma = 0.025 g_max`` (1 uS at
      40 uS): a write-verify loop stops inside a fixed acceptance band, so the spread
      after relaxation is, to first order, independent of the level (assumption);
    - read noise: random-telegraph / 1/f noise whose relative amplitude grows towards
      low conductance, ``Q_s = min(0.01 / max(g_n^0.5, 1e-3), 0.2)`` (the
      ``Delta R / R ~ R^(1/2)`` trend of D. Ielmini et al., "Resistance-dependent
      amplitude of random telegraph-signal noise in resistive switching memories",
      Appl. Phys. Lett. 96, 053503 (2010); the 1 % amplitude at ``g_max`` is an
      assumption), with the same ``sqrt(ln)`` time growth as PCM;
    - drift: a small conductance-independent power law, ``nu = |0.005 + 0.003 xi|``
      (assumption: RRAM relaxation is much weaker than PCM drift).

    Parameters are as for :class:`PCMLikeModel`.
    """

    name = "rram"
    PROG_COEFFS = (0.025, 0.0, 0.0)
    READ = dict(q_a=0.01, q_b=0.5, q_floor=1e-3, q_max=0.2, t_read=250e-9)
    NU_MEAN, NU_STD = 0.005, 0.003
    T0 = 20.0

    G_MAX = 40e-6

    @classmethod
    def _drift(cls, scale):
        return PowerLawDrift.constant(cls.NU_MEAN, cls.NU_STD, t0=cls.T0, scale=scale)


class IdealDeviceModel(DeviceModel):
    """Ideal devices (no noise, no drift) with optional stuck-at faults."""

    name = "ideal"

    def __init__(self, g_max=25e-6, g_min=0.0, rate_stuck_min=0.0, rate_stuck_max=0.0):
        super().__init__(g_max, g_min=g_min, faults=StuckAtFaults(rate_stuck_min, rate_stuck_max))


DEVICE_MODELS = {"ideal": IdealDeviceModel, "pcm": PCMLikeModel, "rram": RRAMModel}
