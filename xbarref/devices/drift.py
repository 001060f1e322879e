"""Conductance drift and its global compensation."""

from __future__ import annotations

import numpy as np

from xbarref.devices._checks import check_conductances, check_number, check_rng
from xbarref.errors import XbarrefError


class PowerLawDrift:
    r"""Power-law conductance drift with a conductance-dependent exponent per device.

    Structural relaxation of the amorphous phase makes a PCM device drift as

    .. math::

        G(t) = G(t_0) \left(\frac{t}{t_0}\right)^{-\nu},
        \qquad t = t_\mathrm{inference} + t_0,

    (Joshi et al. 2020; Ielmini et al., IEEE TED 54, 308 (2007)), so ``t_inference = 0``
    is no drift. The exponent is drawn once per device, from its target conductance
    (``g_n = G_target / g_max`` clamped to >= 1e-7):

    .. math::

        \mu_\nu = \mathrm{clip}(a_\mu \ln g_n + b_\mu, \mu_\mathrm{lo}, \mu_\mathrm{hi}),\quad
        \sigma_\nu = \mathrm{clip}(a_\sigma \ln g_n + b_\sigma, \sigma_\mathrm{lo}, \sigma_\mathrm{hi}),

        \nu = s\,|\mu_\nu + \sigma_\nu \xi|, \quad \xi \sim N(0, 1),

    a folded normal. PCM constants (Nandakumar et al. 2019, Joshi et al. 2020):
    ``a_mu = -0.0155, b_mu = 0.0244, mu in [0.049, 0.1]``,
    ``a_sigma = -0.0125, b_sigma = -0.0059, sigma in [0.008, 0.045]``, ``t0 = 20 s``.

    Parameters
    ----------
    a_mu, b_mu, mu_lo, mu_hi, a_sigma, b_sigma, sigma_lo, sigma_hi : float
        Dimensionless constants of the exponent distribution above.
    t0 : float
        Time of the first read after programming, s, > 0.
    scale : float
        Multiplier of the exponents ``s`` (0 is no drift), >= 0.
    """

    def __init__(self, a_mu, b_mu, mu_lo, mu_hi, a_sigma, b_sigma, sigma_lo, sigma_hi,
                 t0=20.0, scale=1.0):
        self.a_mu = check_number("a_mu", a_mu)
        self.b_mu = check_number("b_mu", b_mu)
        self.mu_lo = check_number("mu_lo", mu_lo)
        self.mu_hi = check_number("mu_hi", mu_hi, lo=self.mu_lo)
        self.a_sigma = check_number("a_sigma", a_sigma)
        self.b_sigma = check_number("b_sigma", b_sigma)
        self.sigma_lo = check_number("sigma_lo", sigma_lo, lo=0.0)
        self.sigma_hi = check_number("sigma_hi", sigma_hi, lo=self.sigma_lo)
        self.t0 = check_number("t0", t0, lo=0.0, lo_open=True, unit="s")
        self.scale = check_number("scale", scale, lo=0.0)

    @classmethod
    def constant(cls, mu, sigma=0.0, t0=20.0, scale=1.0):
        """Exponent ``|mu + sigma xi|`` independent of the conductance."""
        return cls(0.0, mu, mu, mu, 0.0, sigma, sigma, sigma, t0=t0, scale=scale)

    def parameters(self, G_target, g_max):
        """``(mu_nu, sigma_nu)`` arrays for each target conductance (dimensionless)."""
        g_n = np.maximum(np.asarray(G_target, dtype=np.float64) / g_max, 1e-7)
        log_g = np.log(g_n)
        mu = np.clip(self.a_mu * log_g + self.b_mu, self.mu_lo, self.mu_hi)
        sig = np.clip(self.a_sigma * log_g + self.b_sigma, self.sigma_lo, self.sigma_hi)
        return mu, sig

    def exponents(self, G_target, g_max, rng):
        """Draw one drift exponent per device (dimensionless, >= 0)."""
        G_target = check_conductances("G_target", G_target)
        rng = check_rng(rng)
        mu, sig = self.parameters(G_target, g_max)
        return self.scale * np.abs(mu + sig * rng.standard_normal(G_target.shape))

    def apply(self, G, nu, t_inference):
        """Conductances in S at ``t_inference`` s after the first read (``t0``)."""
        t_inference = check_number("t_inference", t_inference, lo=0.0, unit="s")
        G = np.asarray(G, dtype=np.float64)
        if t_inference == 0.0:
            return G.copy()
        return G * ((t_inference + self.t0) / self.t0) ** (-np.asarray(nu, dtype=np.float64))

    def __repr__(self):
        return (f"PowerLawDrift(mu=clip({self.a_mu} ln g + {self.b_mu}, {self.mu_lo}, {self.mu_hi}), "
                f"sigma=clip({self.a_sigma} ln g + {self.b_sigma}, {self.sigma_lo}, {self.sigma_hi}), "
                f"t0={self.t0}, scale={self.scale})")


COMPENSATION_MODES = ("none", "global", "column")


def drift_compensation_reference(outputs, mode="global"):
    r"""Reference level of a calibration read for global drift compensation.

    At programming time the analog layer is read with a fixed calibration input (the
    identity, one unit input per row) and the mean absolute output is stored (Joshi et
    al. 2020, "global drift compensation"; the same as aihwkit 1.1
    ``GlobalDriftCompensation``):

    .. math:: \mathrm{ref} = \max(\mathrm{mean}(|y_\mathrm{cal}|), 10^{-4}).

    Parameters
    ----------
    outputs : array_like, shape (B, N)
        Outputs of the calibration read, in weight units.
    mode : {"global", "column"}
        ``global``: one scalar over all outputs; ``column``: one value per output column
        (mean over the B calibration inputs).

    Returns
    -------
    float or ndarray of shape (N,)
    """
    y = _check_outputs(outputs)
    if mode == "global":
        return max(float(np.mean(np.abs(y))), 1e-4)
    if mode == "column":
        return np.maximum(np.mean(np.abs(y), axis=0), 1e-4)
    raise XbarrefError(f"mode: expected 'global' or 'column', got {mode!r}")


def drift_compensation_scale(reference, outputs, mode="global"):
    r"""Output scale ``alpha = ref / mean(|y_cal(t)|)`` after drift.

    ``outputs`` is the same calibration read as for :func:`drift_compensation_reference`,
    now with the drifted conductances; multiply the layer outputs by the returned
    ``alpha`` (a float for ``global``, an (N,) array for ``column``).
    """
    y = _check_outputs(outputs)
    if mode == "global":
        return float(reference) / max(float(np.mean(np.abs(y))), 1e-30)
    if mode == "column":
        ref = np.asarray(reference, dtype=np.float64)
        if ref.shape != (y.shape[1],):
            raise XbarrefError(f"reference: expected shape ({y.shape[1]},), got {ref.shape}")
        return ref / np.maximum(np.mean(np.abs(y), axis=0), 1e-30)
    raise XbarrefError(f"mode: expected 'global' or 'column', got {mode!r}")


def _check_outputs(outputs):
    y = np.asarray(outputs, dtype=np.float64)
    if y.ndim != 2 or y.size == 0:
        raise XbarrefError(f"outputs: expected a non-empty (B, N) array, got shape {y.shape}")
    if not np.all(np.isfinite(y)):
        raise XbarrefError("outputs: must be finite")
    return y
