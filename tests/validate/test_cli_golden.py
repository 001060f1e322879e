"""``xbarref golden`` and ``xbarref compare``: outputs and exit codes."""

import os

import numpy as np
import pytest

from xbarref.cli import main
from xbarref.validate.generate import PRESETS, build_case, make_suite, preset_specs
from xbarref.validate.suite import read_candidate, read_suite, write_candidate, write_suite

from .helpers import regimes_suite


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def suite_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "suite.h5"
    write_suite(regimes_suite(), path)
    return path


class TestGoldenMake:
    def test_quick_preset_in_parallel(self, tmp_path, capsys, ngspice_path):
        out = tmp_path / "quick.h5"
        code, text, err = run(capsys, "golden", "make", "--preset", "quick", "--seed", "3", "--jobs", "2",
                              "--no-progress", "-o", out)
        assert code == 0, err
        suite = read_suite(out)
        assert len(suite) == len(preset_specs("quick")) and suite.seed == 3
        small = [c for c in suite.cases if max(c.case.shape) <= 32]
        assert small and all(c.ngspice_verified for c in small)
        assert "ngspice: " in text and f"{len(small)}/{len(small)} checked cases verified" in text
        # the same seed gives the same suite whatever the number of workers
        again = make_suite("quick", seed=3, jobs=1, ngspice=False, progress=False)
        for a, b in zip(suite.cases, again.cases):
            np.testing.assert_array_equal(a.case.crossbar.G, b.case.crossbar.G)
            np.testing.assert_array_equal(a.case.V, b.case.V)
            np.testing.assert_allclose(a.case.I, b.case.I, rtol=0, atol=1e-15 * np.abs(b.case.I).max())

    def test_bad_arguments(self, tmp_path, capsys):
        code, _, err = run(capsys, "golden", "make", "--jobs", "0", "-o", tmp_path / "x.h5")
        assert code == 2 and "--jobs" in err
        code, _, err = run(capsys, "golden", "make", "-o", tmp_path / "no" / "x.h5")
        assert code == 2 and "does not exist" in err
        assert not os.path.exists(tmp_path / "x.h5")


class TestRunApprox:
    def test_writes_candidate(self, suite_file, tmp_path, capsys):
        out = tmp_path / "c.h5"
        code, text, err = run(capsys, "golden", "run-approx", suite_file, "--model", "aihwkit", "-o", out)
        assert code == 0, err
        outputs, solver = read_candidate(out)
        assert "aihwkit" in solver and len(outputs) == len(read_suite(suite_file))

    def test_unknown_model(self, suite_file, tmp_path, capsys):
        code, _, err = run(capsys, "golden", "run-approx", suite_file, "--model", "nope", "-o", tmp_path / "c.h5")
        assert code == 2 and "model: expected one of" in err

    def test_refuses_to_overwrite_suite(self, suite_file, capsys):
        before = open(suite_file, "rb").read()
        code, _, err = run(capsys, "golden", "run-approx", suite_file, "--model", "ideal", "-o", suite_file)
        assert code == 2 and "refusing to overwrite" in err
        assert open(suite_file, "rb").read() == before


class TestCompareCommand:
    def test_suite_against_itself_passes(self, suite_file, capsys):
        code, text, _ = run(capsys, "compare", suite_file, suite_file, "--tol", "0")
        assert code == 0
        assert "above tolerance 0: 0" in text

    def test_above_tolerance_exit_1_and_report(self, suite_file, tmp_path, capsys):
        cand = tmp_path / "ideal.h5"
        assert run(capsys, "golden", "run-approx", suite_file, "--model", "ideal", "-o", cand)[0] == 0
        report = tmp_path / "report"
        code, text, _ = run(capsys, "compare", suite_file, cand, "--tol", "1e-3", "--report", report)
        assert code == 1
        assert "strong_32x32" in text and " NO" in text
        for name in ("report.md", "deviation.png", "error_vs_size.png", "error_vs_wire_resistance.png",
                     "error_vs_true_deviation.png"):
            assert (report / name).stat().st_size > 0
        assert "| strong_32x32 | 32x32 |" in (report / "report.md").read_text()
        # the one output rule: an existing report folder needs --overwrite
        before = (report / "report.md").read_bytes()
        code, _, err = run(capsys, "compare", suite_file, cand, "--tol", "1e-3", "--report", report)
        assert code == 2 and "--overwrite" in err and "Traceback" not in err
        assert (report / "report.md").read_bytes() == before
        code, _, _ = run(capsys, "compare", suite_file, cand, "--tol", "1e-3", "--report", report,
                         "--overwrite")
        assert code == 1 and (report / "report.md").read_bytes() == before  # same comparison
        assert sorted(os.listdir(tmp_path)) == ["ideal.h5", "report"]

    def test_loose_tolerance_exit_0(self, suite_file, tmp_path, capsys):
        cand = tmp_path / "fo.h5"
        assert run(capsys, "golden", "run-approx", suite_file, "--model", "first-order", "-o", cand)[0] == 0
        code, _, _ = run(capsys, "compare", suite_file, cand, "--tol", "1", "--quiet")
        assert code == 0

    def test_mismatched_candidate_exit_2(self, suite_file, tmp_path, capsys):
        suite = read_suite(suite_file)
        outputs = {sc.name: sc.case.I for sc in suite.cases}
        outputs["strong_32x32"] = np.zeros((1, 32))
        write_candidate(outputs, tmp_path / "c.h5")
        code, _, err = run(capsys, "compare", suite_file, tmp_path / "c.h5")
        assert code == 2 and "/cases/strong_32x32/outputs/I: expected shape (4, 32)" in err

    def test_corrupt_candidate_exit_2(self, suite_file, tmp_path, capsys):
        bad = tmp_path / "bad.h5"
        bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
        code, _, err = run(capsys, "compare", suite_file, bad)
        assert code == 2 and "bad.h5" in err

    def test_missing_files_exit_2(self, suite_file, tmp_path, capsys):
        code, _, err = run(capsys, "compare", suite_file, tmp_path / "none.h5")
        assert code == 2 and "none.h5" in err
        code, _, err = run(capsys, "compare", tmp_path / "none.h5", suite_file)
        assert code == 2

    def test_negative_tol_exit_2(self, suite_file, capsys):
        code, _, err = run(capsys, "compare", suite_file, suite_file, "--tol", "-1")
        assert code == 2 and "--tol" in err


class TestPresets:
    def test_standard_spans_the_issue(self):
        specs = [s for _, s in preset_specs("standard")]
        sizes = {max(s["M"], s["N"]) for s in specs}
        assert min(sizes) == 8 and max(sizes) == 256
        assert {s["regime"] for s in specs} >= {"ideal", "weak", "strong", "wires-only", "terminals-only",
                                                "nonuniform"}
        assert {s["sinh_k"] for s in specs if s["device"] == "sinh"} == {1.0, 4.0, 10.0}
        assert {s["pattern"] for s in specs} == {"uniform", "quantized", "sparse", "differential", "extreme"}
        assert {s["inputs"] for s in specs} == {"unipolar", "bipolar", "sparse", "binary", "one-hot"}
        assert any(s["M"] != s["N"] for s in specs)
        assert max(max(s["M"], s["N"]) for _, s in preset_specs("large")) == 1024

    def test_incomplete_spec(self):
        from xbarref.errors import XbarrefError

        with pytest.raises(XbarrefError, match=r"spec: missing key\(s\) \['inputs'\]"):
            build_case({k: v for k, v in preset_specs("quick")[0][1].items() if k != "inputs"}, [0, 0])

    def test_unknown_preset(self):
        from xbarref.errors import XbarrefError

        with pytest.raises(XbarrefError, match="preset: expected one of"):
            preset_specs("huge")
        assert set(PRESETS) == {"quick", "standard", "large", "diagnostic"}

    def test_patterns_and_inputs_as_described(self):
        base = dict(M=20, N=30, B=50, regime="moderate", r_wire=0.5, r_source=1.0, r_sink=1.0, device="linear",
                    sinh_k=None, g_min=1e-6, g_max=1e-4, v_read=0.2, group="")
        case = build_case(dict(base, pattern="sparse", inputs="binary"), [0, 0])
        G, V = case.crossbar.G, case.V
        assert 0.7 < np.mean(G == 0) < 0.9
        assert set(np.unique(V)) <= {0.0, 0.2}
        case = build_case(dict(base, pattern="differential", inputs="bipolar"), [0, 1])
        G, V = case.crossbar.G, case.V
        # at most one device of each pair above g_min
        assert np.all(np.minimum(G[:, 0::2], G[:, 1::2]) == pytest.approx(1e-6))
        assert V.min() < 0 < V.max()
        case = build_case(dict(base, pattern="quantized", inputs="unipolar"), [0, 2])
        assert len(np.unique(case.crossbar.G)) <= 16
        case = build_case(dict(base, pattern="extreme", regime="nonuniform", inputs="sparse"), [0, 3])
        assert 0.7 < np.mean(case.V == 0) < 0.9
        assert set(np.unique(case.crossbar.G)) == {1e-4, 1e-8}
        assert case.crossbar.r_wire_row.std() > 0


class TestRunPeer:
    def test_no_peer_installed_exit_2(self, suite_file, tmp_path):
        import importlib.util
        import subprocess
        import sys

        script = os.path.join(os.path.dirname(__file__), "..", "..", "validation", "run_peer.py")
        spec_ = importlib.util.spec_from_file_location("run_peer", script)
        mod = importlib.util.module_from_spec(spec_)
        spec_.loader.exec_module(mod)
        if mod.available():
            pytest.skip(f"a peer simulator is installed here: {mod.available()}")
        proc = subprocess.run([sys.executable, script, str(suite_file), "-o", str(tmp_path / "c.h5")],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2
        assert "no peer simulator installed" in proc.stderr
        assert not (tmp_path / "c.h5").exists()
