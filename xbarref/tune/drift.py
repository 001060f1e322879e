"""Global drift compensation of a hardware-mapped model.

The compensation itself lives in the mapping package: an :class:`~xbarref.mapping.AnalogMatrix`
built with ``drift.compensation = "global"`` reads a calibration input (the identity)
at programming time and again at the time of inference, and multiplies its outputs by
``alpha = ref / mean|y_cal(t)|`` (Joshi et al., Nature Communications 11, 2473 (2020);
:func:`xbarref.devices.drift_compensation_scale`). The helpers here switch that scale
off and on for a whole model, so that the same programmed devices are evaluated with and
without compensation, and report the measured scales.
"""

from __future__ import annotations

from xbarref.errors import XbarrefError
from xbarref.mapping import MAPPED_KINDS, AnalogMatmul

__all__ = ["analog_layers", "drift_compensation_scales", "set_drift_compensation"]


def analog_layers(model):
    """``[(node name, AnalogMatrix)]`` of the layers of ``model`` on simulated hardware."""
    if not hasattr(model, "layers_of_kind"):
        raise XbarrefError(f"model: expected an xbarref.nn.Model, got {type(model).__name__}")
    out = [(name, layer.matmul.matrix) for name, layer in model.layers_of_kind(*MAPPED_KINDS)
           if isinstance(getattr(layer, "matmul", None), AnalogMatmul)]
    if not out:
        raise XbarrefError("model: has no layer on simulated hardware (use xbarref.map_model first)")
    return out


def drift_compensation_scales(model):
    """``{node name: alpha}``: the output scale each analog layer applies now (1 = none)."""
    return {name: matrix.alpha for name, matrix in analog_layers(model)}


def set_drift_compensation(model, enabled):
    """Switch the global drift compensation of every analog layer on or off, in place.

    ``enabled=False`` sets every output scale to 1 (raw hardware outputs);
    ``enabled=True`` measures it again against the reference stored at programming
    (:meth:`AnalogMatrix.set_time` at the current time: a calibration read, drawing read
    noise). Needs a model mapped with ``drift.compensation`` other than ``"none"`` to
    switch on. Returns the model.
    """
    layers = analog_layers(model)
    if enabled:
        for name, matrix in layers:
            if matrix.hardware.drift.compensation == "none":
                raise XbarrefError(f"model: layer {name!r} was mapped with drift.compensation = "
                                   "\"none\"; map with \"global\" or \"column\" to compensate")
            matrix.set_time(matrix.t_inference)
    else:
        for _name, matrix in layers:
            matrix.alpha = 1.0
    return model
