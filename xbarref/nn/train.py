"""Training and inference loops in NumPy.

:func:`fit` trains with the hand-written gradients (softmax cross-entropy, any optimizer
of :mod:`xbarref.nn.optim`), drawing minibatches from an explicit Generator, so the same
seed gives the same parameters. :func:`run_inference` evaluates a model on a labelled
set in batches and reports accuracy and throughput; it is also the hook through which
inference on simulated hardware runs (swap each layer's ``matmul`` first).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from xbarref.checks import check_int, check_rng
from xbarref.errors import XbarrefError
from xbarref.nn.losses import softmax_cross_entropy

__all__ = ["InferenceResult", "iterate_minibatches", "run_inference", "train_steps", "train_epoch",
           "fit", "cosine_lr"]


@dataclass(frozen=True)
class InferenceResult:
    """What :func:`run_inference` measured.

    Attributes
    ----------
    accuracy : float
        Fraction of samples whose arg-max logit equals the label.
    n_samples, n_correct : int
    seconds : float
        Wall-clock time of the forward passes, in seconds.
    samples_per_second : float
    predictions : numpy.ndarray of int64, shape (N,)
    """

    accuracy: float
    n_samples: int
    n_correct: int
    seconds: float
    samples_per_second: float
    predictions: np.ndarray


def _check_xy(model, x, y, what="x"):
    x = model.check_input(x)
    y = np.asarray(y)
    if y.shape != (x.shape[0],) or not np.issubdtype(y.dtype, np.integer):
        raise XbarrefError(f"y: expected {x.shape[0]} integer labels for {what}, got shape {y.shape} "
                           f"dtype {y.dtype}")
    if x.shape[0] == 0:
        raise XbarrefError(f"{what}: no samples")
    return x, y


def iterate_minibatches(n, batch_size, rng=None):
    """Index arrays of the minibatches of one epoch over ``n`` samples.

    The samples (shuffled with ``rng.permutation`` if ``rng`` is given, else in order)
    are split into ``max(1, n // batch_size)`` batches of near-equal size, so there is
    no tiny last batch (batchnorm needs more than one sample per batch in training).
    """
    batch_size = check_int("batch_size", batch_size, lo=1)
    order = np.arange(n) if rng is None else rng.permutation(n)
    return np.array_split(order, max(1, n // batch_size))


#: Images per piece when :func:`run_inference` may split its batches (see there).
CACHE_BATCH = 32


def batch_invariant(model):
    """True when every output row of ``model(x)`` in eval mode depends on its own input
    row only, so that splitting a batch changes no number: every Conv2d / Linear
    operator says so (``matmul.batch_invariant``, True for the digital product and for
    a noise-free simulated crossbar on the cached-matrix path; an operator without the
    attribute counts as False). The other layers have no coupling between samples in
    eval mode."""
    ops = [getattr(node.layer, "matmul", None) for node in model.nodes
           if node.layer.kind in ("conv2d", "linear")]
    return all(bool(getattr(op, "batch_invariant", False)) for op in ops)


def run_inference(model, x, y, batch_size=256):
    """Evaluate ``model`` (eval mode) on ``x`` with labels ``y``.

    Parameters
    ----------
    model : Model
        Its Conv2d / Linear layers may carry any ``matmul`` operator (e.g. simulated
        hardware); this function only calls ``model(x_batch)``.
    x : numpy.ndarray, shape (N, *model.input_shape)
    y : numpy.ndarray of int, shape (N,)
    batch_size : int
        Images per call of ``model``; when :func:`batch_invariant` holds, batches larger
        than :data:`CACHE_BATCH` are run in pieces of that size (the pieces stay in the CPU
        caches; the same numbers bit for bit with one BLAS thread, as in the study's
        workers; with several BLAS threads the product's blocking may change last bits).

    Returns
    -------
    InferenceResult
    """
    x, y = _check_xy(model, x, y)
    batch_size = check_int("batch_size", batch_size, lo=1)
    if batch_size > CACHE_BATCH and batch_invariant(model):
        # the same outputs from cache-sized pieces: a 512-image batch of the Fashion CNN
        # has a 170 MB im2col matrix, streamed through memory four times per layer
        batch_size = CACHE_BATCH
    predictions = np.empty(len(y), dtype=np.int64)
    start = time.perf_counter()
    for lo in range(0, len(y), batch_size):
        predictions[lo:lo + batch_size] = model(x[lo:lo + batch_size]).argmax(axis=1)
    seconds = time.perf_counter() - start
    n_correct = int((predictions == y).sum())
    return InferenceResult(accuracy=n_correct / len(y), n_samples=len(y), n_correct=n_correct,
                           seconds=seconds, samples_per_second=len(y) / max(seconds, 1e-12),
                           predictions=predictions)


def train_steps(model, x, y, optimizer, batches, *, training=True, keys=None, before=None):
    """The training loop of the package: one optimizer step per minibatch.

    For every index array of ``batches``: forward ``x[index]`` (``training`` is passed
    to :meth:`Model.forward`: True, False or a tuple of layer kinds in training mode),
    softmax cross-entropy against ``y[index]``, backward (``keys`` is passed to
    :meth:`Model.backward`: with it the backward pass computes only what the gradients
    of those parameters need, exactly), ``optimizer.step`` on the gradients (only
    ``keys`` when given). Used by :func:`fit` (all parameters), batchnorm tuning (the
    batchnorm weights and biases) and noise-aware retraining (all parameters).

    Parameters
    ----------
    model : Model
    x, y : inputs and integer labels
    optimizer : anything with ``step(grads)``
    batches : iterable of index arrays
    training : bool or tuple of str
    keys : set of str, optional
        Parameter names the optimizer updates (default: all gradients). The backward
        pass then skips the work nobody uses (the input gradient of the layers before
        the first parameter in ``keys``, the weight gradients of the Conv2d / Linear
        layers not in ``keys``); the gradients of ``keys`` are the same bits as with a
        full backward, so the steps are too.
    before : callable ``(step) -> Model or None``, optional
        Called before every step; a returned model is used for that step (e.g. a new
        hardware sample of the weights being trained).

    Returns
    -------
    list of float
        The loss of every step.
    """
    losses = []
    current = model
    try:
        for step, index in enumerate(batches):
            if before is not None:
                current = before(step) or current
            logits = current.forward(x[index], training=training)
            loss, grad = softmax_cross_entropy(logits, y[index])
            current.backward(grad, keys=keys)
            grads = current.named_grads()
            if keys is not None:
                grads = {k: g for k, g in grads.items() if k in keys}
            optimizer.step(grads)
            losses.append(float(loss))
    finally:
        current.release()
    return losses


def train_epoch(model, x, y, optimizer, batch_size, rng):
    """One epoch of minibatch training (training mode); returns the mean loss."""
    return float(np.mean(train_steps(model, x, y, optimizer,
                                     iterate_minibatches(len(y), batch_size, rng))))


def cosine_lr(lr_max, epochs, lr_min=0.0):
    """Learning-rate schedule ``epoch -> lr`` decaying from ``lr_max`` to ``lr_min`` on a
    half cosine over ``epochs`` epochs (Loshchilov & Hutter 2017, without restarts)."""
    def schedule(epoch):
        return lr_min + 0.5 * (lr_max - lr_min) * (1.0 + np.cos(np.pi * epoch / epochs))
    return schedule


def fit(model, x, y, optimizer, *, epochs, batch_size, rng, lr_schedule=None, x_val=None,
        y_val=None, log=None):
    """Train ``model`` with softmax cross-entropy.

    Parameters
    ----------
    model : Model
    x, y : training inputs (N, *input_shape) and integer labels (N,)
    optimizer : SGD or Adam (or anything with ``lr`` and ``step(grads)``)
        Built on the parameters to train (all, or a subset).
    epochs, batch_size : int
    rng : numpy.random.Generator
        Draws the minibatch order and the dropout masks (dropout layers without a
        generator get this one).
    lr_schedule : callable ``epoch -> lr`` or None
    x_val, y_val : optional held-out set evaluated after every epoch
    log : callable ``str -> None`` or None
        Receives one line per epoch.

    Returns
    -------
    list of dict
        Per epoch: ``epoch``, ``lr``, ``loss``, ``seconds`` and, with a held-out set,
        ``val_accuracy``.
    """
    check_rng(rng)
    x, y = _check_xy(model, x, y)
    epochs = check_int("epochs", epochs, lo=1)
    for _, layer in model.layers_of_kind("dropout"):
        if layer.generator is None:
            layer.generator = rng
    history = []
    for epoch in range(epochs):
        if lr_schedule is not None:
            optimizer.lr = float(lr_schedule(epoch))
        start = time.perf_counter()
        loss = train_epoch(model, x, y, optimizer, batch_size, rng)
        record = dict(epoch=epoch + 1, lr=optimizer.lr, loss=loss, seconds=time.perf_counter() - start)
        if x_val is not None:
            record["val_accuracy"] = run_inference(model, x_val, y_val).accuracy
        history.append(record)
        if log is not None:
            extra = f" val_acc {record['val_accuracy']:.4f}" if "val_accuracy" in record else ""
            log(f"epoch {epoch + 1:3d}  lr {record['lr']:.4g}  loss {loss:.4f}{extra}  "
                f"({record['seconds']:.2f} s)")
    return history
