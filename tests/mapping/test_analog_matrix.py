"""AnalogMatrix: exactness in the ideal limit, tiling, reproducibility, converters, gradients."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xbarref.circuit import Crossbar, DirectSolver, solve
from xbarref.config import (
    ADCConfig,
    DACConfig,
    DeviceConfig,
    DriftConfig,
    MappingConfig,
    NoiseConfig,
    ParasiticsConfig,
    TileConfig,
    preset,
)
from xbarref.errors import XbarrefError
from xbarref.mapping import AnalogMatrix, quantized_weights, tile_slices

IDEAL = preset("ideal")


def _data(K, out, P, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(K, out)), rng.normal(size=(P, K))


def _assert_exact(y, ref, tol=1e-12):
    np.testing.assert_allclose(y, ref, rtol=0, atol=tol * max(1.0, np.abs(ref).max()))


class TestIdealIsExact:
    @given(K=st.integers(1, 40), out=st.integers(1, 40), P=st.integers(1, 5),
           rows=st.integers(1, 16), cols=st.integers(1, 16),
           scheme=st.sampled_from(["differential", "reference"]),
           scale=st.sampled_from(["layer", "tile", "column"]),
           signed=st.sampled_from(["bipolar", "two_phase"]))
    def test_equals_matmul_any_shape(self, K, out, P, rows, cols, scheme, scale, signed):
        hw = IDEAL.replace(tiles=TileConfig(rows, cols), mapping=MappingConfig(scheme=scheme, scale=scale),
                           dac=DACConfig(bits=0, signed=signed))
        W, x = _data(K, out, P, seed=K * 1000 + out)
        am = AnalogMatrix(W, hw, np.random.default_rng(0))
        _assert_exact(am.forward(x), x @ W)

    @pytest.mark.parametrize("shape", [(1, 1), (1, 70), (70, 1), (65, 129), (64, 64)])
    def test_edge_shapes(self, shape):
        W, x = _data(*shape, P=3)
        am = AnalogMatrix(W, IDEAL, np.random.default_rng(0))
        _assert_exact(am.forward(x), x @ W)
        _assert_exact(am.forward(x[0]), x[0] @ W)

    def test_zero_weights_and_inputs(self):
        am = AnalogMatrix(np.zeros((5, 3)), IDEAL, np.random.default_rng(0))
        np.testing.assert_array_equal(am.forward(np.ones((2, 5))), 0.0)
        am = AnalogMatrix(np.ones((5, 3)), IDEAL, np.random.default_rng(0))
        np.testing.assert_array_equal(am.forward(np.zeros((2, 5))), 0.0)

    def test_backward_is_transpose(self):
        W, x = _data(37, 11, 4)
        am = AnalogMatrix(W, IDEAL, np.random.default_rng(0))
        am.forward(x)
        g = np.random.default_rng(5).normal(size=(4, 11))
        _assert_exact(am.backward(g), g @ W.T)


class TestTiling:
    def test_tile_slices_cover(self):
        s = tile_slices(130, 64)
        assert [(a.start, a.stop) for a in s] == [(0, 64), (64, 128), (128, 130)]

    @given(K=st.integers(1, 30), out=st.integers(1, 20), rows=st.integers(1, 12), cols=st.integers(1, 12))
    @settings(max_examples=15)
    def test_tiled_equals_one_big_crossbar_zero_resistance(self, K, out, rows, cols):
        """PCM programming noise, zero resistances: tiles == one crossbar with all devices."""
        hw = preset("default").replace(
            tiles=TileConfig(rows, cols), parasitics=ParasiticsConfig(),
            dac=DACConfig(bits=0), adc=ADCConfig(bits=0),
            noise=NoiseConfig(programming_scale=1.0, read_scale=0.0),
            drift=DriftConfig(t_inference=0.0, compensation="none"))
        W, x = _data(K, out, 6, seed=K + 100 * out)
        am = AnalogMatrix(W, hw, np.random.default_rng(3))
        Gp, Gm = np.zeros(W.shape), np.zeros(W.shape)
        for t in am.tiles:
            Gp[t.rows, t.cols] = t.states[0].G_prog
            Gm[t.rows, t.cols] = t.states[1].G_prog
        v = hw.dac.v_read
        xs = np.abs(x).max(axis=1, keepdims=True)
        V = x / xs * v
        big = solve(Crossbar(np.concatenate([Gp, Gm], axis=1)), V).I
        dI = big[:, :out] - big[:, out:]
        y_big = dI * xs / v * np.abs(W).max() / hw.conductance.g_max
        _assert_exact(am.forward(x), y_big)

    def test_fast_path_matches_direct_solves_with_parasitics(self):
        hw = preset("ir_drop").replace(tiles=TileConfig(6, 5), dac=DACConfig(bits=0), adc=ADCConfig(bits=0),
                                       parasitics=ParasiticsConfig(2.0, 3.0, 1.5, 2.5))
        W, x = _data(13, 7, 4)
        am = AnalogMatrix(W, hw, np.random.default_rng(0))
        p = hw.parasitics
        y = np.zeros((4, 7))
        xs = np.abs(x).max(axis=1, keepdims=True)
        V = x / xs * hw.dac.v_read
        for t in am.tiles:
            Ip, Im = (DirectSolver(Crossbar(st.G_prog, p.r_source, p.r_sink, p.r_wire_row, p.r_wire_col))
                      .solve(V[:, t.rows]).I for st in t.states)
            y[:, t.cols] += (Ip - Im) * am.scales[t.r, t.cols] / hw.conductance.g_max
        y *= xs / hw.dac.v_read
        _assert_exact(am.forward(x), y, tol=1e-10)
        # IR drop really changes the result
        assert np.abs(am.forward(x) - x @ W).max() > 1e-4 * np.abs(x @ W).max()

    def test_linear_map_is_forward_of_identity_and_backward(self):
        hw = preset("ir_drop").replace(tiles=TileConfig(4, 3), dac=DACConfig(bits=0), adc=ADCConfig(bits=0))
        W, x = _data(9, 5, 2)
        am = AnalogMatrix(W, hw, np.random.default_rng(0))
        _assert_exact(am.forward(np.eye(9)), am.linear_map())
        am.forward(x)
        g = np.ones((2, 5))
        _assert_exact(am.backward(g), g @ am.linear_map().T)


class TestReproducible:
    @pytest.mark.parametrize("name", ["default", "rram"])
    def test_same_seed_bit_identical(self, name):
        hw = preset(name).replace(tiles=TileConfig(8, 8), parasitics=ParasiticsConfig(),
                                  drift=DriftConfig(3600.0, 1.0, "global"))
        W, x = _data(20, 9, 5)

        def run(seed):
            am = AnalogMatrix(W, hw, np.random.default_rng(seed))
            return am.forward(x), am.forward(x)

        a, b, c = run(1), run(1), run(2)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        assert not np.array_equal(a[0], a[1])     # read noise: a new draw on every read
        assert not np.array_equal(a[0], c[0])

    def test_fixed_conductances_with_parasitics_reproducible(self):
        hw = preset("default").replace(tiles=TileConfig(8, 8), noise=NoiseConfig(1.0, 0.0, 0.02))
        W, x = _data(20, 9, 5)
        a = AnalogMatrix(W, hw, np.random.default_rng(4)).forward(x)
        b = AnalogMatrix(W, hw, np.random.default_rng(4)).forward(x)
        np.testing.assert_array_equal(a, b)


class TestPerRead:
    @pytest.mark.parametrize("parasitics", [ParasiticsConfig(), ParasiticsConfig(1.0, 1.0, 0.5, 0.5)])
    def test_vanishing_read_noise_equals_fixed_path(self, parasitics):
        base = preset("default").replace(tiles=TileConfig(5, 4), parasitics=parasitics,
                                         dac=DACConfig(bits=0), adc=ADCConfig(bits=0),
                                         drift=DriftConfig(100.0, 1.0, "none"))
        W, x = _data(9, 6, 3)
        fixed = AnalogMatrix(W, base.replace(noise=NoiseConfig(1.0, 0.0, 0.0)), np.random.default_rng(8))
        per_read = AnalogMatrix(W, base.replace(noise=NoiseConfig(1.0, 1e-30, 0.0)), np.random.default_rng(8))
        assert per_read.per_read and not fixed.per_read
        _assert_exact(per_read.forward(x), fixed.forward(x), tol=1e-9)

    def test_read_noise_spread_scales_with_read_scale(self):
        W, x = _data(16, 4, 200)
        hw = preset("default").replace(parasitics=ParasiticsConfig(), dac=DACConfig(bits=0),
                                       adc=ADCConfig(bits=0), drift=DriftConfig(0.0, 1.0, "none"))
        spread = []
        for s in (0.5, 2.0):
            am = AnalogMatrix(W, hw.replace(noise=NoiseConfig(0.0, s, 0.0)), np.random.default_rng(1))
            spread.append(np.std(am.forward(np.repeat(x[:1], 200, axis=0)), axis=0).mean())
        assert 3.0 < spread[1] / spread[0] < 5.0


class TestConverters:
    def test_weight_quantization_and_slicing(self):
        for bits, slices in [(3, 1), (2, 3), (4, 2)]:
            hw = IDEAL.replace(tiles=TileConfig(7, 5), mapping=MappingConfig(weight_bits=bits, slices=slices))
            W, x = _data(17, 11, 3)
            am = AnalogMatrix(W, hw, np.random.default_rng(0))
            Wq = quantized_weights(W, am.row_blocks, am.col_blocks, hw.mapping)
            _assert_exact(am.forward(x), x @ Wq)
            assert np.abs(Wq - W).max() <= np.abs(W).max() / (2 ** (bits * slices) - 1) / 2 * (1 + 1e-12)

    def test_bit_serial_equals_parallel_without_adc(self):
        W, x = _data(12, 6, 4)
        a = AnalogMatrix(W, IDEAL.replace(dac=DACConfig(bits=6)), np.random.default_rng(0)).forward(x)
        b = AnalogMatrix(W, IDEAL.replace(dac=DACConfig(bits=6, bit_serial=True)),
                         np.random.default_rng(0)).forward(x)
        _assert_exact(a, b)

    def test_adc_saturates(self):
        W = np.ones((4, 2))
        x = np.ones((1, 4))
        # full-scale current of 1 device at v_read: ideal output would be 4 (4 devices)
        i_max = 0.2 * 25e-6
        hw = IDEAL.replace(adc=ADCConfig(bits=8, range="fixed", i_max=i_max))
        y = AnalogMatrix(W, hw, np.random.default_rng(0)).forward(x)
        np.testing.assert_allclose(y, [[1.0, 1.0]], rtol=1e-12)

    def test_calibrated_adc_never_saturates_without_noise(self):
        W, x = _data(64, 8, 50)
        hw = IDEAL.replace(adc=ADCConfig(bits=12, range="calibrated"), dac=DACConfig(bits=0))
        y = AnalogMatrix(W, hw, np.random.default_rng(0)).forward(x)
        ref = x @ W
        # error bounded by half an ADC step per column: sum_i |W_ij| / (2 L) times x_scale
        bound = np.abs(x).max(axis=1, keepdims=True) * np.abs(W).sum(axis=0) / (2 * 2047)
        assert np.all(np.abs(y - ref) <= bound * (1 + 1e-9))


class TestDriftCompensation:
    def test_global_compensation_removes_mean_drift(self):
        W, x = _data(32, 16, 20)
        base = preset("default").replace(parasitics=ParasiticsConfig(), dac=DACConfig(bits=0),
                                         adc=ADCConfig(bits=0), noise=NoiseConfig(0.0, 0.0, 0.0))
        raw = AnalogMatrix(W, base.replace(drift=DriftConfig(86400.0, 1.0, "none")), np.random.default_rng(2))
        comp = AnalogMatrix(W, base.replace(drift=DriftConfig(86400.0, 1.0, "global")), np.random.default_rng(2))
        col = AnalogMatrix(W, base.replace(drift=DriftConfig(86400.0, 1.0, "column")), np.random.default_rng(2))
        ref = x @ W
        err = [np.linalg.norm(m.forward(x) - ref) for m in (raw, comp, col)]
        ideal = AnalogMatrix(W, base.replace(drift=DriftConfig(86400.0, 1.0, "global", "ideal")),
                             np.random.default_rng(2))
        assert comp.alpha > 1.3 and err[1] < 0.5 * err[0] and err[2] < 0.5 * err[0]
        assert col.alpha.shape == (16,)
        # no programming noise: the programmed reference is the ideal one up to rounding
        assert ideal.alpha == pytest.approx(comp.alpha, rel=1e-12)


class TestSetTime:
    def test_set_time_equals_building_at_that_time(self):
        W, x = _data(12, 7, 4)
        hw = preset("default").replace(tiles=TileConfig(5, 4), noise=NoiseConfig(1.0, 0.0, 0.0),
                                       drift=DriftConfig(0.0, 1.0, "global"))
        direct = AnalogMatrix(W, hw.replace(drift=DriftConfig(3600.0, 1.0, "global")), np.random.default_rng(6))
        moved = AnalogMatrix(W, hw, np.random.default_rng(6)).set_time(3600.0)
        np.testing.assert_array_equal(moved.forward(x), direct.forward(x))
        assert moved.alpha == direct.alpha > 1.0

    def test_set_time_zero_is_no_drift(self):
        W, x = _data(6, 3, 2)
        hw = preset("default").replace(noise=NoiseConfig(1.0, 0.0, 0.0), drift=DriftConfig(0.0, 1.0, "none"))
        am = AnalogMatrix(W, hw, np.random.default_rng(1))
        y0 = am.forward(x)
        am.set_time(1e5)
        assert not np.array_equal(am.forward(x), y0)
        np.testing.assert_array_equal(am.set_time(0.0).forward(x), y0)


class TestErrors:
    def test_bad_inputs(self):
        am = AnalogMatrix(np.ones((3, 2)), IDEAL, np.random.default_rng(0))
        with pytest.raises(XbarrefError, match="x"):
            am.forward(np.ones((2, 4)))
        with pytest.raises(XbarrefError, match="x"):
            am.forward(np.full((1, 3), np.nan))
        with pytest.raises(XbarrefError, match="W"):
            AnalogMatrix(np.ones(3), IDEAL, np.random.default_rng(0))
        with pytest.raises(XbarrefError, match="rng"):
            AnalogMatrix(np.ones((3, 2)), IDEAL, 0)
        with pytest.raises(XbarrefError, match="grad_y"):
            AnalogMatrix(np.ones((3, 2)), IDEAL, np.random.default_rng(0)).backward(np.ones((1, 2)))


class TestNonLinearDevice:
    def test_sinh_small_k_approaches_linear_or_clear_error(self):
        import importlib.util

        hw = preset("ir_drop").replace(tiles=TileConfig(4, 4), dac=DACConfig(bits=0), adc=ADCConfig(bits=0),
                                       device=DeviceConfig(model="ideal", iv="sinh", sinh_k=1e-3))
        W, x = _data(9, 6, 3)
        if importlib.util.find_spec("xbarref.circuit.newton") is None:
            with pytest.raises(XbarrefError, match="device.iv"):
                AnalogMatrix(W, hw, np.random.default_rng(0))
            return
        y = AnalogMatrix(W, hw, np.random.default_rng(0)).forward(x)
        lin = AnalogMatrix(W, hw.replace(device=DeviceConfig(model="ideal")), np.random.default_rng(0)).forward(x)
        # sinh(k v)/k = v (1 + (k v)^2 / 6 + ...): relative change ~ (1e-3 * 0.2)^2 / 6
        np.testing.assert_allclose(y, lin, rtol=0, atol=1e-8 * np.abs(lin).max())


class TestEveryCombination:
    @given(scheme=st.sampled_from(["differential", "reference"]),
           scale=st.sampled_from(["layer", "tile", "column"]),
           bits_slices=st.sampled_from([(0, 1), (3, 1), (2, 2)]),
           signed=st.sampled_from(["bipolar", "two_phase"]), serial=st.booleans(),
           adc=st.sampled_from([ADCConfig(bits=0), ADCConfig(bits=6), ADCConfig(bits=4, range="fixed", i_max=2e-6)]),
           model=st.sampled_from(["ideal", "pcm", "rram"]), read=st.sampled_from([0.0, 1.0]),
           parasitic=st.booleans(), comp=st.sampled_from(["none", "global", "column"]))
    @settings(max_examples=12)
    def test_runs_finite_and_reproducible(self, scheme, scale, bits_slices, signed, serial, adc, model,
                                          read, parasitic, comp):
        bits, slices = bits_slices
        if scheme == "reference" and slices > 1:
            slices = 1
        hw = preset("default").replace(
            tiles=TileConfig(4, 8), mapping=MappingConfig(scheme, scale, bits, slices),
            dac=DACConfig(bits=4, signed=signed, bit_serial=serial), adc=adc,
            parasitics=ParasiticsConfig(1.0, 1.0, 0.5, 0.5) if parasitic else ParasiticsConfig(),
            device=DeviceConfig(model=model), noise=NoiseConfig(1.0, read, 0.01),
            drift=DriftConfig(1000.0, 1.0, comp))
        W, x = _data(7, 5, 3)
        a = AnalogMatrix(W, hw, np.random.default_rng(0))
        b = AnalogMatrix(W, hw, np.random.default_rng(0))
        ya, yb = a.forward(x), b.forward(x)
        assert ya.shape == (3, 5) and np.all(np.isfinite(ya))
        np.testing.assert_array_equal(ya, yb)
        g = a.backward(np.ones((3, 5)))
        assert g.shape == (3, 7) and np.all(np.isfinite(g))
