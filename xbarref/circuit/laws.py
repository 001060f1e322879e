"""Device current-voltage laws of the circuit solvers (Newton's method).

A device law gives the current ``i(v, G)`` in amperes through a cell at voltage
``v = V(row) - V(column)`` in volts, and its derivative ``di/dv`` in siemens, as
Numba-compiled scalar functions of ``(v, G, params)`` where ``G`` is the cell's nominal
(small-signal) conductance in siemens and ``params`` a float64 array of the law's
parameters. Write your own with ``numba.njit``:

>>> import numpy as np
>>> from numba import njit
>>> from xbarref.devices import Device  # or xbarref.circuit.laws
>>> @njit
... def cubic_current(v, g, p):
...     return g * (v + p[0] * v ** 3)
>>> @njit
... def cubic_conductance(v, g, p):
...     return g * (1.0 + 3.0 * p[0] * v ** 2)
>>> cubic = Device(cubic_current, cubic_conductance, params=[0.5], name="cubic")

and pass it as ``Crossbar(G, ..., device=cubic)``. The law must be odd-symmetric or at
least passive (``v * i(v) >= 0``) with ``di/dv > 0`` for the network to have one
operating point; :meth:`Device.check` samples both.

The built-in laws (``linear``, ``sinh``) are written once here, as the scalar functions
below; the cached batch kernels of :mod:`xbarref.circuit._newton` call them by number
(:data:`BUILTIN`), so they need no compilation per process. A user law is passed to
kernels as a function argument instead (compiled in each process: Numba cannot cache
kernels that take functions).
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numba.core.registry import CPUDispatcher

from xbarref.errors import XbarrefError


class Device:
    """A non-linear device law ``i(v, G)`` with its derivative, for Newton's method.

    Parameters
    ----------
    current : numba-compiled function ``(v, g, params) -> float``
        Current in amperes at device voltage ``v`` (volts) for nominal conductance ``g``
        (siemens).
    conductance : numba-compiled function ``(v, g, params) -> float``
        ``d current / d v`` in siemens; must be > 0 wherever ``g > 0``.
    params : array_like of float, optional
        Parameters passed to both functions as a float64 array.
    name : str
        Shown in reports.
    """

    #: Number of a built-in law (see :data:`BUILTIN`), -1 for a user law.
    builtin = -1

    def __init__(self, current, conductance, params=(), name="custom"):
        for arg, fn in (("current", current), ("conductance", conductance)):
            if not isinstance(fn, CPUDispatcher):
                raise XbarrefError(f"Device {arg}: must be a numba.njit-compiled function of (v, g, params)")
        params = np.atleast_1d(np.asarray(params, dtype=np.float64)) if len(np.atleast_1d(params)) else np.zeros(1)
        if not np.all(np.isfinite(params)):
            raise XbarrefError(f"Device params: must be finite, got {params}")
        self.current = current
        self.conductance = conductance
        self.params = params
        self.name = str(name)

    def check(self, v_max=1.0, g=1e-5, n=101):
        """Sample the law on ``[-v_max, v_max]``: passive, monotonic, derivative consistent.

        Raises XbarrefError naming what fails.
        """
        v = np.linspace(-v_max, v_max, n)
        i = np.array([self.current(x, g, self.params) for x in v])
        di = np.array([self.conductance(x, g, self.params) for x in v])
        if not (np.all(np.isfinite(i)) and np.all(np.isfinite(di))):
            raise XbarrefError(f"Device {self.name}: non-finite current or conductance on [-{v_max}, {v_max}] V")
        if np.any(v * i < 0):
            raise XbarrefError(f"Device {self.name}: not passive (v * i < 0 somewhere)")
        if np.any(di <= 0):
            raise XbarrefError(f"Device {self.name}: conductance di/dv must be > 0")
        h = 1e-6 * max(v_max, 1e-3)
        fd = np.array([(self.current(x + h, g, self.params) - self.current(x - h, g, self.params)) / (2 * h) for x in v])
        if not np.allclose(fd, di, rtol=1e-4, atol=1e-6 * g):
            raise XbarrefError(f"Device {self.name}: conductance does not match d current / d v")
        return True

    def currents(self, v, g):
        """Element-wise device currents in A on NumPy arrays: ``i(v, g)`` for voltages ``v``
        (V) and conductances ``g`` (S) of any broadcastable shapes.

        The law's own expression (the Python source of ``current``, ``current.py_func``)
        evaluated by NumPy, so the law is written once for the kernels and for array code
        (the approximate models, the diagnosis). A user law must then be written with
        NumPy operations (``np.sinh``, not ``math.sinh``) to be used here.

        Parameters
        ----------
        v : array_like
            Device voltages ``V(row) - V(column)`` in V.
        g : array_like
            Nominal conductances in S, broadcastable with ``v``.

        Returns
        -------
        numpy.ndarray
            Currents in A, of the broadcast shape.

        Examples
        --------
        >>> import numpy as np
        >>> from xbarref.circuit.laws import Device, sinh_current, sinh_conductance
        >>> law = Device(sinh_current, sinh_conductance, params=[2.0], name="sinh")
        >>> bool(law.currents(np.array([0.5]), 1e-5)[0] == 1e-5 * np.sinh(1.0) / 2.0)
        True
        """
        return np.asarray(self.current.py_func(np.asarray(v, dtype=np.float64),
                                               np.asarray(g, dtype=np.float64), self.params))

    def __repr__(self):
        return f"Device({self.name!r}, params={self.params.tolist()})"


@njit(cache=True)
def linear_current(v, g, p):
    """Ohmic device: ``i = g v``."""
    return g * v


@njit(cache=True)
def linear_conductance(v, g, p):
    return g


@njit(cache=True)
def sinh_current(v, g, p):
    """``i = g sinh(k v) / k`` with ``k = p[0]`` in 1/V (small-signal conductance g at 0 V)."""
    k = p[0]
    return g * np.sinh(k * v) / k


@njit(cache=True)
def sinh_conductance(v, g, p):
    return g * np.cosh(p[0] * v)


#: Number of each built-in law in the kernels (see :func:`xbarref.circuit._newton.builtin_current`).
BUILTIN = {"linear": 0, "sinh": 1}


def device_law(crossbar):
    """The :class:`Device` of a crossbar (built-in ``linear`` and ``sinh`` included)."""
    dev = crossbar.device
    if isinstance(dev, Device):
        return dev
    if dev == "sinh":
        law = Device(sinh_current, sinh_conductance, params=[crossbar.sinh_k], name="sinh")
    else:
        law = Device(linear_current, linear_conductance, name="linear")
    law.builtin = BUILTIN[law.name]
    return law
