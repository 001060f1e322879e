r"""Dot-product distortion: what a per-column gain and offset can absorb, and what is left.

A batchnorm layer after a Conv2d / Linear layer applies, per output channel (= per
crossbar output column), an affine map. Whatever the hardware does to that column's
dot products that *is* affine, ``y_hw = g y + o``, batchnorm recalibration or tuning can
undo; the rest it cannot. For each analog layer we feed the inputs the layer receives in
the ideal (digital) network to both the ideal product ``y = x W`` and the simulated
hardware ``y_hw``, fit per column ``j`` by least squares

.. math:: y_j \approx a_j\, y_{\mathrm{hw},j} + b_j,

and report, over all columns,

- ``nmse_total = sum_j mean((y_hw,j - y_j)^2) / sum_j var(y_j)``: the distortion;
- ``nmse_residual = sum_j mean((a_j y_hw,j + b_j - y_j)^2) / sum_j var(y_j)``: what is
  left after the best per-column gain and offset (what batchnorm cannot absorb);
- ``absorbable = 1 - nmse_residual / nmse_total``: the fraction it can absorb.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from xbarref.errors import XbarrefError
from xbarref.mapping import MAPPED_KINDS, AnalogMatmul
from xbarref.nn.ops import DigitalMatmul

__all__ = ["ColumnFit", "column_fit", "layer_inputs", "layer_distortion"]


@dataclass(frozen=True)
class ColumnFit:
    """Per-column affine fit of ideal on simulated outputs (see the module docstring).

    Attributes
    ----------
    gain, offset : ndarray, shape (out,)
        ``a_j`` and ``b_j`` (0 gain for a constant hardware column).
    nmse_total, nmse_residual, absorbable : float
    """

    gain: np.ndarray
    offset: np.ndarray
    nmse_total: float
    nmse_residual: float
    absorbable: float


def column_fit(y_ideal, y_hw):
    """Least-squares ``y_ideal[:, j] ~ gain[j] * y_hw[:, j] + offset[j]`` for every column.

    Parameters
    ----------
    y_ideal, y_hw : ndarray, shape (P, out), P >= 2

    Returns
    -------
    ColumnFit
    """
    y = np.asarray(y_ideal, dtype=np.float64)
    z = np.asarray(y_hw, dtype=np.float64)
    if y.ndim != 2 or y.shape != z.shape or y.shape[0] < 2:
        raise XbarrefError(f"y_hw: expected two (P, out) arrays of the same shape with P >= 2, "
                           f"got {y.shape} and {z.shape}")
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(z))):
        raise XbarrefError("y_hw: outputs must be finite")
    ym, zm = y.mean(axis=0), z.mean(axis=0)
    zc, yc = z - zm, y - ym
    szz = np.sum(zc * zc, axis=0)
    szy = np.sum(zc * yc, axis=0)
    gain = np.divide(szy, szz, out=np.zeros_like(szy), where=szz > 0)
    offset = ym - gain * zm
    resid = gain * z + offset - y
    var = np.sum(yc * yc)
    total = float(np.sum((z - y) ** 2))
    left = float(np.sum(resid * resid))
    scale = var if var > 0 else 1.0
    absorbable = 1.0 - left / total if total > 0 else 1.0
    return ColumnFit(gain, offset, total / scale, left / scale, float(absorbable))


class _Recorder(DigitalMatmul):
    """Digital product that keeps a copy of its inputs."""

    def __init__(self):
        super().__init__()
        self.inputs = []

    def forward(self, x2d, w2d):
        self.inputs.append(np.array(x2d))
        return super().forward(x2d, w2d)


def layer_inputs(model, x, max_rows=None, rng=None):
    """Inputs ``x2d`` (P, K) and weights ``w2d`` (K, out) of every Conv2d / Linear layer of
    the digital model on raw inputs ``x``.

    Parameters
    ----------
    model : xbarref.nn.Model
        Run digitally (a copy whose operators record their inputs; ``model`` is unchanged).
    x : ndarray, shape (N, *input_shape)
    max_rows : int, optional
        Keep at most this many rows per layer (drawn without replacement with ``rng``).
    rng : numpy.random.Generator, optional (needed with ``max_rows``)

    Returns
    -------
    dict
        ``{node name: (x2d, w2d)}`` in execution order.
    """
    twin = copy.deepcopy(model)
    recorders = {}
    for name, layer in twin.layers_of_kind(*MAPPED_KINDS):
        layer.matmul = recorders[name] = _Recorder()
    twin(x)
    out = {}
    for name, layer in twin.layers_of_kind(*MAPPED_KINDS):
        x2d = np.concatenate(recorders[name].inputs)
        if max_rows is not None and x2d.shape[0] > max_rows:
            x2d = x2d[np.sort(rng.choice(x2d.shape[0], max_rows, replace=False))]
        weight = layer.params["weight"]
        out[name] = (x2d, weight.reshape(weight.shape[0], -1).T.copy())
    return out


def layer_distortion(mapped_model, inputs):
    """Ideal vs simulated outputs of every analog layer of ``mapped_model``.

    Parameters
    ----------
    mapped_model : xbarref.nn.Model
        Returned by :func:`xbarref.map_model`.
    inputs : dict
        :func:`layer_inputs` of the digital model (same weights).

    Returns
    -------
    dict
        ``{node name: (y_ideal, y_hw, ColumnFit)}``.
    """
    out = {}
    for name, layer in mapped_model.layers_of_kind(*MAPPED_KINDS):
        op = getattr(layer, "matmul", None)
        if not isinstance(op, AnalogMatmul) or name not in inputs:
            continue
        x2d, w2d = inputs[name]
        y_ideal = x2d @ w2d
        y_hw = op.matrix.forward(x2d)
        out[name] = (y_ideal, y_hw, column_fit(y_ideal, y_hw))
    if not out:
        raise XbarrefError("mapped_model: no analog layer matches the given inputs")
    return out
