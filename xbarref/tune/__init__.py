"""Mitigation of hardware non-idealities with the simulated hardware in the loop, and the study.

Batchnorm (:mod:`xbarref.tune.batchnorm`)
    recalibrate_bn(model, x)           running statistics recomputed through the hardware
    tune_bn(model, x, y, ...)          Adam steps on batchnorm gamma and beta only
    TuneReport                         wall time, steps, samples, parameters, optimizer memory
    BN_KINDS

Drift compensation (:mod:`xbarref.tune.drift`; the scale itself is the mapping package's)
    set_drift_compensation(model, enabled), drift_compensation_scales(model), analog_layers(model)

Baseline (:mod:`xbarref.tune.retrain`)
    retrain_noise_aware(model, hardware, x, y, ...)   all weights, fresh hardware samples

Dot-product distortion (:mod:`xbarref.tune.distortion`)
    column_fit(y_ideal, y_hw) -> ColumnFit   per-column gain + offset and the variance left
    layer_inputs(model, x), layer_distortion(mapped_model, inputs)

Study (:mod:`xbarref.tune.study`, :mod:`xbarref.tune.report`; command ``xbarref study``)
    Scenario, StudySettings, StudyResults, default_scenarios, run_study, write_study
"""

from xbarref.tune.batchnorm import BN_KINDS, TuneReport, recalibrate_bn, tune_bn
from xbarref.tune.distortion import ColumnFit, column_fit, layer_distortion, layer_inputs
from xbarref.tune.drift import analog_layers, drift_compensation_scales, set_drift_compensation
from xbarref.tune.retrain import retrain_noise_aware
from xbarref.tune.study import Scenario, StudyResults, StudySettings, default_scenarios, run_study


def __getattr__(name):
    # The report writer imports matplotlib lazily; keep it out of the package import.
    if name == "write_study":
        from xbarref.tune.report import write_study

        return write_study
    raise AttributeError(f"module 'xbarref.tune' has no attribute {name!r}")


__all__ = [
    "BN_KINDS", "TuneReport", "recalibrate_bn", "tune_bn", "ColumnFit", "column_fit",
    "layer_distortion", "layer_inputs", "analog_layers", "drift_compensation_scales",
    "set_drift_compensation", "retrain_noise_aware", "Scenario", "StudyResults", "StudySettings",
    "default_scenarios", "run_study", "write_study",
]
