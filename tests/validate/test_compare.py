"""Comparison metrics, run_candidate and compare_files; the approximate models judged."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from xbarref.circuit import Crossbar, solve
from xbarref.errors import FileFormatError, XbarrefError
from xbarref.validate.approx import MODELS, aihwkit_ir_drop, first_order, get_model, ideal
from xbarref.validate.compare import case_metrics, compare_files, run_candidate
from xbarref.validate.suite import write_candidate, write_suite

from .helpers import make, regimes_suite, spec, tiny


@pytest.fixture(scope="module")
def suite():
    return regimes_suite()


class TestMetricsByHand:
    def test_values(self):
        # exact I, ideal I0, candidate P; numbers worked out by hand below
        I = np.array([[4.0, -2.0]])
        I0 = np.array([[5.0, -2.5]])
        P = np.array([[4.5, -2.0]])
        m = case_metrics("c", I, I0, P)
        assert m.max_rel_error == pytest.approx(0.5 / 4.0)           # max|P-I| / max|I|
        assert m.nrmse == pytest.approx(0.5 / np.sqrt(20.0))          # ||P-I|| / ||I||
        assert m.nf_error == pytest.approx(0.5 / 5.0)                 # |P-I| / |I0|
        # d = I - I0 = (-1, 0.5); q = P - I0 = (-0.5, 0.5): slope = (0.5 + 0.25) / 1.25
        assert m.slope == pytest.approx(0.6)
        assert m.true_deviation == pytest.approx(1.0 / 4.0)

    def test_half_the_deviation_has_slope_half(self):
        rng = np.random.default_rng(1)
        I0 = rng.uniform(1, 2, (3, 4))
        I = I0 * (1 - rng.uniform(0.01, 0.2, (3, 4)))
        P = I0 + 0.5 * (I - I0)
        m = case_metrics("c", I, I0, P)
        assert m.slope == pytest.approx(0.5)
        assert m.correlation == pytest.approx(1.0)

    def test_zero_ideal_current_excluded_from_nf(self):
        I = np.array([[1.0, 1e-9, 2.0]])
        I0 = np.array([[1.1, 0.0, 2.2]])
        P = np.array([[1.0, 5e-9, 2.0]])
        m = case_metrics("c", I, I0, P)
        assert m.nf_excluded == 1 and m.nf_error == 0.0
        m = case_metrics("c", I, np.zeros_like(I), P)
        assert np.isnan(m.nf_error) and m.nf_excluded == 3

    def test_no_true_deviation_gives_nan_slope(self):
        I = np.array([[1.0, 2.0]])
        m = case_metrics("c", I, I, I * 1.1)
        assert np.isnan(m.slope) and np.isnan(m.correlation)
        assert m.max_rel_error == pytest.approx(0.1)

    def test_all_zero_outputs(self):
        z = np.zeros((2, 3))
        assert case_metrics("c", z, z, z).max_rel_error == 0.0
        assert case_metrics("c", z, z, z + 1e-9).max_rel_error == np.inf

    def test_shape_mismatch_names_case(self):
        with pytest.raises(XbarrefError, match="case c7: candidate outputs have shape"):
            case_metrics("c7", np.ones((2, 3)), np.ones((2, 3)), np.ones((3, 2)))


class TestExactSolverPasses:
    def test_direct_solver_within_1e12(self, suite):
        """The suite's outputs (PCG / Newton) against the direct sparse solver, another code path."""
        def direct(xb, V):
            return solve(xb, V, method="direct").I

        result = run_candidate(suite, direct, tol=1e-12)
        assert result.passed, [(c.name, c.max_rel_error) for c in result.cases if not c.passed]
        s = result.summary()
        assert s["slope"] == pytest.approx(1.0, abs=1e-9)
        assert s["correlation"] == pytest.approx(1.0, abs=1e-9)

    def test_iterated_first_order_converges_to_exact(self, suite):
        """Enough fixed-point steps of the line-drop equations give the circuit solution."""
        weak = make([("w", spec(12, 9, "moderate", pattern="differential", inputs="bipolar")),
                     ("s", spec(7, 10, "moderate", device="sinh", k=4.0))])
        result = run_candidate(weak, lambda xb, V: first_order(xb, V, iterations=60), tol=1e-11)
        assert result.passed, [(c.name, c.max_rel_error) for c in result.cases]


class TestApproximationsJudged:
    @pytest.mark.parametrize("model", sorted(MODELS))
    def test_passes_with_tiny_resistance(self, model):
        s = make([("a", tiny(16, 16)), ("b", tiny(8, 24, pattern="sparse", inputs="sparse")),
                  ("c", tiny(1, 8)), ("d", tiny(8, 1)), ("e", spec(8, 8, "ideal"))])
        result = run_candidate(s, get_model(model), tol=1e-4)
        assert result.passed, [(c.name, c.max_rel_error) for c in result.cases]

    @pytest.mark.parametrize("model", sorted(MODELS))
    def test_fails_with_strong_ir_drop(self, suite, model):
        result = run_candidate(suite, get_model(model), tol=1e-3)
        assert "strong_32x32" in result.failed
        assert result.cases[suite.names.index("strong_32x32")].max_rel_error > 1e-2

    def test_ideal_has_zero_slope(self, suite):
        result = run_candidate(suite, ideal)
        assert result.summary()["slope"] == 0.0

    def test_first_order_beats_ideal_on_moderate_drop(self):
        s = make([("m", spec(32, 32, "moderate"))])
        e_ideal = run_candidate(s, ideal).cases[0].max_rel_error
        e_first = run_candidate(s, first_order).cases[0].max_rel_error
        assert e_first < 0.1 * e_ideal

    def test_aihwkit_column_only_close(self):
        """Column wires only, uniform array: the model it was fitted for (within 3 %)."""
        M = N = 64
        xb = Crossbar(np.full((M, N), 5e-5), r_wire_col=0.5)
        V = np.full((1, M), 0.2)
        true_dev = solve(xb, V).I - V @ xb.G
        pred_dev = aihwkit_ir_drop(xb, V) - V @ xb.G
        np.testing.assert_allclose(pred_dev, true_dev, rtol=0.03)

    def test_aihwkit_ignores_source_and_sink(self):
        xb = Crossbar(np.full((4, 3), 1e-4), r_source=100.0, r_sink=100.0)
        V = np.full((2, 4), 0.1)
        np.testing.assert_array_equal(aihwkit_ir_drop(xb, V), V @ xb.G)

    def test_unknown_model(self):
        with pytest.raises(XbarrefError, match="model: expected one of"):
            get_model("spice")


class TestRunCandidateErrors:
    def test_wrong_shape_names_case(self, suite):
        with pytest.raises(XbarrefError, match=r"case ideal_8x8: candidate returned shape \(4, 7\)"):
            run_candidate(suite, lambda xb, V: (V @ xb.G)[:, :-1])

    def test_not_callable(self, suite):
        with pytest.raises(XbarrefError, match="fn: expected a callable"):
            run_candidate(suite, 3)

    def test_partly_nan_or_inf_output_names_case(self, suite):
        def bad(xb, V):
            out = V @ xb.G
            out[0, 0] = np.nan
            return out
        with pytest.raises(XbarrefError, match="case ideal_8x8: candidate outputs: input 0 has NaN in some"):
            run_candidate(suite, bad)
        with pytest.raises(XbarrefError, match="case ideal_8x8: candidate outputs: must be finite"):
            run_candidate(suite, lambda xb, V: np.full((V.shape[0], xb.shape[1]), np.inf))

    def test_nan_output_is_not_run_never_passed(self, suite):
        result = run_candidate(suite, lambda xb, V: np.full((V.shape[0], xb.shape[1]), np.nan))
        assert all(c.status == "not run" and not c.passed for c in result.cases)
        assert result.not_run == suite.names and not result.failed and not result.passed

    def test_bad_tol(self, suite):
        with pytest.raises(XbarrefError, match="tol"):
            run_candidate(suite, ideal, tol=-1)


class TestCompareFiles:
    def test_matches_run_candidate(self, suite, tmp_path):
        write_suite(suite, tmp_path / "s.h5")
        outputs = {sc.name: first_order(sc.case.crossbar, sc.case.V) for sc in suite.cases}
        write_candidate(outputs, tmp_path / "c.h5", solver="first")
        a = compare_files(tmp_path / "s.h5", tmp_path / "c.h5")
        b = run_candidate(suite, first_order)
        assert a.candidate == "first"
        assert [c.max_rel_error for c in a.cases] == [c.max_rel_error for c in b.cases]
        assert [c.shape for c in a.cases] == [sc.case.shape for sc in suite.cases]

    def test_mismatched_candidate(self, suite, tmp_path):
        write_suite(suite, tmp_path / "s.h5")
        other = make([("ideal_8x8", spec(8, 8, "ideal"))])
        write_candidate({"ideal_8x8": other.cases[0].case.I}, tmp_path / "c.h5")
        with pytest.raises(FileFormatError, match="/cases/tiny_16x16/outputs/I: missing"):
            compare_files(tmp_path / "s.h5", tmp_path / "c.h5")


class TestApproxProperties:
    @given(M=st.integers(1, 7), N=st.integers(1, 7), B=st.integers(1, 3), seed=st.integers(0, 10**6),
           zero_input=st.booleans())
    def test_shapes_finite_and_exact_without_resistance(self, M, N, B, seed, zero_input):
        rng = np.random.default_rng(seed)
        G = rng.uniform(0, 1e-4, (M, N))
        V = np.zeros((B, M)) if zero_input else rng.uniform(-0.3, 0.3, (B, M))
        shorted = Crossbar(G)
        for name, model in MODELS.items():
            out = model(shorted, V)
            assert out.shape == (B, N)
            # every resistance 0: each model is V @ G (to rounding of the summation order)
            np.testing.assert_allclose(out, V @ G, rtol=0, atol=1e-15 * max(1e-30, np.abs(V @ G).max()) + 1e-30)
        wired = Crossbar(G, r_source=rng.uniform(0, 5, M), r_sink=rng.uniform(0, 5, N),
                         r_wire_row=rng.uniform(0, 1, (M, N - 1)), r_wire_col=rng.uniform(0, 1, (M - 1, N)))
        for model in MODELS.values():
            out = model(wired, V)
            assert out.shape == (B, N) and np.all(np.isfinite(out))
            if zero_input:
                assert np.all(out == 0)
