"""Batchnorm mitigation settings chosen on a validation split, never on the test set.

:func:`select_bn_settings` fits the batchnorm mitigations on one chip for every point of
a small grid and measures each fit on labelled validation data through a caller-given
*validation session* (for the study: a later, independent session of a selection chip
that is none of the test chips, so the choice sees what a deployed chip sees):

- **BN recalibration**: the calibration-set size ``k`` (the first ``k`` samples of the
  chip's calibration pool) with the lowest validation loss after recalibration;
- **BN recalibration + tuning**: for every ``k`` and learning rate ``lr``, Adam on gamma
  and beta from that recalibration, the validation loss measured every ``eval_every``
  steps and the run stopped after ``patience`` evaluations without improvement (or at
  ``max_steps``); the chosen ``(k, lr, steps)`` is the argmin of the validation loss
  over every evaluated point, step 0 (recalibration only) included.

The validation metric is the mean softmax cross-entropy (smooth, no ties between grid
points); the accuracy at every point is recorded beside it. Every evaluation reads the
validation session with the same random stream (common random numbers), so two grid
points differ by their settings, not by the session's draws.
"""

from __future__ import annotations

import copy

import numpy as np

from xbarref.errors import XbarrefError
from xbarref.nn.losses import softmax_cross_entropy
from xbarref.sweep.tasks import named_streams
from xbarref.tune.batchnorm import recalibrate_bn, tune_bn

__all__ = ["select_bn_settings", "validation_metrics", "argmin_point"]


def validation_metrics(model, x, y, batch_size=512):
    """``(mean cross-entropy, accuracy)`` of ``model`` on labelled data ``x, y``."""
    loss_sum, hits = 0.0, 0
    try:
        for lo in range(0, len(y), batch_size):
            logits = model(x[lo:lo + batch_size])
            yy = y[lo:lo + batch_size]
            loss_sum += float(softmax_cross_entropy(logits, yy)[0]) * len(yy)
            hits += int(np.sum(np.argmax(logits, axis=1) == yy))
    finally:
        if hasattr(model, "release"):
            model.release()
    return loss_sum / len(y), hits / len(y)


def argmin_point(points):
    """The point (dict with ``loss``) of lowest validation loss; the first one on ties."""
    if not points:
        raise XbarrefError("points: no validation point to choose from")
    return min(points, key=lambda p: p["loss"])


def _point_stream(root, k, lr):
    name = f"samples={int(k)} lr={float(lr)!r}"
    return named_streams(root, name)[name]


def select_bn_settings(chip, x_pool, y_pool, x_val, y_val, validation_session, *, sizes, lrs,
                       max_steps, eval_every, patience, batch_size, rng, eval_batch=512):
    """Choose the batchnorm mitigation settings of one chip on validation data.

    Parameters
    ----------
    chip : xbarref.nn.Model
        A mapped model in its fit session (left unchanged; every fit starts from a copy).
    x_pool, y_pool : ndarray
        The chip's calibration pool (labelled training samples); size ``k`` uses the
        first ``k``.
    x_val, y_val : ndarray
        Labelled validation samples (never the test set).
    validation_session : callable ``(model) -> model`` or None
        Puts a copy of a fitted model into the validation session (the caller's protocol,
        e.g. a later session with a fixed random stream). None: the fitted model is
        measured as it is (for chips whose sessions all read the same: no drift, no read
        noise).
    sizes : sequence of int
        Calibration-set sizes of the grid (each <= ``len(y_pool)``).
    lrs : sequence of float
        Adam learning rates of the grid.
    max_steps, eval_every, patience : int
        Early stopping: evaluate every ``eval_every`` steps up to ``max_steps``; stop a run
        after ``patience`` evaluations without improvement on its best so far.
    batch_size : int
        Tuning minibatch.
    eval_batch : int
        Validation images per forward call (with per-read noise it decides which draws
        each image gets; otherwise only the speed).
    rng : numpy.random.Generator
        Seeds the tuning minibatches: one draw of ``rng`` seeds a SeedSequence whose named
        streams ``"samples=<k> lr=<lr>"`` (:func:`xbarref.sweep.named_streams`) draw the
        minibatches of each grid point, so a point's minibatches depend neither on the
        other grid points nor on how long their runs were.

    Returns
    -------
    dict
        ``recal``: the chosen ``samples`` with its ``loss`` and ``accuracy``;
        ``tune``: the chosen ``samples, lr, steps, loss, accuracy``;
        ``recal_points``: ``[{samples, loss, accuracy}]``;
        ``curves``: ``[{samples, lr, points: [[step, loss, accuracy], ...], stopped}]``
        (``stopped``: True when early stopping ended the run before ``max_steps``).
    """
    sizes = [int(k) for k in sizes]
    lrs = [float(v) for v in lrs]
    if not sizes or not lrs:
        raise XbarrefError("sizes, lrs: the grid needs at least one calibration size and one lr")
    if max(sizes) > len(y_pool) or min(sizes) < 2:
        raise XbarrefError(f"sizes: calibration sizes must be in [2, {len(y_pool)}], got {sizes}")
    for name, v in (("max_steps", max_steps), ("eval_every", eval_every), ("patience", patience)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise XbarrefError(f"{name}: must be a positive integer, got {v!r}")
    root = np.random.SeedSequence(int(rng.integers(2 ** 63)))

    def measure(m):
        if validation_session is None:
            return validation_metrics(m, x_val, y_val, eval_batch)
        return validation_metrics(validation_session(copy.deepcopy(m)), x_val, y_val, eval_batch)

    recal_points, curves, tune_points = [], [], []
    for k in sizes:
        base = copy.deepcopy(chip)
        recalibrate_bn(base, x_pool[:k])
        loss0, acc0 = measure(base)
        recal_points.append(dict(samples=k, loss=loss0, accuracy=acc0))
        tune_points.append(dict(samples=k, lr=None, steps=0, loss=loss0, accuracy=acc0))
        for lr in lrs:
            points = [[0, loss0, acc0]]
            track = {"best": loss0, "since": 0}

            def callback(step, model, points=points, track=track):
                loss, acc = measure(model)
                points.append([int(step), loss, acc])
                if loss < track["best"]:
                    track["best"], track["since"] = loss, 0
                else:
                    track["since"] += 1
                return track["since"] >= patience

            m = copy.deepcopy(base)
            tune_bn(m, x_pool[:k], y_pool[:k], steps=int(max_steps), batch_size=batch_size, lr=lr,
                    rng=_point_stream(root, k, lr), callback=callback,
                    callback_every=int(eval_every))
            curves.append(dict(samples=k, lr=lr, points=points,
                               stopped=bool(points[-1][0] < max_steps)))
            tune_points += [dict(samples=k, lr=lr, steps=s, loss=v, accuracy=a) for s, v, a in points[1:]]
    recal = argmin_point(recal_points)
    tune = argmin_point(tune_points)
    return dict(recal=dict(recal), tune=dict(tune), recal_points=recal_points, curves=curves)
