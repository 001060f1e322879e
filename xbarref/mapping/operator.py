"""Plugging the AnalogMatrix into the DNN engine: ``AnalogMatmul`` and ``map_model``."""

from __future__ import annotations

import copy

import numpy as np

from xbarref.config import as_hardware
from xbarref.checks import check_rng
from xbarref.errors import XbarrefError
from xbarref.mapping.analog_matrix import AnalogMatrix

#: Layer kinds whose matrix product runs on the simulated hardware.
MAPPED_KINDS = ("conv2d", "linear")


class AnalogMatmul:
    """Matrix-product operator (the ``layer.matmul`` interface of :mod:`xbarref.nn.ops`)
    bound to one weight matrix programmed on simulated hardware.

    ``forward(x2d, w2d)`` returns ``x2d @ w2d`` computed by the :class:`AnalogMatrix`
    holding ``w2d``; ``w2d`` must be the weight the operator was built from (the
    hardware was programmed with it); a different weight raises (map the model again).
    ``backward(grad_y2d)`` returns the input gradient through the same effective
    matrices (:meth:`AnalogMatrix.backward`).

    Parameters
    ----------
    matrix : AnalogMatrix
    """

    def __init__(self, matrix, weight=None):
        if not isinstance(matrix, AnalogMatrix):
            raise XbarrefError(f"matrix: expected an AnalogMatrix, got {type(matrix).__name__}")
        self.matrix = matrix
        self._weight = None if weight is None else np.array(weight, dtype=np.float64, copy=True)

    def forward(self, x2d, w2d):
        if self._weight is not None:
            w2d = np.asarray(w2d)
            if w2d.shape != self._weight.shape or not np.array_equal(w2d, self._weight):
                raise XbarrefError(
                    "w2d: the layer weight differs from the weight programmed on the hardware; "
                    "map the model again (xbarref.map_model) after changing weights"
                )
        return self.matrix.forward(x2d)

    def backward(self, grad_y2d):
        return self.matrix.backward(grad_y2d)

    def __repr__(self):
        return f"AnalogMatmul({self.matrix!r})"


def map_model(model, hardware=None, rng=None, *, t_inference=None):
    """A copy of ``model`` whose Conv2d and Linear layers run on simulated hardware.

    Parameters
    ----------
    model : xbarref.nn.Model
        Left unchanged.
    hardware : HardwareConfig, preset name or TOML path, optional
        Default preset when None.
    rng : numpy.random.Generator
        Programs every layer in execution order, then draws the read noise of every
        forward pass: the same seed and the same calls give bit-identical outputs.
    t_inference : float, optional
        Seconds since programming (overrides ``hardware.drift.t_inference``).

    Returns
    -------
    xbarref.nn.Model
        Deep copy with ``layer.matmul`` of every Conv2d / Linear replaced by an
        :class:`AnalogMatmul`; the other layers (batchnorm, pooling, bias additions)
        stay digital.
    """
    hw = as_hardware(hardware)
    rng = check_rng(rng)
    if not hasattr(model, "layers_of_kind"):
        raise XbarrefError(f"model: expected an xbarref.nn.Model, got {type(model).__name__}")
    mapped = copy.deepcopy(model)
    for _name, layer in mapped.layers_of_kind(*MAPPED_KINDS):
        weight = layer.params["weight"]
        w2d = weight.reshape(weight.shape[0], -1).T
        layer.matmul = AnalogMatmul(AnalogMatrix(w2d, hw, rng, t_inference=t_inference), w2d)
    return mapped


def set_inference_time(model, t_inference):
    """Move every analog layer of a mapped model to ``t_inference`` seconds after programming.

    The programmed devices stay the same (no new programming noise); drift, effective
    matrices, ADC ranges and drift compensation are updated
    (:meth:`AnalogMatrix.set_time`). Returns the model.
    """
    found = False
    for _name, layer in model.layers_of_kind(*MAPPED_KINDS):
        op = getattr(layer, "matmul", None)
        if isinstance(op, AnalogMatmul):
            op.matrix.set_time(t_inference)
            found = True
    if not found:
        raise XbarrefError("model: has no layer on simulated hardware (use xbarref.map_model first)")
    return model
