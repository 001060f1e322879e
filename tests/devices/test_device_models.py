"""Device models: distributions against their formulas (KS tests), drift, reproducibility."""

import math

import numpy as np
import pytest
from scipy import stats

from xbarref.devices import (
    DeviceModel,
    DeviceVariation,
    IdealDeviceModel,
    PCMLikeModel,
    PowerLawDrift,
    ProgrammingNoise,
    ReadNoise,
    RRAMModel,
    StuckAtFaults,
    drift_compensation_reference,
    drift_compensation_scale,
)
from xbarref.errors import XbarrefError

G_MAX = 25e-6
N = 20000


def _pcm_sigma_prog(g_n, g_max=G_MAX):
    # Written from shared/spec/pcm-model.md (uS formula) and converted to S here.
    return (0.26348 + 1.9650 * g_n - 1.1731 * g_n**2) * (g_max * 1e6) / 25.0 * 1e-6


class TestProgrammingNoise:
    @pytest.mark.parametrize("g_n", [0.3, 0.6, 1.0])
    def test_pcm_programming_noise_is_gaussian_with_spec_sigma(self, g_n):
        model = PCMLikeModel(read_noise_scale=0.0, drift_scale=0.0)
        G_t = np.full(N, g_n * G_MAX)
        state = model.program(G_t, np.random.default_rng(11))
        z = (state.G_prog - G_t) / _pcm_sigma_prog(g_n)
        assert stats.kstest(z, "norm").pvalue > 1e-3
        # wrong sigma is rejected by the same test (the test has power)
        assert stats.kstest(z * 1.1, "norm").pvalue < 1e-3

    def test_zero_target_gets_noise_and_is_clamped_at_zero(self):
        model = PCMLikeModel(read_noise_scale=0.0, drift_scale=0.0)
        state = model.program(np.zeros(N), np.random.default_rng(3))
        frac_zero = np.mean(state.G_prog == 0.0)
        assert abs(frac_zero - 0.5) < 0.02          # half of N(0, s) is clamped to 0
        pos = state.G_prog[state.G_prog > 0] / _pcm_sigma_prog(0.0)
        assert stats.kstest(pos, stats.halfnorm.cdf).pvalue > 1e-3

    def test_generic_sigma_formula(self):
        noise = ProgrammingNoise(0.01, 0.02, -0.005, scale=2.0)
        g = np.array([0.0, 0.5, 1.0]) * G_MAX
        expected = 2.0 * (0.01 + 0.02 * np.array([0, .5, 1]) - 0.005 * np.array([0, .25, 1])) * G_MAX
        np.testing.assert_allclose(noise.sigma(g, G_MAX), expected, rtol=1e-14)

    def test_device_variation_gain_distribution(self):
        var = DeviceVariation(0.05)
        g = var.gains((N,), np.random.default_rng(5))
        assert stats.kstest((g - 1.0) / 0.05, "norm").pvalue > 1e-3


class TestDriftExponents:
    @pytest.mark.parametrize("g_n", [0.05, 0.4, 1.0])
    def test_pcm_exponents_follow_folded_normal(self, g_n):
        model = PCMLikeModel()
        state = model.program(np.full(N, g_n * G_MAX), np.random.default_rng(21))
        mu = min(max(-0.0155 * math.log(g_n) + 0.0244, 0.049), 0.1)
        sd = min(max(-0.0125 * math.log(g_n) - 0.0059, 0.008), 0.045)
        assert np.all(state.nu >= 0)
        assert stats.kstest(state.nu, stats.foldnorm(mu / sd, scale=sd).cdf).pvalue > 1e-3

    def test_exponent_clamps_tiny_conductance(self):
        drift = PowerLawDrift(**PCMLikeModel.DRIFT)
        mu, sd = drift.parameters(np.array([0.0]), G_MAX)
        assert mu[0] == 0.1 and sd[0] == 0.045

    def test_drift_at_t0_is_no_drift(self):
        model = PCMLikeModel(read_noise_scale=0.0)
        state = model.program(np.linspace(0, G_MAX, 50), np.random.default_rng(1))
        G0 = model.conductances(state, t_inference=0.0)
        np.testing.assert_array_equal(G0, state.G_prog)

    def test_drift_power_law(self):
        model = PCMLikeModel(read_noise_scale=0.0)
        state = model.program(np.linspace(1e-6, G_MAX, 50), np.random.default_rng(1))
        t = 3600.0
        G = model.conductances(state, t_inference=t)
        np.testing.assert_allclose(G, state.G_prog * ((t + 20.0) / 20.0) ** (-state.nu), rtol=1e-14)
        assert np.all(G <= state.G_prog)


class TestReadNoise:
    @pytest.mark.parametrize("t_inf", [0.0, 86400.0])
    def test_pcm_read_noise_distribution(self, t_inf):
        model = PCMLikeModel(prog_noise_scale=0.0, drift_scale=0.0, read_time_model="per_read")
        g_n = 0.5
        state = model.program(np.full(64, g_n * G_MAX), np.random.default_rng(2))
        G = model.conductances(state, t_inf, rng=np.random.default_rng(4), reads=400)
        assert G.shape == (400, 64)
        q_s = min(0.0088 / max(g_n**0.65, 1e-3), 0.2)
        t = t_inf + 20.0
        sigma = q_s * math.sqrt(math.log((t + 250e-9) / (2 * 250e-9)))
        z = ((G - g_n * G_MAX) / (g_n * G_MAX * sigma)).ravel()
        assert stats.kstest(z, "norm").pvalue > 1e-3

    def test_read_noise_grows_with_time(self):
        rn = ReadNoise(**PCMLikeModel.READ)
        s = [rn.sigma(np.array(10e-6), G_MAX, t) for t in (20.0, 1e3, 1e6)]
        assert s[0] < s[1] < s[2]

    def test_every_read_is_a_new_draw(self):
        model = PCMLikeModel()
        rng = np.random.default_rng(0)
        state = model.program(np.full((4, 3), 10e-6), rng)
        a = model.conductances(state, 0.0, rng=rng)
        b = model.conductances(state, 0.0, rng=rng)
        assert not np.array_equal(a, b)

    def test_read_noise_needs_generator(self):
        model = PCMLikeModel()
        state = model.program(np.full(3, 1e-6), np.random.default_rng(0))
        with pytest.raises(XbarrefError, match="rng"):
            model.conductances(state, 0.0, rng=None)


class TestReproducibility:
    @pytest.mark.parametrize("cls", [PCMLikeModel, RRAMModel])
    def test_same_seed_bit_identical(self, cls):
        def run(seed):
            model = cls(d2d_sigma=0.02, rate_stuck_min=0.01, rate_stuck_max=0.01)
            rng = np.random.default_rng(seed)
            state = model.program(np.random.default_rng(99).uniform(0, model.g_max, (8, 5)), rng)
            return model.conductances(state, 1000.0, rng=rng, reads=3)

        a, b, c = run(7), run(7), run(8)
        assert np.array_equal(a, b)
        assert not np.array_equal(a, c)

    def test_ideal_model_is_identity_and_uses_no_randomness(self):
        model = IdealDeviceModel()
        rng = np.random.default_rng(0)
        G = np.random.default_rng(1).uniform(0, G_MAX, (5, 7))
        state = model.program(G, rng)
        out = model.conductances(state, 1e6, rng=rng)
        np.testing.assert_array_equal(out, G)
        assert rng.random() == np.random.default_rng(0).random()


class TestStuckAt:
    def test_rates_are_met_binomial(self):
        faults = StuckAtFaults(rate_min=0.02, rate_max=0.05)
        codes = faults.draw((300, 200), np.random.default_rng(12))
        n = codes.size
        assert stats.binomtest(int(np.sum(codes == 1)), n, 0.02).pvalue > 1e-3
        assert stats.binomtest(int(np.sum(codes == 2)), n, 0.05).pvalue > 1e-3

    def test_stuck_devices_read_their_stuck_value(self):
        model = PCMLikeModel(rate_stuck_min=0.1, rate_stuck_max=0.1, g_min=1e-6)
        rng = np.random.default_rng(3)
        state = model.program(np.full((50, 50), 12e-6), rng)
        G = model.conductances(state, 1e4, rng=rng, reads=2)
        assert np.all(G[:, state.faults == 1] == 1e-6)
        assert np.all(G[:, state.faults == 2] == 25e-6)

    def test_bad_rates(self):
        with pytest.raises(XbarrefError, match="rate_min"):
            StuckAtFaults(rate_min=-0.1)
        with pytest.raises(XbarrefError, match="rate_min \\+ rate_max"):
            StuckAtFaults(rate_min=0.6, rate_max=0.6)


class TestDriftCompensation:
    def test_global_scale_undoes_uniform_drift(self):
        y0 = np.random.default_rng(0).normal(size=(32, 10))
        ref = drift_compensation_reference(y0)
        alpha = drift_compensation_scale(ref, 0.8 * y0)
        assert alpha == pytest.approx(1.25, rel=1e-12)

    def test_column_variant(self):
        y0 = np.random.default_rng(0).normal(size=(32, 4))
        f = np.array([0.5, 0.9, 1.0, 0.7])
        ref = drift_compensation_reference(y0, mode="column")
        alpha = drift_compensation_scale(ref, y0 * f, mode="column")
        np.testing.assert_allclose(alpha, 1 / f, rtol=1e-12)

    def test_reference_clamped(self):
        assert drift_compensation_reference(np.zeros((2, 2))) == 1e-4

    def test_bad_mode(self):
        with pytest.raises(XbarrefError, match="mode"):
            drift_compensation_reference(np.ones((2, 2)), mode="row")


class TestChecks:
    def test_negative_target_rejected(self):
        with pytest.raises(XbarrefError, match="G_target"):
            PCMLikeModel().program(np.array([-1e-6]), np.random.default_rng(0))

    def test_rng_must_be_generator(self):
        with pytest.raises(XbarrefError, match="rng"):
            PCMLikeModel().program(np.ones(2) * 1e-6, 42)

    def test_bad_g_max(self):
        with pytest.raises(XbarrefError, match="g_max"):
            DeviceModel(g_max=0.0)
