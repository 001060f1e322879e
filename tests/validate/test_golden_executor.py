"""``golden make`` through the common run engine (xbarref.sweep.run): same suites as the
direct per-case solves, resume, failures, a Dask LocalCluster."""

import os

import numpy as np
import pytest

from xbarref.cli import main
from xbarref.errors import XbarrefError
from xbarref.sweep import task_path
from xbarref.validate import generate
from xbarref.validate.generate import make_suite, preset_specs, solve_case
from xbarref.validate.suite import read_suite

SEED = 4


@pytest.fixture(scope="module")
def direct():
    """The quick preset solved case by case with solve_case (no executor), as make_suite
    did before it used the executor: case i draws from [seed, i]."""
    return {name: solve_case(name, spec, [SEED, i], ngspice=False)
            for i, (name, spec) in enumerate(preset_specs("quick"))}


def _assert_same_as_direct(suite, direct, names=None):
    names = list(direct) if names is None else list(names)
    assert [c.name for c in suite.cases] == names
    for sc in suite.cases:
        ref = direct[sc.name]
        np.testing.assert_array_equal(sc.case.I, ref.case.I, err_msg=sc.name)
        np.testing.assert_array_equal(sc.case.V, ref.case.V, err_msg=sc.name)
        np.testing.assert_array_equal(sc.case.crossbar.G, ref.case.crossbar.G, err_msg=sc.name)
        assert sc.case.solver == ref.case.solver
        assert sc.residual == ref.residual and sc.params == ref.params
        assert sc.seed == list(direct).index(sc.name)  # case i of the preset drew from [seed, i]
        assert sc.ngspice_inputs == [] and not sc.ngspice_verified
        assert np.isnan(sc.ngspice_max_rel_error) and np.isnan(sc.ngspice_tol) and sc.note == ""


def test_quick_preset_in_process_equals_direct_solves(direct, tmp_path):
    suite, report = make_suite("quick", seed=SEED, jobs=1, ngspice=False, progress=False,
                               parts_dir=tmp_path / "parts", return_report=True)
    assert report.executor == "in-process" and len(report.computed) == len(direct)
    _assert_same_as_direct(suite, direct)


def test_cli_writes_the_suite_bit_identical_and_removes_parts(direct, tmp_path, capsys):
    out = tmp_path / "quick.h5"
    code = main(["golden", "make", "--preset", "quick", "--seed", str(SEED), "--jobs", "1",
                 "--no-ngspice", "--no-progress", "-o", str(out)])
    text, err = capsys.readouterr()
    assert code == 0, err
    assert "in-process" in text and f"{len(direct)} computed, 0 resumed" in text
    assert not os.path.exists(str(out) + ".parts")
    _assert_same_as_direct(read_suite(out), direct)


def test_resume_recomputes_only_the_missing_case(direct, tmp_path):
    parts = tmp_path / "parts"
    _, first = make_suite("quick", seed=SEED, jobs=1, ngspice=False, progress=False,
                          parts_dir=parts, return_report=True)
    assert len(first.computed) == len(direct)
    gone = first.computed[3]
    os.unlink(task_path(parts, gone))
    mtimes = {t: os.stat(task_path(parts, t)).st_mtime_ns for t in first.computed if t != gone}
    suite, again = make_suite("quick", seed=SEED, jobs=1, ngspice=False, progress=False,
                              parts_dir=parts, resume=True, return_report=True)
    assert again.computed == [gone]
    assert sorted(again.skipped) == sorted(mtimes)
    assert {t: os.stat(task_path(parts, t)).st_mtime_ns for t in mtimes} == mtimes
    _assert_same_as_direct(suite, direct)


def test_cli_resume_after_a_failed_case(direct, tmp_path, capsys, monkeypatch):
    """A case that fails on every attempt is reported by name; the others stay on disk and
    --resume computes only the failed one."""
    names = list(direct)
    bad = names[5]
    real = generate.solve_case
    calls = []

    def flaky(name, *args, **kwargs):
        calls.append(name)
        if name == bad:
            raise RuntimeError("solver exploded")
        return real(name, *args, **kwargs)

    out = tmp_path / "s.h5"
    argv = ["golden", "make", "--preset", "quick", "--seed", str(SEED), "--jobs", "1",
            "--no-ngspice", "--no-progress", "-o", str(out)]
    monkeypatch.setattr(generate, "solve_case", flaky)
    code = main(argv)
    _, err = capsys.readouterr()
    assert code == 2 and bad in err and "solver exploded" in err and "1 case(s) failed" in err
    assert not out.exists() and calls.count(bad) == 2  # retried once
    assert len(os.listdir(str(out) + ".parts/tasks")) == len(names) - 1
    calls.clear()
    monkeypatch.setattr(generate, "solve_case", lambda *a, **k: (calls.append(a[0]), real(*a, **k))[1])
    code = main(argv + ["--resume"])
    text, err = capsys.readouterr()
    assert code == 0, err
    assert calls == [bad] and f"1 computed, {len(names) - 1} resumed" in text
    _assert_same_as_direct(read_suite(out), direct)


def test_bad_arguments():
    with pytest.raises(XbarrefError, match="resume"):
        make_suite("quick", resume=True, progress=False)
    with pytest.raises(XbarrefError, match="only"):
        make_suite("quick", only=["nope"], progress=False)
    with pytest.raises(XbarrefError, match="scheduler"):
        make_suite("quick", only=[preset_specs("quick")[0][0]], scheduler="localhost:8786",
                   progress=False)


def test_local_cluster_gives_identical_outputs(direct, tmp_path, distributed_module):
    distributed = distributed_module
    names = [n for n, s in preset_specs("quick") if s["M"] * s["N"] <= 256][:5]
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        suite, report = make_suite("quick", seed=SEED, ngspice=False, progress=False,
                                   scheduler=cluster.scheduler_address, only=names,
                                   parts_dir=tmp_path / "parts", return_report=True)
    assert report.executor.startswith("dask tcp://127.0.0.1") and len(report.computed) == 5
    _assert_same_as_direct(suite, direct, names)


def test_quick_seed_0_regenerates_the_bundled_example_suite():
    """Regenerating preset quick, seed 0 gives the bundled ``example_suite.h5`` (made with
    ``xbarref golden make --preset quick --seed 0``): the same cases, inputs, conductances,
    resistances and output currents, to what the CPU may move. A change of the solvers,
    the case generator or the seeding fails here (regenerate the bundled file on purpose
    then). What another CPU may move is allowed, and no more: NumPy picks its ``exp`` / ``log``
    kernels by the CPU's instruction set, so a derived input (the non-uniform wire
    resistances are exp of uniform draws) may differ in its last bit (seen on an AMD EPYC:
    14 of 368 segments of one case, 1 ulp): the float inputs are compared to 4 ulp, the
    discrete ones and the parameters exactly. The output currents are compared to 1e-12
    of the case's largest current: the same solve on another CPU (OpenBLAS / SuperLU pick
    other kernels) moves their last bits (seen on an AVX-512 machine: 19 of 128 currents
    of one case differ by 2 ulp), and the 1-ulp resistances above move currents of that
    case by up to 2.6e-14 of its largest one. A change of the generator, the seeding or
    the solvers' accuracy moves far more than that."""
    import xbarref.data

    bundled = xbarref.data.example_suite()
    suite = make_suite("quick", seed=0, jobs=1, ngspice=False, progress=False)
    assert [c.name for c in suite.cases] == [c.name for c in bundled.cases]
    for sc, ref in zip(suite.cases, bundled.cases):
        a, b = sc.case.crossbar, ref.case.crossbar
        for attr in ("G", "r_source", "r_sink", "r_wire_row", "r_wire_col"):
            _same_to_4_ulp(getattr(a, attr), getattr(b, attr), f"{sc.name} {attr}")
        _same_to_4_ulp(sc.case.V, ref.case.V, f"{sc.name} V")
        scale = np.abs(ref.case.I).max()
        np.testing.assert_allclose(sc.case.I, ref.case.I, rtol=0, atol=1e-12 * scale, err_msg=sc.name)
        assert sc.case.solver == ref.case.solver and sc.params == ref.params


def _same_to_4_ulp(x, y, what):
    """``x`` and ``y`` of one shape, every element within 4 ulp; a failure names ``what``."""
    assert np.shape(x) == np.shape(y), f"{what}: shape {np.shape(x)} != {np.shape(y)}"
    try:
        np.testing.assert_array_max_ulp(x, y, maxulp=4)
    except AssertionError as e:
        raise AssertionError(f"{what}: {e}") from None
