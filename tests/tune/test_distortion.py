"""Per-column fit y_hw = g y + o + r of the dot-product distortion."""

import numpy as np
import pytest

from xbarref.config import DeviceConfig, FaultConfig, NoiseConfig, DriftConfig, preset
from xbarref.errors import XbarrefError
from xbarref.mapping import map_model
from xbarref.nn import digits_cnn
from xbarref.tune import column_fit, layer_distortion, layer_inputs
from xbarref.tune.distortion import propagated_distortion
from xbarref.tune.scenarios import bn_followed_layers


def test_pure_gain_and_offset_is_fully_absorbable(rng):
    y = rng.normal(size=(500, 7))
    gain, offset = rng.uniform(0.2, 3, 7), rng.normal(size=7)
    fit = column_fit(y, y * gain + offset)
    np.testing.assert_allclose(fit.gain, gain, rtol=1e-12)
    np.testing.assert_allclose(fit.offset, offset, rtol=1e-10, atol=1e-12)
    assert fit.nmse_total > 0.1
    assert fit.nonabsorbable < 1e-25
    assert fit.absorbable == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("sigma", [0.03, 0.3, 1.0, 3.0])
def test_signal_independent_noise_is_not_absorbable(rng, sigma):
    y = rng.normal(size=(20000, 5))
    noise = sigma * rng.normal(size=y.shape)
    fit = column_fit(y, y + noise)
    assert fit.nmse_total == pytest.approx(sigma ** 2, rel=0.03)
    assert fit.nonabsorbable == pytest.approx(sigma ** 2, rel=0.05)
    assert abs(fit.absorbable) < 0.02


def test_static_and_per_read_split(rng):
    y = rng.normal(size=(20000, 4))
    static = 0.2 * rng.normal(size=y.shape)           # the same on both reads
    r1, r2 = 0.1 * rng.normal(size=y.shape), 0.1 * rng.normal(size=y.shape)
    fit = column_fit(y, 2 * y + 1 + static + r1, 2 * y + 1 + static + r2)
    # in units of y: static 0.2^2 / 2^2, per read 0.1^2 / 2^2
    assert fit.nonabsorbable_per_read == pytest.approx(0.01 / 4, rel=0.05)
    assert fit.nonabsorbable_static == pytest.approx(0.04 / 4, rel=0.05)
    assert fit.nonabsorbable == pytest.approx(0.05 / 4, rel=0.05)


def test_fit_is_least_squares_of_hw_on_ideal(rng):
    y = rng.normal(size=(300, 3))
    z = np.tanh(y) + 0.1 * rng.normal(size=y.shape)
    fit = column_fit(y, z)
    for j in range(3):
        A = np.stack([y[:, j], np.ones(300)], axis=1)
        (a, b), *_ = np.linalg.lstsq(A, z[:, j], rcond=None)
        assert fit.gain[j] == pytest.approx(a, rel=1e-10)
        assert fit.offset[j] == pytest.approx(b, rel=1e-9, abs=1e-12)


def test_dead_column_counts_whole_signal(rng):
    y = rng.normal(size=(1000, 2))
    z = y.copy()
    z[:, 1] = 0.5
    fit = column_fit(y, z)
    assert fit.nonabsorbable == pytest.approx(np.var(y[:, 1]) / np.var(y, axis=0).sum(), rel=1e-9)


def test_bad_shapes_are_rejected():
    with pytest.raises(XbarrefError, match="y_hw"):
        column_fit(np.zeros((5, 2)), np.zeros((5, 3)))
    with pytest.raises(XbarrefError, match="y_ideal"):
        column_fit(np.zeros((1, 2)), np.zeros((1, 2)))


def test_layer_and_propagated_distortion_on_hardware(rng):
    model = digits_cnn(widths=(3, 4, 4), rng=np.random.default_rng(0))
    x = rng.uniform(0, 1, (5, 1, 8, 8))
    inputs = layer_inputs(model, x, max_rows=100, rng=np.random.default_rng(0))
    assert list(inputs) == ["conv1", "conv2", "conv3", "fc"]
    assert inputs["conv1"][0].shape == (100, 9) and inputs["fc"][0].shape == (5, 16)
    ideal = map_model(model, "ideal", np.random.default_rng(0))
    for out in (layer_distortion(ideal, inputs), propagated_distortion(ideal, inputs, x)):
        for _, (y_ideal, y_hw, fit) in out.items():
            np.testing.assert_allclose(y_hw, y_ideal, rtol=1e-12, atol=1e-12)
            assert fit.nmse_total < 1e-24
    faulty = preset("ideal").replace(device=DeviceConfig(model="ideal"), faults=FaultConfig(0.1, 0.1))
    out = layer_distortion(map_model(model, faulty, np.random.default_rng(0)), inputs)
    assert all(fit.nmse_total > 1e-3 for *_, fit in out.values())
    # static hardware: two reads agree, nothing per read
    assert all(fit.nonabsorbable_per_read == 0.0 for *_, fit in out.values())
    noisy = preset("ideal").replace(device=DeviceConfig(model="pcm"), noise=NoiseConfig(0.0, 3.0, 0.0,
                                    read_time_model="per_read"), drift=DriftConfig(0.0, 0.0, "none"))
    prop = propagated_distortion(map_model(model, noisy, np.random.default_rng(0)), inputs, x)
    assert all(fit.nonabsorbable_per_read > 0 for *_, fit in prop.values())
    assert bn_followed_layers(model) == {"conv1", "conv2", "conv3"}


def test_surrogate_errors_leave_the_chip_as_it_was(digits):
    # the study measures the surrogate on the chip it then evaluates: the check must not
    # change what the chip computes, and the same stream gives the same rows
    from xbarref.config import ParasiticsConfig, TileConfig
    from xbarref.tune import surrogate_errors

    model = digits_cnn(rng=np.random.default_rng(0))
    hw = preset("ideal").replace(
        tiles=TileConfig(32, 32), device=DeviceConfig(model="ideal", iv="sinh", sinh_k=4.0),
        parasitics=ParasiticsConfig(r_source=100.0, r_sink=100.0, r_wire_row=1.0, r_wire_col=1.0,
                                    reads="first_order"))
    chip = map_model(model, hw, np.random.default_rng(1))
    x = digits.x_test[:4]
    before = chip(x)
    inputs = layer_inputs(model, x, max_rows=8, rng=np.random.default_rng(2))
    rows = surrogate_errors(chip, inputs, 4, np.random.default_rng(3))
    assert rows and all(r["nmse"] < 1e-3 and r["reads"] == 4 for r in rows)
    np.testing.assert_array_equal(chip(x), before)
    again = surrogate_errors(chip, inputs, 4, np.random.default_rng(3))
    assert [{k: v for k, v in r.items() if not k.startswith("seconds")} for r in again] == \
        [{k: v for k, v in r.items() if not k.startswith("seconds")} for r in rows]
