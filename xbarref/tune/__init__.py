"""Mitigation of hardware non-idealities with the simulated hardware in the loop, and the study.

Batchnorm (:mod:`xbarref.tune.batchnorm`)
    recalibrate_bn(model, x)           running statistics recomputed through the hardware
    tune_bn(model, x, y, ...)          Adam steps on batchnorm gamma and beta only
    TuneReport                         wall time, steps, samples, parameters, optimizer memory
    BN_KINDS

Drift compensation (:mod:`xbarref.tune.drift`; the scale itself is the mapping package's)
    set_drift_compensation(model, enabled), drift_compensation_scales(model), analog_layers(model)

Baseline (:mod:`xbarref.tune.retrain`)
    retrain_noise_aware(model, hardware, x, y, ...)      all weights, fresh hardware samples
    retrain_with_validation(model, hardware, x, y, x_val, y_val, ...)   budget from validation

Dot-product distortion (:mod:`xbarref.tune.distortion`)
    column_fit(y_ideal, y_hw, y_hw2=None) -> ColumnFit   y_hw = g y + o + r per column
    layer_inputs(model, x), layer_distortion(mapped, inputs), propagated_distortion(mapped, inputs, x),
    surrogate_errors(mapped, inputs, reads, rng), precision_errors(mapped, inputs, reads)

Settings chosen on validation data (:mod:`xbarref.tune.selection`)
    select_bn_settings(chip, x_pool, y_pool, x_val, y_val, validation_session, ...)
                                       calibration size, lr and steps: argmin of the validation loss
    validation_metrics(model, x, y)    mean cross-entropy and accuracy

Statistics (:mod:`xbarref.tune.stats`)
    mean_ci(hits, rng), paired_ci(hits_a, hits_b, rng)   two-way bootstrap over chips and images

Study (:mod:`xbarref.tune.scenarios`, :mod:`xbarref.tune.study`, :mod:`xbarref.tune.report`;
command ``xbarref study``)
    Scenario, default_scenarios, register_family, register_preset    the scenario catalogue
    StudySettings, StudyResults, run_study, write_study              the runner and its report
"""

from xbarref.tune.batchnorm import BN_KINDS, TuneReport, recalibrate_bn, tune_bn
from xbarref.tune.distortion import (ColumnFit, column_fit, layer_distortion, layer_inputs,
                                     precision_errors, propagated_distortion, surrogate_errors)
from xbarref.tune.drift import analog_layers, drift_compensation_scales, set_drift_compensation
from xbarref.tune.retrain import retrain_noise_aware, retrain_with_validation
from xbarref.tune.scenarios import Scenario, default_scenarios, register_family, register_preset
from xbarref.tune.selection import select_bn_settings, validation_metrics
from xbarref.tune.stats import mean_ci, paired_ci
from xbarref.tune.study import StudyResults, StudySettings, run_study


def __getattr__(name):
    # The report writer imports matplotlib lazily; keep it out of the package import.
    if name == "write_study":
        from xbarref.tune.report import write_study

        return write_study
    raise AttributeError(f"module 'xbarref.tune' has no attribute {name!r}")


__all__ = [
    "BN_KINDS", "TuneReport", "recalibrate_bn", "tune_bn", "ColumnFit", "column_fit",
    "layer_distortion", "layer_inputs", "propagated_distortion", "surrogate_errors", "precision_errors", "analog_layers",
    "drift_compensation_scales", "set_drift_compensation", "retrain_noise_aware",
    "retrain_with_validation", "Scenario", "default_scenarios", "register_family", "register_preset",
    "select_bn_settings", "validation_metrics", "mean_ci", "paired_ci", "StudyResults", "StudySettings", "run_study", "write_study",
]
