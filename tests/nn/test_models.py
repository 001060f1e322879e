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


def _random_statistics(model, rng):
    for node in model.nodes:
        if node.layer.kind.startswith("batchnorm"):
            c = node.layer.num_features
            node.layer.params["weight"][...] = rng.standard_normal(c)
            node.layer.params["bias"][...] = rng.standard_normal(c)
            node.layer.buffers["running_mean"][...] = rng.standard_normal(c)
            node.layer.buffers["running_var"][...] = rng.random(c) + 0.1


@pytest.mark.parametrize("build, shape, pairs", [
    (lambda rng: fashion_cnn(rng=rng), (1, 28, 28), 4),
    (lambda rng: resnet(1, (2, 3), num_classes=3, input_shape=(3, 6, 6), rng=rng), (3, 6, 6), None),
], ids=["fashion_cnn", "resnet"])
def test_call_runs_batchnorm_and_relu_in_one_pass_with_the_same_bits(build, shape, pairs):
    """``model(x)`` fuses each batchnorm with the ReLU that alone reads it; the logits are
    those of ``model.forward(x)`` (layer by layer) bit for bit, also when a batchnorm
    parameter is NaN (then the two layers run one after the other)."""
    rng = np.random.default_rng(3)
    model = build(rng)
    _random_statistics(model, rng)
    fused = model._bn_relu_pairs()
    assert fused and all(model.nodes[j].inputs == [model.nodes[i].name] for i, j in fused.items())
    if pairs is not None:
        assert len(fused) == pairs
    else:   # a batchnorm read by a residual Add is not fused
        assert any(n.layer.kind.startswith("batchnorm") for i, n in enumerate(model.nodes) if i not in fused)
    x = rng.standard_normal((3,) + shape)
    for nan in (False, True):
        if nan:
            model.nodes[min(fused)].layer.params["weight"][0] = np.nan
        ref = model.forward(x)
        model.release()
        np.testing.assert_array_equal(model(x).view(np.uint64), ref.view(np.uint64))


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


# ----------------------------------------------------------------------------- pruned backward
def _bn_keys(model):
    return {k for node, layer in model.layers_of_kind("batchnorm1d", "batchnorm2d")
            for k in (f"{node}.weight", f"{node}.bias")}


def _set_bn_state(model, rng):
    """Non-trivial batchnorm parameters and statistics (so no gradient is trivially 0)."""
    for _, bn in model.layers_of_kind("batchnorm1d", "batchnorm2d"):
        bn.params["weight"][...] = rng.uniform(0.5, 1.5, bn.num_features)
        bn.params["bias"][...] = rng.normal(0, 0.2, bn.num_features)
        bn.buffers["running_mean"][...] = rng.normal(0, 0.3, bn.num_features)
        bn.buffers["running_var"][...] = rng.uniform(0.5, 2.0, bn.num_features)
    return model


def _pooled_residual_net(rng):
    """conv -> bn -> relu -> overlapping (non-tiled, padded) max pool -> residual block
    (two conv + bn on one branch, the identity on the other, Add) -> linear."""
    from xbarref.nn import BatchNorm2d, Conv2d, Flatten, MaxPool2d
    nodes = [Node("conv1", Conv2d(2, 3, 3, padding=1, bias=True)),
             Node("bn1", BatchNorm2d(3), ["conv1"]),
             Node("relu1", ReLU(), ["bn1"]),
             Node("pool", MaxPool2d(3, stride=2, padding=1), ["relu1"]),
             Node("block.conv1", Conv2d(3, 3, 3, padding=1, bias=False), ["pool"]),
             Node("block.bn1", BatchNorm2d(3), ["block.conv1"]),
             Node("block.relu", ReLU(), ["block.bn1"]),
             Node("block.conv2", Conv2d(3, 3, 3, padding=1, bias=True), ["block.relu"]),
             Node("add", Add(), ["block.conv2", "pool"]),
             Node("flatten", Flatten(), ["add"]),
             Node("fc", Linear(3 * 4 * 5, 4), ["flatten"])]
    model = Model(nodes, (2, 7, 9))
    for _, layer in model.layers_of_kind("conv2d", "linear"):
        layer.reset_parameters(rng)
        if layer.bias:
            layer.params["bias"][...] = rng.normal(0, 0.1, layer.params["bias"].shape)
    return _set_bn_state(model, rng)


def _fashion_mapped():
    """The Fashion CNN on an ideal chip with programming noise (a fixed noisy matrix)."""
    from xbarref.config import NoiseConfig, preset
    from xbarref.mapping import map_model
    model = _set_bn_state(fashion_cnn(rng=0), np.random.default_rng(3))
    hw = preset("ideal").replace(noise=NoiseConfig(1.0, 0.0, 0.0))
    return map_model(model, hw, np.random.default_rng(1), t_inference=0.0)


_PRUNED_CASES = {
    "fashion_cnn": (lambda: _set_bn_state(fashion_cnn(rng=0), np.random.default_rng(3)), (5, 1, 28, 28)),
    "fashion_cnn_mapped": (_fashion_mapped, (4, 1, 28, 28)),
    "tiny_resnet": (lambda: _set_bn_state(resnet(1, (2, 3), num_classes=3, input_shape=(3, 6, 6), rng=2),
                                          np.random.default_rng(4)), (3, 3, 6, 6)),
    "pooled_residual": (lambda: _pooled_residual_net(np.random.default_rng(5)), (3, 2, 7, 9)),
}


def _full_and_pruned(model, x, keys, training=False):
    """Gradients after a full backward, then (same forward) after a pruned one."""
    from xbarref.nn import softmax_cross_entropy
    labels = np.arange(x.shape[0]) % 3
    _, g = softmax_cross_entropy(model.forward(x, training=training), labels)
    g_input = model.backward(g)
    full = {k: v.copy() for k, v in model.named_grads().items()}
    _, g = softmax_cross_entropy(model.forward(x, training=training), labels)
    out = model.backward(g, keys=keys)
    return full, g_input, out, model.named_grads()


@pytest.mark.parametrize("case", sorted(_PRUNED_CASES))
def test_pruned_backward_gives_the_same_bn_gradients_bit_for_bit(case):
    build, shape = _PRUNED_CASES[case]
    model = build()
    x = np.random.default_rng(6).uniform(0, 1, shape)
    keys = _bn_keys(model)
    full, g_input, out, pruned = _full_and_pruned(model, x, keys)
    assert g_input is not None and g_input.shape == shape
    assert out is None                                   # the input gradient is not computed
    # only the batchnorm layers' gradients, no stale conv / linear gradient of the full pass
    assert set(pruned) == keys
    for node in model.nodes:
        if not node.layer.kind.startswith("batchnorm"):
            assert node.layer.grads == {}, node.name
    for k in keys:
        assert pruned[k] is not full[k]
        assert np.array_equal(pruned[k].view(np.uint64), full[k].view(np.uint64)), k
        assert np.any(pruned[k] != 0.0), k


@pytest.mark.parametrize("case", ["tiny_resnet", "pooled_residual"])
def test_pruned_backward_with_a_subset_of_the_parameters(case):
    """Keys deep in the network (a residual branch, the classifier), one key of a layer,
    every key: the requested gradients are the full backward's bits; the nodes that feed
    no requested parameter are never visited."""
    build, shape = _PRUNED_CASES[case]
    model = build()
    x = np.random.default_rng(7).uniform(0, 1, shape)
    names = list(model.named_parameters())
    bn_names = [k for k in names if ".bn" in k or k.startswith("bn")]
    for keys in ({names[-1]}, {bn_names[-1]}, {bn_names[1]}, set(names), {names[0]}):
        full, _, out, pruned = _full_and_pruned(model, x, keys, training=True)
        assert out is None
        holders = {k.rsplit(".", 1)[0] for k in keys}
        assert {k.rsplit(".", 1)[0] for k in pruned} == holders
        for k in pruned:     # every gradient of a holder layer (also those not asked for)
            assert np.array_equal(pruned[k].view(np.uint64), full[k].view(np.uint64)), (keys, k)
        assert keys <= set(pruned)


def test_pruned_backward_skips_the_layers_before_the_first_key():
    model = _PRUNED_CASES["fashion_cnn"][0]()
    x = np.random.default_rng(8).uniform(0, 1, (2, 1, 28, 28))
    from xbarref.nn import softmax_cross_entropy
    _, g = softmax_cross_entropy(model.forward(x), np.array([1, 2]))
    conv1 = model.nodes[0].layer
    conv2 = dict((n.name, n.layer) for n in model.nodes)["conv2"]
    calls = []

    def refuse(*args):
        raise AssertionError("conv1 visited")

    conv1.backward = conv1.backward_input = refuse
    conv2.backward = refuse                            # conv2 is asked for its input gradient only
    inner = conv2.backward_input
    conv2.backward_input = lambda gy: calls.append("conv2") or inner(gy)
    assert model.backward(g, keys=_bn_keys(model)) is None
    assert calls == ["conv2"]


def test_backward_input_is_the_backward_input_gradient():
    """Conv2d / Linear ``backward_input``: the bits of ``backward``'s input gradient, for
    eval-mode (im2col not kept) and training-mode forwards, and no gradient left."""
    from xbarref.nn import Conv2d
    rng = np.random.default_rng(9)
    for layer, shape in ((Conv2d(3, 4, (3, 2), stride=(2, 1), padding=(1, 0)), (2, 3, 7, 5)),
                         (Conv2d(2, 3, 1), (1, 2, 1, 6)), (Linear(5, 3), (4, 5)), (ReLU(), (2, 3))):
        if layer.params:
            layer.reset_parameters(rng)
        x = rng.standard_normal(shape)
        for training in (False, True):
            y = layer.forward(x, training)
            g = rng.standard_normal(y.shape)
            a = layer.backward(g)
            assert layer.grads or not layer.params
            b = layer.backward_input(g)
            assert a.shape == b.shape and a.strides == b.strides
            assert np.array_equal(a.view(np.uint64), b.view(np.uint64))
            if layer.params:
                assert layer.grads == {}


def test_pruned_backward_rejects_unknown_keys():
    model = _PRUNED_CASES["tiny_resnet"][0]()
    x = np.random.default_rng(0).uniform(0, 1, (2, 3, 6, 6))
    model.forward(x)
    with pytest.raises(XbarrefError, match="keys: not parameters"):
        model.backward(np.ones((2, 3)), keys={"bn1.weight", "nope.weight"})
