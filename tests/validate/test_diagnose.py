"""Attribution: candidates built from deliberately wrong circuit models (tests/validate/faults.py)
must be named for the fault injected, the exact solver for none; partial candidates, golden
select, the report, and the solve-time and preset guarantees."""

import os

import numpy as np
import pytest

from xbarref.cli import main
from xbarref.validate import generate
from xbarref.validate.compare import run_candidate
from xbarref.validate.generate import PRESETS, _diagnostic, _standard, preset_specs, solve_case
from xbarref.validate.report import write_report
from xbarref.validate.suite import read_suite, write_candidate, write_suite

from . import faults
from .helpers import make

TOL = 1e-3


@pytest.fixture(scope="module")
def probes():
    return make(preset_specs("diagnostic"), preset="diagnostic")


#: Parts a fault may be reported under (its own part and the ones it moves resistance to).
ALLOWED = {
    "source_ignored": {"source"},
    "sink_ignored": {"sink"},
    "terminals_swapped": {"source", "sink"},
    "extra_column_segment": {"column wires"},
    "row_wires_half": {"row wires"},
    "sense_at_top": {"orientation"},
    "linear_device": {"device"},
    "scalar_source": {"source"},
}


@pytest.mark.parametrize("fault", sorted(faults.FAULTS))
def test_each_injected_fault_is_named(probes, fault):
    fn, (part, kind) = faults.FAULTS[fault]
    result = run_candidate(probes, fn, tol=TOL, name=fault)
    assert not result.passed
    found = {(f.part, f.kind) for f in result.diagnosis.findings}
    assert (part, kind) in found, (fault, result.diagnosis.lines())
    assert {f.part for f in result.diagnosis.findings} <= ALLOWED[fault], result.diagnosis.lines()
    assert all(f.kind != "unexplained" for f in result.diagnosis.findings)


def _finding(result, part, kind):
    return next(f for f in result.diagnosis.findings if (f.part, f.kind) == (part, kind))


def test_fitted_values_are_the_injected_ones(probes):
    # row wires halved: the fitted scale is 0.5
    r = run_candidate(probes, faults.row_wires_half, tol=TOL)
    assert _finding(r, "row wires", "scaled").value == pytest.approx(0.5, abs=0.02)
    assert "0.5 times" in _finding(r, "row wires", "scaled").text
    # one extra column segment: 1 segment
    r = run_candidate(probes, faults.extra_column_segment, tol=TOL)
    f = _finding(r, "column wires", "extra segment")
    assert f.value == pytest.approx(1.0, abs=0.05) and "one extra segment" in f.text
    # sinh treated as linear: k = 0
    r = run_candidate(probes, faults.linear_device, tol=TOL)
    assert _finding(r, "device", "law").value < 0.1 and "treated as linear" in _finding(r, "device", "law").text
    # source ignored: plain words
    r = run_candidate(probes, faults.source_ignored, tol=TOL)
    assert "source resistance ignored" in _finding(r, "source", "ignored").text
    r = run_candidate(probes, faults.sink_ignored, tol=TOL)
    assert "sink resistance ignored" in _finding(r, "sink", "ignored").text


def test_a_sinh_law_with_the_wrong_k_is_named(probes):
    def wrong_k(xb, V):
        return faults.exact(xb.replace(sinh_k=2.0 * xb.sinh_k) if not xb.is_linear else xb, V)
    f = _finding(run_candidate(probes, wrong_k, tol=TOL), "device", "law")
    assert f.value == pytest.approx(8.0, rel=0.02)


def test_exact_candidate_nothing_wrong(probes):
    result = run_candidate(probes, faults.exact, tol=TOL)
    assert result.passed and result.diagnosis.findings == []
    assert result.diagnosis.lines()[0].startswith("no modelling error found")
    # the suite's own outputs too, at tolerance 0
    result = run_candidate(probes, lambda xb, V, _s={}: faults.exact(xb, V), tol=1e-9)
    assert result.diagnosis.findings == []


def test_several_faults_at_once_are_all_named(probes):
    from xbarref.validate.approx import ideal
    found = {(f.part, f.kind) for f in run_candidate(probes, ideal, tol=TOL).diagnosis.findings}
    assert {("source", "ignored"), ("sink", "ignored"), ("row wires", "ignored"),
            ("column wires", "ignored"), ("device", "law")} <= found


def test_without_probes_the_diagnosis_says_so():
    suite = make([("a", generate._spec(8, 8, "moderate", B=2))])
    lines = run_candidate(suite, faults.source_ignored).diagnosis.lines()
    assert "no diagnostic probes" in lines[0]


def test_error_maps_and_report(probes, tmp_path):
    result = run_candidate(probes, faults.sense_at_top, tol=TOL, name="sense-at-top")
    path = write_report(result, str(tmp_path / "rep"), suite="s.h5", candidate="c.h5")
    text = open(path).read()
    for name in ("error_maps.png", "error_vs_source_resistance.png", "error_vs_sink_resistance.png",
                 "error_vs_g_max.png", "error_vs_wire_resistance.png"):
        assert os.path.getsize(tmp_path / "rep" / name) > 1000
        assert f"({name})" in text
    assert "## Diagnosis" in text and "sense amplifiers are placed at row 0" in text
    assert "| r_source | r_sink | r_wire_row | r_wire_col | G |" in text
    assert "30 ohm" in text and "sinh k=4" in text and "one-hot" in text
    # the per-row/column map of a probe: with one row driven, the error of column j
    from xbarref.validate.diagnose import error_map
    sc = probes.cases[8]
    P = faults.sense_at_top(sc.case.crossbar, sc.case.V)
    E = error_map(sc, P)
    M = sc.case.shape[0]
    np.testing.assert_allclose(E, (P[:M] - sc.case.I[:M]) / np.max(np.abs(sc.case.I)))


def test_worse_than_ideal_flag_and_worst_first(probes):
    def overshoot(xb, V):  # twice the IR drop, in the wrong direction
        I0 = V @ xb.G
        return I0 + 2.0 * (I0 - faults.exact(xb, V))
    result = run_candidate(probes, overshoot, tol=TOL)
    flagged = [c for c in result.cases if c.worse_than_ideal]
    assert flagged and all(c.max_rel_error > c.ideal_error and "worse than the ideal" in c.reason
                           for c in flagged)
    errs = [c.max_rel_error for c in result.worst() if c.status == "failed"]
    assert errs == sorted(errs, reverse=True)


def test_partial_candidate_exit_codes(probes, tmp_path, capsys):
    suite_file = write_suite(probes, tmp_path / "s.h5")
    outputs = {sc.name: sc.case.I.copy() for sc in probes.cases}
    outputs[probes.names[1]][:] = np.nan         # the sinh case: not run
    outputs[probes.names[2]][3] = np.nan         # one input without answer
    write_candidate(outputs, tmp_path / "c.h5")
    argv = ["compare", str(suite_file), str(tmp_path / "c.h5"), "--quiet"]
    assert main(argv) == 3
    out = capsys.readouterr().out
    assert "not run: 1" in out and "partly answered: 1" in out and "incomplete" in out
    assert main(argv + ["--allow-missing"]) == 0
    capsys.readouterr()
    # a failed answered case still exits 1
    outputs[probes.names[3]] *= 1.01
    write_candidate(outputs, tmp_path / "c.h5")
    assert main(argv + ["--allow-missing"]) == 1
    capsys.readouterr()


def test_not_implemented_is_not_run(probes):
    def no_sinh(xb, V):
        if not xb.is_linear:
            raise NotImplementedError("sinh")
        return faults.exact(xb, V)
    result = run_candidate(probes, no_sinh, tol=TOL)
    assert result.not_run == [probes.names[1]] and not result.failed and not result.passed
    assert result.diagnosis.lines()[0].startswith("no modelling error found") and "1 not run" in \
        result.diagnosis.lines()[0]


def test_golden_select(probes, tmp_path, capsys):
    big = make([("big_24x24_arrays", generate._spec(24, 24, "nonuniform", B=2)),
                ("sinh_8x8", generate._spec(8, 8, "moderate", device="sinh", k=4.0, B=2))])
    from xbarref.validate.suite import Suite
    suite = Suite(cases=probes.cases + big.cases, preset="t", seed=0, generator="tests")
    path = write_suite(suite, tmp_path / "s.h5")
    sub = tmp_path / "sub.h5"
    code = main(["golden", "select", str(path), "--device", "linear", "--max-size", "16", "--scalar-only",
                 "-o", str(sub)])
    assert code == 0, capsys.readouterr().err
    got = read_suite(sub)
    want = [sc.name for sc in suite.cases if sc.case.crossbar.is_linear and max(sc.case.shape) <= 16
            and not sc.params.get("line") and sc.name != "big_24x24_arrays"]
    assert got.names == want
    for sc in got.cases:
        np.testing.assert_array_equal(sc.case.I, suite[sc.name].case.I)
        assert sc.params == suite[sc.name].params
    assert "golden select --device linear --max-size 16 --scalar-only" in got.generator
    before = sub.read_bytes()
    assert main(["golden", "select", str(path), "-o", str(sub)]) == 2  # exists, no --overwrite
    assert "--overwrite" in capsys.readouterr().err and sub.read_bytes() == before
    assert main(["golden", "select", str(path), "--max-size", "0", "-o", str(sub), "--overwrite"]) == 2
    assert "--max-size" in capsys.readouterr().err
    assert main(["golden", "select", str(path), "--group", "nope", "-o", str(sub), "--overwrite"]) == 2
    assert "nope" in capsys.readouterr().err
    assert sub.read_bytes() == before


def test_probe_cases_are_appended_so_existing_cases_keep_their_seeds():
    old_standard = _standard((8, 16, 32, 64, 128, 256))
    new = PRESETS["standard"]()
    assert new[:len(old_standard)] == old_standard and new[len(old_standard):] == _diagnostic()
    large = PRESETS["large"]()
    assert large[:len(old_standard)] == old_standard
    assert all(not s.get("probe") for s in large[:len(large) - len(_diagnostic())])
    assert all("probe" not in s for s in old_standard)   # their stored generator_params are unchanged


def test_probes_are_what_they_say(probes):
    for sc in probes.cases:
        xb = sc.case.crossbar
        kind = sc.params["probe"]
        nonzero = {k for k in ("r_source", "r_sink", "r_wire_row", "r_wire_col") if np.any(getattr(xb, k) > 0)}
        expect = {"device-only": set(), "source-only": {"r_source"}, "sink-only": {"r_sink"},
                  "row-wires-only": {"r_wire_row"}, "col-wires-only": {"r_wire_col"},
                  "one-row-source": {"r_source"}, "one-col-sink": {"r_sink"}, "one-row-wire": {"r_wire_row"},
                  "one-col-wire": {"r_wire_col"},
                  "all": {"r_source", "r_sink", "r_wire_row", "r_wire_col"}}[kind]
        assert nonzero == expect, sc.name
        if sc.params["inputs"] == "one-hot":
            M = xb.shape[0]
            np.testing.assert_array_equal(sc.case.V[:M], generate.V_READ * np.eye(M))
    shapes = {sc.case.shape for sc in probes.cases}
    assert (8, 24) in shapes and (24, 8) in shapes


def test_compile_time_is_not_solve_time(monkeypatch):
    """A solver whose first call is slow (as a kernel compilation is) must not have that
    first call recorded as the case's solve time."""
    import time

    import xbarref.circuit as circuit
    real = circuit.solve
    calls = []

    def slow_first(*a, **k):
        calls.append(1)
        if len(calls) == 1:
            time.sleep(0.6)
        return real(*a, **k)

    monkeypatch.setattr(circuit, "solve", slow_first)
    name, spec = preset_specs("quick")[0]
    sc = solve_case(name, spec, [0, 0], ngspice=False)
    assert sc.solve_seconds < 0.3 and len(calls) >= 2


def test_terminal_only_model_is_exact():
    """The fast source/sink model the fits use equals the exact solver (zero and non-zero
    terminals, per-line values)."""
    from xbarref.circuit import Crossbar, solve
    from xbarref.validate.diagnose import terminal_only_currents
    rng = np.random.default_rng(7)
    for M, N in ((1, 1), (5, 3), (16, 12), (3, 9)):
        G = rng.uniform(1e-6, 1e-3, (M, N))
        V = rng.uniform(-0.3, 0.3, (4, M))
        for rs, rk in ((0.0, 0.0), (rng.uniform(0, 500, M), 0.0), (0.0, rng.uniform(0, 500, N)),
                       (rng.uniform(0, 500, M), rng.uniform(0, 500, N))):
            xb = Crossbar(G, r_source=rs, r_sink=rk)
            exact = solve(xb, V, method="direct").I
            np.testing.assert_allclose(terminal_only_currents(xb, V), exact, rtol=0,
                                       atol=1e-12 * np.max(np.abs(exact)))


def test_info_and_compare_rows_show_the_circuit(probes, tmp_path, capsys):
    path = write_suite(probes, tmp_path / "s.h5")
    assert main(["golden", "info", str(path)]) == 0
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if "_one-row-source_" in l)
    assert "r_source=30-300 ohm" in line and "r_sink=0" in line and "r_wire_row=0" in line
    assert "G=" in line and " S" in line and "linear" in line and "inputs=one-hot" in line
    assert "sinh k=4" in next(l for l in out.splitlines() if "_sinh4_" in l)
    cand = tmp_path / "c.h5"
    write_candidate({sc.name: faults.sink_ignored(sc.case.crossbar, sc.case.V) for sc in probes.cases}, cand)
    assert main(["compare", str(path), str(cand)]) == 1
    out = capsys.readouterr().out
    row = next(l for l in out.splitlines() if l.startswith(probes.names[5][:60]))
    assert "300 ohm" in row and "one-hot" in row and "NO" in row
    assert "worst cases:" in out and "diagnosis:" in out and "sink resistance ignored" in out
    # the suite against itself: passes, nothing wrong
    assert main(["compare", str(path), str(path), "--quiet"]) == 0
    assert "no modelling error found" in capsys.readouterr().out
