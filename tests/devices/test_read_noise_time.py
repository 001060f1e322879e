"""The read-noise time model: a session draw plus a per-read band, split at t_corr."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xbarref.devices import PCMLikeModel, ReadNoise
from xbarref.errors import XbarrefError

READ = PCMLikeModel.READ
G_MAX = 25e-6


class TestSplit:
    @given(t=st.floats(1e-7, 1e9), t_corr=st.floats(1e-7, 1e3), mode=st.sampled_from(["split", "per_read", "per_session"]))
    @settings(max_examples=200, deadline=None)
    def test_variances_add_up_to_the_formula(self, t, t_corr, mode):
        rn = ReadNoise(**READ, mode=mode, t_corr=t_corr)
        total, session, per_read = rn.growth(t)
        formula = max(math.log((t + 250e-9) / (2 * 250e-9)), 0.0)
        assert total == pytest.approx(formula, rel=1e-12, abs=1e-15)
        assert session >= 0 and per_read >= 0
        assert session + per_read == pytest.approx(formula, rel=1e-12, abs=1e-15)
        G = np.array([1e-6, 10e-6, 25e-6])
        np.testing.assert_allclose(rn.session_sigma(G, G_MAX, t) ** 2 + rn.read_sigma(G, G_MAX, t) ** 2,
                                   rn.sigma(G, G_MAX, t) ** 2, rtol=1e-12, atol=1e-30)

    def test_band_split_closed_form(self):
        rn = ReadNoise(**READ, t_corr=1e-6)
        t = 20.0
        _, session, per_read = rn.growth(t)
        assert per_read == pytest.approx(math.log((1e-6 + 250e-9) / 500e-9), rel=1e-12)
        assert session == pytest.approx(math.log((t + 250e-9) / (1e-6 + 250e-9)), rel=1e-12)

    def test_named_extremes(self):
        t = 86420.0
        assert ReadNoise(**READ, mode="per_read").growth(t)[1] == 0.0
        assert ReadNoise(**READ, mode="per_session").growth(t)[2] == 0.0
        assert not PCMLikeModel(read_time_model="per_session").has_read_noise
        assert PCMLikeModel(read_time_model="per_session").has_session_noise
        assert not PCMLikeModel(read_time_model="per_read").has_session_noise

    def test_bad_mode(self):
        with pytest.raises(XbarrefError, match="mode"):
            ReadNoise(**READ, mode="sometimes")


class TestDraws:
    def _state(self, model, n=2000):
        return model.program(np.full(n, 0.5 * G_MAX), np.random.default_rng(1))

    def test_empirical_variances_of_both_parts(self):
        # long correlation time so both parts are large enough to measure
        model = PCMLikeModel(prog_noise_scale=0.0, drift_scale=0.0, read_correlation_time=1e-3)
        state = self._state(model, 4000)
        rn = model.read_noise_model
        t = model.t0
        s_sess = float(rn.session_sigma(state.G_prog, G_MAX, t)[0])
        s_read = float(rn.read_sigma(state.G_prog, G_MAX, t)[0])
        G0 = 0.5 * G_MAX
        rng = np.random.default_rng(5)
        Gs = model.session_conductances(state, 0.0, rng)
        reads = model.read_from(state, Gs, 0.0, rng, reads=50)
        # across devices the session offsets have variance s_sess^2
        assert np.std((Gs - G0) / G0, ddof=1) == pytest.approx(s_sess, rel=0.05)
        # around the session value the reads have variance s_read^2
        rel = (reads - Gs) / Gs
        assert np.std(rel, ddof=1) == pytest.approx(s_read, rel=0.03)

    def test_same_session_seed_same_session_draw(self):
        model = PCMLikeModel()
        state = self._state(model, 50)
        a = model.session_conductances(state, 3600.0, np.random.default_rng(11))
        b = model.session_conductances(state, 3600.0, np.random.default_rng(11))
        c = model.session_conductances(state, 3600.0, np.random.default_rng(12))
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)

    def test_per_read_draws_differ_read_to_read(self):
        model = PCMLikeModel()
        state = self._state(model, 50)
        rng = np.random.default_rng(3)
        Gs = model.session_conductances(state, 0.0, rng)
        reads = model.read_from(state, Gs, 0.0, rng, reads=3)
        assert not np.array_equal(reads[0], reads[1]) and not np.array_equal(reads[1], reads[2])
        # ... around one session value (per-read part is small: mean of many reads ~ Gs)
        many = model.read_from(state, Gs, 0.0, rng, reads=4000).mean(axis=0)
        np.testing.assert_allclose(many, Gs, rtol=0.01)

    def test_per_session_reads_are_static(self):
        model = PCMLikeModel(read_time_model="per_session")
        state = self._state(model, 20)
        rng = np.random.default_rng(3)
        Gs = model.session_conductances(state, 0.0, rng)
        reads = model.read_from(state, Gs, 0.0, rng, reads=3)
        assert np.all(reads == Gs)
