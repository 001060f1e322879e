"""Finite-difference gradient checks of every layer (inputs and parameters)."""

import json

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from xbarref.errors import XbarrefError
from xbarref.nn import (LAYER_KINDS, Add, AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, Dropout,
                        Flatten, GlobalAvgPool, Identity, Layer, Linear, MaxPool2d, ReLU)

from .gradcheck import check_layer

small = st.integers(1, 3)


def _rng(*seed):
    return np.random.default_rng(list(seed))


def _randomize(layer, rng):
    for arr in layer.params.values():
        arr[...] = rng.standard_normal(arr.shape)


def _away_from_zero(x, margin=1e-3):
    return np.where(x >= 0, x + margin, x - margin)


@settings(max_examples=25)
@given(n=small, cin=small, cout=small, h=st.integers(1, 6), w=st.integers(1, 6),
       kh=small, kw=small, sh=small, sw=small, ph=st.integers(0, 2), pw=st.integers(0, 2),
       bias=st.booleans())
def test_conv2d_gradients(n, cin, cout, h, w, kh, kw, sh, sw, ph, pw, bias):
    assume(h + 2 * ph >= kh and w + 2 * pw >= kw)
    rng = _rng(n, cin, cout, h, w, kh, kw, sh, sw, ph, pw)
    layer = Conv2d(cin, cout, (kh, kw), stride=(sh, sw), padding=(ph, pw), bias=bias)
    _randomize(layer, rng)
    x = rng.standard_normal((n, cin, h, w))
    check_layer(layer, [x], rng, training=True)
    check_layer(layer, [x], rng, training=False)  # rebuilds im2col in backward


@settings(max_examples=15)
@given(n=small, fin=st.integers(1, 5), fout=st.integers(1, 5), bias=st.booleans())
def test_linear_gradients(n, fin, fout, bias):
    rng = _rng(n, fin, fout)
    layer = Linear(fin, fout, bias=bias)
    _randomize(layer, rng)
    check_layer(layer, [rng.standard_normal((n, fin))], rng)


@settings(max_examples=20)
@given(n=st.integers(1, 4), c=small, h=st.integers(1, 4), w=st.integers(1, 4),
       training=st.booleans())
def test_batchnorm2d_gradients(n, c, h, w, training):
    assume(not training or n * h * w >= 2)
    rng = _rng(n, c, h, w, training)
    layer = BatchNorm2d(c, eps=1e-3)
    _randomize(layer, rng)
    layer.buffers["running_mean"][...] = rng.standard_normal(c)
    layer.buffers["running_var"][...] = rng.uniform(0.5, 2.0, c)
    check_layer(layer, [rng.standard_normal((n, c, h, w)) * 2 + 1], rng, training=training)


@settings(max_examples=15)
@given(n=st.integers(2, 5), c=small, length=st.sampled_from([None, 1, 3]), training=st.booleans())
def test_batchnorm1d_gradients(n, c, length, training):
    rng = _rng(n, c, length or 0, training)
    layer = BatchNorm1d(c)
    _randomize(layer, rng)
    layer.buffers["running_var"][...] = rng.uniform(0.5, 2.0, c)
    shape = (n, c) if length is None else (n, c, length)
    check_layer(layer, [rng.standard_normal(shape)], rng, training=training)


@settings(max_examples=25)
@given(n=small, c=small, h=st.integers(1, 6), w=st.integers(1, 6), kh=small, kw=small,
       stride=st.one_of(st.none(), st.tuples(small, small)), ph=st.integers(0, 1),
       pw=st.integers(0, 1), kind=st.sampled_from(["max", "avg", "avg_exclude_pad"]))
def test_pool_gradients(n, c, h, w, kh, kw, stride, ph, pw, kind):
    assume(2 * ph <= kh and 2 * pw <= kw and h + 2 * ph >= kh and w + 2 * pw >= kw)
    rng = _rng(n, c, h, w, kh, kw, ph, pw, len(kind))
    if kind == "max":
        layer = MaxPool2d((kh, kw), stride=stride, padding=(ph, pw))
    else:
        layer = AvgPool2d((kh, kw), stride=stride, padding=(ph, pw),
                          count_include_pad=(kind == "avg"))
    check_layer(layer, [rng.standard_normal((n, c, h, w))], rng)


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (2, 3, 4, 5), (1, 7, 1, 1)])
def test_relu_flatten_identity_gradients(shape):
    rng = _rng(len(shape), *shape)
    x = _away_from_zero(rng.standard_normal(shape))
    check_layer(ReLU(), [x], rng)
    check_layer(Flatten(), [x], rng)
    check_layer(Identity(), [x], rng)


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 3, 4, 5), (3, 2, 1, 7)])
def test_global_avgpool_and_add_gradients(shape):
    rng = _rng(*shape)
    check_layer(GlobalAvgPool(), [rng.standard_normal(shape)], rng)
    check_layer(Add(), [rng.standard_normal(shape), rng.standard_normal(shape)], rng)


def test_dropout_training_gradient_and_scaling():
    rng = _rng(7)
    layer = Dropout(0.3)
    x = rng.standard_normal((4, 50))

    def same_mask():
        layer.generator = np.random.default_rng(123)

    check_layer(layer, [x], rng, training=True, before_forward=same_mask)
    same_mask()
    y = layer.forward(x, training=True)
    kept = y != 0
    assert 0.5 < kept.mean() < 0.9
    np.testing.assert_allclose(y[kept], x[kept] / 0.7)
    np.testing.assert_array_equal(Dropout(0.3).forward(x), x)  # eval: identity


def test_dropout_training_needs_generator():
    with pytest.raises(XbarrefError, match="generator"):
        Dropout(0.5).forward(np.ones((2, 3)), training=True)


def test_relu_gradient_at_zero_is_zero():
    layer = ReLU()
    layer.forward(np.array([[-1.0, 0.0, 2.0]]))
    np.testing.assert_array_equal(layer.backward(np.ones((1, 3))), [[0.0, 0.0, 1.0]])


def test_maxpool_tie_goes_to_first_maximum():
    layer = MaxPool2d(2)
    layer.forward(np.ones((1, 1, 2, 2)))
    np.testing.assert_array_equal(layer.backward(np.ones((1, 1, 1, 1))), [[[[1.0, 0.0], [0.0, 0.0]]]])


@pytest.mark.parametrize("kind", sorted(LAYER_KINDS))
def test_config_round_trip(kind):
    examples = {
        "conv2d": Conv2d(3, 4, (3, 2), stride=(2, 1), padding=(1, 0), bias=False),
        "linear": Linear(5, 2), "batchnorm2d": BatchNorm2d(3, eps=1e-3, momentum=0.2),
        "batchnorm1d": BatchNorm1d(4), "relu": ReLU(), "maxpool2d": MaxPool2d(3, 2, 1),
        "avgpool2d": AvgPool2d(2, count_include_pad=False), "global_avgpool": GlobalAvgPool(),
        "flatten": Flatten(), "add": Add(), "dropout": Dropout(0.25), "identity": Identity(),
    }
    layer = examples[kind]
    assert layer.kind == kind
    rebuilt = Layer.from_config(kind, layer.config())
    assert type(rebuilt) is type(layer) and rebuilt.config() == layer.config()
    assert {k: v.shape for k, v in rebuilt.params.items()} == {k: v.shape for k, v in layer.params.items()}
    json.dumps(layer.config())


class TestBadInput:
    def test_unknown_kind(self):
        with pytest.raises(XbarrefError, match="kind"):
            Layer.from_config("conv3d", {})

    def test_bad_config_key(self):
        with pytest.raises(XbarrefError, match="conv2d"):
            Layer.from_config("conv2d", dict(in_channels=1, out_channels=1, kernel_size=3, dilation=2))

    @pytest.mark.parametrize("kwargs", [dict(kernel_size=0), dict(kernel_size=(1, 2, 3)),
                                        dict(stride=0), dict(padding=-1), dict(kernel_size=1.5)])
    def test_bad_conv_hyperparameters(self, kwargs):
        args = dict(in_channels=2, out_channels=3, kernel_size=3) | kwargs
        with pytest.raises(XbarrefError):
            Conv2d(**args)

    def test_wrong_channels(self):
        with pytest.raises(XbarrefError, match="channels"):
            Conv2d(2, 3, 3).forward(np.ones((1, 3, 5, 5)))

    def test_input_smaller_than_kernel(self):
        with pytest.raises(XbarrefError, match="kernel"):
            Conv2d(1, 1, 5).forward(np.ones((1, 1, 3, 3)))

    def test_backward_before_forward(self):
        with pytest.raises(XbarrefError, match="before forward"):
            Linear(2, 2).backward(np.ones((1, 2)))

    def test_wrong_grad_shape(self):
        layer = Linear(2, 3)
        layer.forward(np.ones((4, 2)))
        with pytest.raises(XbarrefError, match="grad_y"):
            layer.backward(np.ones((4, 2)))

    def test_batchnorm_training_single_value(self):
        with pytest.raises(XbarrefError, match="more than one value"):
            BatchNorm1d(3).forward(np.ones((1, 3)), training=True)

    def test_add_shape_mismatch(self):
        with pytest.raises(XbarrefError, match="equal shape"):
            Add().forward(np.ones((1, 2)), np.ones((1, 3)))


@settings(max_examples=40)
@given(n=small, c=small, h=st.integers(1, 9), w=st.integers(1, 9), kh=small, kw=small,
       levels=st.integers(1, 4))
def test_tiled_maxpool_equals_the_general_path(n, c, h, w, kh, kw, levels):
    """Stride == kernel, no padding takes the strided-slice fast path; with few distinct
    values (many ties) its output and gradient equal the windowed argmax path's."""
    assume(h >= kh and w >= kw)
    rng = _rng(n, c, h, w, kh, kw, levels)
    x = rng.integers(0, levels, (n, c, h, w)).astype(np.float64)
    fast, general = MaxPool2d((kh, kw)), MaxPool2d((kh, kw))
    assert fast._tiled()
    general._tiled = lambda: False
    y_fast, y_general = fast.forward(x), general.forward(x)
    np.testing.assert_array_equal(y_fast, y_general)
    g = rng.standard_normal(y_fast.shape)
    np.testing.assert_array_equal(fast.backward(g), general.backward(g))
