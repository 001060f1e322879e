"""Pluggable matrix-product operators used by :class:`~xbarref.nn.layers.Conv2d` and
:class:`~xbarref.nn.layers.Linear`.

Every Conv2d / Linear layer computes its matrix product through its attribute
``layer.matmul``. The crossbar mapping replaces that attribute with an operator that runs
the product on simulated hardware; the layers themselves never change.

Interface (duck-typed; :class:`MatmulOp` documents it)::

    y2d = op.forward(x2d, w2d)       # x2d (P, K), w2d (K, out) -> y2d (P, out)
    grad_x2d = op.backward(grad_y2d) # grad_y2d (P, out) -> grad_x2d (P, K)

``w2d`` is the layer weight reshaped to ``(out, K)`` and transposed; for Conv2d the
``K = in_channels * kh * kw`` columns of ``x2d`` are ordered (channel, kernel row,
kernel column), the order of ``weight.reshape(out, K)``. The operator keeps what its
backward needs. The layer adds the bias itself and computes the weight gradient itself
as ``x2d.T @ grad_y2d``.
"""

from __future__ import annotations

from xbarref.errors import XbarrefError

__all__ = ["MatmulOp", "DigitalMatmul"]


class MatmulOp:
    """Base class (and documentation) of the matrix-product operator interface."""

    def forward(self, x2d, w2d):
        """Return ``x2d @ w2d`` as computed by this operator.

        Parameters
        ----------
        x2d : numpy.ndarray, shape (P, K), float64
            One row per output pixel (Conv2d) or per sample (Linear).
        w2d : numpy.ndarray, shape (K, out), float64
            The layer weight reshaped to (out, K) and transposed (possibly a view).

        Returns
        -------
        numpy.ndarray, shape (P, out), float64
        """
        raise NotImplementedError

    def backward(self, grad_y2d):
        """Return the gradient with respect to ``x2d`` of the last :meth:`forward`.

        Parameters
        ----------
        grad_y2d : numpy.ndarray, shape (P, out), float64

        Returns
        -------
        numpy.ndarray, shape (P, K), float64
        """
        raise NotImplementedError


class DigitalMatmul(MatmulOp):
    """Exact float64 product through BLAS: ``y2d = x2d @ w2d``; backward ``grad @ w2d.T``.

    Both are computed as the transposed product (``(w2d.T @ x2d.T).T``) and returned as
    a view: with the layers' channel-major layout that is the orientation in which BLAS
    is fastest (the long P axis is the product's column axis) and no copy is made.
    """

    #: Row ``p`` of the product depends on row ``p`` of ``x2d`` only (batches may be split).
    batch_invariant = True

    def __init__(self):
        self._w2d = None

    def forward(self, x2d, w2d):
        self._w2d = w2d
        return (w2d.T @ x2d.T).T

    def backward(self, grad_y2d):
        if self._w2d is None:
            raise XbarrefError("grad_y2d: DigitalMatmul.backward called before forward")
        return (self._w2d @ grad_y2d.T).T

    def __repr__(self):
        return "DigitalMatmul()"
