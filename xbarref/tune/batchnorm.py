"""Batchnorm mitigation with the simulated hardware in the loop.

:func:`recalibrate_bn` recomputes the running statistics of every batchnorm layer from
forward passes through the (hardware-mapped) model on a calibration set;
:func:`tune_bn` takes gradient steps on the batchnorm ``weight`` (gamma) and ``bias``
(beta) only. Both leave every Conv2d / Linear weight, and so every programmed crossbar,
untouched.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from xbarref.checks import check_rng
from xbarref.errors import XbarrefError
from xbarref.nn.optim import Adam, select_parameters
from xbarref.nn.train import train_steps

__all__ = ["BN_KINDS", "TuneReport", "recalibrate_bn", "tune_bn", "optimizer_bytes",
           "check_labelled"]

#: Layer kinds treated as batchnorm.
BN_KINDS = ("batchnorm1d", "batchnorm2d")


@dataclass(frozen=True)
class TuneReport:
    """Cost and outcome of one mitigation run.

    Attributes
    ----------
    method : str
        ``"bn_recalibration"``, ``"bn_tuning"`` or ``"retraining"``.
    seconds : float
        Wall-clock time, s.
    steps : int
        Gradient steps (0 for recalibration).
    samples_seen : int
        Forward passes of single samples through the hardware.
    calibration_samples : int
        Distinct labelled (or unlabelled, for recalibration) samples used.
    trainable_parameters : int
        Scalars the method changes (running statistics count for recalibration).
    optimizer_bytes : int
        Memory of the optimizer state (Adam: two float64 moments per parameter).
    loss_first, loss_last : float
        Mean cross-entropy of the first and last tenth of the steps (NaN without steps).
    """

    method: str
    seconds: float
    steps: int
    samples_seen: int
    calibration_samples: int
    trainable_parameters: int
    optimizer_bytes: int
    loss_first: float = float("nan")
    loss_last: float = float("nan")


def _bn_layers(model):
    if not hasattr(model, "layers_of_kind"):
        raise XbarrefError(f"model: expected an xbarref.nn.Model, got {type(model).__name__}")
    layers = model.layers_of_kind(*BN_KINDS)
    if not layers:
        raise XbarrefError("model: has no batchnorm layer to recalibrate or tune")
    return layers


def check_labelled(model, x, y=None, what="x"):
    """``x`` (and integer labels ``y``) checked against the model; returns arrays."""
    x = model.check_input(x)
    if x.shape[0] < 1:
        raise XbarrefError(f"{what}: no samples")
    if y is None:
        return x, None
    y = np.asarray(y)
    if y.shape != (x.shape[0],) or not np.issubdtype(y.dtype, np.integer):
        raise XbarrefError(f"y: expected {x.shape[0]} integer labels, got shape {y.shape} dtype {y.dtype}")
    return x, y


def recalibrate_bn(model, x, *, batch_size=256):
    """Recompute the running mean and variance of every batchnorm layer through ``model``.

    The calibration inputs go through the model (for a mapped model: through the
    simulated hardware, with its read noise) with the batchnorm layers in training mode
    (every other layer in eval mode); each batchnorm layer's running statistics become
    the average over the batches of the batch mean and unbiased batch variance (PyTorch's
    cumulative average, ``momentum=None``). Layers downstream of a batchnorm layer see it
    normalise with the statistics being measured, so one pass calibrates the whole chain.

    Parameters
    ----------
    model : xbarref.nn.Model
        Changed in place (running statistics only).
    x : ndarray, shape (N, *model.input_shape)
        Raw calibration inputs (labels are not needed).
    batch_size : int
        Samples per forward pass (every batch but the last gets this many; a batch must
        hold more than one value per channel).

    Returns
    -------
    TuneReport
    """
    bns = _bn_layers(model)
    x, _ = check_labelled(model, x)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 2:
        raise XbarrefError(f"batch_size: must be an integer >= 2, got {batch_size!r}")
    n = x.shape[0]
    if n < 2:
        raise XbarrefError("x: recalibration needs at least 2 samples")
    batches = np.array_split(np.arange(n), max(1, -(-n // int(batch_size))))
    momenta = [layer.momentum for _, layer in bns]
    start = time.perf_counter()
    try:
        for k, index in enumerate(batches):
            for _, layer in bns:
                layer.momentum = 1.0 / (k + 1)
            model.forward(x[index], training=BN_KINDS)
    finally:
        model.release()
        for (_, layer), m in zip(bns, momenta):
            layer.momentum = m
    n_stats = sum(layer.num_features * 2 for _, layer in bns)
    return TuneReport("bn_recalibration", time.perf_counter() - start, 0, n, n, n_stats, 0)


def optimizer_bytes(params, moments=2):
    """Bytes of an optimizer state holding ``moments`` float64 arrays per parameter."""
    return int(sum(a.size for a in params.values()) * 8 * moments)


def tune_bn(model, x, y, *, steps=30, batch_size=64, lr=0.01, rng=None, weight_decay=0.0,
            callback=None, callback_every=0):
    """Gradient steps on batchnorm gamma and beta only, with the model's hardware in the loop.

    Each step draws a minibatch of the labelled calibration set, runs the model forward in
    eval mode (batchnorm normalises with its running statistics, so what is optimised is
    exactly the deployed inference function; for a mapped model every Conv2d / Linear
    product runs on the simulated hardware, with a new read-noise draw per read), takes
    the softmax cross-entropy, back-propagates with the layers' hand-written gradients
    (a crossbar layer's input gradient is ``AnalogMatmul.backward``, the transpose of its
    exact effective matrix) and updates the batchnorm weights and biases with Adam.
    Nothing else changes: Conv2d / Linear weights and biases, running statistics and the
    programmed devices stay bit for bit the same.

    Parameters
    ----------
    model : xbarref.nn.Model
        Changed in place (batchnorm ``weight`` and ``bias``).
    x, y : calibration inputs (N, *input_shape) and integer labels (N,)
    steps : int
        Adam steps (>= 1).
    batch_size : int
        Samples per step (at most N; drawn without replacement within a step).
    lr : float
        Adam learning rate.
    rng : numpy.random.Generator
        Draws the minibatches.
    weight_decay : float
        L2 penalty on gamma and beta.
    callback : callable ``(step, model) -> bool``, optional
        Called after every ``callback_every`` steps (and after the last step when it is a
        multiple) with the model as tuned so far; returning True stops the tuning (early
        stopping). The minibatches drawn up to a step do not depend on the callback.
    callback_every : int
        Steps between callbacks (0: never).

    Returns
    -------
    TuneReport
        ``steps``: the steps actually taken (fewer than ``steps`` when stopped early).
    """
    _bn_layers(model)
    rng = check_rng(rng)
    x, y = check_labelled(model, x, y)
    for name, value in (("steps", steps), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise XbarrefError(f"{name}: must be a positive integer, got {value!r}")
    n = x.shape[0]
    batch_size = min(int(batch_size), n)
    params = select_parameters(model, kinds=BN_KINDS)
    opt = Adam(params, lr=lr, weight_decay=weight_decay)
    start = time.perf_counter()
    every = int(callback_every) if callback is not None else 0

    def batches():
        for step in range(int(steps)):
            if every and step > 0 and step % every == 0 and callback(step, model):
                return
            yield rng.choice(n, batch_size, replace=False)
        if every and int(steps) % every == 0:
            callback(int(steps), model)

    losses = train_steps(model, x, y, opt, batches(), training=False, keys=set(params))
    taken = len(losses)
    tenth = max(1, len(losses) // 10)
    return TuneReport("bn_tuning", time.perf_counter() - start, taken, taken * batch_size,
                      n, int(sum(a.size for a in params.values())), optimizer_bytes(params),
                      float(np.mean(losses[:tenth])), float(np.mean(losses[-tenth:])))
