"""AnalogMatrix sessions (read-noise time model), the per-read fast path and the
ADC range set at programming."""

import numpy as np
import pytest

from xbarref.config import ADCConfig, DACConfig, DeviceConfig, DriftConfig, NoiseConfig, ParasiticsConfig, preset
from xbarref.errors import XbarrefError
from xbarref.mapping import AnalogMatrix, map_model

IDEAL = preset("ideal")


def _hw(mode="split", t_corr=1e-6, read=1.0, wires=0.0, adc=None):
    return IDEAL.replace(device=DeviceConfig(model="pcm"),
                         noise=NoiseConfig(0.0, read, 0.0, read_time_model=mode, read_correlation_time=t_corr),
                         drift=DriftConfig(0.0, 0.0, "none"),
                         parasitics=ParasiticsConfig(r_wire_row=wires, r_wire_col=wires),
                         adc=adc or ADCConfig(bits=0))


def _data(K=12, out=5, P=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(K, out)), np.abs(rng.normal(size=(P, K)))


class TestSessions:
    def test_per_session_is_static_within_and_new_between_sessions(self):
        W, x = _data()
        am = AnalogMatrix(W, _hw("per_session", read=3.0), np.random.default_rng(1))
        a, b = am.forward(x), am.forward(x)
        np.testing.assert_array_equal(a, b)
        am.set_time(0.0, rng=np.random.default_rng(7))
        c = am.forward(x)
        am.set_time(0.0, rng=np.random.default_rng(7))
        np.testing.assert_array_equal(am.forward(x), c)
        assert not np.array_equal(a, c)

    def test_split_reads_vary_around_the_session(self):
        W, x = _data()
        am = AnalogMatrix(W, _hw("split", t_corr=1e-3, read=3.0), np.random.default_rng(1))
        ys = np.stack([am.forward(x) for _ in range(400)])
        assert not np.array_equal(ys[0], ys[1])
        # the mean over reads is the session's static output, not the ideal one
        assert np.abs(ys.mean(0) - x @ W).max() > 5 * ys.std(0).max() / np.sqrt(400)

    @pytest.mark.parametrize("mode", ["split", "per_read"])
    def test_fast_per_read_path_matches_per_device_draws(self, mode):
        # ideal wires: Gaussian column currents of the exact variance; a negligible wire
        # resistance forces the per-device circuit path; both must agree in distribution
        W, x = _data(K=8, out=3, P=2, seed=3)
        x = x[:1]
        fast = AnalogMatrix(W, _hw(mode, t_corr=1e-3, read=1.0), np.random.default_rng(4))
        slow = AnalogMatrix(W, _hw(mode, t_corr=1e-3, read=1.0, wires=1e-9), np.random.default_rng(4))
        n = 3000
        yf = np.stack([fast.forward(x)[0] for _ in range(n)])
        ysl = np.stack([slow.forward(x)[0] for _ in range(n)])
        # same programming and session draws (same seed, same order) -> same means
        se = np.sqrt(yf.var(0) / n + ysl.var(0) / n)
        assert np.all(np.abs(yf.mean(0) - ysl.mean(0)) < 5 * se + 1e-9)
        np.testing.assert_allclose(yf.std(0), ysl.std(0), rtol=0.08)


class TestProgrammedADCRange:
    def test_needs_calibration(self):
        W, x = _data()
        hw = IDEAL.replace(adc=ADCConfig(bits=8, range="programmed"))
        am = AnalogMatrix(W, hw, np.random.default_rng(0))
        with pytest.raises(XbarrefError, match="programmed"):
            am.forward(x)

    def test_percentile_sets_saturation(self):
        rng = np.random.default_rng(2)
        W = rng.normal(size=(16, 1))
        x = np.abs(rng.normal(size=(4000, 16)))
        y = x @ W
        for p in (100.0, 50.0):
            hw = IDEAL.replace(adc=ADCConfig(bits=12, range="programmed", percentile=p),
                               dac=DACConfig(bits=0))
            am = AnalogMatrix(W, hw, np.random.default_rng(0)).calibrate_adc(x)
            yh = am.forward(x)
            clipped = np.mean(np.abs(yh) < np.abs(y) - 1e-3 * np.abs(y).max())
            if p == 100.0:
                np.testing.assert_allclose(yh, y, atol=np.abs(y).max() / 2000)
            else:
                assert clipped == pytest.approx(0.5, abs=0.02)

    def test_range_stays_fixed_under_drift(self):
        rng = np.random.default_rng(2)
        W = rng.normal(size=(16, 4))
        x = np.abs(rng.normal(size=(200, 16)))
        hw = IDEAL.replace(device=DeviceConfig(model="pcm"), noise=NoiseConfig(0.0, 0.0, 0.0),
                           drift=DriftConfig(0.0, 1.0, "none"), adc=ADCConfig(bits=8, range="programmed"))
        am = AnalogMatrix(W, hw, np.random.default_rng(0)).calibrate_adc(x)
        r0 = am.adc_ranges()
        am.set_time(86400.0)
        for a, b in zip(r0, am.adc_ranges()):
            np.testing.assert_array_equal(a, b)
        hw_c = hw.replace(adc=ADCConfig(bits=8, range="calibrated"))
        amc = AnalogMatrix(W, hw_c, np.random.default_rng(0))
        c0 = amc.adc_ranges()
        amc.set_time(86400.0)
        assert all(np.all(b < a) for a, b in zip(c0, amc.adc_ranges()))

    def test_map_model_calibrates(self):
        from xbarref.nn import zoo

        model = zoo.digits_cnn(rng=np.random.default_rng(0))
        hw = preset("default").replace(adc=ADCConfig(bits=8, range="programmed"))
        x = np.random.default_rng(1).normal(size=(8, *model.input_shape))
        with pytest.raises(XbarrefError, match="calibration"):
            map_model(model, hw, np.random.default_rng(0))
        m = map_model(model, hw, np.random.default_rng(0), calibration=x, t_inference=3600.0)
        assert np.all(np.isfinite(m(x)))
