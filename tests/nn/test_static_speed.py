"""Inference speed measures that must change no number: the tiled max pooling without
an index in forward, batch splitting in run_inference, the allocator settings."""

import os
import subprocess
import sys

import numpy as np
import pytest

import xbarref._malloc as malloc
from xbarref.config import NoiseConfig, preset
from xbarref.errors import XbarrefError
from xbarref.mapping import map_model
from xbarref.nn import MaxPool2d, run_inference
from xbarref.nn.train import CACHE_BATCH, batch_invariant
from xbarref.nn.zoo import fashion_cnn


def _first_maximum(x, k):
    """Reference of the first-maximum rule: per window, the first element in row-major
    order that no later element exceeds strictly; returns (y, one-hot mask)."""
    n, c, h, w = x.shape
    ho, wo = h // k, w // k
    win = x[:, :, :ho * k, :wo * k].reshape(n, c, ho, k, wo, k).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, ho, wo, k * k)
    y = np.empty((n, c, ho, wo))
    mask = np.zeros(win.shape)
    for idx in np.ndindex(n, c, ho, wo):
        best = 0
        for j in range(1, k * k):
            if win[idx][j] > win[idx][best]:
                best = j
        y[idx] = win[idx][best]
        mask[idx + (best,)] = 1.0
    return y, mask.reshape(n, c, ho, wo, k, k).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, ho * k, wo * k)


@pytest.mark.parametrize("training", [False, True])
def test_tiled_maxpool_ties_signed_zeros_and_nan(training):
    rng = np.random.default_rng(4)
    x = rng.choice([-0.0, 0.0, 1.0, -1.0], size=(3, 2, 6, 6))
    x[0, 0, 0, 1] = np.nan        # NaN after the first element: ignored (a strict > never takes it)
    x[0, 1, 2, 2] = np.nan        # NaN as the first element: the output is NaN
    layer = MaxPool2d(2)
    y = layer.forward(x, training=training)
    ref, mask = _first_maximum(x, 2)
    assert np.array_equal(np.signbit(y), np.signbit(ref))
    assert np.array_equal(y, ref, equal_nan=True)
    assert np.isnan(y[0, 1, 1, 1]) and not np.isnan(y[0, 0, 0, 0])
    g = rng.standard_normal(y.shape)
    gx = layer.backward(g)
    expect = mask * np.repeat(np.repeat(g, 2, axis=2), 2, axis=3)
    assert np.array_equal(gx, expect)


def test_maxpool_backward_after_model_call_refused():
    layer = MaxPool2d(2)
    layer.forward(np.ones((1, 1, 4, 4)))
    layer.release()
    with pytest.raises(XbarrefError, match="backward called before forward"):
        layer.backward(np.ones((1, 1, 2, 2)))


def test_run_inference_splits_only_batch_invariant_models():
    model = fashion_cnn(rng=np.random.default_rng(3))
    rng = np.random.default_rng(0)
    x = rng.random((3 * CACHE_BATCH + 5, 1, 28, 28))
    y = rng.integers(0, 10, len(x))
    assert batch_invariant(model)
    static = map_model(model, preset("ideal").replace(noise=NoiseConfig(1.0, 0.0, 0.0)),
                       np.random.default_rng(1))
    noisy = map_model(model, preset("ideal").replace(noise=NoiseConfig(0.0, 1.0, 0.0)).replace(
        device=preset("default").device), np.random.default_rng(1))
    assert batch_invariant(static)
    assert not batch_invariant(noisy)
    for m in (model, static):
        whole = m(x).argmax(axis=1)
        assert np.array_equal(run_inference(m, x, y, batch_size=len(x)).predictions, whole)
        logits = np.concatenate([m(x[lo:lo + CACHE_BATCH]) for lo in range(0, len(x), CACHE_BATCH)])
        # with one BLAS thread (the study's workers) splitting a batch changes no bit; with
        # several, a multi-threaded product may block the long axis differently and change
        # the last bits (as any change of batch size does), never more
        np.testing.assert_allclose(logits, m(x), rtol=1e-12, atol=1e-12 * np.abs(logits).max())
    op = static.layers_of_kind("linear")[0][1].matmul
    op.record = []
    assert not batch_invariant(static)


def test_tune_allocator_is_a_safe_no_op_off_linux(monkeypatch):
    monkeypatch.setattr(malloc, "_applied", None)
    monkeypatch.setattr(malloc.sys, "platform", "darwin")
    assert malloc.tune_allocator() is False
    monkeypatch.setattr(malloc, "_applied", None)
    monkeypatch.setattr(malloc.sys, "platform", "linux")
    monkeypatch.setenv("MALLOC_TOP_PAD_", "0")          # the user's own settings win
    assert malloc.tune_allocator() is False
    assert malloc.tune_allocator() is False               # remembered


_SCRIPT = """
import sys, hashlib, numpy as np, warnings
warnings.simplefilter("ignore")
import xbarref._malloc as m
applied = m.tune_allocator() if sys.argv[1] == "on" else False
from xbarref.config import ADCConfig, DACConfig, NoiseConfig, preset
from xbarref.mapping import AnalogMatrix
rng = np.random.default_rng(0)
W = rng.standard_normal((300, 70))
x = np.asfortranarray(rng.standard_normal((40000, 300)))
hw = preset("ideal").replace(dac=DACConfig(bits=8), adc=ADCConfig(bits=8, range="calibrated"))
am = AnalogMatrix(W, hw, np.random.default_rng(2))
y = am.forward(x)
print(applied, hashlib.sha256(y.tobytes()).hexdigest())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc allocator settings are Linux-only")
def test_tune_allocator_changes_no_number():
    env = {k: v for k, v in os.environ.items() if k not in malloc._USER_VARS}
    on = subprocess.run([sys.executable, "-c", _SCRIPT, "on"], capture_output=True, text=True, env=env,
                        timeout=120, check=True).stdout.split()
    off = subprocess.run([sys.executable, "-c", _SCRIPT, "off"], capture_output=True, text=True, env=env,
                         timeout=120, check=True).stdout.split()
    assert on[0] == "True" and off[0] == "False"
    assert on[1] == off[1]
