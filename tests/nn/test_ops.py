"""The pluggable matrix-product operator is used by every Conv2d / Linear, forward and backward."""

import numpy as np

from xbarref.nn import DigitalMatmul, MatmulOp, resnet, softmax_cross_entropy


class RecordingMatmul(MatmulOp):
    """Exact product that records its calls and can scale the result."""

    def __init__(self, log, name, scale=1.0):
        self.log, self.name, self.scale = log, name, scale
        self._inner = DigitalMatmul()

    def forward(self, x2d, w2d):
        self.log.append(("forward", self.name, x2d.shape, w2d.shape))
        return self.scale * self._inner.forward(x2d, w2d)

    def backward(self, grad_y2d):
        self.log.append(("backward", self.name, grad_y2d.shape))
        return self.scale * self._inner.backward(grad_y2d)


def _model():
    return resnet(1, (2, 3), num_classes=4, input_shape=(3, 6, 6), rng=np.random.default_rng(0))


def test_custom_op_called_for_every_conv_and_linear_forward_and_backward():
    model = _model()
    x = np.random.default_rng(1).standard_normal((2, 3, 6, 6))
    reference = model(x)
    names = [name for name, _ in model.layers_of_kind("conv2d", "linear")]
    assert len(names) == 7
    log = []
    for name, layer in model.layers_of_kind("conv2d", "linear"):
        layer.matmul = RecordingMatmul(log, name)
    logits = model.forward(x)
    np.testing.assert_allclose(logits, reference)
    assert sorted(entry[1] for entry in log if entry[0] == "forward") == sorted(names)
    conv1 = next(entry for entry in log if entry[1] == "conv1")
    assert conv1[2] == (2 * 6 * 6, 3 * 3 * 3) and conv1[3] == (27, 2)
    log.clear()
    model.backward(softmax_cross_entropy(logits, np.array([0, 3]))[1])
    assert sorted(entry[1] for entry in log if entry[0] == "backward") == sorted(names)


def test_custom_op_result_is_what_the_layer_uses():
    """Scaling the product of one layer changes the logits; the input gradient of the
    whole model follows the operator's backward."""
    model = _model()
    x = np.random.default_rng(2).standard_normal((2, 3, 6, 6))
    base = model.forward(x)
    g0 = model.backward(np.ones_like(base))
    _, fc = model.layers_of_kind("linear")[0]
    fc.matmul = RecordingMatmul([], "fc", scale=2.0)
    scaled = model.forward(x)
    np.testing.assert_allclose(scaled - fc.params["bias"], 2.0 * (base - fc.params["bias"]))
    g1 = model.backward(np.ones_like(base))
    np.testing.assert_allclose(g1, 2.0 * g0)
