"""float32 static reads (``AnalogMatrix.set_read_precision``): the plain product only, what
they change measured against float64, and every other read left in float64."""

import copy
import warnings

import numpy as np
import pytest

from xbarref.config import (ADCConfig, DACConfig, DeviceConfig, NoiseConfig, ParasiticsConfig,
                            TileConfig, preset)
from xbarref.devices import DAC
from xbarref.errors import XbarrefError
from xbarref.mapping import AnalogMatrix, map_model, set_read_precision
from xbarref.nn import digits_cnn
from xbarref.tune import layer_inputs, precision_errors

IDEAL = preset("ideal")
WIRED = IDEAL.replace(tiles=TileConfig(16, 16), parasitics=ParasiticsConfig(100.0, 100.0, 2.5, 2.5))
PCM = preset("default").replace(tiles=TileConfig(16, 16), dac=DACConfig(bits=0), adc=ADCConfig(bits=0),
                                noise=NoiseConfig(1.0, 0.0, 0.0))


def _pair(hw, W, seed=0):
    a = AnalogMatrix(W, hw, np.random.default_rng(seed))
    b = copy.deepcopy(a)
    b.set_read_precision("float32")
    return a, b


@pytest.mark.parametrize("hw", [IDEAL, WIRED, PCM], ids=["ideal", "wires", "pcm-programming"])
@pytest.mark.parametrize("order", ["C", "F"])
def test_float32_reads_agree_with_float64_to_single_precision(hw, order):
    rng = np.random.default_rng(1)
    W = rng.standard_normal((40, 13))
    a, b = _pair(hw, W)
    x = np.asarray(rng.standard_normal((57, 40)), order=order)
    y64, y32 = a.forward(x), b.forward(x)
    assert b.single_precision_reads() and not a.single_precision_reads()
    assert y32.dtype == np.float64 and y32.shape == y64.shape
    err = np.abs(y32 - y64).max() / np.abs(y64).max()
    assert 0 < err < 1e-5          # not the float64 read, and as close as float32 allows
    # the float64 read of the same chip is unchanged by the other's precision
    np.testing.assert_array_equal(a.forward(x), y64)


@pytest.mark.parametrize("hw", [IDEAL, WIRED, PCM], ids=["ideal", "wires", "pcm-programming"])
def test_plain_float32_reads_are_the_product_of_the_rounded_inputs(hw):
    """The plain float32 read leaves out the DAC's scaling to v_read / max |x| and back
    (exact inverses around the linear map): it is float32(x) @ float32(W_lin), also for
    inputs whose row maxima span 60 decades."""
    rng = np.random.default_rng(3)
    W = rng.standard_normal((40, 13))
    a, b = _pair(hw, W)
    x = rng.standard_normal((31, 40)) * 10.0 ** rng.integers(-30, 30, size=(31, 1))
    assert b.plain_single and not a.plain_single
    W32 = b.linear_map().astype(np.float32)
    np.testing.assert_array_equal(b.forward(x), (W32.T @ x.astype(np.float32).T).T.astype(np.float64))
    np.testing.assert_array_equal(b.forward_single(x.astype(np.float32)), b.forward(x))
    y64 = a.forward(x)
    scale = np.abs(x).max(axis=1, keepdims=True) * np.abs(a.linear_map()).sum(axis=0).max()
    assert (np.abs(b.forward(x) - y64) / scale).max() < 1e-6 * 40     # row by row


def test_plain_float32_reads_outside_the_float32_range_go_through_the_dac():
    """Inputs beyond float32 (or a float32 product that overflows) are read with the DAC's
    scaling (finite and single-precision close to float64); NaN / inf inputs are refused."""
    rng = np.random.default_rng(4)
    a, b = _pair(WIRED, rng.standard_normal((20, 7)))
    x = rng.standard_normal((9, 20))
    x[3] *= 1e300
    with warnings.catch_warnings():
        warnings.simplefilter("error")      # handled inside: no warning reaches the caller
        y32, y64 = b.forward(x), a.forward(x)
        assert b.forward_single(np.full((2, 20), 1e38, dtype=np.float32)) is None
    assert np.isfinite(y32).all()
    np.testing.assert_allclose(y32[3], y64[3], rtol=1e-4, atol=1e-6 * np.abs(y64[3]).max())
    big = np.full((2, 20), 1e38, dtype=np.float32)     # finite float32 inputs, overflowing sums
    assert b.forward_single(big) is None
    for bad in (np.nan, np.inf):
        x[5, 2] = bad
        with pytest.raises(XbarrefError, match="finite"):
            b.forward(x)
        with np.errstate(over="ignore", invalid="ignore"):
            assert b.forward_single(x.astype(np.float32)) is None
    with pytest.raises(XbarrefError, match="plain float32"):
        a.forward_single(big)
    with pytest.raises(XbarrefError, match="float32 array of shape"):
        b.forward_single(x)


@pytest.mark.parametrize("hw", [IDEAL, WIRED, PCM], ids=["ideal", "wires", "pcm-programming"])
def test_a_mapped_conv_builds_float32_inputs_with_the_same_reads(hw):
    """Conv2d on a plain float32 chip builds its im2col matrix in float32: the logits are
    bit for bit those of the float64 im2col matrix read by the same chip (the reads the
    precision check measures), channel-major and C-ordered inputs, padded or not."""
    model = digits_cnn(rng=np.random.default_rng(0))
    chip = map_model(model, hw.replace(tiles=TileConfig(32, 32)), np.random.default_rng(1),
                     t_inference=0.0)
    set_read_precision(chip, "float32")
    convs = [n.layer for n in chip.nodes if n.layer.kind == "conv2d"]
    assert convs and all(c.matmul.single_input for c in convs)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5,) + tuple(model.input_shape))
    for xi in (x, np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)):
        fused = chip(xi)
        for c in convs:     # the float64 im2col path of the same chip
            c.matmul.calibrating = False
            c.matmul.record = []
        unfused = chip(xi)
        for c in convs:
            assert c.matmul.record and c.matmul.record[0][0].dtype == np.float64
            c.matmul.record = None
        np.testing.assert_array_equal(fused, unfused)


FAST_PATHS = [
    IDEAL.replace(dac=DACConfig(bits=8)),
    IDEAL.replace(dac=DACConfig(bits=0, input_range=3.0)),
    IDEAL.replace(dac=DACConfig(bits=0, signed="two_phase")),
    IDEAL.replace(dac=DACConfig(bits=6, signed="two_phase", bit_serial=True)),
    IDEAL.replace(adc=ADCConfig(bits=8, range="calibrated")),
    preset("default").replace(tiles=TileConfig(16, 16), dac=DACConfig(bits=0), adc=ADCConfig(bits=0),
                              noise=NoiseConfig(0.0, 1.0, 0.0), parasitics=ParasiticsConfig()),
    IDEAL.replace(tiles=TileConfig(8, 8), device=DeviceConfig(model="ideal", iv="sinh", sinh_k=4.0),
                  parasitics=ParasiticsConfig(100.0, 100.0, 1.0, 1.0, reads="first_order")),
    preset("default").replace(tiles=TileConfig(8, 8), dac=DACConfig(bits=0), adc=ADCConfig(bits=0),
                              noise=NoiseConfig(0.0, 3.0, 0.0),
                              parasitics=ParasiticsConfig(100.0, 100.0, 1.0, 1.0, reads="first_order")),
]
FAST_IDS = ["dac8", "input-range", "two-phase", "bit-serial", "adc8", "read-noise", "sinh-surrogate",
            "read-noise-surrogate"]


@pytest.mark.parametrize("hw", FAST_PATHS, ids=FAST_IDS)
def test_every_fast_read_agrees_with_float64_to_single_precision(hw):
    """Converters, per-read noise (the same draws), the sinh series: the float32 read is
    the float64 read up to float32 rounding (an ADC code may flip where a current lies
    within that rounding of a code boundary: rare, counted)."""
    rng = np.random.default_rng(2)
    W = rng.standard_normal((20, 6))
    a, b = _pair(hw, W, seed=3)
    x = rng.standard_normal((300, 20))
    if hw.dac.signed == "two_phase":
        x = np.abs(x) * np.sign(rng.standard_normal(x.shape))
    assert b.single_precision_reads() and not a.single_precision_reads()
    y64, y32 = a.forward(x), b.forward(x)
    peak = np.abs(y64).max()
    off = np.abs(y32 - y64) > 1e-5 * peak
    if hw.adc.bits:
        # quantized codes: equal unless a float32 current crossed a code boundary
        assert off.mean() < 0.01
    else:
        assert 0 < np.abs(y32 - y64).max() and not off.any()


@pytest.mark.parametrize("hw", [
    preset("default").replace(tiles=TileConfig(8, 8), dac=DACConfig(bits=0), adc=ADCConfig(bits=0),
                              noise=NoiseConfig(0.0, 1.0, 0.0), parasitics=ParasiticsConfig(100.0, 100.0, 1.0, 1.0)),
    IDEAL.replace(tiles=TileConfig(8, 8), device=DeviceConfig(model="ideal", iv="sinh", sinh_k=4.0),
                  parasitics=ParasiticsConfig(100.0, 100.0, 1.0, 1.0)),
], ids=["read-noise-circuits", "sinh-newton"])
def test_reads_solved_as_circuits_stay_float64_bit_for_bit(hw):
    rng = np.random.default_rng(2)
    W = rng.standard_normal((10, 4))
    a, b = _pair(hw, W, seed=3)
    x = np.abs(rng.standard_normal((3, 10)))
    assert not b.single_precision_reads()
    np.testing.assert_array_equal(b.forward(x), a.forward(x))


def test_a_new_session_reads_its_own_matrix_in_float32():
    rng = np.random.default_rng(4)
    W = rng.standard_normal((30, 8))
    a, b = _pair(PCM, W, seed=5)
    x = rng.standard_normal((11, 30))
    before = b.forward(x)
    for m in (a, b):
        m.set_time(86400.0, rng=np.random.default_rng(6))     # drift: other conductances
    y64, y32 = a.forward(x), b.forward(x)
    assert b.single_precision_reads()
    assert 0 < np.abs(y32 - y64).max() / np.abs(y64).max() < 1e-5
    assert np.abs(before - y32).max() / np.abs(y64).max() > 1e-4   # not the old session's matrix
    c = copy.deepcopy(b)
    assert c.read_precision == "float32"
    np.testing.assert_array_equal(c.forward(x), y32)


def test_float32_volts_are_the_float64_volts_rounded():
    rng = np.random.default_rng(7)
    dac = DAC(bits=0)
    for order in ("C", "F", "strided"):
        x = rng.standard_normal((33, 17)) * 10.0 ** rng.integers(-30, 30)
        if order == "F":
            x = np.asfortranarray(x)
        elif order == "strided":
            x = np.repeat(x, 2, axis=1)[:, ::2]
        V32, s32 = dac.volts_float32(x)
        V64 = dac.phases(x)[0][0][0]
        assert V32.dtype == np.float32
        np.testing.assert_array_equal(V32, V64.astype(np.float32))
        np.testing.assert_array_equal(s32, dac.phases(x)[1])
        for quantized in (DAC(bits=8), DAC(bits=0)):    # the phases in float32, the same rounding
            (V, c), = quantized.phases(x, dtype=np.float32)[0]
            (V64, _), = quantized.phases(x)[0]
            # float32 from the compiled pass (C- and F-ordered inputs), else float64
            assert V.dtype == (np.float64 if order == "strided" else np.float32) and c == 1.0
            assert V.flags.f_contiguous or order != "F"
            np.testing.assert_array_equal(V.astype(np.float32), V64.astype(np.float32))
    with pytest.raises(XbarrefError, match="bits = 0"):
        DAC(bits=8).volts_float32(np.ones((2, 3)))


def test_precision_is_checked_and_reported_per_layer():
    model = digits_cnn(rng=np.random.default_rng(0))
    with pytest.raises(XbarrefError, match="read_precision"):
        AnalogMatrix(np.ones((3, 2)), IDEAL, np.random.default_rng(0)).set_read_precision("float16")
    chip = map_model(model, PCM, np.random.default_rng(1))
    x = np.random.default_rng(8).random((6,) + tuple(model.input_shape))
    inputs = layer_inputs(model, x, max_rows=64, rng=np.random.default_rng(2))
    assert precision_errors(chip, inputs, 64) == []          # float64 chip: nothing to measure
    before = chip(x)
    set_read_precision(chip, "float32")
    rows = precision_errors(chip, inputs, 64)
    assert {r["layer"] for r in rows} == set(inputs)
    for r in rows:
        assert 0 < r["nmse"] < 1e-10 and r["share_of_distortion"] < 1e-6 and r["reads"] <= 64
        assert r["nmse_exact_vs_ideal"] > 1e-6             # programming noise: a real distortion
    after = chip(x)
    assert np.abs(after - before).max() < 1e-4 * np.abs(before).max()
    assert all(m.read_precision == "float32" for m in
               (layer.matmul.matrix for _, layer in chip.layers_of_kind("conv2d", "linear")))


def test_the_check_on_a_noisy_chip_uses_the_same_draws_and_changes_nothing():
    model = digits_cnn(rng=np.random.default_rng(0))
    hw = FAST_PATHS[FAST_IDS.index("read-noise-surrogate")]
    chip = set_read_precision(map_model(model, hw, np.random.default_rng(1)), "float32")
    twin = copy.deepcopy(chip)
    x = np.random.default_rng(8).random((4,) + tuple(model.input_shape))
    inputs = layer_inputs(model, x, max_rows=32, rng=np.random.default_rng(2))
    rows = precision_errors(chip, inputs, 32)
    assert {r["layer"] for r in rows} == set(inputs)
    # per-read noise with different draws would differ by the noise itself (share ~ 1)
    assert all(r["share_of_distortion"] < 1e-6 for r in rows)
    np.testing.assert_array_equal(chip(x), twin(x))      # the chip's own draws: as before
