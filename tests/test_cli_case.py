"""The case sub-commands: solve, info, netlist, spice-check, demo."""

import hashlib
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

from xbarref import __version__
from xbarref.circuit import Crossbar
from xbarref.cli import main
from xbarref.commands.case import example_case_path
from xbarref.io.case import Case, read_case, write_case
from xbarref.io.netlist import netlist_text


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest(), os.stat(path).st_mtime_ns


def small_case(tmp_path, name="case.h5", device="linear", seed=0, M=5, N=6, B=3):
    rng = np.random.default_rng(seed)
    r_wire_row = rng.uniform(0.5, 3.0, (M, N - 1))
    r_wire_row[0, 0] = 0.0
    xb = Crossbar(rng.uniform(1e-5, 1e-4, (M, N)), r_source=[0.0] + [30.0] * (M - 1),
                  r_sink=rng.uniform(0, 50, N), r_wire_row=r_wire_row, r_wire_col=2.0,
                  device=device, sinh_k=3.0 if device == "sinh" else None)
    path = tmp_path / name
    write_case(Case(xb, rng.uniform(-0.4, 0.4, (B, M))), path)
    return path


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


class TestInfo:
    def test_example_case(self, capsys):
        code, out, err = run(capsys, "info", example_case_path())
        assert code == 0, err
        assert "M = 64 rows" in out and "N = 64 columns" in out
        assert "device:      linear" in out
        assert "B = 4 vector(s)" in out
        assert "r_source:    100 ohm (all equal)" in out
        assert "outputs:     I, V_row, V_col; solver: ngspice-39" in out

    def test_case_without_outputs(self, capsys, tmp_path):
        path = small_case(tmp_path, device="sinh")
        before = digest(path)
        code, out, _ = run(capsys, "info", path)
        assert code == 0
        assert digest(path) == before and os.listdir(tmp_path) == ["case.h5"]
        assert "sinh_k = 3 1/V" in out
        assert "outputs:     none" in out
        assert "1 of 5 are 0 (ideal shorts)" in out  # r_source

    def test_bad_file(self, capsys, tmp_path):
        path = small_case(tmp_path)
        with h5py.File(path, "a") as f:
            f["crossbar"].attrs["device"] = "memristor"
        code, out, err = run(capsys, "info", path)
        assert code == 2 and out == ""
        assert "/crossbar attribute 'device'" in err and str(path) in err

    def test_missing_file(self, capsys, tmp_path):
        code, _, err = run(capsys, "info", tmp_path / "nope.h5")
        assert code == 2 and "nope.h5" in err


class TestNetlist:
    def test_writes_the_chosen_input(self, capsys, tmp_path):
        path = small_case(tmp_path)
        before = digest(path)
        code, out, err = run(capsys, "netlist", path, "-o", tmp_path / "x.cir", "--input", 2)
        assert code == 0, err
        case = read_case(path)
        text = (tmp_path / "x.cir").read_text()
        expected = netlist_text(case.crossbar, case.V[2])
        assert text.splitlines()[1:] == expected.splitlines()[1:]   # all but the title
        assert "input 2" in text.splitlines()[0]
        assert digest(path) == before

    def test_input_out_of_range(self, capsys, tmp_path):
        path = small_case(tmp_path)
        code, _, err = run(capsys, "netlist", path, "-o", tmp_path / "x.cir", "--input", 3)
        assert code == 2 and "--input" in err
        assert not (tmp_path / "x.cir").exists()

    def test_refuses_to_overwrite_the_case(self, capsys, tmp_path):
        path = small_case(tmp_path)
        before = digest(path)
        code, _, err = run(capsys, "netlist", path, "-o", path)
        assert code == 2 and "input file" in err
        assert digest(path) == before


class TestSolve:
    @pytest.mark.parametrize("nodes", [False, True])
    def test_writes_outputs_and_keeps_input(self, capsys, tmp_path, nodes):
        from xbarref.circuit import solve

        path = small_case(tmp_path)
        before = digest(path)
        argv = ["solve", path, "-o", tmp_path / "out.h5"] + (["--nodes"] if nodes else [])
        code, out, err = run(capsys, *argv)
        assert code == 0, err
        assert digest(path) == before
        case, solved = read_case(path), read_case(tmp_path / "out.h5")
        assert not case.has_outputs
        np.testing.assert_array_equal(solved.V, case.V)
        np.testing.assert_array_equal(solved.crossbar.G, case.crossbar.G)
        np.testing.assert_array_equal(solved.crossbar.r_wire_row, case.crossbar.r_wire_row)
        sol = solve(case.crossbar, case.V, nodes=True)
        np.testing.assert_allclose(solved.I, sol.I, rtol=0, atol=1e-15 * np.abs(sol.I).max())
        assert solved.solver.startswith(f"xbarref {__version__} ")
        if nodes:
            np.testing.assert_allclose(solved.V_row, sol.V_row, rtol=0, atol=1e-14)
            np.testing.assert_allclose(solved.V_col, sol.V_col, rtol=0, atol=1e-14)
        else:
            assert solved.V_row is None and solved.V_col is None
        assert sorted(os.listdir(tmp_path)) == ["case.h5", "out.h5"]

    def test_example_case_agrees_with_its_ngspice_outputs(self, capsys, tmp_path):
        # The bundled case stores ngspice's operating point (validation/make_example_case.py).
        src = tmp_path / "example.h5"
        shutil.copyfile(example_case_path(), src)
        code, _, err = run(capsys, "solve", src, "-o", tmp_path / "out.h5", "--nodes")
        assert code == 0, err
        spice, ours = read_case(src), read_case(tmp_path / "out.h5")
        assert spice.solver.startswith("ngspice")
        for b in range(spice.batch_size):
            assert np.abs(ours.I[b] - spice.I[b]).max() <= 1e-9 * np.abs(spice.I[b]).max()
            assert np.abs(ours.V_col[b] - spice.V_col[b]).max() <= 1e-9 * np.abs(spice.V_col[b]).max()

    def test_refuses_output_equal_to_input(self, capsys, tmp_path):
        path = small_case(tmp_path)
        before = digest(path)
        for target in (path, tmp_path / "." / "case.h5"):
            code, _, err = run(capsys, "solve", path, "-o", target)
            assert code == 2 and "input" in err
            assert digest(path) == before
        assert os.listdir(tmp_path) == ["case.h5"]

    def test_refuses_input_through_a_link(self, capsys, tmp_path):
        path = small_case(tmp_path)
        os.symlink(path, tmp_path / "link.h5")
        before = digest(path)
        code, _, err = run(capsys, "solve", path, "-o", tmp_path / "link.h5")
        assert code == 2 and "input" in err
        assert digest(path) == before

    def test_bad_case_leaves_no_output(self, capsys, tmp_path):
        path = small_case(tmp_path)
        with h5py.File(path, "a") as f:
            del f["inputs/V"]
            f["inputs/V"] = np.ones((3, 4))      # wrong width
        before = digest(path)
        code, _, err = run(capsys, "solve", path, "-o", tmp_path / "out.h5")
        assert code == 2 and "/inputs/V" in err
        assert digest(path) == before
        assert os.listdir(tmp_path) == ["case.h5"]

    def test_truncated_case_leaves_no_output(self, capsys, tmp_path):
        path = small_case(tmp_path, M=30, N=30)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        code, _, err = run(capsys, "solve", path, "-o", tmp_path / "out.h5")
        assert code == 2 and "case.h5" in err
        assert os.listdir(tmp_path) == ["case.h5"]

    def test_failed_write_keeps_previous_output(self, capsys, tmp_path, monkeypatch):
        path = small_case(tmp_path)
        (tmp_path / "out.h5").write_bytes(b"previous contents")
        import xbarref.io.case as case_module

        def broken(*args, **kwargs):
            raise case_module.XbarrefError("simulated failure while writing")

        monkeypatch.setattr(case_module, "_compact", broken)
        code, _, err = run(capsys, "solve", path, "-o", tmp_path / "out.h5", "--overwrite")
        assert code == 2 and "simulated" in err
        assert (tmp_path / "out.h5").read_bytes() == b"previous contents"
        assert sorted(os.listdir(tmp_path)) == ["case.h5", "out.h5"]


@pytest.mark.ngspice
class TestSpiceCheck:
    def test_agrees(self, capsys, tmp_path, ngspice_path):
        path = small_case(tmp_path, M=8, N=7, B=3)
        before = digest(path)
        code, out, err = run(capsys, "spice-check", path, "--ngspice", ngspice_path)
        assert code == 0, out + err
        rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
        assert [int(r[0]) for r in rows] == [0, 1, 2]
        assert all(float(r[1]) <= 1e-9 and r[-1] == "yes" for r in rows)
        assert "agree" in out.splitlines()[-1]
        assert digest(path) == before
        assert os.listdir(tmp_path) == ["case.h5"]

    def test_chosen_inputs_and_zero_tolerance(self, capsys, tmp_path, ngspice_path):
        path = small_case(tmp_path, M=8, N=7, B=3, seed=4)
        code, out, _ = run(capsys, "spice-check", path, "--inputs", 2, 0, "--tol", 0,
                           "--ngspice", ngspice_path)
        rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
        assert [int(r[0]) for r in rows] == [2, 0]
        # both solvers round differently, so some difference is above 0: exit status 1
        assert any(float(r[1]) > 0 for r in rows)
        assert code == 1 and "DISAGREE" in out

    def test_bad_arguments(self, capsys, tmp_path, ngspice_path):
        path = small_case(tmp_path)
        code, _, err = run(capsys, "spice-check", path, "--inputs", 7)
        assert code == 2 and "--inputs" in err
        code, _, err = run(capsys, "spice-check", path, "--tol", "nan")
        assert code == 2 and "--tol" in err
        code, _, err = run(capsys, "spice-check", path, "--ngspice", tmp_path / "no-ngspice")
        assert code == 2 and "not found" in err


@pytest.mark.ngspice
class TestSinhCase:
    def test_solve_and_spice_check(self, capsys, tmp_path, ngspice_path):
        from xbarref.validate.spice import relative_difference, spice_operating_point

        path = small_case(tmp_path, device="sinh", M=6, N=5, B=2, seed=3)
        code, out, err = run(capsys, "solve", path, "-o", tmp_path / "out.h5", "--nodes")
        assert code == 0, err
        solved = read_case(tmp_path / "out.h5")
        assert solved.crossbar.device == "sinh" and solved.crossbar.sinh_k == 3.0
        assert solved.solver.startswith(f"xbarref {__version__} ") and "newton" in solved.solver
        for b in range(2):
            ref = spice_operating_point(solved.crossbar, solved.V[b], ngspice=ngspice_path)
            assert relative_difference(solved.I[b], ref.I) <= 1e-8
            assert relative_difference(solved.V_row[b], ref.V_row) <= 1e-8
        code, out, err = run(capsys, "spice-check", path, "--tol", "1e-8", "--ngspice", ngspice_path)
        assert code == 0, out + err
        assert "sinh crossbar, 2 input(s)" in out


class TestDemo:
    def test_prints_circuit_against_ideal(self, capsys):
        code, out, err = run(capsys, "demo")
        assert code == 0, err
        case = read_case(example_case_path())
        ideal = case.V[0] @ case.crossbar.G
        lines = out.splitlines()
        start = next(n for n, line in enumerate(lines) if line.split()[:1] == ["column"]) + 1
        table = [line.split() for line in lines[start:start + 8]]
        assert [int(r[0]) for r in table] == list(range(8))
        for j, r in enumerate(table):
            circuit_uA, ideal_uA, rel = float(r[1]), float(r[2]), float(r[3].rstrip("%"))
            # circuit current: against ngspice's solution stored in the case
            assert abs(circuit_uA - case.I[0, j] * 1e6) <= 2e-6
            assert abs(ideal_uA - ideal[j] * 1e6) <= 2e-6
            expected_rel = (case.I[0, j] - ideal[j]) / abs(ideal[j]) * 100
            assert abs(rel - expected_rel) <= 2e-3
        assert "solved all 4 inputs in" in out
        assert "max |I - I_stored| / max |I_stored|" in out

    def test_console_script(self, tmp_path):
        exe = shutil.which("xbarref")
        argv = [exe] if exe else [sys.executable, "-m", "xbarref.cli"]
        proc = subprocess.run(argv + ["demo", "--columns", "3"], capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert "input 0: output currents" in proc.stdout
