"""Losses, optimizers (vs PyTorch), parameter subsets, training reproducibility, inference."""

import numpy as np
import pytest

from xbarref.errors import XbarrefError
from xbarref.nn import (SGD, Adam, cosine_lr, digits_cnn, fit, iterate_minibatches, mlp,
                        run_inference, select_parameters, softmax_cross_entropy)

from .gradcheck import assert_close, numeric_grad


def _digits_subset(n_train=160, n_test=80):
    from xbarref.io.data import load_dataset
    data = load_dataset()
    return data.x_train[:n_train], data.y_train[:n_train], data.x_test[:n_test], data.y_test[:n_test]


def test_softmax_cross_entropy_value_and_gradient():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((5, 4)) * 3
    labels = np.array([0, 3, 1, 1, 2])
    loss, grad = softmax_cross_entropy(logits, labels)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert loss == pytest.approx(-np.mean(np.log(p[np.arange(5), labels])), rel=1e-12)
    idx = [(i, j) for i in range(5) for j in range(4)]
    assert_close([numeric_grad(lambda: softmax_cross_entropy(logits, labels)[0], logits, k) for k in idx],
                 [grad[k] for k in idx], "logits")
    big = softmax_cross_entropy(np.array([[1000.0, 0.0]]), np.array([1]))[0]
    assert big == pytest.approx(1000.0)


def test_loss_rejects_bad_labels():
    with pytest.raises(XbarrefError, match="labels"):
        softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 3]))


@pytest.mark.torch
@pytest.mark.parametrize("kind", ["sgd", "sgd_nesterov", "adam"])
def test_optimizers_match_torch(torch_module, kind):
    torch = torch_module
    rng = np.random.default_rng(1)
    p0 = rng.standard_normal((3, 4))
    ours = {"w": p0.copy()}
    theirs = torch.nn.Parameter(torch.from_numpy(p0.copy()))
    if kind == "adam":
        opt = Adam(ours, lr=0.01, betas=(0.8, 0.99), weight_decay=0.01)
        topt = torch.optim.Adam([theirs], lr=0.01, betas=(0.8, 0.99), weight_decay=0.01)
    else:
        nesterov = kind == "sgd_nesterov"
        opt = SGD(ours, lr=0.1, momentum=0.9, weight_decay=1e-3, nesterov=nesterov)
        topt = torch.optim.SGD([theirs], lr=0.1, momentum=0.9, weight_decay=1e-3, nesterov=nesterov)
    for _ in range(5):
        g = rng.standard_normal(p0.shape)
        opt.step({"w": g})
        theirs.grad = torch.from_numpy(g.copy())
        topt.step()
    np.testing.assert_allclose(ours["w"], theirs.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_select_parameters_and_subset_training():
    model = digits_cnn(widths=(4, 4, 4), rng=np.random.default_rng(0))
    bn = select_parameters(model, kinds=("batchnorm2d",), names=("weight", "bias"))
    assert sorted(bn) == sorted(f"bn{i}.{k}" for i in (1, 2, 3) for k in ("weight", "bias"))
    assert list(select_parameters(model, patterns=["fc.*"])) == ["fc.weight", "fc.bias"]
    before = {k: v.copy() for k, v in model.named_parameters().items()}
    x, y, _, _ = _digits_subset(64)
    fit(model, x, y, SGD(bn, lr=0.1, momentum=0.9), epochs=1, batch_size=32, rng=np.random.default_rng(1))
    after = model.named_parameters()
    for key in after:
        assert np.array_equal(before[key], after[key]) != (key in bn), key


def test_training_is_reproducible_and_learns():
    x, y, xt, yt = _digits_subset()

    def run(seed):
        rng = np.random.default_rng(seed)
        model = digits_cnn(widths=(4, 8, 8), rng=rng)
        opt = SGD(model.named_parameters(), lr=0.05, momentum=0.9)
        hist = fit(model, x, y, opt, epochs=4, batch_size=32, rng=rng, lr_schedule=cosine_lr(0.05, 4),
                   x_val=xt, y_val=yt)
        return model, hist

    a, hist = run(3)
    b, _ = run(3)
    c, _ = run(4)
    pa, pb, pc = a.named_parameters(), b.named_parameters(), c.named_parameters()
    assert all(np.array_equal(pa[k], pb[k]) for k in pa)
    assert all(np.array_equal(u, v) for u, v in zip(a.named_buffers().values(), b.named_buffers().values()))
    assert not np.array_equal(pa["conv1.weight"], pc["conv1.weight"])
    assert hist[-1]["loss"] < hist[0]["loss"]
    assert hist[-1]["val_accuracy"] > 0.5  # 10 classes: chance is 0.1


def test_adam_with_dropout_reproducible():
    x, y, _, _ = _digits_subset(96)

    def run():
        rng = np.random.default_rng(11)
        model = mlp((1, 8, 8), hidden=(16,), dropout=0.3, rng=rng)
        fit(model, x, y, Adam(model.named_parameters(), lr=1e-2), epochs=2, batch_size=32, rng=rng)
        return model.named_parameters()

    a, b = run(), run()
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_minibatches_cover_every_sample_once():
    batches = iterate_minibatches(103, 10, np.random.default_rng(0))
    assert len(batches) == 10 and min(len(b) for b in batches) >= 10
    np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(103))


def test_run_inference_counts_and_rejects_bad_labels():
    model = mlp((1, 8, 8), hidden=(8,), rng=np.random.default_rng(0))
    x, y, _, _ = _digits_subset(50)
    result = run_inference(model, x, y, batch_size=16)
    expected = model(x).argmax(axis=1)
    np.testing.assert_array_equal(result.predictions, expected)
    assert result.n_samples == 50 and result.n_correct == int((expected == y).sum())
    assert result.accuracy == pytest.approx(result.n_correct / 50) and result.samples_per_second > 0
    with pytest.raises(XbarrefError, match="y"):
        run_inference(model, x, y[:-1])
    with pytest.raises(XbarrefError, match="batch_size"):
        run_inference(model, x, y, batch_size=0)
