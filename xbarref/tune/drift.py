"""Global drift compensation of a hardware-mapped model.

The compensation itself lives in the mapping package: an :class:`~xbarref.mapping.AnalogMatrix`
built with ``drift.compensation = "global"`` reads a calibration input (the identity)
at programming time and again in every inference session, and multiplies its outputs
by ``alpha = ref / mean|y_cal(t)|`` (Joshi et al., Nature Communications 11, 2473 (2020);
:func:`xbarref.devices.drift_compensation_scale`). The helpers here switch that scale
off and on for a whole model (through the public :meth:`AnalogMatrix.set_compensation`),
so that the same programmed devices are evaluated with and without compensation, and
report the measured scales.
"""

from __future__ import annotations

from xbarref.errors import XbarrefError
from xbarref.mapping import analog_matrices

__all__ = ["analog_layers", "drift_compensation_scales", "set_drift_compensation"]


def analog_layers(model):
    """``[(node name, AnalogMatrix)]`` of the layers of ``model`` on simulated hardware."""
    return analog_matrices(model)


def drift_compensation_scales(model):
    """``{node name: alpha}``: the output scale each analog layer applies now (1 = none)."""
    return {name: matrix.alpha for name, matrix in analog_layers(model)}


def set_drift_compensation(model, enabled):
    """Switch the global drift compensation of every analog layer on or off, in place.

    ``enabled=False``: raw hardware outputs (scale 1); ``enabled=True`` measures the
    scale again against the reference stored at programming (a calibration read in the
    current session). Needs a model mapped with ``drift.compensation`` other than
    ``"none"`` to switch on. Returns the model.
    """
    for name, matrix in analog_layers(model):
        if enabled and matrix.hardware.drift.compensation == "none":
            raise XbarrefError(f"model: layer {name!r} was mapped with drift.compensation = "
                               "\"none\"; map with \"global\" or \"column\" to compensate")
        if enabled or matrix.hardware.drift.compensation != "none":
            matrix.set_compensation(enabled)
    return model
