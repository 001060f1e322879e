"""A small model zoo: MLP, batchnorm CNNs for 8 x 8 digits and 28 x 28 Fashion-MNIST,
ResNet-20, a small VGG.

Every builder draws the initial weights from an explicit ``numpy.random.Generator``
(He / Kaiming normal for Conv2d and Linear, batchnorm weight 1 and bias 0): ``rng`` is a
Generator or an integer seed (``numpy.random.default_rng(seed)``) and must be given.
Node names follow PyTorch / torchvision module names, so parameter names match their
state dicts (``"layer1.0.conv1.weight"``).
"""

from __future__ import annotations

import math

import numpy as np

from xbarref.checks import check_rng
from xbarref.errors import XbarrefError
from xbarref.nn.graph import INPUT, Model, Node
from xbarref.nn.layers import (Add, BatchNorm1d, BatchNorm2d, Conv2d, Dropout, Flatten,
                               GlobalAvgPool, Linear, MaxPool2d, ReLU)

__all__ = ["he_init", "mlp", "digits_cnn", "fashion_cnn", "resnet20", "small_vgg"]


def he_init(model, rng):
    """(Re-)initialise every layer of ``model`` that has ``reset_parameters``, in node order.

    Parameters
    ----------
    model : Model
    rng : numpy.random.Generator
    """
    check_rng(rng)
    for node in model.nodes:
        reset = getattr(node.layer, "reset_parameters", None)
        if reset is not None:
            reset(rng)
    return model


class _Chain:
    """Helper that appends nodes, each reading the previous output unless told otherwise."""

    def __init__(self):
        self.nodes = []
        self.last = INPUT

    def add(self, name, layer, inputs=None):
        self.nodes.append(Node(name, layer, [self.last] if inputs is None else list(inputs)))
        self.last = name
        return name


def _rng(rng):
    """The Generator of a builder's ``rng``: a Generator, or an integer seed (>= 0)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, (bool, np.bool_)) and rng >= 0:
        return np.random.default_rng(int(rng))
    raise XbarrefError("rng: the initial weights are random; pass a numpy.random.Generator or "
                       f"an integer seed >= 0, got {rng!r}")


def mlp(input_shape=(64,), hidden=(128,), num_classes=10, *, batchnorm=False, dropout=0.0,
        classes=None, normalization=None, rng=None):
    """Multi-layer perceptron: [flatten] (linear [batchnorm1d] relu [dropout])* linear.

    Parameters
    ----------
    input_shape : tuple of int
        Per-sample shape; anything but 1-D gets a leading ``flatten`` node.
    hidden : sequence of int
        Widths of the hidden layers (may be empty: a linear classifier).
    num_classes : int
    batchnorm : bool
        Insert BatchNorm1d after each hidden linear layer.
    dropout : float
        Dropout probability after each hidden activation (0: no dropout nodes).
    classes, normalization : see :class:`~xbarref.nn.graph.Model`
    rng : numpy.random.Generator or int

    Returns
    -------
    Model
        Nodes ``fc1, [bn1], relu1, [dropout1], ..., fc<k>``.
    """
    chain = _Chain()
    input_shape = tuple(input_shape)
    width = math.prod(input_shape)
    if len(input_shape) > 1:
        chain.add("flatten", Flatten())
    for i, h in enumerate(hidden, start=1):
        chain.add(f"fc{i}", Linear(width, h, bias=not batchnorm))
        if batchnorm:
            chain.add(f"bn{i}", BatchNorm1d(h))
        chain.add(f"relu{i}", ReLU())
        if dropout:
            chain.add(f"dropout{i}", Dropout(dropout))
        width = h
    chain.add(f"fc{len(hidden) + 1}", Linear(width, num_classes))
    model = Model(chain.nodes, input_shape, classes=classes, normalization=normalization, name="mlp")
    return he_init(model, _rng(rng))


def digits_cnn(num_classes=10, *, widths=(16, 32, 32), classes=None, normalization=None, rng=None):
    """Small CNN with batchnorm for 1 x 8 x 8 digit images.

    conv1 3x3 (1 -> w1) bn1 relu1, conv2 3x3 (w1 -> w2) bn2 relu2, pool1 (max 2x2 -> 4x4),
    conv3 3x3 (w2 -> w3) bn3 relu3, pool2 (max 2x2 -> 2x2), flatten, fc (4 * w3 -> classes).
    Convolutions use padding 1 and no bias (batchnorm follows).

    Parameters
    ----------
    num_classes : int
    widths : three ints
        Channels of conv1, conv2, conv3.
    classes, normalization : see :class:`~xbarref.nn.graph.Model`
    rng : numpy.random.Generator or int
    """
    w1, w2, w3 = widths
    chain = _Chain()
    chain.add("conv1", Conv2d(1, w1, 3, padding=1, bias=False))
    chain.add("bn1", BatchNorm2d(w1))
    chain.add("relu1", ReLU())
    chain.add("conv2", Conv2d(w1, w2, 3, padding=1, bias=False))
    chain.add("bn2", BatchNorm2d(w2))
    chain.add("relu2", ReLU())
    chain.add("pool1", MaxPool2d(2))
    chain.add("conv3", Conv2d(w2, w3, 3, padding=1, bias=False))
    chain.add("bn3", BatchNorm2d(w3))
    chain.add("relu3", ReLU())
    chain.add("pool2", MaxPool2d(2))
    chain.add("flatten", Flatten())
    chain.add("fc", Linear(4 * w3, num_classes))
    model = Model(chain.nodes, (1, 8, 8), classes=classes, normalization=normalization,
                  name="digits_cnn")
    return he_init(model, _rng(rng))


def fashion_cnn(num_classes=10, *, widths=(32, 64, 128), hidden=128, classes=None,
                normalization=None, rng=None):
    """CNN with batchnorm for 1 x 28 x 28 images whose crossbar layers fill real tiles.

    conv1 3x3 pad 1 (1 -> w1) bn1 relu1 pool1 (max 2x2: 28 -> 14),
    conv2 3x3 (w1 -> w2) bn2 relu2 pool2 (14 -> 12 -> 6),
    conv3 3x3 (w2 -> w3) bn3 relu3 pool3 (6 -> 4 -> 2), flatten (4 * w3),
    fc1 (4 * w3 -> hidden) bn4 relu4, fc2 (hidden -> classes).
    Every crossbar layer but the last is followed by batchnorm (and has no bias). With
    the default widths the crossbar matrices (rows = inputs x columns = outputs) are
    conv1 9 x 32, conv2 288 x 64, conv3 576 x 128, fc1 512 x 128 and fc2 128 x 10, so
    three layers span several 64 x 64, 128 x 128 or 256 x 256 tiles. conv2 and conv3
    are unpadded (valid) convolutions: that halves the multiply-accumulates of the
    padded version (4.1 M instead of 7.6 M per image) at no cost the validation split
    could show, so the NumPy engine trains the network in the time budget.

    Parameters
    ----------
    num_classes : int
    widths : three ints
        Channels of conv1, conv2, conv3.
    hidden : int
        Width of fc1.
    classes, normalization : see :class:`~xbarref.nn.graph.Model`
    rng : numpy.random.Generator or int
        Draws the initial weights (required).
    """
    w1, w2, w3 = widths
    chain = _Chain()
    chain.add("conv1", Conv2d(1, w1, 3, padding=1, bias=False))
    chain.add("bn1", BatchNorm2d(w1))
    chain.add("relu1", ReLU())
    chain.add("pool1", MaxPool2d(2))
    chain.add("conv2", Conv2d(w1, w2, 3, bias=False))
    chain.add("bn2", BatchNorm2d(w2))
    chain.add("relu2", ReLU())
    chain.add("pool2", MaxPool2d(2))
    chain.add("conv3", Conv2d(w2, w3, 3, bias=False))
    chain.add("bn3", BatchNorm2d(w3))
    chain.add("relu3", ReLU())
    chain.add("pool3", MaxPool2d(2))
    chain.add("flatten", Flatten())
    chain.add("fc1", Linear(4 * w3, hidden, bias=False))
    chain.add("bn4", BatchNorm1d(hidden))
    chain.add("relu4", ReLU())
    chain.add("fc2", Linear(hidden, num_classes))
    model = Model(chain.nodes, (1, 28, 28), classes=classes, normalization=normalization,
                  name="fashion_cnn")
    return he_init(model, _rng(rng))


def _basic_block(chain, prefix, cin, cout, stride):
    """torchvision-style BasicBlock with a 1x1-conv + batchnorm shortcut when shapes change."""
    block_in = chain.last
    chain.add(f"{prefix}.conv1", Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False))
    chain.add(f"{prefix}.bn1", BatchNorm2d(cout))
    chain.add(f"{prefix}.relu1", ReLU())
    chain.add(f"{prefix}.conv2", Conv2d(cout, cout, 3, padding=1, bias=False))
    main = chain.add(f"{prefix}.bn2", BatchNorm2d(cout))
    shortcut = block_in
    if stride != 1 or cin != cout:
        chain.add(f"{prefix}.downsample.0", Conv2d(cin, cout, 1, stride=stride, bias=False), [block_in])
        shortcut = chain.add(f"{prefix}.downsample.1", BatchNorm2d(cout))
    chain.add(f"{prefix}.add", Add(), [main, shortcut])
    chain.add(f"{prefix}.relu2", ReLU())


def resnet(blocks_per_stage=3, widths=(16, 32, 64), num_classes=10, *, input_shape=(3, 32, 32),
           classes=None, normalization=None, rng=None, name=None):
    """CIFAR-style ResNet (He et al. 2016, section 4.2) with 6n + 2 layers.

    Stem conv1 3x3 -> bn1 -> relu; stages ``layer1..layer<k>`` of ``blocks_per_stage``
    basic blocks (the first block of every stage after the first has stride 2);
    global average pooling ``avgpool``; ``fc``. Shortcuts that change shape are a 1x1
    convolution plus batchnorm (``layer2.0.downsample.0`` / ``.1``, option B).
    """
    chain = _Chain()
    chain.add("conv1", Conv2d(input_shape[0], widths[0], 3, padding=1, bias=False))
    chain.add("bn1", BatchNorm2d(widths[0]))
    chain.add("relu", ReLU())
    cin = widths[0]
    for stage, cout in enumerate(widths, start=1):
        for block in range(blocks_per_stage):
            stride = 2 if (stage > 1 and block == 0) else 1
            _basic_block(chain, f"layer{stage}.{block}", cin, cout, stride)
            cin = cout
    chain.add("avgpool", GlobalAvgPool())
    chain.add("fc", Linear(cin, num_classes))
    depth = 6 * blocks_per_stage + 2 if len(widths) == 3 else None
    model = Model(chain.nodes, input_shape, classes=classes, normalization=normalization,
                  name=name or (f"resnet{depth}" if depth else "resnet"))
    return he_init(model, _rng(rng))


def resnet20(num_classes=10, *, classes=None, normalization=None, rng=None):
    """ResNet-20 for 3 x 32 x 32 inputs (CIFAR-10 style): three stages of three basic
    blocks with 16, 32, 64 channels, batchnorm, 1x1-conv shortcuts; ~0.27 M parameters."""
    return resnet(3, (16, 32, 64), num_classes, classes=classes, normalization=normalization,
                  rng=rng, name="resnet20")


def small_vgg(input_shape=(3, 32, 32), num_classes=10, *, widths=(32, 64, 128), hidden=256,
              dropout=0.5, classes=None, normalization=None, rng=None):
    """Small VGG: per stage two (conv 3x3 pad 1, batchnorm, relu) then max-pool 2x2;
    then flatten, ``classifier.0`` linear, relu, dropout, ``classifier.3`` linear.

    Feature nodes are named ``features.<i>`` with ``i`` counting every layer, as in
    torchvision's VGG.
    """
    chain = _Chain()
    c, h, w = input_shape
    i = 0
    for width in widths:
        for _ in range(2):
            chain.add(f"features.{i}", Conv2d(c, width, 3, padding=1, bias=False))
            chain.add(f"features.{i + 1}", BatchNorm2d(width))
            chain.add(f"features.{i + 2}", ReLU())
            i += 3
            c = width
        chain.add(f"features.{i}", MaxPool2d(2))
        i += 1
        h, w = h // 2, w // 2
        if h < 1 or w < 1:
            raise XbarrefError(f"input_shape {input_shape} is too small for {len(widths)} pooling stages")
    chain.add("flatten", Flatten())
    chain.add("classifier.0", Linear(c * h * w, hidden))
    chain.add("classifier.1", ReLU())
    chain.add("classifier.2", Dropout(dropout))
    chain.add("classifier.3", Linear(hidden, num_classes))
    model = Model(chain.nodes, tuple(input_shape), classes=classes, normalization=normalization,
                  name="small_vgg")
    return he_init(model, _rng(rng))
