"""The ``xbarref study`` command end to end on tiny configurations."""

import csv
import os

import h5py
import numpy as np
import pytest

from xbarref.cli import main
from xbarref.io.data import Dataset, save_dataset
from xbarref.io.model import save_model
from xbarref.nn import resnet20
from xbarref.tune import report as report_module
from xbarref.tune.scenarios import default_scenarios
from xbarref.tune.study import MITIGATIONS, PROTOCOLS

TINY = ["--quick", "--seeds", "2", "--test-samples", "20", "--calibration-samples", "16"]


def _rows(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def full_study(tmp_path_factory):
    """The whole (quick) study, every family of the default preset: run once for the module."""
    out = tmp_path_factory.mktemp("full") / "study"
    assert main(["study", *TINY, "--jobs", "2", "--no-progress", "-o", str(out)]) == 0
    return out


def test_study_writes_every_artifact(full_study):
    out = full_study
    files = set(os.listdir(out))
    assert {"report.md", "drift.png", "distortion.png", "wires.png", "read_noise.png", "retrain.png",
            "selection.png", "accuracy.csv", "costs.csv", "distortion.csv", "summary.csv",
            "comparisons.csv", "selection.csv", "distortion_samples.h5"} <= files
    for name in ("drift.png", "distortion.png", "wires.png", "read_noise.png", "selection.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    scenarios = default_scenarios(quick=True)
    acc = _rows(out / "accuracy.csv")
    # every scenario x time x chip x protocol has none, bn_recal and bn_recal_tune; drift comp
    # where drifting; the retraining trio where marked
    for sc in scenarios:
        for t in sc.times:
            for seed in ("0", "1"):
                for protocol in PROTOCOLS:
                    got = {r["mitigation"] for r in acc if r["scenario"] == sc.name and r["protocol"] == protocol
                           and float(r["t_fit"]) == t and r["seed"] == seed}
                    want = {"none", "bn_recal", "bn_recal_tune"}
                    if sc.hardware.drift.compensation != "none":
                        want.add("drift_comp")
                    if sc.adc_ranged and sc.has_drift:
                        want.add("adc_recal")
                    if sc.retrain:
                        want |= {"retrain", "retrain_recal", "retrain_recal_tune"}
                    assert got == want, (sc.name, t, seed, protocol)
    assert all(0.0 <= float(r["accuracy"]) <= 1.0 for r in acc)
    assert {r["mitigation"] for r in acc} <= set(MITIGATIONS)
    later = [r for r in acc if r["protocol"] == PROTOCOLS[1] and r["scenario"] == "drift"]
    assert all(float(r["t_test"]) > float(r["t_fit"]) for r in later)
    # physics: a day of drift without compensation collapses the accuracy; batchnorm
    # recalibration (fitted at 1 day, tested at 2 days) brings it back to the software level

    def mean_acc(mitigation):
        return np.mean([float(r["accuracy"]) for r in later if r["mitigation"] == mitigation
                        and float(r["t_fit"]) == 86400.0])

    soft = np.mean([float(r["accuracy"]) for r in acc if r["scenario"].startswith("weights")
                    and r["mitigation"] == "none"])
    assert mean_acc("none") < soft - 0.3 and mean_acc("bn_recal") > soft - 0.1
    costs = _rows(out / "costs.csv")
    assert {r["method"] for r in costs} == {"bn_recalibration", "bn_tuning", "retraining", "adc_recalibration"}
    dist = _rows(out / "distortion.csv")
    assert {r["layer"] for r in dist} == {"conv1", "conv2", "conv3", "fc"}
    assert {r["inputs"] for r in dist} == {"ideal", "hardware"}
    text = (out / "report.md").read_text()
    for sc in scenarios:
        assert sc.name in text
    for needed in ("## What this run shows", "Read noise in time", "ADC range", "Protocol",
                   "later session", "bootstrap", "non-absorbable", "Retraining budget", "![", "median",
                   "BN settings chosen on the validation split", "side by side", "Training loss",
                   "selection chip"):
        assert needed in text, needed
    # the chosen settings in the table are the argmin of selection.csv
    sel = _rows(out / "selection.csv")
    for label in {r["scenario"] for r in sel}:
        for mit in ("bn_recal", "bn_recal_tune"):
            rows = [r for r in sel if r["scenario"] == label and r["mitigation"] == mit]
            best = min(rows, key=lambda r: float(r["loss"]))
            assert [r for r in rows if r["chosen"] == "True"] == [best], (label, mit)
    with h5py.File(out / "distortion_samples.h5", "r") as fh:
        assert len(fh) >= len(scenarios)
        g = fh["0"]
        assert g["y_ideal"].shape == g["y_hw"].shape and g["y_ideal"].shape[0] > 0


def test_only_gives_the_same_rows_as_the_full_study(full_study, tmp_path, capsys):
    # the draws are keyed by the scenario's name: the drift family alone gives the rows of
    # the whole study (every family), its selection and its distortion included
    args = ["study", *TINY, "--jobs", "1", "--no-progress"]
    assert main([*args, "--only", "drift", "-o", str(tmp_path / "alone")]) == 0
    assert "report.md" in capsys.readouterr().out
    for name, col in (("accuracy.csv", "scenario"), ("distortion.csv", "family"), ("selection.csv", "scenario")):
        full = [r for r in _rows(full_study / name) if r[col].startswith("drift")]
        alone = _rows(tmp_path / "alone" / name)
        assert full and full == alone, name
    assert len({r["scenario"] for r in _rows(full_study / "accuracy.csv")}) > 1


def test_results_do_not_depend_on_the_number_of_processes(tmp_path):
    args = ["study", *TINY, "--only", "faults"]
    assert main([*args, "--jobs", "1", "-o", str(tmp_path / "a")]) == 0
    assert main([*args, "--jobs", "2", "-o", str(tmp_path / "b")]) == 0
    assert (tmp_path / "a" / "accuracy.csv").read_text() == (tmp_path / "b" / "accuracy.csv").read_text()


def _tiny_cifar(path, rng):
    x = rng.uniform(0, 1, (32, 3, 32, 32))
    y = np.arange(32) % 10
    save_dataset(Dataset(x_train=x[:24], y_train=y[:24], x_test=x[24:], y_test=y[24:],
                         classes=[f"c{i}" for i in range(10)], name="tiny_cifar"), path)


def test_resnet20_on_a_cifar10_layout_runs(tmp_path):
    rng = np.random.default_rng(0)
    _tiny_cifar(tmp_path / "cifar.h5", rng)
    save_model(resnet20(rng=np.random.default_rng(1)), tmp_path / "resnet20.h5")
    out = tmp_path / "r20"
    assert main(["study", "--quick", "--seeds", "1", "--only", "quantization",
                 "--test-samples", "4", "--calibration-samples", "8", "--jobs", "1",
                 "--model", str(tmp_path / "resnet20.h5"), "--data", str(tmp_path / "cifar.h5"),
                 "-o", str(out)]) == 0
    acc = _rows(out / "accuracy.csv")
    assert {r["scenario"] for r in acc} == {"weights 4 b, DAC/ADC 8/8 b"}
    assert {r["mitigation"] for r in acc} == {"none", "bn_recal", "bn_recal_tune"}
    assert {r["protocol"] for r in acc} == set(PROTOCOLS)
    assert "resnet20.h5" in (out / "report.md").read_text()


@pytest.mark.parametrize("extra, message", [
    (["--model", "missing.h5"], "missing.h5"),
    (["--config", "bad.toml"], "adc.bitz"),
    (["--data", "wrong.h5"], "--data"),
    (["--seeds", "0"], "--seeds"),
    (["--only", "cosmic_rays"], "--only"),
    (["--preset", "martian"], "--preset"),
])
def test_bad_inputs_fail_up_front_naming_them(tmp_path, monkeypatch, capsys, extra, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.toml").write_text("[adc]\nbitz = 3\n")
    _tiny_cifar(tmp_path / "wrong.h5", np.random.default_rng(0))
    called = []
    monkeypatch.setattr("xbarref.tune.study.run_study", lambda *a, **k: called.append(1))
    assert main(["study", *extra, "-o", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err
    assert not called and not (tmp_path / "out").exists()


def test_existing_output_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["study", *TINY, "-o", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"


def test_interrupted_study_leaves_no_report(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(report_module, "_figures", interrupted)
    out = tmp_path / "out"
    assert main(["study", *TINY, "--only", "faults", "--jobs", "1", "-o", str(out)]) == 130
    assert not out.exists()
    assert os.listdir(tmp_path) == []


def test_workers_survive_a_parent_that_ran_a_parallel_numba_kernel(tmp_path):
    # Numba's OpenMP layer aborts forked children of a process that used it; the study's
    # worker processes are spawned, so the CLI works after any earlier solver call.
    import numba

    @numba.njit(parallel=True)
    def total(a):
        s = 0.0
        for i in numba.prange(a.shape[0]):
            s += a[i]
        return s

    assert total(np.ones(1000)) == 1000.0
    assert main(["study", *TINY, "--only", "faults", "--jobs", "2", "-o", str(tmp_path / "a")]) == 0
    assert (tmp_path / "a" / "report.md").exists()


def test_study_on_a_dask_cluster_gives_the_local_accuracy_table(tmp_path, distributed_module):
    distributed = distributed_module
    args = ["study", *TINY, "--only", "faults"]
    assert main([*args, "--jobs", "1", "-o", str(tmp_path / "local")]) == 0
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=None) as cluster:
        assert main([*args, "--scheduler", cluster.scheduler_address,
                     "-o", str(tmp_path / "dask")]) == 0
    local = (tmp_path / "local" / "accuracy.csv").read_text()
    assert len(_rows(tmp_path / "local" / "accuracy.csv")) == 2 * 3 * 2  # 2 chips x 3 mitigations x 2 protocols
    assert (tmp_path / "dask" / "accuracy.csv").read_text() == local
    assert "Dask scheduler tcp://" in (tmp_path / "dask" / "report.md").read_text()
    assert sorted(os.listdir(tmp_path)) == ["dask", "local"]  # no parts folder left behind


def test_bad_scheduler_address_fails_up_front(tmp_path, capsys):
    assert main(["study", *TINY, "--scheduler", "localhost:8786", "-o", str(tmp_path / "out")]) == 2
    assert "scheduler" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_interrupted_study_resumes_computing_only_the_missing_tasks(tmp_path, monkeypatch):
    import xbarref.tune.study as study_module

    real_task = study_module.study_task
    calls = []

    def interrupt_on_second(p, seed):
        # the selection task, then the first chip task finish; the second chip task is interrupted
        if p["kind"] == "chip" and len(calls) == 1:
            raise KeyboardInterrupt
        if p["kind"] == "chip":
            calls.append(p["seed"])
        return real_task(p, seed)

    args = ["study", *TINY, "--only", "faults", "--jobs", "1"]
    out = tmp_path / "out"
    monkeypatch.setattr(study_module, "study_task", interrupt_on_second)
    assert main([*args, "-o", str(out)]) == 130
    assert not out.exists()
    kept = sorted(os.listdir(tmp_path / "out.parts" / "tasks"))
    assert len(kept) == 2  # the selection and the finished chip task are on disk

    def counting(p, seed):
        calls.append(p["kind"])
        return real_task(p, seed)

    calls.clear()
    monkeypatch.setattr(study_module, "study_task", counting)
    assert main([*args, "--resume", "-o", str(out)]) == 0
    n_tasks = len(_rows(out / "accuracy.csv")) // 6  # 3 mitigations x 2 protocols per (scenario, chip)
    assert n_tasks == 2 and calls == ["chip"]  # only the missing chip task ran again
    assert not (tmp_path / "out.parts").exists()  # removed once the study succeeded

    monkeypatch.setattr(study_module, "study_task", real_task)
    assert main([*args, "-o", str(tmp_path / "fresh")]) == 0
    assert (out / "accuracy.csv").read_text() == (tmp_path / "fresh" / "accuracy.csv").read_text()


def test_report_from_results_writes_the_same_tables_again(full_study, tmp_path, capsys):
    again = tmp_path / "again"
    assert main(["study", "--report-from", str(full_study / "results.json"), "-o", str(again)]) == 0
    for name in ("accuracy.csv", "costs.csv", "distortion.csv", "summary.csv", "comparisons.csv",
                 "selection.csv"):
        assert (again / name).read_bytes() == (full_study / name).read_bytes(), name
    body = (full_study / "report.md").read_text().split("\n## ", 1)[1]
    assert (again / "report.md").read_text().split("\n## ", 1)[1] == body
    # a damaged or foreign results file is refused naming it, and nothing is written
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "xbarref.study.results", "format_version": 1, "accuracy": []}')
    assert main(["study", "--report-from", str(bad), "-o", str(tmp_path / "x")]) != 0
    assert "incomplete or damaged" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    bad.write_text('{"format": "something else"}')
    assert main(["study", "--report-from", str(bad), "-o", str(tmp_path / "y")]) != 0
    assert "not an xbarref study results file" in capsys.readouterr().err
    bad.write_text('{"format": ')
    assert main(["study", "--report-from", str(bad), "-o", str(tmp_path / "z")]) != 0
    assert "not readable as JSON" in capsys.readouterr().err


def test_report_from_two_disjoint_runs_is_the_report_of_both(full_study, tmp_path, capsys):
    import json

    data = json.loads((full_study / "results.json").read_text())
    names = [sc["name"] for sc in data["scenarios"]]
    half = set(names[: len(names) // 2])
    labels = {r["scenario"] for r in data["accuracy"]}

    def part(keep):
        d = dict(data)
        d["scenarios"] = [sc for sc in data["scenarios"] if (sc["name"] in half) == keep]
        d["accuracy"] = [r for r in data["accuracy"] if (r["scenario"] in half) == keep]
        d["costs"] = [r for r in data["costs"] if (r["scenario"] in half) == keep]
        mine = {lab for lab in labels if any(lab.startswith(n) for n in (half if keep else set(names) - half))}
        d["distortion"] = [r for r in data["distortion"] if r["scenario"] in mine]
        d["selection"] = {k: v for k, v in data["selection"].items() if (v["scenario"] in half) == keep}
        d["retraining"] = {k: v for k, v in data["retraining"].items() if (k in half) == keep}
        d["scatter"] = {k: v for k, v in data["scatter"].items() if k in mine}
        return d

    a, b = tmp_path / "a" / "results.json", tmp_path / "b" / "results.json"
    for path, keep in ((a, True), (b, False)):
        path.parent.mkdir()
        path.write_text(json.dumps(part(keep)))
    out = tmp_path / "merged"
    assert main(["study", "--report-from", str(a), str(b), "-o", str(out)]) == 0
    key = lambda r: (r["scenario"], r["label"], r["protocol"], r["mitigation"], r["seed"])
    assert sorted(_rows(out / "accuracy.csv"), key=key) == sorted(_rows(full_study / "accuracy.csv"), key=key)
    # the same scenario twice, or runs of other settings, are refused naming the file
    assert main(["study", "--report-from", str(a), str(a), "-o", str(tmp_path / "x")]) != 0
    assert "also in" in capsys.readouterr().err
    other = dict(part(False), settings=dict(data["settings"], seeds=data["settings"]["seeds"] + 1))
    b.write_text(json.dumps(other))
    assert main(["study", "--report-from", str(a), str(b), "-o", str(tmp_path / "y")]) != 0
    assert "other study settings" in capsys.readouterr().err
