"""Loss functions returning the loss and its gradient with respect to the logits."""

from __future__ import annotations

import numpy as np

from xbarref.errors import XbarrefError

__all__ = ["log_softmax", "softmax", "softmax_cross_entropy"]


def log_softmax(logits):
    """Row-wise log-softmax of (N, K) logits, computed stably (max subtracted)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def softmax(logits):
    """Row-wise softmax of (N, K) logits."""
    return np.exp(log_softmax(logits))


def softmax_cross_entropy(logits, labels):
    """Mean softmax cross-entropy and its gradient.

    Parameters
    ----------
    logits : numpy.ndarray, shape (N, K)
    labels : numpy.ndarray of int, shape (N,)
        Class indices in ``0 .. K - 1``.

    Returns
    -------
    loss : float
        ``-mean_n log softmax(logits)[n, labels[n]]`` (natural log).
    grad_logits : numpy.ndarray, shape (N, K)
        ``(softmax(logits) - onehot(labels)) / N``.
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2 or logits.shape[0] == 0:
        raise XbarrefError(f"logits must have shape (N, K) with N >= 1, got {logits.shape}")
    labels = np.asarray(labels)
    if labels.shape != (logits.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise XbarrefError(f"labels must be {logits.shape[0]} integers, got shape {labels.shape} "
                           f"dtype {labels.dtype}")
    if labels.min() < 0 or labels.max() >= logits.shape[1]:
        raise XbarrefError(f"labels must be in 0..{logits.shape[1] - 1}, got {labels.min()}..{labels.max()}")
    n = logits.shape[0]
    logp = log_softmax(logits)
    rows = np.arange(n)
    loss = -float(logp[rows, labels].mean())
    grad = np.exp(logp)
    grad[rows, labels] -= 1.0
    grad /= n
    return loss, grad
