"""map_model / AnalogMatmul: the DNN engine's matmul seam on simulated hardware."""

import numpy as np
import pytest

from xbarref.config import NoiseConfig, ParasiticsConfig, TileConfig, preset
from xbarref.errors import XbarrefError
from xbarref.mapping import AnalogMatmul, map_model, set_inference_time
from xbarref.nn import digits_cnn, mlp


def _cnn():
    return digits_cnn(rng=np.random.default_rng(0))


def test_ideal_hardware_reproduces_the_model_cnn():
    model = _cnn()
    x = np.random.default_rng(1).normal(size=(3, 1, 8, 8))
    mapped = map_model(model, "ideal", np.random.default_rng(0))
    ref = model(x)
    np.testing.assert_allclose(mapped(x), ref, rtol=0, atol=1e-12 * np.abs(ref).max())
    kinds = [type(layer.matmul).__name__ for _, layer in mapped.layers_of_kind("conv2d", "linear")]
    assert kinds and all(k == "AnalogMatmul" for k in kinds)
    # the original model is untouched
    assert all(type(layer.matmul).__name__ == "DigitalMatmul"
               for _, layer in model.layers_of_kind("conv2d", "linear"))


def test_ideal_backward_matches_digital():
    model = mlp((20,), hidden=(17,), num_classes=5, rng=np.random.default_rng(0))
    x = np.random.default_rng(1).normal(size=(4, 20))
    g = np.random.default_rng(2).normal(size=(4, 5))
    mapped = map_model(model, preset("ideal").replace(tiles=TileConfig(8, 8)), np.random.default_rng(0))
    model.forward(x, training=False)
    ref = model.backward(g)
    mapped.forward(x, training=False)
    out = mapped.backward(g)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-12 * np.abs(ref).max())


def test_same_seed_bit_identical_with_noise():
    model = mlp((20,), hidden=(17,), num_classes=5, rng=np.random.default_rng(0))
    x = np.random.default_rng(1).normal(size=(4, 20))
    hw = preset("default").replace(tiles=TileConfig(8, 8), parasitics=ParasiticsConfig(0, 0, 0.35, 0.35))
    a = map_model(model, hw, np.random.default_rng(5))(x)
    b = map_model(model, hw, np.random.default_rng(5))(x)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, model(x), rtol=1e-6)


def test_changed_weight_is_rejected():
    model = mlp((6,), hidden=(4,), num_classes=3, rng=np.random.default_rng(0))
    mapped = map_model(model, "ideal", np.random.default_rng(0))
    name, layer = mapped.layers_of_kind("linear")[0]
    layer.params["weight"] += 1.0
    with pytest.raises(XbarrefError, match="map the model again"):
        mapped(np.ones((1, 6)))


def test_bad_arguments():
    with pytest.raises(XbarrefError, match="model"):
        map_model(object(), "ideal", np.random.default_rng(0))
    with pytest.raises(XbarrefError, match="rng"):
        map_model(_cnn(), "ideal", rng=1)
    with pytest.raises(XbarrefError, match="matrix"):
        AnalogMatmul(np.ones((2, 2)))


def test_top_level_reexport():
    import xbarref

    assert xbarref.map_model is map_model


def test_set_inference_time_on_a_model():
    model = mlp((20,), hidden=(17,), num_classes=5, rng=np.random.default_rng(0))
    x = np.random.default_rng(1).normal(size=(4, 20))
    hw = preset("default").replace(noise=NoiseConfig(1.0, 0.0, 0.0))
    mapped = map_model(model, hw, np.random.default_rng(2))
    y0 = mapped(x)
    assert set_inference_time(mapped, 86400.0) is mapped
    assert not np.array_equal(mapped(x), y0)
    with pytest.raises(XbarrefError, match="map_model"):
        set_inference_time(model, 1.0)
