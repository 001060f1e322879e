"""The fast static read path gives the numbers of the plain formulas: the compiled DAC
pass, the finiteness check folded into it, skipped all-zero DAC phases, and batch
invariance (splitting a batch changes no output)."""

import numpy as np
import pytest

from xbarref.config import (
    ADCConfig,
    DACConfig,
    DeviceConfig,
    NoiseConfig,
    ParasiticsConfig,
    TileConfig,
    preset,
)
from xbarref.devices import DAC
from xbarref.errors import XbarrefError
from xbarref.mapping import AnalogMatrix

IDEAL = preset("ideal")


def _bits(a):
    return np.ascontiguousarray(a).view(np.int64)


def _reference_bipolar(dac, x):
    """The DAC voltages by the plain NumPy formulas of the DAC docstring."""
    if dac.input_range is None:
        s = np.max(np.abs(x), axis=1)
        x_scale = np.where(s > 0, s, 1.0)
    else:
        x_scale = np.full(x.shape[0], dac.input_range)
    with np.errstate(invalid="ignore"):   # inf / inf: the NaN the DAC gives too
        u = np.clip(x / x_scale[:, None], -1.0, 1.0)
    n = dac.levels
    V = u * dac.v_read if n is None else np.rint(u * n) * (dac.v_read / n)
    return V, x_scale


@pytest.mark.parametrize("bits", [0, 2, 8, 13])
@pytest.mark.parametrize("input_range", [None, 0.5, 4.0])
@pytest.mark.parametrize("order", ["C", "F", "strided"])
@pytest.mark.parametrize("inputs", [23, 601])   # 601: several blocks of the compiled F-order pass
def test_bipolar_dac_bit_identical_to_the_formula(bits, input_range, order, inputs):
    rng = np.random.default_rng(bits + 7)
    dac = DAC(bits=bits, input_range=input_range)
    for trial in range(6):
        x = rng.standard_normal((inputs, 41)) * 10.0 ** rng.integers(-300, 300)
        if trial % 2:
            x[:, ::3] = rng.integers(-2, 3, (inputs, 14)) * 0.5   # rint ties at 8 bits and above
        x[2] = 0.0                         # a row of zeros: scale 1
        x[4, :5] = -0.0
        x[5] = 5e-324                      # subnormal rows
        x[6, 3] = -5e-324
        x[7] = rng.integers(-3, 4, 41)     # exact ties with max |x|
        if order == "F":
            x = np.asfortranarray(x)
        elif order == "strided":
            x = np.repeat(x, 2, axis=1)[:, ::2]
        (V, c), = dac.phases(x)[0]
        x_scale = dac.phases(x)[1]
        R, r_scale = _reference_bipolar(dac, x)
        assert c == 1.0
        assert np.array_equal(_bits(V), _bits(R)), "voltages differ in some bit"
        assert np.array_equal(x_scale, r_scale)
        assert np.abs(V).max() <= dac.v_read
        if order != "strided":
            assert V.flags.f_contiguous == x.flags.f_contiguous and V.flags.c_contiguous == x.flags.c_contiguous


def test_per_input_scaling_never_exceeds_one_without_the_clip():
    rng = np.random.default_rng(3)
    for _ in range(50):
        x = rng.standard_normal((64, 9)) * 10.0 ** rng.uniform(-308, 308)
        s = np.max(np.abs(x), axis=1)
        u = x / np.where(s > 0, s, 1.0)[:, None]
        assert np.abs(u).max() <= 1.0


@pytest.mark.parametrize("input_range", [None, 2.0])
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_inputs_refused(input_range, order, bad):
    W = np.random.default_rng(0).standard_normal((6, 3))
    am = AnalogMatrix(W, IDEAL.replace(dac=DACConfig(bits=8, input_range=input_range or 0.0)),
                      np.random.default_rng(0))
    x = np.asarray(np.ones((5, 6)), order=order)
    x[3, 2] = bad
    with pytest.raises(XbarrefError, match="inputs must be finite"):
        am.forward(x)
    # the DAC alone (no check asked) still maps a NaN input row as the formula does
    dac = DAC(bits=0, input_range=input_range)
    V = dac.phases(x)[0][0][0]
    R = _reference_bipolar(dac, x)[0]
    assert np.array_equal(np.isnan(V), np.isnan(R))
    assert np.array_equal(V[~np.isnan(V)], R[~np.isnan(R)])


def _with_all_phases(am, x):
    """Reference read of ``am`` that never skips a phase."""
    phases, x_scale = am.dac.phases(x)
    P = x.shape[0]
    snap = am._snap
    y = am._forward_fast(phases, snap, P) if snap.fast else am._forward_circuit(phases, snap, P)
    return y * (x_scale / am.dac.v_read)[:, None] * am.alpha


@pytest.mark.parametrize("hw", [
    IDEAL.replace(dac=DACConfig(bits=0, signed="two_phase"), adc=ADCConfig(bits=0)),
    IDEAL.replace(dac=DACConfig(bits=6, signed="two_phase"), adc=ADCConfig(bits=8, range="calibrated")),
    IDEAL.replace(dac=DACConfig(bits=4, signed="two_phase", bit_serial=True),
                  adc=ADCConfig(bits=8, range="calibrated")),
    preset("default").replace(tiles=TileConfig(5, 4), dac=DACConfig(bits=6, signed="two_phase"),
                              parasitics=ParasiticsConfig(10.0, 5.0, 2.5, 2.5), noise=NoiseConfig(1.0, 0.0, 0.0)),
    IDEAL.replace(tiles=TileConfig(5, 4), dac=DACConfig(bits=0, signed="two_phase"), adc=ADCConfig(bits=0),
                  device=DeviceConfig(model="ideal", iv="sinh", sinh_k=4.0),
                  parasitics=ParasiticsConfig(100.0, 10.0, 2.5, 2.5)),
], ids=["two_phase", "two_phase_adc", "bit_serial", "wires", "sinh_wires"])
def test_all_zero_phases_skipped_exactly(hw):
    rng = np.random.default_rng(11)
    W = rng.standard_normal((9, 7))
    am = AnalogMatrix(W, hw, np.random.default_rng(1))
    x = np.maximum(rng.standard_normal((6, 9)), 0.0)   # ReLU output: negative phase all 0 V
    x[:, 4] = 0.0
    phases = am.dac.phases(x)[0]
    assert any(not V.any() for V, _ in phases), "the case must have an all-zero phase"
    y = am.forward(x)
    ref = _with_all_phases(am, x)
    assert np.array_equal(y, ref)
    assert np.array_equal(am.forward(np.zeros((3, 9))), np.zeros((3, 7)))


def test_noisy_reads_are_not_skipped():
    hw = IDEAL.replace(device=DeviceConfig(model="pcm"), noise=NoiseConfig(0.0, 1.0, 0.0),
                       dac=DACConfig(bits=0, signed="two_phase"), adc=ADCConfig(bits=0))
    W = np.random.default_rng(0).standard_normal((8, 3))
    x = np.abs(np.random.default_rng(1).standard_normal((4, 8)))
    a = AnalogMatrix(W, hw, np.random.default_rng(5))
    b = AnalogMatrix(W, hw, np.random.default_rng(5))
    assert a.per_read
    assert np.array_equal(a.forward(x), _with_all_phases(b, x))   # the same draws, in the same order
    assert not a.batch_invariant


def test_batch_invariance_flags():
    W = np.random.default_rng(0).standard_normal((8, 3))
    assert AnalogMatrix(W, IDEAL, np.random.default_rng(0)).batch_invariant
    sinh = IDEAL.replace(device=DeviceConfig(model="ideal", iv="sinh", sinh_k=4.0),
                         parasitics=ParasiticsConfig(100.0, 10.0, 1.0, 1.0))
    assert not AnalogMatrix(W, sinh, np.random.default_rng(0)).batch_invariant
