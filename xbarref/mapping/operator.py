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
        self.calibrating = False
        #: When a list, every forward appends ``(x2d, y)`` (copies): the recorded reads.
        self.record = None

    @property
    def batch_invariant(self):
        """True when splitting a batch changes no output (see
        :func:`xbarref.nn.train.batch_invariant`): not calibrating, not recording, and a
        matrix whose reads draw nothing (:attr:`AnalogMatrix.batch_invariant`)."""
        return not self.calibrating and self.record is None and self.matrix.batch_invariant

    @property
    def single_input(self):
        """True when :meth:`forward_single` takes float32 inputs: not calibrating, not
        recording, and plain float32 reads (:attr:`AnalogMatrix.plain_single`)."""
        return not self.calibrating and self.record is None and self.matrix.plain_single

    def _check_weight(self, w2d):
        if self._weight is not None:
            w2d = np.asarray(w2d)
            if w2d.shape != self._weight.shape or not np.array_equal(w2d, self._weight):
                raise XbarrefError(
                    "w2d: the layer weight differs from the weight programmed on the hardware; "
                    "map the model again (xbarref.map_model) after changing weights"
                )

    def forward_single(self, x2d32, w2d):
        """:meth:`forward` of float32 inputs when :attr:`single_input` holds (a layer may
        build them in float32 directly, e.g. Conv2d's im2col); None when the float32
        product is not finite: then call :meth:`forward` with the float64 inputs
        (:meth:`AnalogMatrix.forward_single`)."""
        self._check_weight(w2d)
        return self.matrix.forward_single(x2d32)

    def forward(self, x2d, w2d):
        self._check_weight(w2d)
        if self.calibrating:
            self.matrix.calibrate_adc(x2d)
            self.calibrating = False
        y = self.matrix.forward(x2d)
        if self.record is not None:
            self.record.append((np.array(x2d, dtype=np.float64), y.copy()))
        return y

    def backward(self, grad_y2d):
        return self.matrix.backward(grad_y2d)

    def __repr__(self):
        return f"AnalogMatmul({self.matrix!r})"


def map_model(model, hardware=None, rng=None, *, t_inference=None, calibration=None):
    """A copy of ``model`` whose Conv2d and Linear layers run on simulated hardware.

    Parameters
    ----------
    model : xbarref.nn.Model
        Left unchanged.
    hardware : HardwareConfig, preset name or TOML path, optional
        Default preset when None.
    rng : numpy.random.Generator
        Programs every layer in execution order, then draws the session noise and the
        read noise of every forward pass: the same seed and the same calls give
        bit-identical outputs.
    t_inference : float, optional
        Seconds since programming (overrides ``hardware.drift.t_inference``).
    calibration : ndarray, optional
        Raw model inputs (N, *input_shape) for ``adc.range = "programmed"`` (required
        then): right after programming (``t_inference = 0``) they run once through the
        mapped model and every layer sets its ADC ranges from the currents of the inputs
        it receives (:meth:`AnalogMatrix.calibrate_adc`); then the devices move to
        ``t_inference`` (a new session).

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
    programmed = hw.adc.range == "programmed" and hw.adc.bits > 0
    if programmed and calibration is None:
        raise XbarrefError("calibration: adc.range = \"programmed\" sets the ADC ranges from "
                           "calibration inputs read right after programming; pass calibration=x")
    t = hw.drift.t_inference if t_inference is None else t_inference
    mapped = copy.deepcopy(model)
    for _name, layer in mapped.layers_of_kind(*MAPPED_KINDS):
        weight = layer.params["weight"]
        w2d = weight.reshape(weight.shape[0], -1).T
        layer.matmul = AnalogMatmul(AnalogMatrix(w2d, hw, rng, t_inference=0.0 if programmed else t_inference),
                                    w2d)
    if programmed:
        calibrate_adc(mapped, calibration)
        if t != 0.0:
            set_inference_time(mapped, t)
    return mapped


def analog_matrices(model):
    """``[(node name, AnalogMatrix)]`` of the layers of ``model`` on simulated hardware."""
    if not hasattr(model, "layers_of_kind"):
        raise XbarrefError(f"model: expected an xbarref.nn.Model, got {type(model).__name__}")
    out = [(name, layer.matmul.matrix) for name, layer in model.layers_of_kind(*MAPPED_KINDS)
           if isinstance(getattr(layer, "matmul", None), AnalogMatmul)]
    if not out:
        raise XbarrefError("model: has no layer on simulated hardware (use xbarref.map_model first)")
    return out


def calibrate_adc(model, x):
    """Set the ADC ranges of every analog layer of a mapped model from raw inputs ``x``.

    ``x`` runs once through the model (eval mode); each analog layer, in execution
    order, sets its ranges (:meth:`AnalogMatrix.calibrate_adc`) from the inputs it
    receives from the layers before it (already calibrated). Used by
    :func:`map_model` right after programming, and later as the ADC re-ranging
    mitigation (at the current time and session). Returns the model.
    """
    ops = [layer.matmul for _, layer in model.layers_of_kind(*MAPPED_KINDS)
           if isinstance(getattr(layer, "matmul", None), AnalogMatmul)]
    if not ops:
        raise XbarrefError("model: has no layer on simulated hardware (use xbarref.map_model first)")
    for op in ops:
        op.calibrating = True
    try:
        model(x)
    finally:
        for op in ops:
            op.calibrating = False
    return model


def set_inference_time(model, t_inference, rng=None):
    """Open a new inference session of every analog layer ``t_inference`` s after programming.

    The programmed devices stay the same (no new programming noise); drift, the session
    draw of the read noise, effective matrices, ADC ranges (``"calibrated"`` mode) and
    drift compensation are updated (:meth:`AnalogMatrix.set_time`). ``rng`` (optional)
    becomes the generator of the session and of every later read (one generator shared
    by all layers, drawn in execution order). Returns the model.
    """
    for _name, matrix in analog_matrices(model):
        matrix.set_time(t_inference, rng=rng)
    return model


def set_compensation(model, enabled):
    """Switch the drift-compensation output scale of every analog layer on or off."""
    for _name, matrix in analog_matrices(model):
        if matrix.hardware.drift.compensation != "none" or not enabled:
            matrix.set_compensation(enabled)
    return model


def set_read_precision(model, precision):
    """Arithmetic of the plain static reads of every analog layer: ``"float64"`` or
    ``"float32"`` (:meth:`AnalogMatrix.set_read_precision`). Returns the model."""
    for _name, matrix in analog_matrices(model):
        matrix.set_read_precision(precision)
    return model
