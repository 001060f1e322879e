r"""Dot-product distortion: what a per-column gain and offset can absorb, and what is left.

A batchnorm layer after a Conv2d / Linear layer applies, per output channel (= per
crossbar output column), an affine map. Whatever the hardware does to a column's dot
products that *is* affine, ``y_hw = g y + o``, batchnorm recalibration or tuning can undo
(divide by ``g``, subtract ``o``); the rest it cannot. Per column ``j`` we fit the
hardware output on the ideal output by least squares,

.. math:: y_{\mathrm{hw},j} = g_j\, y_j + o_j + r_j ,

(the direction matters: regressing the ideal output on the hardware output instead
shrinks the fit towards 0 for noise independent of the signal and calls a share
``NMSE / (1 + NMSE)`` of pure noise "absorbable"). After the best per-column correction
the error left in the units of ``y`` is ``r_j / g_j``. Over all columns (pooled sums):

- ``nmse_total = sum_j mean((y_hw,j - y_j)^2) / sum_j var(y_j)``: the distortion;
- ``nonabsorbable = sum_j var(r_j) / g_j^2 / sum_j var(y_j)``: what is left after the
  best per-column gain and offset (what batchnorm cannot absorb), relative to the signal;
- ``absorbable = 1 - sum_j var(r_j) / g_j^2 / sum_j mean((y_hw,j - y_j)^2)``: the share
  of the total error that a per-column gain and offset remove.

The absorbable share is negative when undoing a gain below 1 amplifies the residual
(``r / g``) more than it removes from the error (static errors much larger than the
gain error, e.g. stuck devices). A column whose fitted gain is not positive (``g_j <= 0``: its signal is lost) counts
its whole ``var(y_j)`` as non-absorbable. With a second read of the same inputs
(``y_hw2``) the residual splits into a *per-read* part, ``mean((y_hw - y_hw2)^2) / 2`` per
column (what changes from read to read), and a *static* part (the rest: the same on
every read of this session).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from xbarref.errors import XbarrefError
from xbarref.mapping import MAPPED_KINDS, AnalogMatmul
from xbarref.nn.ops import DigitalMatmul

__all__ = ["ColumnFit", "column_fit", "layer_inputs", "layer_distortion", "propagated_distortion",
           "surrogate_errors", "precision_errors"]


@dataclass(frozen=True)
class ColumnFit:
    """Per-column affine fit of the hardware output on the ideal output (module docstring).

    Attributes
    ----------
    gain, offset : ndarray, shape (out,)
        ``g_j`` and ``o_j``.
    nmse_total, nonabsorbable, absorbable : float
    nonabsorbable_per_read, nonabsorbable_static : float
        The split of ``nonabsorbable`` with a second read (NaN without one).
    """

    gain: np.ndarray
    offset: np.ndarray
    nmse_total: float
    nonabsorbable: float
    absorbable: float
    nonabsorbable_per_read: float = float("nan")
    nonabsorbable_static: float = float("nan")


def _check(name, a, shape=None):
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] < 2 or (shape is not None and a.shape != shape):
        raise XbarrefError(f"{name}: expected (P, out) arrays of the same shape with P >= 2, got "
                           f"{a.shape}" + ("" if shape is None else f" and {shape}"))
    if not np.all(np.isfinite(a)):
        raise XbarrefError(f"{name}: outputs must be finite")
    return a


def column_fit(y_ideal, y_hw, y_hw2=None):
    """Least-squares ``y_hw[:, j] = gain[j] * y_ideal[:, j] + offset[j] + r[:, j]`` per column.

    Parameters
    ----------
    y_ideal, y_hw : ndarray, shape (P, out), P >= 2
    y_hw2 : ndarray, optional
        A second hardware read of the same inputs (splits the residual into static and
        per-read parts).

    Returns
    -------
    ColumnFit
    """
    y = _check("y_ideal", y_ideal)
    z = _check("y_hw", y_hw, y.shape)
    ym, zm = y.mean(axis=0), z.mean(axis=0)
    yc, zc = y - ym, z - zm
    vy = np.sum(yc * yc, axis=0)
    gain = np.divide(np.sum(yc * zc, axis=0), vy, out=np.zeros(y.shape[1]), where=vy > 0)
    offset = zm - gain * ym
    r = z - (gain * y + offset)
    vr = np.sum(r * r, axis=0)
    alive = gain > 0
    safe = np.where(alive, gain, 1.0)
    left_col = np.where(alive, vr / safe ** 2, vy)
    left_col = np.where(vy > 0, left_col, vr)
    total = float(np.sum((z - y) ** 2))
    left = float(np.sum(left_col))
    scale = float(np.sum(vy)) if np.sum(vy) > 0 else 1.0
    absorbable = 1.0 - left / total if total > 0 else 1.0
    per_read = static = float("nan")
    if y_hw2 is not None:
        z2 = _check("y_hw2", y_hw2, y.shape)
        vpr = np.sum((z - z2) ** 2, axis=0) / 2.0
        pr_col = np.where(alive, vpr / safe ** 2, 0.0)
        pr_col = np.minimum(pr_col, left_col)
        per_read = float(np.sum(pr_col)) / scale
        static = (left - float(np.sum(pr_col))) / scale
    return ColumnFit(gain, offset, total / scale, left / scale, float(absorbable), per_read, static)


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
        ``{node name: (x2d, w2d, rows)}`` in execution order; ``rows`` are the indices of
        the kept rows among all rows of the layer (None when all are kept).
    """
    twin = copy.deepcopy(model)
    recorders = {}
    for name, layer in twin.layers_of_kind(*MAPPED_KINDS):
        layer.matmul = recorders[name] = _Recorder()
    twin(x)
    out = {}
    for name, layer in twin.layers_of_kind(*MAPPED_KINDS):
        x2d = np.concatenate(recorders[name].inputs)
        rows = None
        if max_rows is not None and x2d.shape[0] > max_rows:
            rows = np.sort(rng.choice(x2d.shape[0], max_rows, replace=False))
            x2d = x2d[rows]
        weight = layer.params["weight"]
        out[name] = (x2d, weight.reshape(weight.shape[0], -1).T.copy(), rows)
    return out


def _analog(mapped_model):
    return [(name, layer.matmul) for name, layer in mapped_model.layers_of_kind(*MAPPED_KINDS)
            if isinstance(getattr(layer, "matmul", None), AnalogMatmul)]


def layer_distortion(mapped_model, inputs):
    """Ideal vs simulated outputs of every analog layer on the *ideal* layer inputs.

    Every layer reads its inputs twice (two reads of the same inputs split the residual
    into static and per-read parts).

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
    for name, op in _analog(mapped_model):
        if name not in inputs:
            continue
        x2d, w2d = inputs[name][:2]
        y_ideal = x2d @ w2d
        y_hw = op.matrix.forward(x2d)
        y_hw2 = op.matrix.forward(x2d)
        out[name] = (y_ideal, y_hw, column_fit(y_ideal, y_hw, y_hw2))
    if not out:
        raise XbarrefError("mapped_model: no analog layer matches the given inputs")
    return out


def propagated_distortion(mapped_model, inputs, x):
    """Simulated outputs of every analog layer on the inputs the *hardware* network gives
    it, against the ideal network's outputs of the same layer (the accumulated distortion).

    Parameters
    ----------
    mapped_model : xbarref.nn.Model
    inputs : dict
        :func:`layer_inputs` of the digital model on the same raw inputs ``x`` (its
        kept rows are used here too).
    x : ndarray
        Raw inputs (N, *input_shape).

    Returns
    -------
    dict
        ``{node name: (y_ideal, y_hw, ColumnFit)}``; the second read for the static /
        per-read split re-reads the recorded hardware inputs of the layer.
    """
    ops = _analog(mapped_model)
    for _, op in ops:
        op.record = []
    try:
        mapped_model(x)
        out = {}
        for name, op in ops:
            if name not in inputs:
                continue
            x2d_ideal, w2d, rows = inputs[name]
            x_hw = np.concatenate([a for a, _ in op.record])
            y_hw = np.concatenate([b for _, b in op.record])
            if rows is not None:
                x_hw, y_hw = x_hw[rows], y_hw[rows]
            if x_hw.shape != x2d_ideal.shape:
                raise XbarrefError(f"inputs: layer {name!r} does not match the raw inputs x")
            y_ideal = x2d_ideal @ w2d
            y_hw2 = op.matrix.forward(x_hw)
            out[name] = (y_ideal, y_hw, column_fit(y_ideal, y_hw, y_hw2))
    finally:
        for _, op in ops:
            op.record = None
    return out


def surrogate_errors(mapped_model, inputs, reads, rng):
    """Error of the first-order surrogate against the exact per-read circuits, per layer.

    For every analog layer whose matrix uses the surrogate
    (:meth:`xbarref.mapping.AnalogMatrix.surrogate_check`) and that has inputs in
    ``inputs`` (:func:`layer_inputs`), its first ``reads`` input rows are read both ways
    (per-read conductances, where there is read noise, drawn from ``rng``: the same draws
    for both).

    Returns
    -------
    list of dict
        ``layer, reads, nmse`` (mean square of surrogate - exact over the variance of
        exact), ``share_of_distortion`` (mean square of surrogate - exact over the mean
        square of exact - ideal: the part of the circuit's distortion the surrogate gets
        wrong), ``nmse_exact_vs_ideal``, ``max_rel`` (max |surrogate - exact| over
        max |exact|), ``seconds_exact``, ``seconds_surrogate`` (CPU s).
    """
    rows = []
    for name, op in _analog(mapped_model):
        m = op.matrix
        if name not in inputs or not getattr(m, "first_order", False):
            continue
        x2d = inputs[name][0][:int(reads)]
        r = m.surrogate_check(x2d, rng)
        e, s, i = r["exact"], r["surrogate"], r["ideal"]
        err = float(np.mean((s - e) ** 2))
        var = float(np.var(e))
        dist = float(np.mean((e - i) ** 2))
        peak = float(np.max(np.abs(e)))
        rows.append(dict(layer=name, reads=r["reads"], nmse=err / var if var > 0 else 0.0,
                         share_of_distortion=err / dist if dist > 0 else 0.0,
                         nmse_exact_vs_ideal=dist / var if var > 0 else 0.0,
                         max_rel=float(np.max(np.abs(s - e))) / peak if peak > 0 else 0.0,
                         seconds_exact=r["seconds_exact"], seconds_surrogate=r["seconds_surrogate"]))
    return rows


def precision_errors(mapped_model, inputs, reads):
    """Error of the float32 static reads against float64 reads, per layer.

    For every analog layer that reads in float32
    (:func:`xbarref.mapping.set_read_precision`) and has inputs in ``inputs``
    (:func:`layer_inputs`), its first ``reads`` input rows are read in float64 and in
    float32 (whole-layer outputs, in weight units), both from the same state of the
    layer's generator (per-read noise: the same draws), which is then put back: the chip
    reads afterwards exactly as before. ``ideal`` is the digital product ``x2d @ w2d``.

    Returns
    -------
    list of dict
        The fields of :func:`surrogate_errors`, "exact" being the float64 read and
        "surrogate" the float32 read (``seconds_exact``, ``seconds_surrogate``: CPU s of
        the two reads).
    """
    import time

    rows = []
    for name, op in _analog(mapped_model):
        m = op.matrix
        if name not in inputs or not m.single_precision_reads():
            continue
        x2d, w2d, _ = inputs[name]
        x2d = x2d[:int(reads)]
        state = copy.deepcopy(m.rng.bit_generator.state)
        try:
            m.set_read_precision("float64")
            c0 = time.process_time()
            e = m.forward(x2d)
            c1 = time.process_time()
            m.rng.bit_generator.state = copy.deepcopy(state)
            m.set_read_precision("float32")
            s = m.forward(x2d)
            c2 = time.process_time()
        finally:
            m.set_read_precision("float32")
            m.rng.bit_generator.state = state
        i = x2d @ w2d
        err = float(np.mean((s - e) ** 2))
        var = float(np.var(e))
        dist = float(np.mean((e - i) ** 2))
        peak = float(np.max(np.abs(e)))
        rows.append(dict(layer=name, reads=int(x2d.shape[0]), nmse=err / var if var > 0 else 0.0,
                         share_of_distortion=err / dist if dist > 0 else 0.0,
                         nmse_exact_vs_ideal=dist / var if var > 0 else 0.0,
                         max_rel=float(np.max(np.abs(s - e))) / peak if peak > 0 else 0.0,
                         seconds_exact=c1 - c0, seconds_surrogate=c2 - c1))
    return rows
