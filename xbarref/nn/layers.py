"""Layers with a forward pass and a hand-written backward pass.

Every layer is a :class:`Layer` with a class attribute ``kind``, ``config()``
(JSON-serialisable hyper-parameters), ``params`` (trainable arrays, PyTorch names and
layouts), ``buffers`` (non-trainable state), ``grads`` (filled by :meth:`Layer.backward`,
same keys as ``params``), ``forward(x, training=False)``, ``backward(grad_y)`` and
``backward_input(grad_y)`` (the same input gradient without the parameter gradients).
:data:`LAYER_KINDS` maps each kind to its class and :meth:`Layer.from_config` rebuilds a
layer from ``(kind, config)``. All arrays are float64; images are (N, C, H, W).

Convolution uses im2col (a strided window view of the padded input, copied once into a
(P, K) matrix, P = N * H_out * W_out, K = C * kh * kw) followed by one matrix product
through the layer's pluggable operator ``layer.matmul`` (see :mod:`xbarref.nn.ops`). The
im2col matrix is built as its (K, P) transpose and the output is a view of the
(out, P) product, so activations are stored channel-major (C, N, H, W in memory) while
their shape is (N, C, H, W); NumPy element-wise operations keep that layout.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from xbarref.checks import check_int, check_rng
from xbarref.errors import XbarrefError
from xbarref.nn import _kernels
from xbarref.nn.ops import DigitalMatmul

__all__ = [
    "Layer", "LAYER_KINDS", "Conv2d", "Linear", "BatchNorm1d", "BatchNorm2d", "ReLU",
    "MaxPool2d", "AvgPool2d", "GlobalAvgPool", "Flatten", "Add", "Dropout", "Identity",
]

LAYER_KINDS: dict = {}
"""Registry ``kind -> Layer subclass``, filled as the classes are defined."""


# ----------------------------------------------------------------------------- helpers
def _pair(value, name, minimum=1):
    """``value`` (int or sequence of two ints >= minimum) as a tuple of two ints."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        items = (value, value)
    else:
        try:
            items = tuple(value)
        except TypeError:
            raise XbarrefError(f"{name} must be an integer or a pair of integers, got {value!r}") from None
    ok = len(items) == 2 and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) and v >= minimum
        for v in items)
    if not ok:
        raise XbarrefError(f"{name} must be an integer >= {minimum} or a pair of them, got {value!r}")
    return int(items[0]), int(items[1])


def _input(x, ndims, what, channels=None):
    """``x`` as a float64 array with ndim in ``ndims`` (and ``channels`` on axis 1)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim not in ndims:
        want = " or ".join(f"{d}-D" for d in ndims)
        raise XbarrefError(f"x: {what} expects a {want} array, got shape {x.shape}")
    if channels is not None and x.shape[1] != channels:
        raise XbarrefError(f"x: {what} expects {channels} channels/features on axis 1, got shape {x.shape}")
    return x


def _output_size(size, kernel, stride, pad, what):
    out = (size + 2 * pad - kernel) // stride + 1
    if out < 1:
        raise XbarrefError(f"x: {what}: input size {size} with padding {pad} is smaller than "
                           f"the kernel size {kernel}")
    return out


def _channel_major(shape, fill):
    """New array of NCHW ``shape`` stored channel-major (C, N, H, W in memory), as an NCHW view."""
    n, c, h, w = shape
    buf = np.zeros((c, n, h, w)) if fill == 0.0 else np.full((c, n, h, w), fill)
    return buf.transpose(1, 0, 2, 3)


def _padded(x, ph, pw, fill):
    """Copy of NCHW ``x`` padded with ``fill`` (stored channel-major)."""
    n, c, h, w = x.shape
    xp = _channel_major((n, c, h + 2 * ph, w + 2 * pw), fill)
    xp[:, :, ph:ph + h, pw:pw + w] = x
    return xp


def _windows(x, kernel, stride, padding, fill=0.0):
    """Strided window view (N, C, H_out, W_out, kh, kw) of padded ``x`` (no copy of windows)."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    xp = _padded(x, ph, pw, fill) if (ph or pw) else x
    return sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]


def _reshape_is_view(shape, strides, split):
    """True when NumPy's C-order ``reshape`` of an array of ``shape`` and ``strides`` (bytes)
    into ``(prod(shape[:split]), prod(shape[split:]))`` returns a view (NumPy's no-copy
    rule: within each group the axes of length > 1 follow each other in memory, each
    stride the next one times the next length). Empty arrays count as views (the
    callers then keep NumPy's own reshape)."""
    if 0 in shape:
        return True
    for group in (range(split), range(split, len(shape))):
        axes = [k for k in group if shape[k] != 1]
        if any(strides[a] != shape[b] * strides[b] for a, b in zip(axes, axes[1:])):
            return False
    return True


def _dense_views(x, y):
    """``(xp, yp, perm)``: ``x`` and ``y`` (same shape) with their axes in the memory
    order of ``x`` (``xp = x.transpose(perm)``, likewise ``yp``), or None unless both
    are then C-contiguous (each fills one block of memory, in the same order)."""
    perm = sorted(range(x.ndim), key=lambda k: -x.strides[k])
    xp, yp = x.transpose(perm), y.transpose(perm)
    if not (xp.flags.c_contiguous and yp.flags.c_contiguous):
        return None
    return xp, yp, perm


def _read_only(a):
    """A read-only view of ``a``: the kernels take their inputs so, which gives each
    kernel one compiled version whatever the caller's array (see
    :func:`xbarref.nn.warm_up`)."""
    view = a.view()
    view.flags.writeable = False
    return view


def _dense_memory(a):
    """``(memory, strides)`` of a float64 array ``a`` that fills one block of memory in
    some axis order (:func:`_dense_views`; so no negative stride): its memory as a
    read-only 1-D C-contiguous view starting at ``a``'s first element, and its strides
    in elements (0 for axes of length 1), as the kernels take them; None otherwise."""
    dense = _dense_views(a, a) if a.dtype == np.float64 and a.size else None
    if dense is None:
        return None
    strides = tuple(s // 8 if size > 1 else 0 for s, size in zip(a.strides, a.shape))
    return _read_only(dense[0].reshape(-1)), strides


def _ufunc_output(*operands):
    """A new (empty) array laid out in memory as NumPy's element-wise ufuncs lay out
    their result for these ``operands`` (arrays and Python scalars): when every array
    operand has the result's shape and all are C-contiguous (or all F-contiguous), a
    plain C- (F-) ordered array, as NumPy's loop for that case allocates; otherwise the
    iterator's ``order="K"`` allocation. (The tests compare the strides with NumPy's.)"""
    arrays = [a for a in map(np.asarray, operands) if a.ndim]
    shape = np.broadcast_shapes(*[a.shape for a in arrays]) if arrays else ()
    if all(a.shape == shape for a in arrays):
        if all(a.flags.c_contiguous for a in arrays):
            return np.empty(shape)
        if all(a.flags.f_contiguous for a in arrays):
            return np.empty(shape, order="F")
    it = np.nditer(list(operands) + [None], flags=["refs_ok", "zerosize_ok", "external_loop",
                                                   "buffered", "delay_bufalloc", "grow_inner"],
                   op_flags=[["readonly"]] * len(operands) + [["writeonly", "allocate", "no_broadcast"]],
                   order="K")
    return it.operands[-1]


def _scatter_windows(parts, x_shape, kernel, stride, padding):
    """Adjoint of :func:`_windows`: sum window gradients (N, C, H_out, W_out, kh, kw) onto
    the input (N, C, H, W). Loops over the kh * kw kernel offsets only."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    n, c, h, w = x_shape
    ho, wo = parts.shape[2:4]
    buf = _channel_major((n, c, h + 2 * ph, w + 2 * pw), 0.0)
    for i in range(kh):
        for j in range(kw):
            buf[:, :, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw] += parts[:, :, :, :, i, j]
    return buf[:, :, ph:ph + h, pw:pw + w]


def _need_cache(layer, cache):
    if cache is None:
        raise XbarrefError(f"grad_y: {type(layer).__name__}.backward called before forward "
                           "(model(x) frees what backward needs; use model.forward(x))")
    return cache


def _check_grad(grad_y, shape, layer):
    grad_y = np.asarray(grad_y, dtype=np.float64)
    if grad_y.shape != tuple(shape):
        raise XbarrefError(f"grad_y: {type(layer).__name__}.backward expects shape {tuple(shape)}, "
                           f"got {grad_y.shape}")
    return grad_y


# ----------------------------------------------------------------------------- base
class Layer:
    """Base class of all layers (see the module docstring for the contract)."""

    kind = ""
    n_inputs = 1

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.kind:
            LAYER_KINDS[cls.kind] = cls

    def __init__(self):
        self.params: dict = {}
        self.buffers: dict = {}
        self.grads: dict = {}
        self._cache = None

    def config(self):
        """JSON-serialisable hyper-parameters; ``type(self)(**config())`` rebuilds the layer."""
        return {}

    @staticmethod
    def from_config(kind, config):
        """Build a layer of ``kind`` from its ``config`` with default-initialised arrays.

        Weights and biases are zero, batchnorm weight 1, bias 0, running mean 0 and
        running variance 1 (the PyTorch defaults); a model-file reader then overwrites them.

        Raises
        ------
        XbarrefError
            Unknown kind, or a config that does not fit it.
        """
        cls = LAYER_KINDS.get(kind)
        if cls is None:
            raise XbarrefError(f"kind: unknown layer kind {kind!r}; known: {sorted(LAYER_KINDS)}")
        if not isinstance(config, dict):
            raise XbarrefError(f"config: the config of a {kind!r} layer must be a dict, got {type(config).__name__}")
        try:
            return cls(**config)
        except TypeError as exc:
            raise XbarrefError(f"config: bad config for a {kind!r} layer {config!r}: {exc}") from None

    def forward(self, x, training=False):
        """Output for input ``x``; keeps what :meth:`backward` needs."""
        raise NotImplementedError

    def backward(self, grad_y):
        """Gradient with respect to the input of the last forward; fills ``grads``."""
        raise NotImplementedError

    def backward_input(self, grad_y):
        """Gradient with respect to the input of the last forward, when the parameter
        gradients are not needed (:meth:`Model.backward <xbarref.nn.graph.Model.backward>`
        with ``keys``).

        The same array, bit for bit, as :meth:`backward` returns. This default calls
        :meth:`backward`; layers whose parameter gradients cost work (Conv2d, Linear)
        override it to skip them and leave ``grads`` empty. ``grads`` then holds no
        gradient of this call: read it only after :meth:`backward`.
        """
        return self.backward(grad_y)

    def release(self):
        """Free what the last forward kept for backward."""
        self._cache = None

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


# ----------------------------------------------------------------------------- conv / linear
class Conv2d(Layer):
    """2-D convolution (cross-correlation, as in PyTorch), im2col plus one matrix product.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size, stride, padding : int or pair of int
        ``padding`` is zero padding on each side.
    bias : bool

    Attributes
    ----------
    params : ``weight`` (out, in, kh, kw) and, with bias, ``bias`` (out,)
    matmul : operator with the :class:`xbarref.nn.ops.MatmulOp` interface
    """

    kind = "conv2d"

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True):
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels, lo=1)
        self.out_channels = check_int("out_channels", out_channels, lo=1)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = _pair(stride, "stride")
        self.padding = _pair(padding, "padding", minimum=0)
        self.bias = bool(bias)
        self.params["weight"] = np.zeros((self.out_channels, self.in_channels) + self.kernel_size)
        if self.bias:
            self.params["bias"] = np.zeros(self.out_channels)
        self.matmul = DigitalMatmul()

    def config(self):
        return dict(in_channels=self.in_channels, out_channels=self.out_channels,
                    kernel_size=list(self.kernel_size), stride=list(self.stride),
                    padding=list(self.padding), bias=self.bias)

    def reset_parameters(self, rng):
        """He (Kaiming) normal init, std = sqrt(2 / fan_in), bias 0; draws from ``rng``."""
        fan_in = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        self.params["weight"][...] = rng.standard_normal(self.params["weight"].shape) * math.sqrt(2.0 / fan_in)
        if self.bias:
            self.params["bias"][...] = 0.0

    def _im2col(self, x, dtype=np.float64):
        """The (P, K) im2col matrix (of ``dtype``: float64, or float32 with every element
        rounded to the nearest float32), built as its C-contiguous (K, P) transpose (rows
        (c, i, j), columns (n, h_out, w_out)): the copy then runs along image rows and
        BLAS gets the product in its fast orientation.

        For an input that fills one block of memory with contiguous image rows
        (channel-major or C-ordered) the copy is the compiled
        :func:`~xbarref.nn._kernels.im2col_t` (zero padding included); where NumPy's
        reshape of the window view would be a view (1 x 1 kernels, degenerate sizes)
        NumPy's own reshape is kept, so the result has the same values and strides as
        that reshape in every case."""
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        n, c, h, w = x.shape
        ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
        if ph or pw:   # the window view of _padded's copy, stored channel-major
            hp, wp = h + 2 * ph, w + 2 * pw
            sn, sc, s2, s3 = hp * wp * 8, n * hp * wp * 8, wp * 8, 8
        else:
            sn, sc, s2, s3 = x.strides
        view = _reshape_is_view((c, kh, kw, n, ho, wo), (sc, s2, s3, sn, sh * s2, sw * s3), 3)
        # x fills one block of memory with image rows contiguous (channel-major or C
        # order; channels-last is not faster compiled)
        dense = None if view or (w > 1 and x.strides[3] != 8) else _dense_views(x, x)
        if dense is not None:
            cols_t = np.empty((c * kh * kw, n * ho * wo), dtype=dtype)
            strides = tuple(s // 8 if size > 1 else 0 for s, size in zip(x.strides, x.shape))
            _kernels.im2col_t(_read_only(dense[0].reshape(-1)), strides, x.shape,
                              kh, kw, sh, sw, ph, pw, cols_t)
            return cols_t.T, ho, wo
        win = _windows(x, self.kernel_size, self.stride, self.padding)
        cols_t = win.transpose(1, 4, 5, 0, 2, 3).reshape(c * kh * kw, n * ho * wo)
        if dtype != np.float64:
            cols_t = cols_t.astype(dtype)
        return cols_t.T, ho, wo

    def forward(self, x, training=False):
        x = _input(x, (4,), "Conv2d", self.in_channels)
        n, _, h, w = x.shape
        _output_size(h, self.kernel_size[0], self.stride[0], self.padding[0], "Conv2d height")
        _output_size(w, self.kernel_size[1], self.stride[1], self.padding[1], "Conv2d width")
        w2d = self.params["weight"].reshape(self.out_channels, -1).T
        y2d = None
        if not training and getattr(self.matmul, "single_input", False):
            # a matmul reading float32 inputs (plain float32 crossbar reads) gets the
            # im2col matrix built in float32: the same numbers as rounding the float64 one
            cols, ho, wo = self._im2col(x, np.float32)
            y2d = self.matmul.forward_single(cols, w2d)
        if y2d is None:    # float64 inputs (or a float32 product that was not finite)
            cols, ho, wo = self._im2col(x)
            y2d = self.matmul.forward(cols, w2d)
        if self.bias:
            y2d = y2d + self.params["bias"]
        # Keep the (large) im2col matrix only when training; otherwise rebuild it in backward.
        self._cache = (x, cols if training else None, ho, wo)
        return y2d.reshape(n, ho, wo, self.out_channels).transpose(0, 3, 1, 2)

    def backward(self, grad_y):
        x, cols, ho, wo = _need_cache(self, self._cache)
        n = x.shape[0]
        grad_y = _check_grad(grad_y, (n, self.out_channels, ho, wo), self)
        if cols is None:
            cols = self._im2col(x)[0]
        gy2d = grad_y.transpose(0, 2, 3, 1).reshape(n * ho * wo, self.out_channels)
        # (the input gradient below is _input_gradient's, statement for statement)
        # (K, P) @ (P, out): with cols.T C-contiguous this orientation is fast; the other,
        # (out, P) @ (P, K), measured up to 80x slower in OpenBLAS with 2 threads.
        self.grads["weight"] = (cols.T @ gy2d).T.reshape(self.params["weight"].shape)
        if self.bias:
            self.grads["bias"] = gy2d.sum(axis=0)
        return self._input_gradient(gy2d, x.shape, ho, wo)

    def backward_input(self, grad_y):
        """The input gradient of :meth:`backward` (the same bits) without the weight and
        bias gradients: no weight-gradient product and, after an eval-mode forward, no
        im2col rebuild; ``grads`` is emptied."""
        x, _, ho, wo = _need_cache(self, self._cache)
        n = x.shape[0]
        grad_y = _check_grad(grad_y, (n, self.out_channels, ho, wo), self)
        self.grads.clear()
        gy2d = grad_y.transpose(0, 2, 3, 1).reshape(n * ho * wo, self.out_channels)
        return self._input_gradient(gy2d, x.shape, ho, wo)

    def _input_gradient(self, gy2d, x_shape, ho, wo):
        """Input gradient from the (P, out) output gradient: the operator's backward
        (``matmul.backward``), then the im2col adjoint."""
        gcols = self.matmul.backward(gy2d)
        parts = gcols.reshape(x_shape[0], ho, wo, self.in_channels, *self.kernel_size).transpose(0, 3, 1, 2, 4, 5)
        return _scatter_windows(parts, x_shape, self.kernel_size, self.stride, self.padding)


class Linear(Layer):
    """Fully connected layer ``y = x @ weight.T + bias`` through ``layer.matmul``.

    Parameters
    ----------
    in_features, out_features : int
    bias : bool
    """

    kind = "linear"

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features = check_int("in_features", in_features, lo=1)
        self.out_features = check_int("out_features", out_features, lo=1)
        self.bias = bool(bias)
        self.params["weight"] = np.zeros((self.out_features, self.in_features))
        if self.bias:
            self.params["bias"] = np.zeros(self.out_features)
        self.matmul = DigitalMatmul()

    def config(self):
        return dict(in_features=self.in_features, out_features=self.out_features, bias=self.bias)

    def reset_parameters(self, rng):
        """He (Kaiming) normal init, std = sqrt(2 / in_features), bias 0; draws from ``rng``."""
        self.params["weight"][...] = (rng.standard_normal(self.params["weight"].shape)
                                      * math.sqrt(2.0 / self.in_features))
        if self.bias:
            self.params["bias"][...] = 0.0

    def forward(self, x, training=False):
        x = _input(x, (2,), "Linear", self.in_features)
        y = self.matmul.forward(x, self.params["weight"].T)
        if self.bias:
            y = y + self.params["bias"]
        self._cache = x
        return y

    def backward(self, grad_y):
        x = _need_cache(self, self._cache)
        grad_y = _check_grad(grad_y, (x.shape[0], self.out_features), self)
        self.grads["weight"] = grad_y.T @ x
        if self.bias:
            self.grads["bias"] = grad_y.sum(axis=0)
        return self.matmul.backward(grad_y)

    def backward_input(self, grad_y):
        """The input gradient of :meth:`backward` (the same bits) without the weight and
        bias gradients; ``grads`` is emptied."""
        x = _need_cache(self, self._cache)
        grad_y = _check_grad(grad_y, (x.shape[0], self.out_features), self)
        self.grads.clear()
        return self.matmul.backward(grad_y)


# ----------------------------------------------------------------------------- batchnorm
class _BatchNorm(Layer):
    """Batch normalization over every axis but axis 1 (the channel / feature axis).

    Training mode normalises with the batch mean and biased batch variance and updates
    ``running_mean`` and ``running_var`` in place with ``momentum``; the running variance
    takes the unbiased batch variance (``n / (n - 1)`` times the biased one), as PyTorch
    does. Eval mode normalises with the running statistics.
    """

    _ndims = ()

    def __init__(self, num_features, eps=1e-5, momentum=0.1):
        super().__init__()
        self.num_features = check_int("num_features", num_features, lo=1)
        eps = float(eps)
        momentum = float(momentum)
        if not (math.isfinite(eps) and eps >= 0.0):
            raise XbarrefError(f"eps must be finite and >= 0, got {eps!r}")
        if not (0.0 <= momentum <= 1.0):
            raise XbarrefError(f"momentum must be in [0, 1], got {momentum!r}")
        self.eps, self.momentum = eps, momentum
        self.params["weight"] = np.ones(self.num_features)
        self.params["bias"] = np.zeros(self.num_features)
        self.buffers["running_mean"] = np.zeros(self.num_features)
        self.buffers["running_var"] = np.ones(self.num_features)

    def config(self):
        return dict(num_features=self.num_features, eps=self.eps, momentum=self.momentum)

    def reset_parameters(self, rng=None):
        """Weight 1, bias 0, running mean 0, running variance 1 (no random draw)."""
        self.params["weight"][...] = 1.0
        self.params["bias"][...] = 0.0
        self.buffers["running_mean"][...] = 0.0
        self.buffers["running_var"][...] = 1.0

    def forward(self, x, training=False):
        x = _input(x, self._ndims, type(self).__name__, self.num_features)
        axes = (0,) + tuple(range(2, x.ndim))
        shape = (1, self.num_features) + (1,) * (x.ndim - 2)
        gamma, beta = self.params["weight"], self.params["bias"]
        if training:
            count = x.size // self.num_features
            if count < 2:
                raise XbarrefError(f"x: {type(self).__name__} in training mode needs more than one "
                                   f"value per channel, got shape {x.shape}")
            mean = x.mean(axis=axes)
            xc = x - mean.reshape(shape)
            var = np.mean(xc * xc, axis=axes)
            inv_std = 1.0 / np.sqrt(var + self.eps)
            xhat = xc
            xhat *= inv_std.reshape(shape)
            m = self.momentum
            self.buffers["running_mean"] *= 1.0 - m
            self.buffers["running_mean"] += m * mean
            self.buffers["running_var"] *= 1.0 - m
            self.buffers["running_var"] += m * var * (count / (count - 1))
            self._cache = (True, xhat, inv_std, axes, shape)
            return xhat * gamma.reshape(shape) + beta.reshape(shape)
        self._cache = (False, x, 1.0 / np.sqrt(self.buffers["running_var"] + self.eps), axes, shape)
        y = self._eval_affine(x, shape, relu=False)
        if y is None:
            _, _, inv_std, _, _ = self._cache
            scale = gamma * inv_std
            y = x * scale.reshape(shape)
            y += (beta - self.buffers["running_mean"] * scale).reshape(shape)
        return y

    def _eval_affine(self, x, shape, relu):
        """The eval-mode output ``x * scale + shift`` (then ReLU when ``relu``) in one
        compiled pass (same roundings, same layout) when ``x`` is dense and the
        parameters are finite; None otherwise (NaN in a parameter keeps NumPy: the NaN
        bits then could depend on the order of the operands)."""
        inv_std = 1.0 / np.sqrt(self.buffers["running_var"] + self.eps)
        scale = self.params["weight"] * inv_std
        shift = self.params["bias"] - self.buffers["running_mean"] * scale
        y = _ufunc_output(x, scale.reshape(shape))
        dense = _dense_views(x, y)
        if dense is None or not (np.isfinite(scale).all() and np.isfinite(shift).all()):
            return None
        xp, yp, perm = dense     # seen as (A, C, B) in memory order, C the channels
        pos = perm.index(1)
        abc = (math.prod(xp.shape[:pos]), self.num_features, math.prod(xp.shape[pos + 1:]))
        _kernels.affine_channels(_read_only(xp.reshape(abc)), _read_only(scale), _read_only(shift),
                                 yp.reshape(abc), relu)
        return y

    def eval_relu(self, x, relu):
        """``relu.forward(self.forward(x))`` in eval mode, in one compiled pass where the
        batchnorm pass is compiled (the same bits); keeps nothing for backward (for
        :meth:`Model.__call__`)."""
        x = _input(x, self._ndims, type(self).__name__, self.num_features)
        shape = (1, self.num_features) + (1,) * (x.ndim - 2)
        y = self._eval_affine(x, shape, relu=True)
        if y is None:
            y = relu.forward(self.forward(x))
        return y

    def backward(self, grad_y):
        training, saved, inv_std, axes, shape = _need_cache(self, self._cache)
        grad_y = _check_grad(grad_y, saved.shape, self)
        gamma = self.params["weight"]
        if training:
            xhat = saved
        else:
            xhat = (saved - self.buffers["running_mean"].reshape(shape)) * inv_std.reshape(shape)
        g_beta = grad_y.sum(axis=axes)
        g_gamma = np.sum(grad_y * xhat, axis=axes)
        self.grads["weight"], self.grads["bias"] = g_gamma, g_beta
        scale = (gamma * inv_std).reshape(shape)
        if not training:
            return grad_y * scale
        count = grad_y.size // self.num_features
        gx = xhat * (g_gamma / count).reshape(shape)
        gx += (g_beta / count).reshape(shape)
        np.subtract(grad_y, gx, out=gx)
        gx *= scale
        return gx


class BatchNorm1d(_BatchNorm):
    """Batch normalization of (N, C) or (N, C, L) inputs (``num_features = C``)."""

    kind = "batchnorm1d"
    _ndims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalization of (N, C, H, W) inputs (``num_features = C``)."""

    kind = "batchnorm2d"
    _ndims = (4,)


# ----------------------------------------------------------------------------- activations
class ReLU(Layer):
    """Rectified linear unit ``max(x, 0)``; the gradient at exactly 0 is 0 (as in PyTorch)."""

    kind = "relu"

    def forward(self, x, training=False):
        x = np.asarray(x, dtype=np.float64)
        # np.maximum(x, 0.0) compiled (same values, NaN bits and layout) when x is dense
        y = _ufunc_output(x, 0.0)
        dense = _dense_views(x, y)
        if dense is not None and x.ndim:
            _kernels.relu(_read_only(dense[0].reshape(-1)), dense[1].reshape(-1))
        else:
            y = np.maximum(x, 0.0)
        self._cache = y  # y > 0 exactly where x > 0
        return y

    def backward(self, grad_y):
        y = _need_cache(self, self._cache)
        grad_y = _check_grad(grad_y, y.shape, self)
        return grad_y * (y > 0.0)


class Dropout(Layer):
    """Dropout: identity in eval mode; in training mode zeroes each element with
    probability ``p`` and scales the rest by ``1 / (1 - p)``.

    Parameters
    ----------
    p : float in [0, 1]
    generator : numpy.random.Generator or None
        Source of the random masks; required in training mode with ``p > 0`` (set the
        attribute ``layer.generator`` or let :func:`xbarref.nn.train.fit` set it).
    """

    kind = "dropout"

    def __init__(self, p=0.5, generator=None):
        super().__init__()
        p = float(p)
        if not (0.0 <= p <= 1.0):
            raise XbarrefError(f"p must be in [0, 1], got {p!r}")
        self.p = p
        self.generator = generator

    def config(self):
        return dict(p=self.p)

    def forward(self, x, training=False):
        x = np.asarray(x, dtype=np.float64)
        if not training or self.p == 0.0:
            self._cache = 1.0
            return x.copy()
        if self.p == 1.0:
            self._cache = np.zeros(x.shape)
            return np.zeros(x.shape)
        check_rng(self.generator, "generator (Dropout in training mode; set layer.generator)")
        mask = (self.generator.random(x.shape) >= self.p) * (1.0 / (1.0 - self.p))
        self._cache = mask
        return x * mask

    def backward(self, grad_y):
        mask = _need_cache(self, self._cache)
        grad_y = np.asarray(grad_y, dtype=np.float64)
        return grad_y * mask


class Identity(Layer):
    """Identity (a placeholder node, e.g. an exported ``torch.nn.Identity``)."""

    kind = "identity"

    def forward(self, x, training=False):
        self._cache = True
        return np.asarray(x, dtype=np.float64)

    def backward(self, grad_y):
        _need_cache(self, self._cache)
        return np.asarray(grad_y, dtype=np.float64)


# ----------------------------------------------------------------------------- pooling
class MaxPool2d(Layer):
    """Max pooling (padding with -inf, as PyTorch); ties send the gradient to the first
    maximum of the window in row-major order. For non-overlapping windows without
    padding the forward pass keeps its input (no copy) and backward finds the first
    maxima from it, so inference computes no index.

    Parameters
    ----------
    kernel_size : int or pair
    stride : int or pair or None
        None means ``kernel_size``.
    padding : int or pair, at most half the kernel size
    """

    kind = "maxpool2d"

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride")
        self.padding = _pair(padding, "padding", minimum=0)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size)):
            raise XbarrefError(f"padding must be at most half the kernel size, got padding "
                               f"{self.padding} for kernel {self.kernel_size}")

    def config(self):
        return dict(kernel_size=list(self.kernel_size), stride=list(self.stride),
                    padding=list(self.padding))

    def _tiled(self):
        """True for non-overlapping windows without padding (stride == kernel, the
        usual 2 x 2 pooling): then one strided slice per kernel offset does the job."""
        return self.stride == self.kernel_size and self.padding == (0, 0)

    def _forward_tiled(self, x):
        """Running maximum over the kh * kw strided slices (``np.maximum(part, y,
        out=y)`` in the order of the kernel offsets; no index: the argmax is found
        again in backward from the kept input, see :meth:`_tiled_index`).
        ``np.maximum(part, y)`` keeps ``y`` on ties, so only the sign of a zero maximum
        could depend on NumPy's tie rule; a window holding a NaN takes the exact
        first-maximum path (NaN only when the first element is NaN). The output is
        stored channel-major. For 2 x 2 windows of a channel-major or channels-last
        input the loop is compiled (:func:`~xbarref.nn._kernels.maxpool2x2_planes`,
        same bits)."""
        kh, kw = self.kernel_size
        n, c, h, w = x.shape
        ho, wo = h // kh, w // kw
        xt, xl = x.transpose(1, 0, 2, 3), x.transpose(0, 2, 3, 1)
        if (kh, kw) == (2, 2) and (xt.flags.c_contiguous or xl.flags.c_contiguous):
            buf = np.empty((c, n, ho, wo))   # stored channel-major
            if xt.flags.c_contiguous:
                nan = _kernels.maxpool2x2_planes(_read_only(xt.reshape(c * n, h, w)),
                                                 buf.reshape(c * n, ho, wo))
            else:
                nan = _kernels.maxpool2x2_channels_last(_read_only(xl), buf)
            y = buf.transpose(1, 0, 2, 3)
        else:
            y = _channel_major((n, c, ho, wo), 0.0)
            y[...] = x[:, :, 0:ho * kh:kh, 0:wo * kw:kw]
            for k in range(1, kh * kw):
                i, j = divmod(k, kw)
                np.maximum(x[:, :, i:ho * kh:kh, j:wo * kw:kw], y, out=y)
            nan = y.size and np.isnan(y.max())
        if nan:
            y = self._tiled_index(x)[0]
        self._cache = (x.shape, x, True)
        return y

    def _tiled_index(self, x):
        """``(y, index)``: the running maximum in which only a strictly greater element
        replaces, and the kernel offset ``k = i * kw + j`` of that first maximum."""
        kh, kw = self.kernel_size
        n, c, h, w = x.shape
        ho, wo = h // kh, w // kw
        y = _channel_major((n, c, ho, wo), 0.0)
        y[...] = x[:, :, 0:ho * kh:kh, 0:wo * kw:kw]
        index = np.zeros((n, c, ho, wo), dtype=np.intp)
        for k in range(1, kh * kw):
            i, j = divmod(k, kw)
            part = x[:, :, i:ho * kh:kh, j:wo * kw:kw]
            better = part > y
            np.copyto(y, part, where=better)
            index[better] = k
        return y, index

    def _backward_tiled(self, grad_y, x_shape, index):
        kh, kw = self.kernel_size
        ho, wo = index.shape[2:]
        gx = _channel_major(x_shape, 0.0)
        for k in range(kh * kw):
            i, j = divmod(k, kw)
            gx[:, :, i:ho * kh:kh, j:wo * kw:kw] = np.where(index == k, grad_y, 0.0)
        return gx

    def forward(self, x, training=False):
        x = _input(x, (4,), "MaxPool2d")
        for axis in (0, 1):
            _output_size(x.shape[2 + axis], self.kernel_size[axis], self.stride[axis],
                         self.padding[axis], "MaxPool2d")
        if self._tiled():
            return self._forward_tiled(x)
        win = _windows(x, self.kernel_size, self.stride, self.padding, fill=-np.inf)
        flat = win.reshape(win.shape[:4] + (-1,))
        index = flat.argmax(axis=-1)
        y = np.take_along_axis(flat, index[..., None], axis=-1)[..., 0]
        self._cache = (x.shape, index, False)
        return y

    def _backward_from_input(self, grad_y, x):
        """Input gradient of tiled pooling from the kept input ``x``: the first maxima
        found again and the gradient sent to them. For an input that fills one block of
        memory (channel-major, C-ordered, channels-last, ...) one compiled pass,
        :func:`~xbarref.nn._kernels.maxpool_tiled_backward` (the same bits as the NumPy
        statements, which stay for other layouts: :meth:`_tiled_index` then
        :meth:`_backward_tiled`); the gradient is stored channel-major either way."""
        kh, kw = self.kernel_size
        n, c, h, w = x.shape
        memory = _dense_memory(x)
        if memory is None:
            index = self._tiled_index(x)[1]
            return self._backward_tiled(_check_grad(grad_y, index.shape, self), x.shape, index)
        grad_y = _check_grad(grad_y, (n, c, h // kh, w // kw), self)
        g = _dense_memory(grad_y) or _dense_memory(np.ascontiguousarray(grad_y))
        buf = np.empty((c, n, h, w))
        _kernels.maxpool_tiled_backward(memory[0], memory[1], g[0], g[1], (n, c, h, w), kh, kw, buf)
        return buf.transpose(1, 0, 2, 3)

    def backward(self, grad_y):
        x_shape, index, tiled = _need_cache(self, self._cache)
        if tiled:   # the cache holds the input: the first maxima are found now
            return self._backward_from_input(grad_y, index)
        grad_y = _check_grad(grad_y, index.shape, self)
        kh, kw = self.kernel_size
        parts = np.zeros(index.shape + (kh * kw,))
        np.put_along_axis(parts, index[..., None], grad_y[..., None], axis=-1)
        parts = parts.reshape(index.shape + (kh, kw))
        return _scatter_windows(parts, x_shape, self.kernel_size, self.stride, self.padding)


class AvgPool2d(Layer):
    """Average pooling with zero padding.

    Parameters
    ----------
    kernel_size : int or pair
    stride : int or pair or None
        None means ``kernel_size``.
    padding : int or pair, at most half the kernel size
    count_include_pad : bool
        True (PyTorch default): divide by kh * kw; False: by the number of non-padding
        elements of each window.
    """

    kind = "avgpool2d"

    def __init__(self, kernel_size, stride=None, padding=0, count_include_pad=True):
        super().__init__()
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride")
        self.padding = _pair(padding, "padding", minimum=0)
        self.count_include_pad = bool(count_include_pad)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size)):
            raise XbarrefError(f"padding must be at most half the kernel size, got padding "
                               f"{self.padding} for kernel {self.kernel_size}")

    def config(self):
        return dict(kernel_size=list(self.kernel_size), stride=list(self.stride),
                    padding=list(self.padding), count_include_pad=self.count_include_pad)

    def _divisor(self, h, w):
        """Per-output-pixel divisor, shape (H_out, W_out) (broadcasts over N and C)."""
        kh, kw = self.kernel_size
        if self.count_include_pad or self.padding == (0, 0):
            return float(kh * kw)
        ones = np.ones((1, 1, h, w))
        counts = _windows(ones, self.kernel_size, self.stride, self.padding).sum(axis=(4, 5))
        return counts[0, 0]

    def forward(self, x, training=False):
        x = _input(x, (4,), "AvgPool2d")
        for axis in (0, 1):
            _output_size(x.shape[2 + axis], self.kernel_size[axis], self.stride[axis],
                         self.padding[axis], "AvgPool2d")
        win = _windows(x, self.kernel_size, self.stride, self.padding)
        divisor = self._divisor(*x.shape[2:])
        y = win.sum(axis=(4, 5)) / divisor
        self._cache = (x.shape, divisor)
        return y

    def backward(self, grad_y):
        x_shape, divisor = _need_cache(self, self._cache)
        n, c = x_shape[:2]
        ho = (x_shape[2] + 2 * self.padding[0] - self.kernel_size[0]) // self.stride[0] + 1
        wo = (x_shape[3] + 2 * self.padding[1] - self.kernel_size[1]) // self.stride[1] + 1
        grad_y = _check_grad(grad_y, (n, c, ho, wo), self)
        g = grad_y / divisor
        parts = np.broadcast_to(g[..., None, None], (n, c, ho, wo) + self.kernel_size)
        return _scatter_windows(parts, x_shape, self.kernel_size, self.stride, self.padding)


class GlobalAvgPool(Layer):
    """Mean over the spatial axes: (N, C, H, W) -> (N, C)."""

    kind = "global_avgpool"

    def forward(self, x, training=False):
        x = _input(x, (4,), "GlobalAvgPool")
        self._cache = x.shape
        return x.mean(axis=(2, 3))

    def backward(self, grad_y):
        shape = _need_cache(self, self._cache)
        grad_y = _check_grad(grad_y, shape[:2], self)
        g = grad_y / (shape[2] * shape[3])
        return np.broadcast_to(g[:, :, None, None], shape).copy()


class Flatten(Layer):
    """(N, d1, d2, ...) -> (N, d1 * d2 * ...) in C order (as ``torch.flatten(x, 1)``)."""

    kind = "flatten"

    def forward(self, x, training=False):
        x = np.asarray(x, dtype=np.float64)
        if x.ndim < 2:
            raise XbarrefError(f"x: Flatten expects at least a 2-D array, got shape {x.shape}")
        self._cache = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, grad_y):
        shape = _need_cache(self, self._cache)
        grad_y = _check_grad(grad_y, (shape[0], math.prod(shape[1:])), self)
        return grad_y.reshape(shape)


# ----------------------------------------------------------------------------- residual add
class Add(Layer):
    """Element-wise sum of two inputs of equal shape (residual connection)."""

    kind = "add"
    n_inputs = 2

    def forward(self, a, b, training=False):
        a = np.asarray(a, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        if a.shape != b.shape:
            raise XbarrefError(f"x: Add expects two inputs of equal shape, got {a.shape} and {b.shape}")
        self._cache = a.shape
        return a + b

    def backward(self, grad_y):
        shape = _need_cache(self, self._cache)
        grad_y = _check_grad(grad_y, shape, self)
        return grad_y, grad_y
