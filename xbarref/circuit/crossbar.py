"""The crossbar circuit: conductances, parasitic resistances and the device model.

The topology is the one of the case-file contract (``docs/formats.md``):
row ``i`` is driven by an ideal source ``V[i]`` through ``r_source[i]`` into row node
``r(i, 0)``; row wires run along each row (far end open); column wires run down each
column and the last column node ``c(M-1, j)`` goes through ``r_sink[j]`` to 0 V; device
``(i, j)`` sits between ``r(i, j)`` and ``c(i, j)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from xbarref.errors import XbarrefError

DEVICES = ("linear", "sinh")


def _as_float_array(name, value):
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise XbarrefError(f"{name}: cannot be read as an array of floats ({exc})") from None
    return arr


def _check_values(name, arr, unit):
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))
        where = tuple(int(k) for k in bad[0]) if arr.ndim else ()
        raise XbarrefError(f"{name}: must be finite, found {arr[where]} at index {where}")
    if np.any(arr < 0):
        bad = np.argwhere(arr < 0)
        where = tuple(int(k) for k in bad[0]) if arr.ndim else ()
        raise XbarrefError(f"{name}: must be >= 0 {unit}, found {arr[where]} at index {where}")


def broadcast_param(name, value, shape, unit="ohm"):
    """Return ``value`` as a float64 array of ``shape``, checked finite and >= 0.

    A scalar (shape ``()``) applies to every element; any other shape must match.
    """
    arr = _as_float_array(name, value)
    if arr.shape != () and arr.shape != tuple(shape):
        raise XbarrefError(
            f"{name}: expected a scalar or shape {tuple(shape)}, got shape {arr.shape}"
        )
    _check_values(name, arr, unit)
    out = np.empty(shape, dtype=np.float64)
    out[...] = arr
    return out


@dataclass(frozen=True, eq=False)
class Crossbar:
    """A resistive crossbar with parasitic resistances.

    Parameters
    ----------
    G : array_like, shape (M, N)
        Device conductances in siemens, finite and >= 0 (0 is an open cell). For the
        ``sinh`` device this is the small-signal conductance at 0 V.
    r_source : float or array_like, shape (M,)
        Driver (source) resistance of each row in ohms, >= 0; 0 is an ideal short.
    r_sink : float or array_like, shape (N,)
        Sink (sense-amplifier input) resistance of each column in ohms, >= 0.
    r_wire_row : float or array_like, shape (M, N-1)
        Row wire segment resistances in ohms, >= 0; segment ``[i, j]`` joins
        ``r(i, j)`` and ``r(i, j+1)``.
    r_wire_col : float or array_like, shape (M-1, N)
        Column wire segment resistances in ohms, >= 0; segment ``[i, j]`` joins
        ``c(i, j)`` and ``c(i+1, j)``.
    device : {"linear", "sinh"} or Device, optional
        Device current law: ``linear`` is ``I = G v``; ``sinh`` is
        ``I = G sinh(k v) / k``; a :class:`xbarref.devices.Device` gives a user law.
    sinh_k : float, optional
        The ``k`` of the ``sinh`` device in 1/V, > 0 (required for ``sinh``).

    All arrays are stored broadcast to their full shape as read-only float64 arrays.

    Raises
    ------
    XbarrefError
        For a wrong shape, a non-finite or negative value or an unknown device; the
        message names the argument.

    Examples
    --------
    >>> import numpy as np
    >>> from xbarref.circuit import Crossbar
    >>> xb = Crossbar(np.full((2, 3), 1e-5), r_source=10.0, r_sink=10.0,
    ...               r_wire_row=1.0, r_wire_col=1.0)
    >>> xb.shape
    (2, 3)
    """

    G: np.ndarray
    r_source: np.ndarray = 0.0
    r_sink: np.ndarray = 0.0
    r_wire_row: np.ndarray = 0.0
    r_wire_col: np.ndarray = 0.0
    device: object = "linear"
    sinh_k: float | None = None

    def __post_init__(self):
        G = _as_float_array("G", self.G)
        if G.ndim != 2 or G.shape[0] < 1 or G.shape[1] < 1:
            raise XbarrefError(f"G: expected a 2-D array of shape (M, N) with M, N >= 1, got shape {G.shape}")
        _check_values("G", G, "S")
        M, N = G.shape
        G = np.array(G, dtype=np.float64, copy=True)
        values = {
            "G": G,
            "r_source": broadcast_param("r_source", self.r_source, (M,)),
            "r_sink": broadcast_param("r_sink", self.r_sink, (N,)),
            "r_wire_row": broadcast_param("r_wire_row", self.r_wire_row, (M, N - 1)),
            "r_wire_col": broadcast_param("r_wire_col", self.r_wire_col, (M - 1, N)),
        }
        for name, arr in values.items():
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        device = self.device
        if isinstance(device, str):
            if device not in DEVICES:
                raise XbarrefError(f"device: unknown device {device!r}; expected one of {DEVICES} or a Device")
            if device == "sinh":
                k = self.sinh_k
                if k is None:
                    raise XbarrefError("sinh_k: required for the sinh device (1/V, > 0)")
                try:
                    k = float(k)
                except (TypeError, ValueError):
                    raise XbarrefError(f"sinh_k: must be a number, got {self.sinh_k!r}") from None
                if not math.isfinite(k) or k <= 0:
                    raise XbarrefError(f"sinh_k: must be finite and > 0 (1/V), got {k}")
                object.__setattr__(self, "sinh_k", k)
            elif self.sinh_k is not None:
                raise XbarrefError("sinh_k: only meaningful for device='sinh'")
        else:
            from xbarref.devices.iv import Device

            if not isinstance(device, Device):
                raise XbarrefError(
                    f"device: expected 'linear', 'sinh' or a xbarref.devices.Device, got {type(device).__name__}"
                )

    @property
    def shape(self):
        """``(M, N)``: rows (inputs) by columns (outputs)."""
        return self.G.shape

    @property
    def is_linear(self):
        """True for the linear device, whose outputs are linear in the inputs."""
        return isinstance(self.device, str) and self.device == "linear"

    def replace(self, **changes):
        """Return a copy with some fields replaced (and checked again)."""
        kwargs = dict(
            G=self.G, r_source=self.r_source, r_sink=self.r_sink, r_wire_row=self.r_wire_row,
            r_wire_col=self.r_wire_col, device=self.device, sinh_k=self.sinh_k,
        )
        kwargs.update(changes)
        return Crossbar(**kwargs)

    def ideal_currents(self, V):
        """The ideal output currents ``V @ G`` in amperes (no parasitics, linear device)."""
        V = check_inputs(V, self.shape[0])
        return V @ self.G

    def __repr__(self):
        M, N = self.shape
        dev = self.device if isinstance(self.device, str) else type(self.device).__name__
        return f"Crossbar(M={M}, N={N}, device={dev!r})"


def check_inputs(V, M, name="V"):
    """Return input voltages as a float64 (B, M) array; a 1-D (M,) vector is a batch of one."""
    V = _as_float_array(name, V)
    if V.ndim == 1:
        V = V[None, :]
    if V.ndim != 2 or V.shape[1] != M:
        raise XbarrefError(f"{name}: expected shape (B, {M}) or ({M},) input voltages, got shape {V.shape}")
    if not np.all(np.isfinite(V)):
        raise XbarrefError(f"{name}: input voltages must be finite")
    return np.ascontiguousarray(V)
