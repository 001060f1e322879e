"""Compile the layers' kernels once, before worker processes start.

The forward passes of Conv2d (im2col), BatchNorm (eval), ReLU and 2 x 2 MaxPool2d (and
the latter's backward) run compiled Numba kernels (:mod:`xbarref.nn._kernels`, cached on disk). Each kernel takes
its inputs as read-only C-contiguous views, so one compiled version serves every input;
:func:`warm_up` runs each kernel through its layer once, on tiny arrays, so that worker
processes started afterwards load them from the cache instead of each compiling them.
"""

from __future__ import annotations

import numpy as np

from xbarref.nn.layers import BatchNorm2d, Conv2d, MaxPool2d, ReLU


def warm_up():
    """Run every compiled layer path once on tiny inputs (compiles or loads the kernels).

    Covers im2col from channel-major and from C-ordered inputs, with and without padding,
    into float64 and float32 matrices,
    the batchnorm eval pass, ReLU, and 2 x 2 max pooling (forward and backward) of
    channel-major and channels-last inputs (the layouts of a digital and of a crossbar convolution).
    Takes seconds on a cold cache and milliseconds on a warm one.
    """
    x = np.linspace(-1.0, 1.0, 2 * 3 * 4 * 4).reshape(2, 3, 4, 4)       # C order (N, C, H, W)
    channel_major = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    channels_last = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    for padding in (0, 1):
        conv = Conv2d(3, 2, 3, padding=padding, bias=False)
        for dtype in (np.float64, np.float32):    # float32: the plain float32 crossbar reads
            conv._im2col(x, dtype)
            conv._im2col(channel_major, dtype)
    for v in (channel_major, channels_last):
        BatchNorm2d(3).forward(v)
        ReLU().forward(v)
        pool = MaxPool2d(2)
        pool.backward(np.ones_like(pool.forward(v)))    # the compiled backward (tuning)
