"""Optimizers acting on a dict of parameter arrays, updated in place.

An optimizer is built on ``{name: array}`` (for example ``model.named_parameters()``,
or a subset of it from :func:`select_parameters`) and ``step(grads)`` takes
``{name: gradient}`` with at least the same keys (``model.named_grads()``). Only the
arrays it was built on change, so training a subset (e.g. batchnorm weight and bias only)
is a matter of passing that subset. Update rules follow ``torch.optim.SGD`` and
``torch.optim.Adam`` (L2 weight decay added to the gradient).
"""

from __future__ import annotations

import fnmatch
import math

import numpy as np

from xbarref.errors import XbarrefError

__all__ = ["select_parameters", "SGD", "Adam"]


def select_parameters(model, *, kinds=None, names=None, patterns=None):
    """Subset of ``model.named_parameters()``.

    Parameters
    ----------
    model : Model
    kinds : iterable of str or None
        Keep parameters of layers of these kinds (e.g. ``("batchnorm2d", "batchnorm1d")``).
    names : iterable of str or None
        Keep parameters whose array name is one of these (e.g. ``("weight", "bias")``).
    patterns : iterable of str or None
        Keep parameters whose full dotted name matches one of these ``fnmatch`` patterns
        (e.g. ``"layer3.*"``).

    Returns
    -------
    dict
        ``{"<node>.<name>": array}``; the arrays themselves (not copies). Criteria combine
        with "and"; None means no restriction.
    """
    out = {}
    kinds = None if kinds is None else set(kinds)
    names = None if names is None else set(names)
    patterns = None if patterns is None else list(patterns)
    for node in model.nodes:
        if kinds is not None and node.layer.kind not in kinds:
            continue
        for key, arr in node.layer.params.items():
            full = f"{node.name}.{key}"
            if names is not None and key not in names:
                continue
            if patterns is not None and not any(fnmatch.fnmatchcase(full, p) for p in patterns):
                continue
            out[full] = arr
    return out


class _Optimizer:
    def __init__(self, params, lr, weight_decay):
        if not isinstance(params, dict) or not params:
            raise XbarrefError("params must be a non-empty dict {name: array}")
        for key, arr in params.items():
            if not isinstance(arr, np.ndarray) or arr.dtype != np.float64:
                raise XbarrefError(f"params[{key!r}] must be a float64 numpy array")
        lr = float(lr)
        if not (math.isfinite(lr) and lr > 0):
            raise XbarrefError(f"lr must be finite and > 0, got {lr!r}")
        if not (math.isfinite(weight_decay) and weight_decay >= 0):
            raise XbarrefError(f"weight_decay must be finite and >= 0, got {weight_decay!r}")
        self.params = params
        self.lr = lr
        self.weight_decay = float(weight_decay)
        self.state = {key: {} for key in params}

    def _grad(self, grads, key):
        g = grads.get(key)
        if g is None:
            raise XbarrefError(f"grads: no gradient for parameter {key!r} (run backward first)")
        if g.shape != self.params[key].shape:
            raise XbarrefError(f"grads[{key!r}] has shape {g.shape}, parameter has {self.params[key].shape}")
        if self.weight_decay:
            g = g + self.weight_decay * self.params[key]
        return g

    def step(self, grads):
        """Update every parameter in place from ``grads`` (``{name: gradient}``)."""
        for key in self.params:
            self._update(key, self.params[key], self._grad(grads, key), self.state[key])


class SGD(_Optimizer):
    """Stochastic gradient descent with momentum (PyTorch's rule).

    ``b = momentum * b + g`` (``b = g`` on the first step), ``p -= lr * b``
    (Nesterov: ``p -= lr * (g + momentum * b)``).

    Parameters
    ----------
    params : dict of name -> float64 array
    lr : float
    momentum : float in [0, 1)
    weight_decay : float
    nesterov : bool
    """

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(params, lr, weight_decay)
        if not (0.0 <= momentum < 1.0):
            raise XbarrefError(f"momentum must be in [0, 1), got {momentum!r}")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def _update(self, key, p, g, state):
        if self.momentum:
            buf = state.get("momentum")
            if buf is None:
                buf = state["momentum"] = g.copy()
            else:
                buf *= self.momentum
                buf += g
            g = g + self.momentum * buf if self.nesterov else buf
        p -= self.lr * g


class Adam(_Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction, as ``torch.optim.Adam``.

    Parameters
    ----------
    params : dict of name -> float64 array
    lr : float
    betas : (float, float)
    eps : float
    weight_decay : float
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr, weight_decay)
        b1, b2 = (float(b) for b in betas)
        if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
            raise XbarrefError(f"betas must be in [0, 1), got {betas!r}")
        if not eps > 0:
            raise XbarrefError(f"eps must be > 0, got {eps!r}")
        self.betas = (b1, b2)
        self.eps = float(eps)

    def _update(self, key, p, g, state):
        b1, b2 = self.betas
        if not state:
            state.update(t=0, m=np.zeros_like(p), v=np.zeros_like(p))
        state["t"] += 1
        t, m, v = state["t"], state["m"], state["v"]
        m *= b1
        m += (1.0 - b1) * g
        v *= b2
        v += (1.0 - b2) * g * g
        denom = np.sqrt(v) / math.sqrt(1.0 - b2 ** t) + self.eps
        p -= (self.lr / (1.0 - b1 ** t)) * m / denom
