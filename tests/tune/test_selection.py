"""Batchnorm settings chosen on the validation split: the choice is the argmin of what was
measured, the test split is never read, the chip tasks use the choice, and it is
deterministic given the seed."""

import json

import numpy as np
import pytest

from xbarref.config import preset
from xbarref.errors import XbarrefError
from xbarref.mapping import map_model
from xbarref.sweep import named_streams, task_seed
from xbarref.tune.scenarios import Scenario, default_scenarios
from xbarref.tune.selection import argmin_point, select_bn_settings, validation_metrics
import xbarref.tune.study as study
from xbarref.tune.study import StudySettings, run_study, study_task, task_key

SETTINGS = StudySettings(seeds=2, calibration_sizes=(16, 48), validation_samples=60, tune_lrs=(0.003, 0.03),
                         tune_max_steps=6, tune_eval_every=2, tune_patience=1, tune_batch=8,
                         distortion_images=2, distortion_rows=32, scatter_points=10, bootstrap_resamples=50,
                         test_samples=30)


class SplitGuard:
    """A data set whose test split raises on access (and records it)."""

    def __init__(self, dataset):
        self._d = dataset
        self.touched = []

    def __getattr__(self, name):
        if name in ("x_test", "y_test", "test_index"):
            self.touched.append(name)
            raise AssertionError(f"the selection read the test split ({name})")
        return getattr(self._d, name)


def _drift_scenario():
    return [s for s in default_scenarios(quick=True) if s.family == "drift"][0]


def _selection_params(digits, trained_cnn, tmp_path, sc, settings=SETTINGS, base_seed=0):
    files = study._files(trained_cnn, digits, None, str(tmp_path))
    return dict(files=files, settings=study._settings_dict(settings), base_seed=base_seed, n_test=30,
                kind="selection", scenario=sc.to_dict())


def _run_selection(params, guard=None, monkeypatch=None):
    if guard is not None:
        real = study._load

        def load(path, sha, kind):
            obj = real(path, sha, kind)
            return guard if kind == "data" else obj

        monkeypatch.setattr(study, "_load", load)
    key = task_key("selection", params["scenario"]["name"])
    return json.loads(study_task(params, task_seed(params["base_seed"], key))["selection"])


def test_selection_never_reads_the_test_split(trained_cnn, digits, tmp_path, monkeypatch):
    sc = _drift_scenario()
    guard = SplitGuard(digits)
    out = _run_selection(_selection_params(digits, trained_cnn, tmp_path, sc), guard, monkeypatch)
    assert guard.touched == []
    assert set(out) == {f"drift {lab}" for lab in ("1 day", "1 year")}
    # and the guard works: a chip task (which measures test accuracy) trips it
    with pytest.raises(AssertionError, match="test split"):
        guard.x_test


def test_chosen_settings_are_the_argmin_of_the_measured_grid(trained_cnn, digits, tmp_path):
    sc = _drift_scenario()
    out = _run_selection(_selection_params(digits, trained_cnn, tmp_path, sc))
    s = SETTINGS
    for label, c in out.items():
        # every grid point was measured: both sizes, both learning rates
        assert sorted(p["samples"] for p in c["recal_points"]) == list(s.calibration_sizes)
        assert sorted((cur["samples"], cur["lr"]) for cur in c["curves"]) == sorted(
            (k, lr) for k in s.calibration_sizes for lr in s.tune_lrs)
        best_recal = min(c["recal_points"], key=lambda p: p["loss"])
        assert c["recal"]["samples"] == best_recal["samples"]
        points = [(p[1], cur["samples"], cur["lr"] if p[0] else None, p[0])
                  for cur in c["curves"] for p in cur["points"]]
        loss, k, lr, steps = min(points, key=lambda p: p[0])
        assert (c["tune"]["samples"], c["tune"]["steps"]) == (k, steps)
        assert c["tune"]["loss"] == loss and (steps == 0 or c["tune"]["lr"] == lr)
        for cur in c["curves"]:
            steps_seen = [p[0] for p in cur["points"]]
            assert steps_seen == list(range(0, steps_seen[-1] + 1, s.tune_eval_every))
            assert steps_seen[-1] <= s.tune_max_steps
            losses = [p[1] for p in cur["points"]]
            if cur["stopped"]:
                # early stopping: the last evaluation did not improve on the best before it
                assert losses[-1] >= min(losses[:-1])
            # step 0 of every curve is the recalibration of its size
            assert cur["points"][0][1] == next(p["loss"] for p in c["recal_points"]
                                               if p["samples"] == cur["samples"])


def test_selection_is_deterministic_given_the_seed(trained_cnn, digits, tmp_path):
    sc = _drift_scenario()
    a = _run_selection(_selection_params(digits, trained_cnn, tmp_path, sc))
    b = _run_selection(_selection_params(digits, trained_cnn, tmp_path, sc))
    assert a == b
    c = _run_selection(_selection_params(digits, trained_cnn, tmp_path, sc, base_seed=1))
    assert c != a


def test_recorded_validation_loss_is_the_loss_of_that_fit(trained_cnn, digits):
    """An independent re-measurement: the recorded step-0 loss of each size is the validation
    loss of the chip recalibrated on that many calibration samples, in the validation session."""
    from xbarref.mapping import set_inference_time
    from xbarref.tune.batchnorm import recalibrate_bn
    import copy

    hw = preset("ideal").replace(name="sel")
    chip = map_model(trained_cnn, hw, np.random.default_rng(0))
    xc, yc = digits.x_train[:40], digits.y_train[:40]
    xv, yv = digits.x_train[-50:], digits.y_train[-50:]

    def session(m):
        return set_inference_time(m, 0.0, rng=np.random.default_rng(5))

    out = select_bn_settings(chip, xc, yc, xv, yv, session, sizes=(8, 40), lrs=(0.01,), max_steps=2,
                             eval_every=1, patience=1, batch_size=8, rng=np.random.default_rng(1))
    for p in out["recal_points"]:
        m = copy.deepcopy(chip)
        recalibrate_bn(m, xc[:p["samples"]])
        loss, acc = validation_metrics(session(m), xv, yv)
        assert p["loss"] == pytest.approx(loss, rel=1e-12) and p["accuracy"] == acc
    # a bad grid is refused naming it
    with pytest.raises(XbarrefError, match="sizes"):
        select_bn_settings(chip, xc, yc, xv, yv, session, sizes=(80,), lrs=(0.01,), max_steps=2,
                           eval_every=1, patience=1, batch_size=8, rng=np.random.default_rng(1))
    with pytest.raises(XbarrefError, match="no validation point"):
        argmin_point([])


def test_chip_tasks_use_the_chosen_settings(trained_cnn, digits):
    """The BN cost rows of every chip say the chosen calibration sizes and steps."""
    sc = Scenario("faults 5 %", "faults", [s for s in default_scenarios() if s.name == "faults 5 %"][0].hardware)
    res = run_study(trained_cnn, digits, [sc], SETTINGS)
    chosen = res.selection["faults 5 %"]
    recal = [c for c in res.costs if c["method"] == "bn_recalibration"]
    tune = [c for c in res.costs if c["method"] == "bn_tuning"]
    assert len(recal) == len(tune) == SETTINGS.seeds
    assert all(c["calibration_samples"] == chosen["recal"]["samples"] for c in recal)
    assert all(c["calibration_samples"] == chosen["tune"]["samples"] and c["steps"] == chosen["tune"]["steps"]
               for c in tune)
    assert res.reference["validation_source"] == "carved" and res.reference["validation_samples"] == 60


def test_the_files_own_validation_split_is_used(digits):
    from xbarref.io.data import Dataset

    d = Dataset(x_train=digits.x_train[:300], y_train=digits.y_train[:300], x_test=digits.x_test[:10],
                y_test=digits.y_test[:10], classes=digits.classes, x_val=digits.x_train[300:340],
                y_val=digits.y_train[300:340])
    train, xv, yv, source = study.validation_split(d, SETTINGS, 0)
    assert source == "file" and len(train) == 300 and len(yv) == 40
    np.testing.assert_array_equal(xv, digits.x_train[300:340])
    train, xv, yv, source = study.validation_split(SplitGuard(digits), SETTINGS, 0)
    carved_train, carved_val = study.data_splits(len(digits.y_train), SETTINGS, 0)
    assert source == "carved" and len(yv) == SETTINGS.validation_samples
    np.testing.assert_array_equal(train, carved_train)
    assert not set(train) & set(carved_val)


def test_streams_of_a_task_come_from_its_key():
    """The study's draws are the run engine's named streams of the task key: the chip stream
    of (drift, chip 0) is the same whatever else runs, and differs for the selection chip."""
    k = task_key("chip", "drift", 0)
    a = named_streams(task_seed(0, k), "chip", "calibration set")["chip"].random(3)
    b = named_streams(task_seed(0, k), "chip")["chip"].random(3)
    np.testing.assert_array_equal(a, b)
    sel = named_streams(task_seed(0, task_key("selection", "drift")), "chip")["chip"].random(3)
    assert not np.array_equal(a, sel)


@pytest.mark.parametrize("name", ["faults 5 %", "wires 3.5 ohm, tile 32"])
def test_static_chips_validate_in_place_with_the_same_numbers(trained_cnn, digits, name):
    """Without drift or read noise a later session reads what the fit session read, so the
    selection measures such chips in place: the same numbers as through a later session."""
    from xbarref.mapping import set_inference_time

    sc = [s for s in default_scenarios() if s.name == name][0]
    assert not sc.session_dependent
    chip = map_model(trained_cnn, sc.hardware, np.random.default_rng(3))
    xc, yc = digits.x_train[:24], digits.y_train[:24]
    xv, yv = digits.x_train[-40:], digits.y_train[-40:]
    kw = dict(sizes=(12, 24), lrs=(0.01,), max_steps=2, eval_every=1, patience=1, batch_size=8)
    later = select_bn_settings(chip, xc, yc, xv, yv,
                               lambda m: set_inference_time(m, 100.0, rng=np.random.default_rng(9)),
                               rng=np.random.default_rng(4), **kw)
    inplace = select_bn_settings(chip, xc, yc, xv, yv, None, rng=np.random.default_rng(4), **kw)
    assert later == inplace
