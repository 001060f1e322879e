"""Stuck-at faults."""

from __future__ import annotations

import numpy as np

from xbarref.devices._checks import check_number, check_rng
from xbarref.errors import XbarrefError

#: Codes of :meth:`StuckAtFaults.draw`.
HEALTHY, STUCK_MIN, STUCK_MAX = 0, 1, 2


def check_fault_rates(rate_min, rate_max, *, names=("rate_min", "rate_max")):
    """The value checks of stuck-at fault rates, the one set (the ``[faults]`` section of
    a hardware configuration is checked here too): each in [0, 1], their sum <= 1.

    ``names`` are the names used in the messages. Returns ``(rate_min, rate_max)`` as
    floats.
    """
    rate_min = check_number(names[0], rate_min, lo=0.0, hi=1.0)
    rate_max = check_number(names[1], rate_max, lo=0.0, hi=1.0)
    if rate_min + rate_max > 1.0:
        raise XbarrefError(f"{names[0]} + {names[1]}: must be <= 1, got {rate_min} + {rate_max}")
    return rate_min, rate_max


class StuckAtFaults:
    r"""Devices stuck at ``G_min`` or ``G_max`` at given rates.

    Each device independently is stuck at ``g_min`` with probability ``rate_min``, at
    ``g_max`` with probability ``rate_max`` and healthy otherwise (one uniform draw per
    device: ``u < rate_min`` -> stuck at min, ``rate_min <= u < rate_min + rate_max`` ->
    stuck at max). A stuck device ignores programming, drift and read noise: it reads
    its stuck conductance every time. Rates are dimensionless probabilities. Stuck-at
    faults are the dominant hard fault of RRAM and PCM arrays (e.g. Chen et al., "RRAM
    defect modeling and failure analysis based on march test and a novel
    squeeze-search scheme", IEEE Trans. Comput. 64, 180 (2015)).

    Parameters
    ----------
    rate_min, rate_max : float
        Probabilities in [0, 1] with ``rate_min + rate_max <= 1``.
    """

    def __init__(self, rate_min=0.0, rate_max=0.0):
        self.rate_min, self.rate_max = check_fault_rates(rate_min, rate_max)

    @property
    def active(self):
        """True when any fault can occur."""
        return self.rate_min > 0.0 or self.rate_max > 0.0

    def draw(self, shape, rng):
        """Fault map of ``shape``: int8 codes HEALTHY (0), STUCK_MIN (1), STUCK_MAX (2)."""
        rng = check_rng(rng)
        u = rng.random(shape)
        codes = np.zeros(shape, dtype=np.int8)
        codes[u < self.rate_min] = STUCK_MIN
        codes[(u >= self.rate_min) & (u < self.rate_min + self.rate_max)] = STUCK_MAX
        return codes

    @staticmethod
    def apply(G, codes, g_min, g_max):
        """Return ``G`` (S) with the stuck devices set to ``g_min`` / ``g_max``.

        ``G`` may carry leading read axes: ``codes`` broadcasts against its last axes.
        """
        G = np.array(G, dtype=np.float64, copy=True)
        codes = np.broadcast_to(codes, G.shape)
        G[codes == STUCK_MIN] = g_min
        G[codes == STUCK_MAX] = g_max
        return G

    def __repr__(self):
        return f"StuckAtFaults(rate_min={self.rate_min!r}, rate_max={self.rate_max!r})"
