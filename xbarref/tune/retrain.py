"""Noise-aware retraining of all weights: the expensive baseline for batchnorm tuning.

The budget (learning rate and number of steps) is chosen on a validation split carved
from the training data, never on the test set: for every learning rate of a grid the
retraining runs until its validation loss has not improved for ``patience``
evaluations (or ``max_steps``), and the weights of the best validation loss over all
runs are kept (:func:`retrain_with_validation`).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np

from xbarref.config import as_hardware
from xbarref.checks import check_rng
from xbarref.errors import XbarrefError
from xbarref.mapping import MAPPED_KINDS, map_model
from xbarref.nn.losses import softmax_cross_entropy
from xbarref.nn.optim import Adam
from xbarref.nn.train import train_steps
from xbarref.tune.batchnorm import TuneReport, check_labelled, optimizer_bytes

__all__ = ["retrain_noise_aware", "retrain_with_validation", "RetrainResult", "weight_change"]


def _analog_weight_keys(model):
    return {f"{name}.weight" for name, _ in model.layers_of_kind(*MAPPED_KINDS)}


def weight_change(before, after):
    """``||W_after - W_before|| / ||W_before||`` over all Conv2d / Linear weights (Frobenius)."""
    keys = _analog_weight_keys(before)
    p0, p1 = before.named_parameters(), after.named_parameters()
    num = sum(float(np.sum((p1[k] - p0[k]) ** 2)) for k in keys)
    den = sum(float(np.sum(p0[k] ** 2)) for k in keys)
    return float(np.sqrt(num / den)) if den > 0 else 0.0


def _check_hw_needs(hw, calibration):
    if hw.adc.range == "programmed" and hw.adc.bits > 0 and calibration is None:
        raise XbarrefError("calibration: adc.range = \"programmed\" needs calibration inputs to "
                           "program each hardware sample")


def retrain_noise_aware(model, hardware, x, y, *, steps=100, batch_size=64, lr=1e-3,
                        reprogram_every=10, rng=None, t_inference=None, calibration=None,
                        callback=None, callback_every=0, return_losses=False):
    """Retrain every parameter of ``model`` with the simulated hardware in the forward pass.

    A digital master copy holds the weights. Every ``reprogram_every`` steps the master
    is programmed onto a *fresh* hardware sample (:func:`xbarref.map_model` with new
    programming noise, drift exponents, faults and a new read-noise session); each step
    runs a minibatch forward through that hardware in training mode, back-propagates with
    the hand-written gradients (weight gradients by the layers' ``x2d.T @ grad_y2d``
    rule, input gradients through the crossbar's effective matrices) and updates all
    master parameters with Adam. Between re-programmings the crossbars keep the weights
    they were programmed with, while batchnorm parameters and biases (digital) follow
    the master at every step; running statistics are those measured through the hardware.

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
    calibration : ndarray, optional
        Raw inputs for the ADC ranges of every hardware sample (``adc.range =
        "programmed"``).
    callback : callable ``(step, master) -> bool``, optional
        Called after every ``callback_every`` steps with the master model; returning
        True stops the retraining.
    return_losses : bool
        Also return the training loss of every step.

    Returns
    -------
    retrained : xbarref.nn.Model
        Digital model with the retrained parameters (map it to deploy).
    report : TuneReport
    losses : list of float
        Only with ``return_losses``: the minibatch cross-entropy of every step.
    """
    hw = as_hardware(hardware)
    rng = check_rng(rng)
    x, y = check_labelled(model, x, y)
    _check_hw_needs(hw, calibration)
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
    state = {"hw": None, "params": None, "stop": False}

    def before(step):
        if state["hw"] is not None:
            for key, arr in state["hw"].named_buffers().items():
                np.copyto(master_buffers[key], arr)
        if callback is not None and callback_every and step > 0 and step % callback_every == 0:
            if callback(step, master):
                state["stop"] = True
        if step % reprogram_every == 0:
            if state["hw"] is not None:
                state["hw"].release()
            state["hw"] = map_model(master, hw, rng, t_inference=t_inference, calibration=calibration)
            state["params"] = state["hw"].named_parameters()
        else:
            for key, arr in state["params"].items():
                if key not in analog:
                    np.copyto(arr, params[key])
        return state["hw"]

    def batches():
        for _ in range(int(steps)):
            index = rng.choice(n, batch_size, replace=False)
            yield index
            if state["stop"]:
                return

    start = time.perf_counter()
    # the optimizer holds the master's arrays under the names of the hardware sample's
    # gradients: every step updates the master
    losses = train_steps(master, x, y, opt, batches(), training=True, before=before)
    if state["hw"] is not None:
        for key, arr in state["hw"].named_buffers().items():
            np.copyto(master_buffers[key], arr)
        state["hw"].release()
    tenth = max(1, len(losses) // 10)
    report = TuneReport("retraining", time.perf_counter() - start, len(losses), len(losses) * batch_size,
                        n, int(sum(a.size for a in params.values())), optimizer_bytes(params),
                        float(np.mean(losses[:tenth])), float(np.mean(losses[-tenth:])))
    return (master, report, losses) if return_losses else (master, report)


@dataclass
class RetrainResult:
    """What :func:`retrain_with_validation` chose and measured.

    Attributes
    ----------
    model : xbarref.nn.Model
        The retrained digital model with the best validation loss.
    lr : float
        The chosen learning rate; ``steps`` the chosen number of steps.
    steps : int
    curves : dict
        ``{lr: [(step, validation loss), ...]}`` (step 0 = the model before retraining).
    train_losses : dict
        ``{lr: [training loss (minibatch cross-entropy through the hardware) of every step]}``.
    weight_change : float
        Relative change of the Conv2d / Linear weights (:func:`weight_change`).
    report : TuneReport
        Cost of all runs together.
    """

    model: object
    lr: float
    steps: int
    curves: dict = field(default_factory=dict)
    train_losses: dict = field(default_factory=dict)
    weight_change: float = 0.0
    report: TuneReport | None = None


def validation_loss(model, hardware, x_val, y_val, seed, *, t_inference=None, calibration=None):
    """Mean cross-entropy of ``model`` on the validation split through one fixed
    hardware sample (``seed``: the same sample at every evaluation)."""
    hw_model = map_model(model, hardware, np.random.default_rng(seed), t_inference=t_inference,
                         calibration=calibration)
    losses = []
    for lo in range(0, len(y_val), 256):
        logits = hw_model(x_val[lo:lo + 256])
        losses.append(softmax_cross_entropy(logits, y_val[lo:lo + 256])[0] * len(y_val[lo:lo + 256]))
    return float(np.sum(losses) / len(y_val))


def retrain_with_validation(model, hardware, x, y, x_val, y_val, *, lrs=(1e-3, 3e-3), batch_size=32,
                            max_steps=300, eval_every=25, patience=3, reprogram_every=10, rng=None,
                            val_seed=None, t_inference=None, calibration=None):
    """Noise-aware retraining with its budget chosen on a validation split.

    For every learning rate of ``lrs``: :func:`retrain_noise_aware` for at most
    ``max_steps`` steps, evaluating the validation loss (:func:`validation_loss`, one
    fixed hardware sample) every ``eval_every`` steps and stopping after ``patience``
    evaluations without improvement. Keeps the weights of the best validation loss over
    all learning rates and steps.

    Returns
    -------
    RetrainResult
    """
    rng = check_rng(rng)
    hw = as_hardware(hardware)
    if val_seed is None:
        val_seed = int(rng.integers(2 ** 63))
    start = time.perf_counter()
    kw = dict(t_inference=t_inference, calibration=calibration)
    base = validation_loss(model, hw, x_val, y_val, val_seed, **kw)
    best = (base, None, 0, copy.deepcopy(model))
    curves, train_losses, total_steps, n_train = {}, {}, 0, len(y)
    reports = []
    for lr in lrs:
        curve = [(0, base)]
        track = {"best": base, "since": 0}

        def callback(step, master, curve=curve, track=track, lr=lr):
            nonlocal best
            loss = validation_loss(master, hw, x_val, y_val, val_seed, **kw)
            curve.append((step, loss))
            if loss < track["best"]:
                track["best"], track["since"] = loss, 0
            else:
                track["since"] += 1
            if loss < best[0]:
                best = (loss, lr, step, copy.deepcopy(master))
            return track["since"] >= patience

        master, rep, losses = retrain_noise_aware(
            model, hw, x, y, steps=max_steps + 1, batch_size=batch_size, lr=lr,
            reprogram_every=reprogram_every, rng=rng, callback=callback, callback_every=eval_every,
            return_losses=True, **kw)
        del master
        curves[lr] = curve
        train_losses[lr] = [float(v) for v in losses]
        reports.append(rep)
        total_steps += rep.steps
    chosen = best[3]
    params = chosen.named_parameters()
    report = TuneReport("retraining", time.perf_counter() - start, total_steps, total_steps * batch_size,
                        n_train, int(sum(a.size for a in params.values())), optimizer_bytes(params),
                        reports[0].loss_first, min(r.loss_last for r in reports))
    return RetrainResult(chosen, best[1] if best[1] is not None else 0.0, best[2], curves, train_losses,
                         weight_change(model, chosen), report)
