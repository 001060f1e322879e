"""Whole-model gradient checks, graph wiring and validation, zoo shapes and names."""

import numpy as np
import pytest

from xbarref.errors import XbarrefError
from xbarref.nn import (INPUT, Add, Linear, Model, Node, ReLU, digits_cnn, fashion_cnn, mlp, resnet,
                        resnet20, small_vgg)

from .gradcheck import check_model


def test_mlp_gradients_with_batchnorm_and_dropout():
    rng = np.random.default_rng(0)
    model = mlp((2, 3), hidden=(5, 4), num_classes=3, batchnorm=True, dropout=0.2, rng=rng,
                normalization=dict(mean=[0.5, -0.2], std=[2.0, 0.5]))

    def same_masks():
        for _, layer in model.layers_of_kind("dropout"):
            layer.generator = np.random.default_rng(9)

    check_model(model, rng.standard_normal((6, 2, 3)), rng, training=True, before_forward=same_masks)
    check_model(model, rng.standard_normal((6, 2, 3)), rng, training=False)


@pytest.mark.parametrize("training", [True, False])
def test_digits_cnn_gradients(training):
    rng = np.random.default_rng(1)
    model = digits_cnn(widths=(3, 4, 2), rng=rng, normalization=dict(mean=[0.3], std=[0.4]))
    for name, arr in model.named_buffers().items():
        if name.endswith("running_var"):
            arr[...] = rng.uniform(0.5, 2.0, arr.shape)
    check_model(model, rng.uniform(0, 1, (4, 1, 8, 8)), rng, training=training)



@pytest.mark.parametrize("training", [True, False])
def test_fashion_cnn_gradients(training):
    rng = np.random.default_rng(3)
    model = fashion_cnn(widths=(2, 3, 2), hidden=4, rng=rng,
                        normalization=dict(mean=[0.3], std=[0.4]))
    for name, arr in model.named_buffers().items():
        if name.endswith("running_var"):
            arr[...] = rng.uniform(0.5, 2.0, arr.shape)
    check_model(model, rng.uniform(0, 1, (3, 1, 28, 28)), rng, training=training)


def test_fashion_cnn_fills_tiles():
    """At least three crossbar layers of >= 128 rows x >= 64 columns; batchnorm right
    after every crossbar layer but the last; 28 x 28 inputs to 10 logits."""
    model = fashion_cnn(rng=0)
    sizes = {}
    for name, layer in model.layers_of_kind("conv2d", "linear"):
        w = layer.params["weight"]
        sizes[name] = (int(np.prod(w.shape[1:])), w.shape[0])  # (rows, columns)
    assert sizes == {"conv1": (9, 32), "conv2": (288, 64), "conv3": (576, 128),
                     "fc1": (512, 128), "fc2": (128, 10)}
    assert sum(r >= 128 and c >= 64 for r, c in sizes.values()) >= 3
    kinds = [node.layer.kind for node in model.nodes]
    for i, kind in enumerate(kinds[:-1]):
        if kind in ("conv2d", "linear"):
            assert kinds[i + 1].startswith("batchnorm")
    assert kinds[-1] == "linear"
    x = np.random.default_rng(0).uniform(0, 1, (2, 1, 28, 28))
    assert model(x).shape == (2, 10)
    a = fashion_cnn(rng=np.random.default_rng(5)).named_parameters()["conv2.weight"]
    b = fashion_cnn(rng=np.random.default_rng(5)).named_parameters()["conv2.weight"]
    np.testing.assert_array_equal(a, b)

@pytest.mark.parametrize("training", [True, False])
def test_tiny_resnet_gradients(training):
    rng = np.random.default_rng(2)
    model = resnet(1, (2, 3), num_classes=3, input_shape=(3, 6, 6), rng=rng)
    assert model.layers_of_kind("add") and any("downsample" in n for n in model.named_parameters())
    check_model(model, rng.standard_normal((3, 3, 6, 6)), rng, training=training)


def test_resnet20_structure_and_names():
    model = resnet20(rng=0)
    params = model.named_parameters()
    for name in ["conv1.weight", "bn1.weight", "bn1.bias", "layer1.0.conv1.weight",
                 "layer1.2.bn2.bias", "layer2.0.downsample.0.weight", "layer3.0.downsample.1.weight",
                 "layer3.2.conv2.weight", "fc.weight", "fc.bias"]:
        assert name in params, name
    assert params["layer3.2.conv2.weight"].shape == (64, 64, 3, 3)
    assert "layer2.1.bn1.running_var" in model.named_buffers()
    convs = model.layers_of_kind("conv2d")
    assert len(convs) == 19 + 2  # 19 3x3 convolutions and 2 1x1 shortcut convolutions
    assert len(model.layers_of_kind("add")) == 9
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32))
    assert model(x).shape == (2, 10)


def test_small_vgg_and_mlp_shapes():
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32))
    assert small_vgg(rng=0)(x).shape == (2, 10)
    assert mlp((64,), hidden=(), num_classes=4, rng=0)(np.ones((3, 64))).shape == (3, 4)


def test_builders_need_an_explicit_generator_or_seed():
    with pytest.raises(XbarrefError, match="rng"):
        mlp((3,), hidden=(2,), num_classes=2)
    with pytest.raises(XbarrefError, match="rng"):
        digits_cnn(rng=-1)
    a = mlp((3,), hidden=(2,), num_classes=2, rng=5).named_parameters()
    b = mlp((3,), hidden=(2,), num_classes=2, rng=np.random.default_rng(5)).named_parameters()
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_init_is_reproducible_and_he_scaled():
    a = resnet20(rng=np.random.default_rng(5)).named_parameters()
    b = resnet20(rng=np.random.default_rng(5)).named_parameters()
    c = resnet20(rng=np.random.default_rng(6)).named_parameters()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["conv1.weight"], c["conv1.weight"])
    w = a["layer3.0.conv2.weight"]
    assert abs(w.std() / np.sqrt(2.0 / (64 * 9)) - 1) < 0.05


def test_residual_wiring_sums_both_branches():
    lin = Linear(2, 2, bias=False)
    lin.params["weight"][...] = [[1.0, 2.0], [3.0, 4.0]]
    model = Model([Node("fc", lin, [INPUT]), Node("add", Add(), ["fc", INPUT])], input_shape=(2,))
    x = np.array([[1.0, -1.0]])
    np.testing.assert_allclose(model(x), x @ lin.params["weight"].T + x)
    model.forward(x)
    gx = model.backward(np.array([[1.0, 1.0]]))
    np.testing.assert_allclose(gx, [[1 + 1 + 3, 2 + 4 + 1]])


def test_add_of_one_value_with_itself():
    model = Model([Node("relu", ReLU()), Node("double", Add(), ["relu", "relu"])], input_shape=(3,))
    x = np.array([[1.0, -2.0, 3.0]])
    np.testing.assert_array_equal(model.forward(x), [[2.0, 0.0, 6.0]])
    np.testing.assert_array_equal(model.backward(np.ones((1, 3))), [[2.0, 0.0, 2.0]])


def test_normalization_applied_inside_call():
    lin = Linear(2, 1, bias=False)
    lin.params["weight"][...] = [[1.0, 1.0]]
    model = Model([Node("fc", lin)], input_shape=(2,), normalization=dict(mean=[1.0, 2.0], std=[2.0, 4.0]))
    np.testing.assert_allclose(model(np.array([[3.0, 6.0]])), [[1.0 + 1.0]])


def test_call_frees_backward_state():
    model = mlp((3,), hidden=(2,), num_classes=2, rng=0)
    model(np.ones((2, 3)))
    with pytest.raises(XbarrefError, match="model.forward"):
        model.backward(np.ones((2, 2)))


class TestGraphErrors:
    def test_duplicate_names(self):
        with pytest.raises(XbarrefError, match="duplicate"):
            Model([Node("a", ReLU()), Node("a", ReLU(), ["a"])], input_shape=(2,))

    def test_unknown_input(self):
        with pytest.raises(XbarrefError, match="'b'"):
            Model([Node("a", ReLU(), ["b"])], input_shape=(2,))

    def test_add_needs_two_inputs(self):
        with pytest.raises(XbarrefError, match="2 input"):
            Model([Node("a", Add(), [INPUT])], input_shape=(2,))

    def test_dangling_node(self):
        with pytest.raises(XbarrefError, match="never used"):
            Model([Node("a", ReLU()), Node("b", ReLU())], input_shape=(2,))

    def test_shared_layer(self):
        layer = ReLU()
        with pytest.raises(XbarrefError, match="same layer"):
            Model([Node("a", layer), Node("b", layer, ["a"])], input_shape=(2,))

    def test_bad_input_shape_and_values(self):
        model = mlp((3,), hidden=(2,), num_classes=2, rng=0)
        with pytest.raises(XbarrefError, match=r"expected shape \(N, 3\)"):
            model(np.ones((2, 4)))
        with pytest.raises(XbarrefError, match="NaN"):
            model(np.array([[1.0, np.nan, 0.0]]))

    def test_bad_normalization(self):
        with pytest.raises(XbarrefError, match="std"):
            Model([Node("a", ReLU())], input_shape=(2,), normalization=dict(mean=[0, 0], std=[1, 0]))
        with pytest.raises(XbarrefError, match="one per channel"):
            Model([Node("a", ReLU())], input_shape=(2,), normalization=dict(mean=[0, 0, 0], std=[1, 1, 1]))
