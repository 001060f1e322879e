"""Quantizers, DAC and ADC."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from xbarref.devices import ADC, DAC, quantize_conductance, quantize_uniform
from xbarref.errors import XbarrefError

floats = st.floats(-1e-4, 1e-4, allow_nan=False)


class TestQuantizeUniform:
    @given(arrays(np.float64, 30, elements=floats), st.integers(1, 10))
    def test_idempotent_and_monotonic(self, x, bits):
        q = quantize_conductance(x, 0.0, 25e-6, bits)
        np.testing.assert_array_equal(quantize_conductance(q, 0.0, 25e-6, bits), q)
        order = np.argsort(x, kind="stable")
        assert np.all(np.diff(q[order]) >= 0)

    def test_levels_and_ends(self):
        q = quantize_uniform(np.linspace(-1, 2, 1001), 0.0, 1.0, 2)
        np.testing.assert_allclose(np.unique(q), [0, 1 / 3, 2 / 3, 1], rtol=0, atol=1e-15)

    def test_off_is_identity(self):
        x = np.array([-3.0, 0.1, 7.0])
        np.testing.assert_array_equal(quantize_uniform(x, 0, 1, 0), x)


class TestDAC:
    @pytest.mark.parametrize("signed", ["bipolar", "two_phase"])
    @pytest.mark.parametrize("bits", [2, 3, 8])
    def test_bit_serial_equals_parallel(self, signed, bits):
        x = np.random.default_rng(0).normal(size=(6, 9))
        a = DAC(bits, signed=signed).quantize(x)
        b = DAC(bits, signed=signed, bit_serial=True).quantize(x)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-14)

    @given(arrays(np.float64, (3, 7), elements=st.floats(-5, 5)), st.integers(2, 9),
           st.sampled_from(["bipolar", "two_phase"]))
    def test_quantize_idempotent_and_monotonic(self, x, bits, signed):
        dac = DAC(bits, signed=signed, input_range=5.0)
        q = dac.quantize(x)
        np.testing.assert_allclose(dac.quantize(q), q, rtol=0, atol=1e-12)
        flat, qf = x.ravel(), q.ravel()
        order = np.argsort(flat, kind="stable")
        assert np.all(np.diff(qf[order]) >= -1e-12)

    def test_voltages_within_range_and_levels(self):
        x = np.random.default_rng(1).normal(size=(5, 11))
        phases, _ = DAC(4, v_read=0.3).phases(x)
        (V, c), = phases
        assert np.max(np.abs(V)) <= 0.3 + 1e-15
        assert len(np.unique(np.round(V / 0.3 * 7, 9))) <= 15

    def test_two_phase_uses_unipolar_voltages(self):
        x = np.random.default_rng(2).normal(size=(4, 5))
        phases, _ = DAC(6, signed="two_phase").phases(x)
        assert len(phases) == 2
        assert all(np.all(V >= 0) for V, _ in phases)

    def test_off_is_exact(self):
        x = np.random.default_rng(3).normal(size=(4, 5))
        np.testing.assert_allclose(DAC(0).quantize(x), x, rtol=1e-15, atol=0)

    def test_zero_input_row(self):
        q = DAC(8).quantize(np.zeros((2, 3)))
        np.testing.assert_array_equal(q, 0.0)

    def test_bad_arguments(self):
        with pytest.raises(XbarrefError, match="bits"):
            DAC(1)
        with pytest.raises(XbarrefError, match="signed"):
            DAC(4, signed="unipolar")
        with pytest.raises(XbarrefError, match="bits"):
            DAC(0, bit_serial=True)
        with pytest.raises(XbarrefError, match="v_read"):
            DAC(4, v_read=-1)


class TestADC:
    def test_saturates_at_i_max(self):
        adc = ADC(8)
        I = np.array([-1.0, -2e-6, -1e-6, 0.0, 0.5e-6, 1e-6, 3e-6, 1.0])
        out = adc.convert(I, 1e-6)
        assert out[0] == -1e-6 and out[-1] == 1e-6 and out[-2] == 1e-6 and out[1] == -1e-6
        assert out[5] == pytest.approx(1e-6, rel=1e-15)

    def test_step_and_per_column_range(self):
        adc = ADC(4)  # 7 steps each side
        I = np.array([[0.26, 0.26]])
        out = adc.convert(I, np.array([1.0, 2.0]))
        np.testing.assert_allclose(out, [[2 / 7, 2 / 7]], rtol=1e-15)

    @given(arrays(np.float64, 20, elements=st.floats(-3, 3)), st.integers(2, 12))
    def test_idempotent_and_monotonic(self, I, bits):
        adc = ADC(bits)
        q = adc.convert(I, 1.0)
        np.testing.assert_array_equal(adc.convert(q, 1.0), q)
        order = np.argsort(I, kind="stable")
        assert np.all(np.diff(q[order]) >= 0)
        assert np.max(np.abs(q)) <= 1.0

    def test_off_is_identity_without_saturation(self):
        I = np.array([5.0, -7.0])
        np.testing.assert_array_equal(ADC(0).convert(I, 1.0), I)

    def test_zero_range_column_reads_zero(self):
        np.testing.assert_array_equal(ADC(8).convert(np.array([[1e-6, 2e-6]]), np.array([0.0, 1e-6])),
                                      [[0.0, 1e-6]])

    def test_bad(self):
        with pytest.raises(XbarrefError, match="bits"):
            ADC(1)
        with pytest.raises(XbarrefError, match="i_max"):
            ADC(8).convert(np.ones(2), -1.0)


class TestADCKernel:
    """ADC.convert is the package's one quantizer (the crossbars call it): its kernel
    against the closed form, in place, on many shapes."""

    @given(arrays(np.float64, (7, 5), elements=st.floats(-4, 4)),
           arrays(np.float64, 5, elements=st.floats(0, 3)), st.integers(2, 10))
    def test_matches_closed_form(self, I, i_max, bits):
        L = 2 ** (bits - 1) - 1
        step = i_max / L
        with np.errstate(divide="ignore", invalid="ignore"):
            expected = np.where(step > 0, np.clip(np.rint(I / step), -L, L) * step, 0.0)
        np.testing.assert_array_equal(ADC(bits).convert(I, i_max), expected)

    def test_in_place_and_shapes(self):
        rng = np.random.default_rng(0)
        I = rng.normal(size=(3, 4, 6))
        ref = ADC(6).convert(I, 1.5)
        buf = I.copy()
        out = ADC(6).convert(buf, 1.5, out=buf)
        assert out is buf
        np.testing.assert_array_equal(buf, ref)
        np.testing.assert_array_equal(ADC(6).convert(I[0, 0], np.full(6, 1.5)), ref[0, 0])
        with pytest.raises(XbarrefError, match="i_max"):
            ADC(6).convert(I, np.ones(4))


@pytest.mark.parametrize("bits", [0, 2, 8, 12])
def test_accumulate_is_the_three_statements_bit_for_bit(bits):
    """``ADC.accumulate`` (the crossbar reads' fused pass) against convert, scale, add."""
    from xbarref.devices import ADC

    rng = np.random.default_rng(bits)
    adc = ADC(bits)
    for trial in range(5):
        I = rng.standard_normal((37, 11)) * 1e-5
        I[3, :4] = [0.5e-5, -0.5e-5, 2e-4, -2e-4]          # ties and saturation
        i_max = rng.uniform(0.5e-5, 3e-5, 11)
        i_max[2] = 0.0                                       # a column without range
        scale = rng.standard_normal(11) * 10.0 ** rng.integers(-3, 4)
        y0 = rng.standard_normal((37, 11))
        expected = y0.copy()
        q = adc.convert(I, i_max)
        q *= scale
        expected += q
        y = y0.copy()
        I_before = I.copy()
        adc.accumulate(I, i_max, scale, y)
        assert np.array_equal(y.view(np.int64), expected.view(np.int64))
        np.testing.assert_array_equal(I, I_before)
