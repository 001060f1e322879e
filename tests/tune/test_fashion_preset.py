"""The Fashion-MNIST study preset: its scenario grid, the seeded test subset of the
circuit-per-read scenarios, and the report's comparisons on that subset."""

import numpy as np
import pytest

from xbarref.cli import main
from xbarref.config import preset
from xbarref.errors import XbarrefError
from xbarref.tune.report import comparisons, software_accuracy
from xbarref.tune.scenarios import (DRIFT_TIMES, FASHION_CIRCUIT_IMAGES, PRESETS as STUDY_PRESETS,
                                    Scenario, default_scenarios, scenario_from_dict)
from xbarref.tune.study import StudySettings, run_study, image_subset, unpack_correct


def test_fashion_grid():
    scs = default_scenarios(preset="fashion")
    fams = STUDY_PRESETS["fashion"][0]
    assert [s.family for s in scs] == sorted((s.family for s in scs), key=fams.index)
    assert len({s.name for s in scs}) == len(scs)
    by = {}
    for s in scs:
        by.setdefault(s.family, []).append(s)
    grid = {(s.hardware.tiles.rows, s.hardware.parasitics.r_wire_row) for s in by["tiles_wires"]}
    assert grid == {(t, r) for t in (64, 128, 256) for r in (0.35, 1.0, 2.5)}
    for s in by["tiles_wires"] + by["sinh"] + by["read_noise_wires"]:
        p = s.hardware.parasitics
        assert p.r_source == p.r_sink == 100.0 and p.r_wire_row == p.r_wire_col > 0
    assert {s.hardware.device.sinh_k for s in by["sinh"]} == {2.5, 4.0}
    assert all(s.hardware.device.iv == "sinh" for s in by["sinh"])
    for s in by["read_noise_wires"]:
        assert s.hardware.noise.read_scale > 0 and s.hardware.device.model == "pcm"
    # circuit-per-read and Newton scenarios: the seeded subset; every other one: all images
    for s in scs:
        per_read = s.family in ("sinh", "read_noise_wires")
        assert s.test_images == (FASHION_CIRCUIT_IMAGES if per_read else None)
    assert FASHION_CIRCUIT_IMAGES >= 2000
    assert sorted(s.hardware.mapping.weight_bits for s in by["fashion_quantization"]) == [4, 4, 6, 8]
    assert [s.times for s in by["drift"]] == [DRIFT_TIMES]
    assert len(by["faults"]) == 2 and len(by["programming"]) == 1
    combined = by["fashion_combined"][0].hardware
    assert combined.parasitics.r_source == 100.0 and combined.faults.stuck_min_rate > 0
    assert combined.mapping.weight_bits == 4 and combined.noise.programming_scale > 0
    # the base change: 128 x 128 tiles wherever a family does not set its own
    assert all(s.hardware.tiles.rows == 128 for s in by["programming"] + by["faults"])
    assert StudySettings().seeds >= 10
    for s in default_scenarios(preset="fashion", quick=True):
        assert scenario_from_dict(s.to_dict()) == s
    # float32 reads in every fashion scenario (all its reads use cached matrices: the
    # first-order surrogate where a read would be a circuit); float64 in the digits preset;
    # results written before the field read as float64
    assert {s.read_precision for s in scs} == {"float32"}
    assert all(s.hardware.parasitics.ideal or s.hardware.parasitics.reads == "first_order"
               or (s.hardware.device.iv == "linear" and not s.read_noisy) for s in scs)
    assert {s.read_precision for s in default_scenarios()} == {"float64"}
    old = scs[0].to_dict()
    del old["read_precision"]
    assert scenario_from_dict(old).read_precision == "float64"
    with pytest.raises(XbarrefError, match="read_precision"):
        scenario_from_dict(dict(old, read_precision="float16"))
    # evaluation batches: 32 images in the fashion preset, 512 (as before the field) elsewhere
    assert {s.eval_batch for s in scs} == {32} and {s.eval_batch for s in default_scenarios()} == {512}
    del old["eval_batch"]
    assert scenario_from_dict(old).eval_batch == 512
    for bad in (0, -3, 2.5, True, 1 << 20):
        with pytest.raises(XbarrefError, match="eval_batch"):
            scenario_from_dict(dict(old, eval_batch=bad))


def test_test_subset_is_seeded_and_shared():
    a = image_subset(10000, 2000, 0)
    assert len(a) == 2000 and len(np.unique(a)) == 2000 and np.all(np.diff(a) > 0)
    np.testing.assert_array_equal(a, image_subset(10000, 2000, 0))
    assert not np.array_equal(a, image_subset(10000, 2000, 1))
    assert image_subset(10000, None, 0) is None and image_subset(1500, 2000, 0) is None


def test_subset_rows_and_their_comparisons(trained_cnn, digits):
    """On ideal hardware the mapped network is the software network, so on the subset
    'none - software' is exactly 0, which holds only if the report pairs the scenario
    with the software hits of the same images (the subset's software accuracy differs
    from the full set's)."""
    hw = preset("ideal").replace(name="subset")
    k = 60
    sc = Scenario("ideal on a subset", "subset", hw, test_images=k)
    settings = StudySettings(seeds=2, calibration_sizes=(16,), tune_lrs=(0.01,), tune_max_steps=1,
                             tune_eval_every=1, tune_patience=1, tune_batch=8, validation_samples=32,
                             distortion_images=2, distortion_rows=32, scatter_points=10,
                             bootstrap_resamples=50)
    res = run_study(trained_cnn, digits, [sc], settings)
    n = res.reference["test_samples"]
    idx = image_subset(n, k, 0)
    soft = unpack_correct(res.reference["software_correct"], n)
    assert software_accuracy(res, sc.name) == pytest.approx(soft[idx].mean())
    for row in res.accuracy:
        mask = unpack_correct(row["subset"], n)
        np.testing.assert_array_equal(np.flatnonzero(mask), idx)
        if row["mitigation"] == "none":
            np.testing.assert_array_equal(unpack_correct(row["correct"], k), soft[idx])
            assert row["accuracy"] == pytest.approx(soft[idx].mean())
    loss = [c for c in comparisons(res) if c["b"] == "software"]
    assert loss and all(c["diff"] == 0.0 and c["within_noise"] for c in loss)


def test_fashion_preset_needs_the_data_file(tmp_path, capsys):
    assert main(["study", "--preset", "fashion", "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "apt-get install -y dataset-fashion-mnist" in err and "xbarref data fashion-mnist" in err


def test_fashion_preset_runs_its_smallest_family_on_the_real_data(fashion_mnist_dir, tmp_path, capsys):
    """The fashion path end to end on its cheapest family: the data file's own validation
    split (held out from the bundled model's training) chooses the batchnorm settings."""
    import csv

    fm = tmp_path / "fm.h5"
    assert main(["data", "fashion-mnist", "-o", str(fm)]) == 0
    out = tmp_path / "out"
    assert main(["study", "--preset", "fashion", "--data", str(fm), "--quick", "--only", "faults",
                 "--seeds", "1", "--test-samples", "40", "--calibration-samples", "32", "--jobs", "1",
                 "--no-progress", "-o", str(out)]) == 0
    capsys.readouterr()
    text = (out / "report.md").read_text()
    assert "the data set's own validation split" in text and "100 samples" in text
    with open(out / "accuracy.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["scenario"] for r in rows} == {"faults 5 %"}
    assert {r["mitigation"] for r in rows} == {"none", "bn_recal", "bn_recal_tune"}
    # the faults family reads in float32: what that changes is measured on every layer
    with open(out / "surrogate.csv", newline="", encoding="utf-8") as fh:
        checks = list(csv.DictReader(fh))
    assert {r["kind"] for r in checks} == {"float32 reads"}
    assert {r["layer"] for r in checks} == {"conv1", "conv2", "conv3", "fc1", "fc2"}
    assert all(float(r["nmse"]) < 1e-9 and float(r["share_of_distortion"]) < 1e-6 for r in checks)
    assert "**float32 reads**" in text and "float32 reads |" in text


def test_eval_batch_changes_nothing_on_a_static_chip(trained_cnn, digits):
    """The evaluation batch only decides which per-read draws an image gets: a chip
    without per-read noise gives the same hits, the same selection and the same report
    rows for batches of 7 and 512 images (float64 reads and float32 reads alike)."""
    import dataclasses

    from xbarref.config import NoiseConfig

    hw = preset("default").replace(name="static", noise=NoiseConfig(1.0, 0.0, 0.0))
    settings = StudySettings(seeds=1, calibration_sizes=(16,), tune_lrs=(0.01,), tune_max_steps=2,
                             tune_eval_every=1, tune_patience=1, tune_batch=8, validation_samples=40,
                             test_samples=50, distortion_images=2, distortion_rows=32, scatter_points=10,
                             bootstrap_resamples=50)
    for precision in ("float64", "float32"):
        sc = Scenario("static", "static", hw, read_precision=precision)
        rows = [run_study(trained_cnn, digits, [dataclasses.replace(sc, eval_batch=b)], settings).accuracy
                for b in (512, 7)]
        assert rows[0] == rows[1] and len(rows[0]) >= 4
