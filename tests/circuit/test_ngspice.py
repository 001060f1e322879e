"""Cross-checks against ngspice on netlists that xbarref writes.

Three layers:

- the netlist itself (element for element: zero resistances are 0 V sources, open cells
  have no element, node names map back to (row, column)) and the raw-file reader;
- ngspice on the netlist against the independent dense reference of ``reference.py``
  (small crossbars; checks the netlist writer without xbarref's solvers);
- xbarref's solver against ngspice on random crossbars up to 48 x 48 (linear) and
  32 x 32 (sinh): max |I - I_spice| / max |I_spice| <= 1e-9 (1e-8 for sinh), node
  voltages too.

The ngspice_path fixture fails (never skips) when ngspice is missing.
"""

import os
import subprocess

import numpy as np
import pytest

from xbarref.circuit import Crossbar
from xbarref.errors import XbarrefError
from xbarref.io.netlist import netlist_text, node_arrays, parse_node_name, write_netlist
from xbarref.validate.spice import (SpiceError, read_rawfile, relative_difference, run_ngspice,
                                    spice_check, spice_operating_point)

from .reference import broadcast_params, solve_reference

pytestmark = pytest.mark.ngspice


def random_crossbar(rng, M, N, *, regime, per_segment, zero_fraction, device="linear", k=None):
    """Keyword arguments of a random crossbar.

    regime "strong": G 10..100 uS, wires 1..5 ohm, source 20..200 ohm, sink 10..100 ohm
    (tens of percent IR drop); "weak": G 0.1..1 uS, wires 0.01..0.1 ohm, source and
    sink 0.1..1 ohm (below 1e-3). ``zero_fraction`` of the per-segment values, and of
    the per-row / per-column source and sink values, are exact zeros.
    """
    if regime == "strong":
        g, w, src, snk = (1e-5, 1e-4), (1.0, 5.0), (20.0, 200.0), (10.0, 100.0)
    else:
        g, w, src, snk = (1e-7, 1e-6), (0.01, 0.1), (0.1, 1.0), (0.1, 1.0)

    def draw(lo_hi, shape):
        if not per_segment:
            return float(rng.uniform(*lo_hi)) if rng.random() >= zero_fraction else 0.0
        arr = rng.uniform(*lo_hi, shape)
        arr[rng.random(shape) < zero_fraction] = 0.0
        return arr

    G = rng.uniform(*g, (M, N))
    G[rng.random((M, N)) < 0.05] = 0.0   # a few open cells
    kwargs = dict(G=G, r_source=draw(src, (M,)), r_sink=draw(snk, (N,)),
                  r_wire_row=draw(w, (M, N - 1)), r_wire_col=draw(w, (M - 1, N)))
    if device == "sinh":
        kwargs.update(device="sinh", sinh_k=k)
    return kwargs


# ---------------------------------------------------------------------------------------
# The netlist text and the raw-file reader


class TestNetlistText:
    def test_elements(self):
        xb = Crossbar(np.array([[1e-5, 0.0, 2e-5], [3e-5, 4e-5, 0.0]]),
                      r_source=[0.0, 10.0], r_sink=[5.0, 0.0, 7.0],
                      r_wire_row=[[1.0, 0.0], [2.0, 3.0]], r_wire_col=[[0.0, 4.0, 5.0]])
        lines = netlist_text(xb, [0.25, -0.5]).splitlines()
        cards = {line.split()[0].upper(): line.split()[1:] for line in lines[1:]
                 if line and not line.startswith(("*", "."))}
        assert cards["VIN_0"] == ["in_0", "0", "DC", "0.25"]
        assert cards["VIN_1"] == ["in_1", "0", "DC", "-0.5"]
        # zero resistances are 0 V sources, never resistors
        assert cards["VSRC_0"] == ["in_0", "r_0_0", "DC", "0"] and "RSRC_0" not in cards
        assert cards["RSRC_1"] == ["in_1", "r_1_0", "10.0"]
        assert cards["VROW_0_1"] == ["r_0_1", "r_0_2", "DC", "0"]
        assert cards["RROW_1_1"] == ["r_1_1", "r_1_2", "3.0"]
        assert cards["VCOL_0_0"] == ["c_0_0", "c_1_0", "DC", "0"]
        assert cards["RCOL_0_2"] == ["c_0_2", "c_1_2", "5.0"]
        # sense source in series with the sink; straight to ground when r_sink == 0
        assert cards["VSENSE_0"] == ["c_1_0", "s_0", "DC", "0"]
        assert cards["RSNK_0"] == ["s_0", "0", "5.0"]
        assert cards["VSENSE_1"] == ["c_1_1", "0", "DC", "0"] and "RSNK_1" not in cards
        # devices: resistors of 1/G; G == 0 has no element
        assert float(cards["RD_0_0"][2]) == 1 / 1e-5
        assert cards["RD_1_1"][:2] == ["r_1_1", "c_1_1"]
        assert "RD_0_1" not in cards and "RD_1_2" not in cards
        values = [float(v[2]) for name, v in cards.items() if name.startswith("R")]
        assert min(values) >= 1.0  # no tiny resistor anywhere
        assert ".op" in lines and lines[-1] == ".end"
        assert any(line.startswith(".options") for line in lines)

    def test_sinh_behavioural_source(self):
        xb = Crossbar(np.array([[2e-5, 0.0]]), device="sinh", sinh_k=3.5)
        text = netlist_text(xb, [0.1])
        line = next(line for line in text.splitlines() if line.upper().startswith("BD_0_0"))
        assert line.split()[1:3] == ["r_0_0", "c_0_0"]
        assert line.replace(" ", "").endswith("I=2e-05*sinh(3.5*(v(r_0_0)-v(c_0_0)))/3.5")
        assert "BD_0_1" not in text.upper()

    def test_numbers_written_exactly(self):
        g = 1.2345678901234567e-5
        xb = Crossbar(np.array([[g]]), r_source=0.1 + 0.2)
        text = netlist_text(xb, [1 / 3])
        assert repr(1 / 3) in text and repr(0.1 + 0.2) in text and repr(1 / g) in text

    @pytest.mark.parametrize("name, expected", [
        ("r_3_5", ("row", 3, 5)), ("c_0_12", ("col", 0, 12)), ("V(R_1_2)", ("row", 1, 2)),
        ("in_4", ("in", 4)), ("s_7", ("sink", 7)),
    ])
    def test_parse_node_name(self, name, expected):
        assert parse_node_name(name) == expected

    @pytest.mark.parametrize("name", ["r_3", "x_1_2", "r_a_b", "0", "i(vsense_0)"])
    def test_parse_node_name_rejects(self, name):
        with pytest.raises(XbarrefError, match="name"):
            parse_node_name(name)

    def test_bad_arguments(self, tmp_path):
        xb = Crossbar(np.ones((2, 2)) * 1e-5)
        with pytest.raises(XbarrefError, match="^V:"):
            netlist_text(xb, np.ones((2, 2)))
        with pytest.raises(XbarrefError, match="^V:"):
            netlist_text(xb, [0.1, np.nan])
        with pytest.raises(XbarrefError, match="^crossbar:"):
            netlist_text(np.ones((2, 2)), [0.1, 0.2])
        with pytest.raises(XbarrefError, match="folder"):
            write_netlist(xb, [0.1, 0.2], tmp_path / "missing" / "x.cir")

    def test_write_netlist_atomic(self, tmp_path):
        xb = Crossbar(np.ones((2, 3)) * 1e-5, r_wire_row=1.0)
        write_netlist(xb, [0.1, 0.2], tmp_path / "x.cir")
        assert (tmp_path / "x.cir").read_text() == netlist_text(xb, [0.1, 0.2])
        assert os.listdir(tmp_path) == ["x.cir"]

    def test_node_arrays_missing(self):
        with pytest.raises(XbarrefError, match="i\\(vsense_j\\) missing at index \\(1,\\)"):
            node_arrays({"i(vsense_0)": 1.0, "v(r_0_0)": 0.0, "v(c_0_0)": 0.0}, 1, 2)


class TestRawFile:
    def test_binary_and_ascii_agree(self, ngspice_path, tmp_path):
        rng = np.random.default_rng(11)
        xb = Crossbar(**random_crossbar(rng, 4, 5, regime="strong", per_segment=True,
                                        zero_fraction=0.3))
        cir = tmp_path / "x.cir"
        write_netlist(xb, rng.uniform(-0.3, 0.3, 4), cir)
        env = dict(os.environ)
        runs = {}
        for kind, ascii_flag in (("bin", None), ("ascii", "1")):
            env.pop("SPICE_ASCIIRAWFILE", None)
            if ascii_flag:
                env["SPICE_ASCIIRAWFILE"] = ascii_flag
            raw = tmp_path / f"{kind}.raw"
            subprocess.run([ngspice_path, "-b", "-r", str(raw), str(cir)], env=env, check=True,
                           capture_output=True, stdin=subprocess.DEVNULL)
            runs[kind] = read_rawfile(raw)
        assert (tmp_path / "ascii.raw").read_bytes().count(b"Values:") == 1
        assert (tmp_path / "bin.raw").read_bytes().count(b"Binary:") == 1
        assert set(runs["bin"]) == set(runs["ascii"])
        assert "i(vsense_0)" in runs["bin"] and "v(r_3_4)" in runs["bin"]
        for name, value in runs["bin"].items():
            # the ASCII file holds 16 significant digits
            np.testing.assert_allclose(runs["ascii"][name], value, rtol=1e-15, atol=1e-300)

    def test_truncated_raw_file(self, tmp_path, ngspice_path):
        xb = Crossbar(np.ones((2, 2)) * 1e-5, r_sink=1.0)
        values = run_ngspice(netlist_text(xb, [0.1, 0.2]), str(tmp_path), ngspice=ngspice_path)
        assert values["i(vsense_0)"] > 0
        data = (tmp_path / "crossbar.raw").read_bytes()
        (tmp_path / "cut.raw").write_bytes(data[:-10])
        with pytest.raises(SpiceError, match="binary section"):
            read_rawfile(tmp_path / "cut.raw")
        (tmp_path / "head.raw").write_bytes(data[:40])
        with pytest.raises(SpiceError):
            read_rawfile(tmp_path / "head.raw")

    def test_failed_ngspice_run(self, tmp_path, ngspice_path):
        # two different voltage sources in parallel: ngspice cannot solve it
        bad = "bad\nV1 a 0 DC 1\nV2 a 0 DC 2\nR1 a 0 1\n.op\n.end\n"
        with pytest.raises(SpiceError, match="ngspice"):
            run_ngspice(bad, str(tmp_path), ngspice=ngspice_path, timeout=60)

    def test_missing_ngspice(self, tmp_path):
        xb = Crossbar(np.ones((1, 1)) * 1e-5)
        with pytest.raises(SpiceError, match="not found"):
            spice_operating_point(xb, [0.1], ngspice=str(tmp_path / "no-ngspice-here"))


def test_relative_difference():
    assert relative_difference([1.0, 2.0], [1.0, 4.0]) == 0.5
    assert relative_difference([0.0], [0.0]) == 0.0
    assert relative_difference([1e-30], [0.0]) == float("inf")
    with pytest.raises(XbarrefError, match="shape"):
        relative_difference([1.0], [1.0, 2.0])


# ---------------------------------------------------------------------------------------
# ngspice on xbarref's netlist against the independent dense reference (small arrays)

SMALL = [  # (seed, M, N, regime, per_segment, zero_fraction)
    (1, 1, 1, "strong", False, 0.0),
    (2, 1, 7, "strong", True, 0.3),
    (3, 7, 1, "strong", True, 0.3),
    (4, 5, 8, "weak", True, 0.5),
    (5, 12, 12, "strong", True, 0.3),
    (6, 9, 4, "strong", False, 0.5),
    (7, 3, 11, "weak", False, 0.0),
    (8, 10, 6, "strong", True, 1.0),
]


@pytest.mark.parametrize("seed, M, N, regime, per_segment, zero_fraction", SMALL)
def test_netlist_linear_matches_reference(ngspice_path, seed, M, N, regime, per_segment,
                                          zero_fraction):
    rng = np.random.default_rng(seed)
    kw = random_crossbar(rng, M, N, regime=regime, per_segment=per_segment,
                         zero_fraction=zero_fraction)
    V = rng.uniform(-0.5, 0.5, M)
    ref = solve_reference(broadcast_params(**kw), V)
    res = spice_operating_point(Crossbar(**kw), V, ngspice=ngspice_path, timeout=120)
    assert relative_difference(res.I, ref["I"][0]) <= 1e-9
    assert relative_difference(res.V_row, ref["V_row"][0]) <= 1e-9
    assert relative_difference(res.V_col, ref["V_col"][0]) <= 1e-9


@pytest.mark.parametrize("seed, M, N, regime, per_segment, zero_fraction", SMALL[1:6])
@pytest.mark.parametrize("k", [0.5, 5.0])
def test_netlist_sinh_matches_reference(ngspice_path, seed, M, N, regime, per_segment,
                                        zero_fraction, k):
    rng = np.random.default_rng(seed + 100)
    kw = random_crossbar(rng, M, N, regime=regime, per_segment=per_segment,
                         zero_fraction=zero_fraction, device="sinh", k=k)
    V = rng.uniform(-0.6, 0.6, M)
    params = broadcast_params(**{key: kw[key] for key in
                                 ("G", "r_source", "r_sink", "r_wire_row", "r_wire_col")})
    ref = solve_reference(params, V, device="sinh", sinh_k=k)
    res = spice_operating_point(Crossbar(**kw), V, ngspice=ngspice_path, timeout=120)
    assert relative_difference(res.I, ref["I"][0]) <= 1e-8
    assert relative_difference(np.concatenate([res.V_row, res.V_col]),
                               np.concatenate([ref["V_row"][0], ref["V_col"][0]])) <= 1e-8


# ---------------------------------------------------------------------------------------
# xbarref's solver against ngspice (up to 48 x 48)

def _linear_cases(count, seed):
    rng = np.random.default_rng(seed)
    cases = []
    for n in range(count):
        M, N = (int(x) for x in rng.integers(1, 49, 2))
        if n == 0:
            M, N = 48, 48
        cases.append((int(rng.integers(2**31)), M, N, ("strong", "weak")[n % 2],
                      bool(n % 3), (0.0, 0.2, 0.6)[n % 3]))
    return cases


@pytest.mark.parametrize("seed, M, N, regime, per_segment, zero_fraction",
                         _linear_cases(10, 20261126))
def test_solver_linear_matches_ngspice(ngspice_path, seed, M, N, regime, per_segment,
                                       zero_fraction):
    from xbarref.circuit import solve

    rng = np.random.default_rng(seed)
    xb = Crossbar(**random_crossbar(rng, M, N, regime=regime, per_segment=per_segment,
                                    zero_fraction=zero_fraction))
    V = rng.uniform(-0.5, 0.5, (2, M))     # bipolar inputs
    sol = solve(xb, V, nodes=True)
    ref = spice_operating_point(xb, V[1], ngspice=ngspice_path, timeout=300)
    assert relative_difference(sol.I[1], ref.I) <= 1e-9
    assert relative_difference(np.concatenate([sol.V_row[1], sol.V_col[1]]),
                               np.concatenate([ref.V_row, ref.V_col])) <= 1e-9


@pytest.mark.parametrize("inputs", [None, [2, 0]])
def test_spice_check(ngspice_path, inputs):
    from xbarref.circuit import solve

    rng = np.random.default_rng(99)
    xb = Crossbar(**random_crossbar(rng, 9, 7, regime="strong", per_segment=True,
                                    zero_fraction=0.3))
    V = rng.uniform(-0.5, 0.5, (3, 9))
    rows = spice_check(xb, V, inputs=inputs, ngspice=ngspice_path, timeout=120)
    assert [row.index for row in rows] == ([0, 1, 2] if inputs is None else inputs)
    for row in rows:
        ref = solve_reference(broadcast_params(
            **{key: getattr(xb, key) for key in ("G", "r_source", "r_sink", "r_wire_row",
                                                 "r_wire_col")}), V[row.index])
        spice = spice_operating_point(xb, V[row.index], ngspice=ngspice_path, timeout=120)
        assert 0 <= row.rel_I <= 1e-9 and 0 <= row.rel_nodes <= 1e-9
        assert relative_difference(spice.I, ref["I"][0]) <= 1e-9
        # the reported difference is xbarref's solution against this ngspice result
        ours = solve(xb, V[row.index]).I[0]
        assert row.rel_I == pytest.approx(relative_difference(ours, spice.I), rel=0, abs=1e-14)
        assert row.seconds_spice > 0
    with pytest.raises(XbarrefError, match="inputs"):
        spice_check(xb, V, inputs=[3], ngspice=ngspice_path)


def _sinh_cases(count, seed):
    rng = np.random.default_rng(seed)
    cases = []
    for n in range(count):
        M, N = (int(x) for x in rng.integers(1, 33, 2))
        if n == 0:
            M, N = 32, 32
        k = float(rng.uniform(0.5, 5.0)) if n > 1 else 5.0
        cases.append((int(rng.integers(2**31)), M, N, ("strong", "weak")[n % 2],
                      bool(n % 3), (0.0, 0.2, 0.6)[n % 3], k))
    return cases


@pytest.mark.parametrize("seed, M, N, regime, per_segment, zero_fraction, k",
                         _sinh_cases(8, 4242))
def test_solver_sinh_matches_ngspice(ngspice_path, seed, M, N, regime, per_segment,
                                     zero_fraction, k):
    from xbarref.circuit import solve

    rng = np.random.default_rng(seed)
    xb = Crossbar(**random_crossbar(rng, M, N, regime=regime, per_segment=per_segment,
                                    zero_fraction=zero_fraction, device="sinh", k=k))
    V = rng.uniform(-0.6, 0.6, M)
    V[0] = 0.6 if M > 1 else -0.6           # reach the largest input
    sol = solve(xb, V, nodes=True)
    ref = spice_operating_point(xb, V, ngspice=ngspice_path, timeout=300)
    assert relative_difference(sol.I[0], ref.I) <= 1e-8
    assert relative_difference(np.concatenate([sol.V_row[0], sol.V_col[0]]),
                               np.concatenate([ref.V_row, ref.V_col])) <= 1e-8
