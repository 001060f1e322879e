"""Noise-aware retraining of all weights: the expensive baseline for batchnorm tuning."""

from __future__ import annotations

import copy
import time

import numpy as np

from xbarref.config import as_hardware
from xbarref.checks import check_rng
from xbarref.errors import XbarrefError
from xbarref.mapping import MAPPED_KINDS, map_model
from xbarref.nn.losses import softmax_cross_entropy
from xbarref.nn.optim import Adam
from xbarref.tune.batchnorm import TuneReport, check_labelled, optimizer_bytes

__all__ = ["retrain_noise_aware"]


def _analog_weight_keys(model):
    return {f"{name}.weight" for name, _ in model.layers_of_kind(*MAPPED_KINDS)}


def retrain_noise_aware(model, hardware, x, y, *, steps=100, batch_size=64, lr=1e-3,
                        reprogram_every=10, rng=None, t_inference=None):
    """Retrain every parameter of ``model`` with the simulated hardware in the forward pass.

    A digital master copy holds the weights. Every ``reprogram_every`` steps the master
    is programmed onto a *fresh* hardware sample (:func:`xbarref.map_model` with new
    programming noise, drift exponents, faults; read noise is new on every read anyway);
    each step runs a minibatch forward through that hardware in training mode,
    back-propagates with the hand-written gradients (weight gradients by the layers'
    ``x2d.T @ grad_y2d`` rule, input gradients through the crossbar's effective
    matrices) and updates all master parameters with Adam. Between re-programmings the
    crossbars keep the weights they were programmed with, while batchnorm parameters and
    biases (digital) follow the master at every step; running statistics are those
    measured through the hardware.

    Parameters
    ----------
    model : xbarref.nn.Model
        The trained digital model; left unchanged.
    hardware : HardwareConfig, preset name or TOML path
    x, y : training inputs and integer labels
    steps, batch_size : int
    lr : float
        Adam learning rate.
    reprogram_every : int
        Steps between re-programmings (1 = a fresh hardware sample every step).
    rng : numpy.random.Generator
        Draws minibatches and every hardware sample.
    t_inference : float, optional
        Seconds since programming at which the hardware is read during training.

    Returns
    -------
    retrained : xbarref.nn.Model
        Digital model with the retrained parameters (map it to deploy).
    report : TuneReport
    """
    hw = as_hardware(hardware)
    rng = check_rng(rng)
    x, y = check_labelled(model, x, y)
    for name, value in (("steps", steps), ("batch_size", batch_size), ("reprogram_every", reprogram_every)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise XbarrefError(f"{name}: must be a positive integer, got {value!r}")
    n = x.shape[0]
    batch_size = min(int(batch_size), n)
    if batch_size < 2:
        raise XbarrefError("x: retraining needs at least 2 samples (batchnorm in training mode)")
    master = copy.deepcopy(model)
    params = master.named_parameters()
    opt = Adam(params, lr=lr)
    analog = _analog_weight_keys(master)
    master_buffers = master.named_buffers()
    losses = []
    hw_model = None
    start = time.perf_counter()
    for step in range(int(steps)):
        if step % reprogram_every == 0:
            if hw_model is not None:
                hw_model.release()
            hw_model = map_model(master, hw, rng, t_inference=t_inference)
            hw_params = hw_model.named_parameters()
        else:
            for key, arr in hw_params.items():
                if key not in analog:
                    np.copyto(arr, params[key])
        index = rng.choice(n, batch_size, replace=False)
        logits = hw_model.forward(x[index], training=True)
        loss, grad = softmax_cross_entropy(logits, y[index])
        hw_model.backward(grad)
        opt.step(hw_model.named_grads())
        losses.append(float(loss))
        for key, arr in hw_model.named_buffers().items():
            np.copyto(master_buffers[key], arr)
    if hw_model is not None:
        hw_model.release()
    tenth = max(1, len(losses) // 10)
    report = TuneReport("retraining", time.perf_counter() - start, int(steps), int(steps) * batch_size,
                        n, int(sum(a.size for a in params.values())), optimizer_bytes(params),
                        float(np.mean(losses[:tenth])), float(np.mean(losses[-tenth:])))
    return master, report
