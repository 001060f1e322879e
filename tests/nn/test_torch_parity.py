"""Every layer's forward and backward against PyTorch (float64), and batchnorm
train/eval semantics (batch statistics, running-statistics update, eval mode)."""

import numpy as np
import pytest

from xbarref.nn import (Add, AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, Dropout, Flatten,
                        GlobalAvgPool, Linear, MaxPool2d, ReLU)

pytestmark = pytest.mark.torch


def _copy_params(layer, module, torch):
    for name, arr in layer.params.items():
        getattr(module, name).data = torch.from_numpy(arr.copy())


def _compare(torch, layer, module, x, training=False, rtol=1e-10, atol=1e-12):
    """Forward and backward of ``layer`` vs ``module`` on ``x`` with a random upstream gradient."""
    rng = np.random.default_rng(x.size)
    module = module.double().train(training)
    _copy_params(layer, module, torch)
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    yt = module(xt)
    y = layer.forward(x, training=training)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=rtol, atol=atol)
    g = rng.standard_normal(y.shape)
    yt.backward(torch.from_numpy(g))
    gx = layer.backward(g)
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=rtol, atol=atol)
    for name in layer.params:
        np.testing.assert_allclose(layer.grads[name], getattr(module, name).grad.numpy(),
                                   rtol=rtol, atol=atol, err_msg=name)
    for name in layer.buffers:
        np.testing.assert_allclose(layer.buffers[name], getattr(module, name).numpy(),
                                   rtol=rtol, atol=atol, err_msg=name)


@pytest.mark.parametrize("cfg", [
    dict(in_channels=3, out_channels=5, kernel_size=3, stride=1, padding=1, bias=True),
    dict(in_channels=2, out_channels=4, kernel_size=(3, 2), stride=(2, 1), padding=(0, 1), bias=False),
    dict(in_channels=4, out_channels=2, kernel_size=1, stride=2, padding=0, bias=False),
    dict(in_channels=1, out_channels=3, kernel_size=5, stride=3, padding=2, bias=True),
])
def test_conv2d(torch_module, cfg):
    torch = torch_module
    rng = np.random.default_rng(1)
    layer = Conv2d(**cfg)
    for arr in layer.params.values():
        arr[...] = rng.standard_normal(arr.shape)
    x = rng.standard_normal((3, cfg["in_channels"], 9, 7))
    _compare(torch, layer, torch.nn.Conv2d(**cfg), x)


def test_linear(torch_module):
    torch = torch_module
    rng = np.random.default_rng(2)
    layer = Linear(6, 4)
    for arr in layer.params.values():
        arr[...] = rng.standard_normal(arr.shape)
    _compare(torch, layer, torch.nn.Linear(6, 4), rng.standard_normal((5, 6)))


@pytest.mark.parametrize("module_args,layer", [
    ((2,), MaxPool2d(2)),
    ((3, 2, 1), MaxPool2d(3, 2, 1)),
    (((2, 3), (1, 2)), MaxPool2d((2, 3), (1, 2))),
])
def test_maxpool(torch_module, module_args, layer):
    x = np.random.default_rng(3).standard_normal((2, 3, 7, 8))
    _compare(torch_module, layer, torch_module.nn.MaxPool2d(*module_args), x)


@pytest.mark.parametrize("kwargs", [
    dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=3, stride=2, padding=1, count_include_pad=False),
    dict(kernel_size=(3, 2), stride=(1, 2), padding=(1, 0)),
])
def test_avgpool(torch_module, kwargs):
    x = np.random.default_rng(4).standard_normal((2, 3, 7, 8))
    _compare(torch_module, AvgPool2d(**kwargs), torch_module.nn.AvgPool2d(**kwargs), x)


def test_relu_flatten_global_avgpool_dropout_eval(torch_module):
    torch = torch_module
    x = np.random.default_rng(5).standard_normal((2, 3, 4, 5))
    _compare(torch, ReLU(), torch.nn.ReLU(), x)
    _compare(torch, Flatten(), torch.nn.Flatten(), x)
    _compare(torch, Dropout(0.4), torch.nn.Dropout(0.4), x)
    _compare(torch, GlobalAvgPool(), torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()), x)


def test_add(torch_module):
    torch = torch_module
    rng = np.random.default_rng(6)
    a, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3, 4))
    at, bt = (torch.from_numpy(v.copy()).requires_grad_(True) for v in (a, b))
    layer = Add()
    np.testing.assert_array_equal(layer.forward(a, b), (at + bt).detach().numpy())
    g = rng.standard_normal(a.shape)
    (at + bt).backward(torch.from_numpy(g))
    ga, gb = layer.backward(g)
    np.testing.assert_array_equal(ga, at.grad.numpy())
    np.testing.assert_array_equal(gb, bt.grad.numpy())


@pytest.mark.parametrize("layer_cls,module_name,shape", [
    (BatchNorm2d, "BatchNorm2d", (4, 3, 5, 2)),
    (BatchNorm1d, "BatchNorm1d", (6, 3)),
    (BatchNorm1d, "BatchNorm1d", (4, 3, 5)),
])
def test_batchnorm_train_then_eval(torch_module, layer_cls, module_name, shape):
    """Several training steps (batch statistics, unbiased running-variance update with
    momentum), then eval mode (running statistics), forward and backward each time."""
    torch = torch_module
    rng = np.random.default_rng(7)
    layer = layer_cls(shape[1], eps=1e-4, momentum=0.3)
    module = getattr(torch.nn, module_name)(shape[1], eps=1e-4, momentum=0.3).double()
    layer.params["weight"][...] = rng.uniform(0.5, 1.5, shape[1])
    layer.params["bias"][...] = rng.standard_normal(shape[1])
    for step in range(3):
        x = rng.standard_normal(shape) * (step + 1) + step
        module.zero_grad()
        _compare(torch, layer, module, x, training=True)
    assert not np.allclose(layer.buffers["running_var"], 1.0)
    x = rng.standard_normal(shape) * 2 + 0.5
    module.zero_grad()
    _compare(torch, layer, module, x, training=False)
