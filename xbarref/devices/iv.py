"""Device current-voltage laws: they live in :mod:`xbarref.circuit.laws` (the solver owns
them); this module re-exports them for code that imports them from here."""

from xbarref.circuit.laws import (  # noqa: F401
    BUILTIN,
    Device,
    device_law,
    linear_conductance,
    linear_current,
    sinh_conductance,
    sinh_current,
)

__all__ = ["BUILTIN", "Device", "device_law", "linear_conductance", "linear_current",
           "sinh_conductance", "sinh_current"]
