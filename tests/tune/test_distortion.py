"""Per-column gain + offset fit of the dot-product distortion."""

import numpy as np
import pytest

from xbarref.config import preset, DeviceConfig, FaultConfig
from xbarref.errors import XbarrefError
from xbarref.mapping import map_model
from xbarref.nn import digits_cnn
from xbarref.tune import column_fit, layer_distortion, layer_inputs
from xbarref.tune.study import bn_followed_layers


def test_pure_gain_and_offset_is_fully_absorbable(rng):
    y = rng.normal(size=(500, 7))
    gain, offset = rng.uniform(0.2, 3, 7), rng.normal(size=7)
    fit = column_fit(y, y * gain + offset)
    np.testing.assert_allclose(fit.gain, 1 / gain, rtol=1e-12)
    np.testing.assert_allclose(fit.offset, -offset / gain, rtol=1e-10, atol=1e-12)
    assert fit.nmse_total > 0.1
    assert fit.nmse_residual < 1e-25
    assert fit.absorbable == pytest.approx(1.0, abs=1e-12)


def test_independent_noise_is_not_absorbable(rng):
    y = rng.normal(size=(20000, 5))
    noise = 0.3 * rng.normal(size=y.shape)
    fit = column_fit(y, y + noise)
    # the best fit shrinks by var(y) / (var(y) + 0.09): residual 0.09 / 1.09 of var(y)
    assert fit.nmse_total == pytest.approx(0.09, rel=0.03)
    assert fit.nmse_residual == pytest.approx(0.09 / 1.09, rel=0.03)
    assert fit.absorbable == pytest.approx(1 - 1 / 1.09, abs=0.02)


def test_fit_residual_is_orthogonal_least_squares(rng):
    y = rng.normal(size=(300, 3))
    z = np.tanh(y) + 0.1 * rng.normal(size=y.shape)
    fit = column_fit(y, z)
    for j in range(3):
        A = np.stack([z[:, j], np.ones(300)], axis=1)
        (a, b), *_ = np.linalg.lstsq(A, y[:, j], rcond=None)
        assert fit.gain[j] == pytest.approx(a, rel=1e-10)
        assert fit.offset[j] == pytest.approx(b, rel=1e-9, abs=1e-12)


def test_bad_shapes_are_rejected():
    with pytest.raises(XbarrefError, match="y_hw"):
        column_fit(np.zeros((5, 2)), np.zeros((5, 3)))
    with pytest.raises(XbarrefError, match="y_hw"):
        column_fit(np.zeros((1, 2)), np.zeros((1, 2)))


def test_layer_distortion_on_hardware(rng):
    model = digits_cnn(widths=(3, 4, 4), rng=np.random.default_rng(0))
    x = rng.uniform(0, 1, (5, 1, 8, 8))
    inputs = layer_inputs(model, x, max_rows=100, rng=np.random.default_rng(0))
    assert list(inputs) == ["conv1", "conv2", "conv3", "fc"]
    assert inputs["conv1"][0].shape == (100, 9) and inputs["fc"][0].shape == (5, 16)
    ideal = layer_distortion(map_model(model, "ideal", np.random.default_rng(0)), inputs)
    for _, (y_ideal, y_hw, fit) in ideal.items():
        np.testing.assert_allclose(y_hw, y_ideal, rtol=1e-12, atol=1e-12)
        assert fit.nmse_total < 1e-24
    faulty = preset("ideal").replace(device=DeviceConfig(model="ideal"), faults=FaultConfig(0.1, 0.1))
    out = layer_distortion(map_model(model, faulty, np.random.default_rng(0)), inputs)
    assert all(fit.nmse_total > 1e-3 for *_, fit in out.values())
    assert bn_followed_layers(model) == {"conv1", "conv2", "conv3"}
