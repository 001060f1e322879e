"""The study runner: every scenario x chip x mitigation, under a deployment protocol.

The scenarios come from the catalogue (:mod:`xbarref.tune.scenarios`). For every
scenario and chip (``seed``) one task (:func:`study_task`) runs the protocol:

1. **Programming.** The model is programmed on a new chip (:func:`xbarref.map_model`).
   With ``adc.range = "programmed"`` every column's ADC range is set right after
   programming (``t = 0``) from the currents of the chip's calibration pool and then
   kept fixed.
2. **Fit session** at each time ``t`` of the scenario: a new inference session (a new
   session draw of the read noise, drift to ``t``). Every mitigation is fitted here on
   the calibration set (never the test set) and the test accuracy of this same session
   is measured (``protocol = "same session"``).
3. **Test session**: a later, independent session of the same chip, drift advanced to
   ``t_test`` with ``t_test + t0 = gap_factor (t + t0)`` (``t0 = 20 s``; the test
   session comes as long after the fit as the fit came after programming, a stated
   assumption) and a new session draw of the read noise. The fitted mitigations are
   tested here as they are (``protocol = "later session"``): what a deployed chip sees.

Mitigations: ``none`` (raw outputs); ``drift_comp`` (global drift compensation, its
scale measured again in each session, scenarios with drift); ``adc_recal`` (the ADC
ranges measured again in the fit session: a named mitigation with its cost, scenarios
whose ADC range is set at programming and that drift or have read noise);
``bn_recal`` (batchnorm running statistics through the hardware); ``bn_recal_tune``
(then Adam on gamma and beta); ``retrain`` (noise-aware retraining of all weights, its
budget chosen on the validation split, programmed on the *same* chip: the same
programming, fault and session draws), ``retrain_recal`` and ``retrain_recal_tune``
(then the batchnorm mitigations on that chip, with the scenario's chosen settings):
like with like.

Settings chosen on the validation split. Before any chip task, one *selection* task per
scenario (:func:`xbarref.tune.selection.select_bn_settings`) programs a selection chip
(its own draws: none of the test chips), fits the batchnorm mitigations in its fit
session at each time ``t`` over a grid of calibration-set sizes and learning rates, and
measures the validation loss in a later session of that chip, every ``tune_eval_every``
steps with early stopping. The chip tasks use the argmin: the calibration size of
``bn_recal``, and the calibration size, learning rate and number of steps of
``bn_recal_tune`` (zero steps when tuning did not lower the validation loss). The
validation split is the data set's own (``/validation`` of the file: held out from the
model's training) when it has one, else ``validation_fraction`` of the training split;
the calibration pools come from the rest of the training split; the test split is read
only by the chip tasks, for the reported accuracies.

Random draws: one seeding scheme, the run engine's (:mod:`xbarref.sweep.tasks`). Every
task has a *key* naming what it is (``{"study": "chip", "scenario": name, "chip": c}``,
``{"study": "selection", "scenario": name}``, ``{"study": "retraining", "scenario":
name}``); its :class:`numpy.random.SeedSequence` comes from the base seed and the key
(:func:`xbarref.sweep.task_seed`) and is spawned into named streams
(:func:`xbarref.sweep.named_streams`: ``"chip"``, ``"calibration set"``, ``"fit session
t=..."``, ...). Draws shared by the whole study (validation split, test-image subset,
distortion rows, the ideal reference chip, the report's bootstrap) are streams of keys
of their own (:func:`study_streams`). No stream numbers, no positions: a scenario gives
the same numbers in a full study and alone (``--only``), and chip ``c`` is the same chip
whatever the number of chips.

Per-image correctness is kept for every accuracy, so that :mod:`xbarref.tune.stats`
can pair comparisons over the same chips and images.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from xbarref.errors import XbarrefError
from xbarref.io.inputs import check_file, file_sha256
from xbarref.mapping import calibrate_adc, map_model, set_compensation, set_inference_time, set_read_precision
from xbarref.nn.train import run_inference
from xbarref.sweep import Task, named_streams, resolve_scheduler, run, streams, task_id
from xbarref.tune.batchnorm import BN_KINDS, recalibrate_bn, tune_bn
from xbarref.tune.distortion import (layer_distortion, layer_inputs, precision_errors, propagated_distortion,
                                     surrogate_errors)
from xbarref.tune.retrain import retrain_with_validation
from xbarref.tune.scenarios import (DRIFT_LABELS, DRIFT_TIMES, Scenario, bn_followed_layers,
                                    default_scenarios, scenario_from_dict, scenario_label)
from xbarref.tune.selection import select_bn_settings

__all__ = ["StudySettings", "StudyResults", "run_study", "study_task", "MITIGATIONS", "PROTOCOLS",
           "study_streams", "task_key", "stream_name", "data_splits", "validation_split", "count_units",
           "task_cost", "selection_cost", "later_session_time", "Scenario", "default_scenarios",
           "bn_followed_layers", "scenario_label", "DRIFT_TIMES", "DRIFT_LABELS", "pack_correct",
           "unpack_correct", "image_subset", "row_images", "results_to_dict", "results_from_dict", "merge_results"]

MITIGATIONS = ("none", "drift_comp", "adc_recal", "bn_recal", "bn_recal_tune", "retrain",
               "retrain_recal", "retrain_recal_tune")
PROTOCOLS = ("same session", "later session")
T0 = 20.0


def _positive_ints(name, values):
    values = tuple(values)
    if not values or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in values):
        raise XbarrefError(f"{name}: must be a non-empty list of positive integers, got {values!r}")
    return tuple(int(v) for v in values)


@dataclass(frozen=True)
class StudySettings:
    """Sizes and hyper-parameters of a study run (defaults: the documented default run).

    Attributes
    ----------
    seeds : int
        Chips per scenario (each: programming, calibration pool, sessions), >= 1.
    calibration_sizes : tuple of int
        Calibration-set sizes the selection chooses from (labelled training samples
        outside the validation split; a chip's calibration pool has the largest, the
        ADC ranges at programming and ADC re-ranging use the whole pool).
    validation_fraction : float
        Share of the training split carved off as the validation split when the data set
        has no validation split of its own, 0 < f < 1.
    validation_samples : int or None
        Use at most this many validation samples (a seeded subset; None: all).
    tune_lrs : tuple of float
        Learning-rate grid of batchnorm tuning (Adam on gamma and beta).
    tune_max_steps, tune_eval_every, tune_patience, tune_batch : int
        Batchnorm tuning: step cap, steps between validation evaluations, evaluations
        without improvement before stopping, minibatch. ``tune_max_steps`` is a multiple of
        ``tune_eval_every``.
    retrain_lrs : tuple of float
        Learning-rate grid of the retraining.
    retrain_batch, retrain_max_steps, retrain_eval_every, retrain_patience, reprogram_every : int
        Retraining: minibatch, step cap, steps between validation evaluations,
        evaluations without improvement before stopping, steps per hardware sample.
    gap_factor : float
        ``(t_test + t0) / (t_fit + t0)`` of the test session, >= 1.
    test_samples : int or None
        Evaluate on the first ``test_samples`` test samples (None: all).
    distortion_images, distortion_rows : int
        Test images whose layer inputs feed the distortion analysis; rows kept per layer.
    scatter_points : int
        Points per scenario stored for the distortion scatter plot.
    surrogate_reads : int
        Layer inputs (rows of the distortion inputs) per analog layer, chip and fit time on
        which the first-order surrogate (``parasitics.reads = "first_order"``) is measured
        against the exact per-read circuits (:func:`xbarref.tune.surrogate_errors`).
    bootstrap_resamples : int
        Resamples of every bootstrap confidence interval.
    """

    seeds: int = 10
    calibration_sizes: tuple = (64, 256)
    validation_fraction: float = 0.2
    validation_samples: int | None = 1000
    tune_lrs: tuple = (0.003, 0.01, 0.03)
    tune_max_steps: int = 40
    tune_eval_every: int = 10
    tune_patience: int = 2
    tune_batch: int = 32
    retrain_lrs: tuple = (1e-3, 3e-3)
    retrain_batch: int = 32
    retrain_max_steps: int = 150
    retrain_eval_every: int = 25
    retrain_patience: int = 2
    reprogram_every: int = 25
    gap_factor: float = 2.0
    test_samples: int | None = None
    distortion_images: int = 32
    distortion_rows: int = 1024
    scatter_points: int = 1500
    surrogate_reads: int = 16
    bootstrap_resamples: int = 2000

    def __post_init__(self):
        for name in ("seeds", "tune_max_steps", "tune_eval_every", "tune_patience", "tune_batch",
                     "retrain_batch", "retrain_max_steps", "retrain_eval_every", "retrain_patience",
                     "reprogram_every", "distortion_images", "distortion_rows", "scatter_points",
                     "bootstrap_resamples", "surrogate_reads"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise XbarrefError(f"{name}: must be a positive integer, got {v!r}")
        sizes = _positive_ints("calibration_sizes", self.calibration_sizes)
        if min(sizes) < 2:
            raise XbarrefError("calibration_sizes: every size must be >= 2")
        object.__setattr__(self, "calibration_sizes", tuple(sorted(set(sizes))))
        if self.tune_max_steps % self.tune_eval_every:
            raise XbarrefError(f"tune_max_steps: must be a multiple of tune_eval_every "
                               f"({self.tune_eval_every}), got {self.tune_max_steps}")
        for name in ("test_samples", "validation_samples"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1):
                raise XbarrefError(f"{name}: must be a positive integer or None, got {v!r}")
        if not 0 < self.validation_fraction < 1:
            raise XbarrefError("validation_fraction: must be in (0, 1)")
        if not self.gap_factor >= 1:
            raise XbarrefError("gap_factor: must be >= 1")
        for name in ("retrain_lrs", "tune_lrs"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
            lrs = getattr(self, name)
            if not lrs or not all(v > 0 for v in lrs):
                raise XbarrefError(f"{name}: learning rates must be > 0 (at least one)")

    @property
    def calibration_samples(self):
        """Size of a chip's calibration pool (the largest of :attr:`calibration_sizes`)."""
        return max(self.calibration_sizes)


@dataclass
class StudyResults:
    """Rows measured by :func:`run_study`.

    Attributes
    ----------
    accuracy : list of dict
        ``scenario, family, label, t_fit, t_test, protocol, mitigation, seed, accuracy,
        correct`` (``correct``: per-test-image hits, :func:`pack_correct`).
    costs : list of dict
        ``scenario, t_fit, seed`` and the :class:`TuneReport` fields.
    distortion : list of dict
        ``scenario`` (label), ``family, t_fit, seed, layer, inputs`` (``"ideal"``: the
        inputs of the ideal network, layer by layer; ``"hardware"``: propagated through
        the hardware), ``followed_by_bn, nmse_total, nonabsorbable, absorbable,
        nonabsorbable_static, nonabsorbable_per_read``.
    scatter : dict
        ``{label: (layer, y_ideal, y_hw, gain, offset, column)}`` sample points (chip 0).
    reference : dict
        ``software`` and ``ideal_hardware`` accuracies, ``software_correct`` (packed),
        ``test_samples``, ``validation_samples``, ``validation_source`` (``"file"`` or
        ``"carved"``), ``train_samples``, ``base_seed``.
    retraining : dict
        ``{scenario: dict(lr, steps, curves, train_losses, weight_change, ...)}``.
    selection : dict
        ``{label: dict(scenario, t_fit, recal, tune, recal_points, curves)}``: the
        batchnorm settings chosen on the validation split
        (:func:`xbarref.tune.selection.select_bn_settings`).
    surrogate : list of dict
        ``scenario`` (label), ``family, t_fit, seed, kind`` (``"sinh"`` or ``"read noise"``)
        and the fields of :func:`xbarref.tune.surrogate_errors`: the first-order
        surrogate's error against the exact per-read circuits, per chip and layer.
    scenarios : list of Scenario
    settings : StudySettings
    seconds : float
        Wall time of the study, s.
    """

    accuracy: list = field(default_factory=list)
    costs: list = field(default_factory=list)
    distortion: list = field(default_factory=list)
    scatter: dict = field(default_factory=dict)
    reference: dict = field(default_factory=dict)
    retraining: dict = field(default_factory=dict)
    selection: dict = field(default_factory=dict)
    surrogate: list = field(default_factory=list)
    scenarios: list = field(default_factory=list)
    settings: StudySettings | None = None
    seconds: float = 0.0


# ----------------------------------------------------------------------------- draws
def task_key(kind, scenario=None, chip=None):
    """The key of a study task or study-wide draw: what it is, never where it sits.

    ``{"study": kind}`` plus ``scenario`` (its name) and ``chip`` when given; with the
    base seed it fixes the task's :class:`~numpy.random.SeedSequence`
    (:func:`xbarref.sweep.task_seed`)."""
    key = {"study": str(kind)}
    if scenario is not None:
        key["scenario"] = str(scenario)
    if chip is not None:
        key["chip"] = int(chip)
    return key


def study_streams(base_seed, key, *names):
    """Named streams of a study-wide draw (:func:`xbarref.sweep.streams` of ``key``)."""
    return streams(int(base_seed), key, *names)


def stream_name(what, t=None):
    """Name of a stream, with the session time when there is one: ``"fit session t=3600.0"``."""
    return what if t is None else f"{what} t={float(t)!r}"


def data_splits(n_train, settings, base_seed):
    """``(train, validation)`` index arrays of a training split of ``n_train`` samples with
    ``validation_fraction`` carved off (keyed by the base seed)."""
    order = study_streams(base_seed, task_key("validation split"), "permutation")["permutation"] \
        .permutation(n_train)
    n_val = max(1, int(round(settings.validation_fraction * n_train)))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def validation_split(dataset, settings, base_seed):
    """``(train indices, x_val, y_val, source)``: the data set's own validation split when it
    has one (``source = "file"``; all training samples stay for calibration and
    retraining), else :func:`data_splits` (``"carved"``); at most
    ``settings.validation_samples`` of it (a seeded subset). Reads no test sample."""
    n_train = len(dataset.y_train)
    if dataset.has_validation:
        train, x_val, y_val, source = np.arange(n_train), dataset.x_val, dataset.y_val, "file"
    else:
        train, val = data_splits(n_train, settings, base_seed)
        x_val, y_val, source = dataset.x_train[val], dataset.y_train[val], "carved"
    k = settings.validation_samples
    if k is not None and k < len(y_val):
        pick = np.sort(study_streams(base_seed, task_key("validation subset"), "subset")["subset"]
                       .choice(len(y_val), int(k), replace=False))
        x_val, y_val = x_val[pick], y_val[pick]
    return train, x_val, y_val, source


def later_session_time(t, settings):
    """Time of the test session for a fit session at ``t`` s (see the module docstring)."""
    return settings.gap_factor * (t + T0) - T0


def pack_correct(hits):
    """Per-image hits (bool) as a hex string."""
    return np.packbits(np.asarray(hits, dtype=bool)).tobytes().hex()


def unpack_correct(text, n):
    """Inverse of :func:`pack_correct` for ``n`` images."""
    return np.unpackbits(np.frombuffer(bytes.fromhex(text), dtype=np.uint8))[:n].astype(bool)


def image_subset(n_test, k, base_seed):
    """Sorted indices of the seeded subset of ``k`` of the first ``n_test`` test images
    (None when ``k`` is None or >= ``n_test``: all images). Keyed by the base seed and
    ``k`` only, so every scenario with the same ``k`` sees the same images."""
    if k is None or k >= n_test:
        return None
    g = study_streams(base_seed, {"study": "test subset", "images": int(k)}, "subset")["subset"]
    return np.sort(g.choice(n_test, int(k), replace=False))


def row_images(row, n_test):
    """Boolean mask over the ``n_test`` test images of an accuracy row (all, or its subset)."""
    if "subset" in row:
        return unpack_correct(row["subset"], n_test)
    return np.ones(n_test, dtype=bool)


def _hits(model, x, y, batch_size=512):
    return run_inference(model, x, y, batch_size=batch_size).predictions == y


# ----------------------------------------------------------------------------- runner
def task_cost(sc):
    """Relative cost of one (scenario, chip) task, for the progress ETA and the task order.

    One unit is about the programming and distortion analysis of a chip; each time of
    the scenario adds 0.7 (fit, mitigations, evaluations), 1.8 with per-read noise; a
    retraining scenario's chip task adds 2 (a second chip and three more mitigations).
    Fitted to the wall times of the tasks of the default run on the digits CNN.
    """
    per_time = 1.8 if sc.read_noisy else 0.7
    return 1.0 + per_time * len(sc.times) + (2.0 if sc.retrain else 0.0)


def selection_cost(sc, settings):
    """Relative cost (:func:`task_cost` units) of the selection task of a scenario.

    1 unit, and per fit time 1.5 units for the default grid (early stopping usually ends
    a run before the step cap), 6.5 when every validation session re-solves resistive
    wires (drift or read noise with wire resistance); scaled with the grid size and the
    step cap. Fitted to the selection tasks of the default run on the digits CNN.
    """
    grid = len(settings.calibration_sizes) * len(settings.tune_lrs) * settings.tune_max_steps / (6 * 40)
    wired = sc.session_dependent and not sc.hardware.parasitics.ideal
    return 1.0 + grid * (6.5 if wired else 1.5) * len(sc.times)


#: Cost of one retraining task in :func:`task_cost` units (measured on the digits CNN).
RETRAIN_COST = 40.0


def count_units(scenarios, settings):
    """Progress units of :func:`run_study`: the summed costs of its tasks."""
    return sum(task_cost(sc) * settings.seeds + selection_cost(sc, settings) for sc in scenarios) \
        + RETRAIN_COST * sum(sc.retrain for sc in scenarios)


def run_study(model, dataset, scenarios, settings=None, *, progress=None, base_seed=0, jobs=1,
              scheduler=None, source=None, work_dir=None, parts_dir=None, resume=False):
    """Run every scenario x chip x mitigation under the deployment protocol.

    Parameters
    ----------
    model : xbarref.nn.Model
        Trained digital model with batchnorm layers; left unchanged.
    dataset : xbarref.io.data.Dataset
    scenarios : list of Scenario
    settings : StudySettings, optional
    progress : callable ``(units, description)``, optional
        Called as each task finishes with its cost (:func:`task_cost`,
        :func:`selection_cost`, :data:`RETRAIN_COST`).
    base_seed : int
    jobs : int
        Local worker processes.
    scheduler : str, optional
        Dask scheduler address (the tasks run through :func:`xbarref.sweep.run`).
    source : dict, optional
        ``model`` and ``data`` file paths (None: bundled) the tasks load; without it
        the model and data set are written to a temporary folder first.
    work_dir : str, optional
        Where temporary folders go.
    parts_dir : str, optional
        Keep the task results here until the study succeeds (``resume`` reuses them).

    Returns
    -------
    StudyResults
    """
    settings = settings or StudySettings()
    scenarios = list(scenarios)
    if not model.layers_of_kind(*BN_KINDS):
        raise XbarrefError("model: has no batchnorm layer; the study tunes batchnorm")
    train, x_val, _y_val, val_source = validation_split(dataset, settings, base_seed)
    if len(train) < settings.calibration_samples:
        raise XbarrefError(f"DATA: the training split has {len(train)} samples outside the validation "
                           f"split, the study needs calibration_samples = {settings.calibration_samples}")
    if isinstance(jobs, bool) or not isinstance(jobs, (int, np.integer)) or jobs < 1:
        raise XbarrefError(f"jobs: must be a positive integer, got {jobs!r}")
    names = [sc.name for sc in scenarios]
    if len(set(names)) != len(names):
        raise XbarrefError("scenarios: names must be unique (they key the random draws)")
    n_test = len(dataset.y_test) if settings.test_samples is None else min(settings.test_samples,
                                                                         len(dataset.y_test))
    tick = progress or (lambda n, desc: None)
    start = time.perf_counter()
    res = StudyResults(scenarios=scenarios, settings=settings)
    x_test, y_test = dataset.x_test[:n_test], dataset.y_test[:n_test]
    soft = _hits(model, x_test, y_test)
    ideal = study_streams(base_seed, task_key("reference"), "ideal hardware")["ideal hardware"]
    res.reference.update(software=float(soft.mean()), software_correct=pack_correct(soft),
                         ideal_hardware=float(_hits(map_model(model, "ideal", ideal), x_test, y_test).mean()),
                         test_samples=n_test, validation_samples=len(x_val),
                         validation_source=val_source, train_samples=len(train), base_seed=int(base_seed))
    keep = parts_dir is not None
    if keep:
        os.makedirs(parts_dir, exist_ok=True)
        folder = parts_dir
    else:
        from xbarref.io.atomic import make_temp_dir

        folder = make_temp_dir(work_dir, "study-parts")
    done = False
    try:
        files = _files(model, dataset, source, folder)
        common = dict(files=files, settings=_settings_dict(settings), base_seed=int(base_seed), n_test=int(n_test))
        # Phase 1: the selection task of every scenario (the batchnorm settings, chosen on
        # the validation split) and the retraining of each retraining scenario (once per
        # scenario, beside the selections); phase 2: every chip task, with the chosen
        # settings (and the retrained model where there is one).
        first = [dict(common, kind="selection", scenario=sc.to_dict()) for sc in scenarios]
        first += [dict(common, kind="retraining", scenario=sc.to_dict()) for sc in scenarios if sc.retrain]
        parts = _run_tasks(first, jobs, scheduler, tick, folder, resume, settings)
        retrained, tuning = {}, {}
        for sc in scenarios:
            chosen = json.loads(parts[sc.name, "selection"]["selection"])
            tuning[sc.name] = {label: dict(recal_samples=c["recal"]["samples"], tune_samples=c["tune"]["samples"],
                                           lr=c["tune"]["lr"], steps=c["tune"]["steps"])
                               for label, c in chosen.items()}
            res.selection.update(chosen)
            if sc.retrain:
                retrained[sc.name], res.retraining[sc.name] = _save_retrained(
                    model, parts[sc.name, "retraining"], sc, folder)
        second = [dict(common, kind="chip", scenario=sc.to_dict(), seed=seed, tuning=tuning[sc.name],
                       retrained=retrained.get(sc.name)) for sc in scenarios for seed in range(settings.seeds)]
        parts = _run_tasks(second, jobs, scheduler, tick, folder, resume, settings)
        for sc in scenarios:
            for seed in range(settings.seeds):
                part = parts[sc.name, seed]
                res.accuracy += part["accuracy"]
                res.costs += part["costs"]
                res.distortion += part["distortion"]
                res.surrogate += part.get("surrogate", [])
                res.scatter.update(part["scatter"])
        for name, info in res.retraining.items():
            res.costs.append(dict(scenario=name, family="combined", t_fit=0.0, seed=-1, **info["report"]))
        done = True
    finally:
        if done or not keep:
            shutil.rmtree(folder, ignore_errors=True)
    res.seconds = time.perf_counter() - start
    return res


def _files(model, dataset, source, folder):
    """Model and data file paths (with SHA-256) the tasks load."""
    from xbarref.io.data import bundled_dataset_path, save_dataset
    from xbarref.io.inputs import bundled_model_path
    from xbarref.io.model import save_model

    if source is not None:
        mp = source.get("model") or bundled_model_path()
        dp = source.get("data") or bundled_dataset_path()
    else:
        mp, dp = os.path.join(folder, "model.h5"), os.path.join(folder, "data.h5")
        save_model(model, mp)
        save_dataset(dataset, dp)
    mp, dp = os.path.abspath(mp), os.path.abspath(dp)
    return dict(model=mp, model_sha256=file_sha256(mp), data=dp, data_sha256=file_sha256(dp))


def _retrain_task(model, dataset, sc, settings, base_seed, seed):
    """Noise-aware retraining of one scenario (chips do not change it), its budget chosen
    on the validation split. Returns the task result (parameters, buffers, info)."""
    train, x_val, y_val, _ = validation_split(dataset, settings, base_seed)
    hw = sc.hardware.replace(drift=sc.hardware.drift.__class__(0.0, sc.hardware.drift.drift_scale, "none"))
    g = named_streams(seed, "retraining", "retraining calibration", "retraining validation chip")
    cal = dataset.x_train[train[g["retraining calibration"].choice(
        len(train), min(64, len(train)), replace=False)]] if sc.adc_ranged else None
    out = retrain_with_validation(
        model, hw, dataset.x_train[train], dataset.y_train[train], x_val, y_val,
        lrs=settings.retrain_lrs, batch_size=settings.retrain_batch, max_steps=settings.retrain_max_steps,
        eval_every=settings.retrain_eval_every, patience=settings.retrain_patience,
        reprogram_every=settings.reprogram_every, rng=g["retraining"],
        val_seed=int(g["retraining validation chip"].integers(2 ** 62)),
        t_inference=sc.times[0], calibration=cal)
    rep = out.report
    info = dict(lr=out.lr, steps=out.steps, weight_change=out.weight_change,
                curves={f"{lr:g}": [[int(s_), float(v)] for s_, v in c] for lr, c in out.curves.items()},
                train_losses={f"{lr:g}": [float(v) for v in c] for lr, c in out.train_losses.items()},
                report=dict(method=rep.method, seconds=rep.seconds, steps=rep.steps,
                            samples_seen=rep.samples_seen, calibration_samples=rep.calibration_samples,
                            trainable_parameters=rep.trainable_parameters,
                            optimizer_bytes=rep.optimizer_bytes, loss_first=rep.loss_first,
                            loss_last=rep.loss_last))
    result = {"info": json.dumps(info)}
    for k, a in out.model.named_parameters().items():
        result[f"param.{k}"] = np.array(a)
    for k, a in out.model.named_buffers().items():
        result[f"buffer.{k}"] = np.array(a)
    return result


def _calibration_pool(dataset, train, settings, g):
    """The labelled calibration pool of a chip (``settings.calibration_samples`` training
    samples outside the validation split, in draw order: size ``k`` is its first ``k``)."""
    idx = train[g.choice(len(train), settings.calibration_samples, replace=False)]
    return dataset.x_train[idx], dataset.y_train[idx]


def _selection_task(model, dataset, sc, settings, base_seed, seed):
    """The batchnorm settings of one scenario, chosen on the validation split with a
    selection chip of its own (never a test chip, never the test split)."""
    train, x_val, y_val, _ = validation_split(dataset, settings, base_seed)
    names = ["chip", "calibration set"]
    for t in sc.times:
        names += [stream_name(w, t) for w in ("fit session", "validation session", "tuning minibatches")]
    g = named_streams(seed, *names)
    xc, yc = _calibration_pool(dataset, train, settings, g["calibration set"])
    chip = _chip(model, sc, g["chip"], xc)
    out = {}
    for t in sc.times:
        set_inference_time(chip, t, rng=g[stream_name("fit session", t)])
        raw = copy.deepcopy(chip)
        if sc.hardware.drift.compensation != "none":
            set_compensation(raw, False)
        t_test = later_session_time(t, settings)
        v_seed = int(g[stream_name("validation session", t)].integers(2 ** 63))

        def validation_session(m, t_test=t_test, v_seed=v_seed):
            # the same session draws (and per-read draws) at every evaluation
            return set_inference_time(m, t_test, rng=np.random.default_rng(v_seed))

        # a chip without drift or read noise reads the same in every session (as in the
        # chip tasks): the validation session is the fit session, measured in place
        chosen = select_bn_settings(
            raw, xc, yc, x_val, y_val, validation_session if sc.session_dependent else None,
            sizes=settings.calibration_sizes,
            lrs=settings.tune_lrs, max_steps=settings.tune_max_steps, eval_every=settings.tune_eval_every,
            patience=settings.tune_patience, batch_size=settings.tune_batch,
            rng=g[stream_name("tuning minibatches", t)], eval_batch=sc.eval_batch)
        out[scenario_label(sc, t)] = dict(scenario=sc.name, family=sc.family, t_fit=float(t),
                                          t_validation=float(t_test), **chosen)
    return {"selection": json.dumps(out)}


def _save_retrained(model, result, sc, folder):
    """The retrained model of a retraining task, saved for the chip tasks: (file, info)."""
    from xbarref.io.model import save_model

    retrained = copy.deepcopy(model)
    for kind, arrays in (("param", retrained.named_parameters()), ("buffer", retrained.named_buffers())):
        for k, a in arrays.items():
            np.copyto(a, result[f"{kind}.{k}"])
    tag = hashlib.sha256(sc.name.encode("utf-8")).hexdigest()[:12]
    path = os.path.join(folder, f"retrained-{tag}.h5")
    save_model(retrained, path)
    return dict(path=path, sha256=file_sha256(path)), json.loads(result["info"])


def _task_ident(p):
    """``(scenario name, chip or "selection" / "retraining")`` of task parameters."""
    return (p["scenario"]["name"], p["seed"] if p["kind"] == "chip" else p["kind"])


def _tasks(params, base_seed):
    """Run-engine tasks of study task parameters: the key (what the task is, for its seed)
    is :func:`task_key`; the id adds a digest of everything the result depends on (the
    parameters without file paths), so that ``--resume`` never reuses a result computed
    with other settings, files or chosen settings."""
    tasks = []
    for p in params:
        name, which = _task_ident(p)
        key = task_key(p["kind"], name, which if p["kind"] == "chip" else None)
        inputs = dict(p, files={k: v for k, v in p["files"].items() if k.endswith("sha256")})
        if inputs.get("retrained"):
            inputs["retrained"] = inputs["retrained"]["sha256"]
        tid = task_id({"key": key, "inputs": inputs}, prefix=f"{name}-{which}")
        tasks.append(Task(tid, p, int(base_seed), key))
    return tasks


def _run_tasks(params, jobs, scheduler, tick, folder, resume, settings):
    """Run task parameter dicts through the run engine (:func:`xbarref.sweep.run`):
    ``{(scenario, chip or "selection" / "retraining"): part}``."""
    scheduler = resolve_scheduler(scheduler)

    def cost(p):
        sc = scenario_from_dict(p["scenario"])
        return {"retraining": lambda: RETRAIN_COST, "selection": lambda: selection_cost(sc, settings),
                "chip": lambda: task_cost(sc)}[p["kind"]]()

    # Expensive tasks first (load balance; the progress units are these costs).
    params = sorted(params, key=lambda p: (-cost(p), p["scenario"]["name"], str(_task_ident(p)[1])))
    tasks = _tasks(params, params[0]["base_seed"])
    info = {t.id: _task_ident(t.params) for t in tasks}
    costs = {t.id: cost(t.params) for t in tasks}

    def describe(tid):
        name, which = info[tid]
        return f"{name}, " + (f"chip {which}" if not isinstance(which, str) else which)

    def on_result(tid, outcome):
        tick(costs[tid], describe(tid))

    stored = run(tasks, study_task, folder, scheduler=scheduler, workers=int(jobs), progress=False,
                 resume=resume, on_result=on_result, desc="study",
                 label=lambda t: describe(t.id)).results
    return {info[t.id]: (_part_from_result(stored[t.id]) if t.params["kind"] == "chip" else stored[t.id])
            for t in tasks}


RESULTS_FORMAT = "xbarref.study.results"
RESULTS_VERSION = 1


def results_to_dict(res):
    """:class:`StudyResults` as plain JSON data (``results.json`` of a study folder), from
    which :func:`results_from_dict` rebuilds it to write the report again."""
    return dict(format=RESULTS_FORMAT, format_version=RESULTS_VERSION, accuracy=res.accuracy,
                costs=res.costs, distortion=res.distortion, surrogate=res.surrogate,
                reference=res.reference, retraining=res.retraining, selection=res.selection,
                scenarios=[sc.to_dict() for sc in res.scenarios],
                settings=_settings_dict(res.settings or StudySettings()), seconds=res.seconds,
                scatter={label: [layer] + [np.asarray(a).tolist() for a in arrays]
                         for label, (layer, *arrays) in res.scatter.items()})


def results_from_dict(d, source="results"):
    """Inverse of :func:`results_to_dict`; a file of another format or version, or with a
    part missing, raises naming ``source`` and what is wrong."""
    if not isinstance(d, dict) or d.get("format") != RESULTS_FORMAT:
        raise XbarrefError(f"{source}: not an xbarref study results file (format {RESULTS_FORMAT!r})")
    if d.get("format_version") != RESULTS_VERSION:
        raise XbarrefError(f"{source}: format_version {d.get('format_version')!r} is not supported "
                           f"(expected {RESULTS_VERSION})")
    try:
        return StudyResults(
            accuracy=list(d["accuracy"]), costs=list(d["costs"]), distortion=list(d["distortion"]),
            surrogate=list(d.get("surrogate", [])), reference=dict(d["reference"]),
            retraining=dict(d["retraining"]), selection=dict(d["selection"]),
            scenarios=[scenario_from_dict(sc) for sc in d["scenarios"]],
            settings=settings_from_dict(d["settings"]), seconds=float(d["seconds"]),
            scatter={label: (v[0], *(np.asarray(a) for a in v[1:])) for label, v in d["scatter"].items()})
    except (KeyError, TypeError, ValueError) as exc:
        raise XbarrefError(f"{source}: incomplete or damaged study results ({exc!r})") from None


def merge_results(parts, sources=None):
    """One :class:`StudyResults` of several runs of the same study on disjoint scenarios
    (separate ``--only`` runs): valid because a scenario's numbers do not depend on which
    others run. The runs must agree on the settings, the base seed and the test images
    (the software model's hits); otherwise :class:`~xbarref.errors.XbarrefError` names
    the run that differs."""
    parts = list(parts)
    sources = list(sources) if sources is not None else [f"results {i + 1}" for i in range(len(parts))]
    if not parts:
        raise XbarrefError("results: nothing to merge")
    first = parts[0]
    keys = ("software_correct", "test_samples", "base_seed", "validation_samples", "validation_source")
    names = {}
    for res, src in zip(parts, sources):
        if _settings_dict(res.settings) != _settings_dict(first.settings):
            raise XbarrefError(f"{src}: other study settings than {sources[0]} (chips, grids, sizes); "
                               "only runs of the same study can be merged")
        for k in keys:
            if res.reference.get(k) != first.reference.get(k):
                raise XbarrefError(f"{src}: another {k.replace('_', ' ')} than {sources[0]}; "
                                   "only runs on the same test images and base seed can be merged")
        for sc in res.scenarios:
            if sc.name in names:
                raise XbarrefError(f"{src}: scenario {sc.name!r} is also in {names[sc.name]}; "
                                   "merge runs of disjoint scenarios")
            names[sc.name] = src
    out = StudyResults(settings=first.settings, reference=dict(first.reference))
    for res in parts:
        out.accuracy += res.accuracy
        out.costs += res.costs
        out.distortion += res.distortion
        out.surrogate += res.surrogate
        out.scatter.update(res.scatter)
        out.retraining.update(res.retraining)
        out.selection.update(res.selection)
        out.scenarios += res.scenarios
        out.seconds += res.seconds
    return out


def _settings_dict(settings):
    d = asdict(settings)
    for name in ("retrain_lrs", "tune_lrs", "calibration_sizes"):
        d[name] = list(d[name])
    return d


def settings_from_dict(d):
    """Inverse of the settings dict carried by the task parameters."""
    return StudySettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


@functools.lru_cache(maxsize=4)
def _load(path, sha256, kind):
    """A model or data set file, checked against the SHA-256 the study started with."""
    from xbarref.io.data import load_dataset
    from xbarref.io.model import load_model

    check_file(path, sha256, kind)
    return load_model(path) if kind == "model" else load_dataset(path)


_SCATTER_FIELDS = ("y_ideal", "y_hw", "gain", "offset", "column")


def study_task(params, seed):
    """Executor task function: one selection, retraining or (scenario, chip) task of a study.

    ``params`` carries everything the task needs: ``kind`` (``"selection"``,
    ``"retraining"`` or ``"chip"``), the model and data file paths with their SHA-256
    (``files``), the scenario (``Scenario.to_dict``), the chip ``seed``, the settings,
    the base seed, the number of test samples, the chosen batchnorm settings
    (``tuning``) and the retrained model's file (``retrained``, or None). ``seed`` is the
    task's :class:`numpy.random.SeedSequence` from the run engine (the base seed and the
    task's key, :func:`task_key`); every draw of the task is one of its named streams,
    so the results do not depend on where the task runs or on the other scenarios.

    Returns
    -------
    dict
        Chip tasks: ``accuracy``, ``costs``, ``distortion``, ``scatter`` (JSON strings)
        and the scatter arrays ``scatter.<j>.<field>``; selection tasks: ``selection``;
        retraining tasks: ``info`` and the retrained parameters and buffers.
    """
    f = params["files"]
    model = _load(f["model"], f["model_sha256"], "model")
    dataset = _load(f["data"], f["data_sha256"], "data")
    settings = settings_from_dict(params["settings"])
    sc = scenario_from_dict(params["scenario"])
    base_seed = int(params["base_seed"])
    if params["kind"] == "retraining":
        return _retrain_task(model, dataset, sc, settings, base_seed, seed)
    if params["kind"] == "selection":
        return _selection_task(model, dataset, sc, settings, base_seed, seed)
    retrained = None
    if params.get("retrained"):
        r = params["retrained"]
        retrained = _load(r["path"], r["sha256"], "model")
    part = _task(model, dataset, sc, int(params["seed"]), settings, base_seed, int(params["n_test"]),
                 retrained, params["tuning"], seed)
    out = {"accuracy": json.dumps(part["accuracy"]), "costs": json.dumps(part["costs"]),
           "distortion": json.dumps(part["distortion"]), "surrogate": json.dumps(part["surrogate"])}
    labels = []
    for j, (label, (layer, *arrays)) in enumerate(part["scatter"].items()):
        labels.append([label, layer])
        for name, arr in zip(_SCATTER_FIELDS, arrays):
            out[f"scatter.{j}.{name}"] = np.asarray(arr)
    out["scatter"] = json.dumps(labels)
    return out


def _part_from_result(result):
    part = {k: json.loads(result[k]) for k in ("accuracy", "costs", "distortion", "surrogate")}
    part["scatter"] = {label: (layer, *(result[f"scatter.{j}.{name}"] for name in _SCATTER_FIELDS))
                       for j, (label, layer) in enumerate(json.loads(result["scatter"]))}
    return part


def _cost_row(sc, seed, t, report):
    return dict(scenario=sc.name, family=sc.family, t_fit=float(t), seed=seed,
                method=report.method, seconds=report.seconds, steps=report.steps,
                samples_seen=report.samples_seen, calibration_samples=report.calibration_samples,
                trainable_parameters=report.trainable_parameters,
                optimizer_bytes=report.optimizer_bytes, loss_first=report.loss_first,
                loss_last=report.loss_last)


def _tuned(m, xc, yc, choice, settings, g):
    """``m`` (recalibrated on ``xc[:tune_samples]``) tuned with the chosen lr and steps;
    returns the TuneReport (None for zero chosen steps: tuning did not help on validation)."""
    if choice["steps"] == 0:
        return None
    k = choice["tune_samples"]
    return tune_bn(m, xc[:k], yc[:k], steps=int(choice["steps"]), batch_size=settings.tune_batch,
                   lr=float(choice["lr"]), rng=g)


def _chip(model, sc, rng, xc):
    """``model`` programmed on a chip of scenario ``sc`` (drawn with ``rng``; ADC ranges from
    the calibration pool ``xc`` where the scenario sets them at programming), reading with
    the scenario's precision."""
    chip = map_model(model, sc.hardware, rng, t_inference=0.0, calibration=xc if sc.adc_ranged else None)
    return set_read_precision(chip, sc.read_precision)


def _untuned(choice):
    """True when the chosen tuning is no tuning at all: zero steps on the recalibration's
    own calibration samples (then bn_recal_tune is the bn_recal model itself)."""
    return int(choice["steps"]) == 0 and int(choice["tune_samples"]) == int(choice["recal_samples"])


def _task(model, dataset, sc, seed, settings, base_seed, n_test, retrained, tuning, task_seed):
    from xbarref.tune.batchnorm import TuneReport

    part = {"accuracy": [], "costs": [], "distortion": [], "surrogate": [], "scatter": {}}
    x_test, y_test = dataset.x_test[:n_test], dataset.y_test[:n_test]
    subset = image_subset(n_test, sc.test_images, base_seed)
    if subset is not None:
        x_test, y_test = x_test[subset], y_test[subset]
        mask = np.zeros(n_test, dtype=bool)
        mask[subset] = True
        subset_text = pack_correct(mask)

    def fresh(what, t=None):
        # a new generator of the named stream at its start: the fit session of the chip and
        # of the retrained chip, the test session of every mitigation and the minibatches of
        # both tunings draw the same numbers (the same chip; paired comparisons)
        name = stream_name(what, t)
        return named_streams(task_seed, name)[name]

    train, _x_val, _y_val, _ = validation_split(dataset, settings, base_seed)
    xc, yc = _calibration_pool(dataset, train, settings, fresh("calibration set"))
    hw = sc.hardware
    comp = hw.drift.compensation != "none"
    adc_mit = sc.adc_ranged and (sc.has_drift or sc.read_noisy or hw.noise.read_scale > 0)
    chip = _chip(model, sc, fresh("chip"), xc)
    retrained_chip = None
    if retrained is not None:
        # the same chip: the same programming, fault and session draws
        retrained_chip = _chip(retrained, sc, fresh("chip"), xc)
    inputs = None
    surrogate = hw.parasitics.reads == "first_order" and not hw.parasitics.ideal
    float32 = sc.read_precision == "float32"
    if sc.distortion or surrogate or float32:
        x_d = x_test[:settings.distortion_images]
        rows = study_streams(base_seed, task_key("distortion rows"), "rows")["rows"]
        inputs = layer_inputs(model, x_d, max_rows=settings.distortion_rows, rng=rows)
    bn_layers = bn_followed_layers(model)
    for t in sc.times:
        t_test = later_session_time(t, settings)
        label = scenario_label(sc, t)
        choice = tuning[label]

        def fit_session(m, t=t):
            return set_inference_time(m, t, rng=fresh("fit session", t))

        def test_session(m, t=t, t_test=t_test):
            return set_inference_time(m, t_test, rng=fresh("test session", t))

        def row(mitigation, protocol, hits):
            part["accuracy"].append(dict(
                scenario=sc.name, family=sc.family, label=label, t_fit=float(t),
                t_test=float(t if protocol == PROTOCOLS[0] else t_test), protocol=protocol,
                mitigation=mitigation, seed=seed, accuracy=float(np.mean(hits)), correct=pack_correct(hits)))
            if subset is not None:
                part["accuracy"][-1]["subset"] = subset_text

        fit_session(chip)
        raw = copy.deepcopy(chip)
        if comp:
            set_compensation(raw, False)
        if surrogate:
            kind = "sinh" if hw.device.iv != "linear" else "read noise"
            # the check reads the chip without changing it (its draws come from its own stream)
            for r_ in surrogate_errors(raw, inputs, settings.surrogate_reads, fresh("surrogate check", t)):
                part["surrogate"].append(dict(scenario=label, family=sc.family, t_fit=float(t), seed=seed,
                                              kind=kind, **r_))
        if float32:
            # what the float32 reads change, on the distortion inputs of every layer
            for r_ in precision_errors(raw, inputs, settings.distortion_rows):
                part["surrogate"].append(dict(scenario=label, family=sc.family, t_fit=float(t), seed=seed,
                                              kind="float32 reads", **r_))
        if sc.distortion:
            _distortion(part, sc, seed, t, label, copy.deepcopy(raw), inputs,
                        x_test[:settings.distortion_images], bn_layers, settings,
                        fresh("scatter points", t))
        fitted = {"none": raw}
        if comp:
            fitted["drift_comp"] = chip
        if adc_mit:
            m = copy.deepcopy(raw)
            t0 = time.perf_counter()
            calibrate_adc(m, xc)
            part["costs"].append(_cost_row(sc, seed, t, TuneReport(
                "adc_recalibration", time.perf_counter() - t0, 0, len(xc), len(xc), 0, 0)))
            fitted["adc_recal"] = m
        m = copy.deepcopy(raw)
        part["costs"].append(_cost_row(sc, seed, t, recalibrate_bn(m, xc[:choice["recal_samples"]])))
        fitted["bn_recal"] = m
        if _untuned(choice):
            # zero chosen tuning steps on the recalibration's own samples: the very same
            # model as bn_recal (evaluated once below, its hits recorded for both)
            m = fitted["bn_recal"]
            part["costs"].append(_cost_row(sc, seed, t, TuneReport(
                "bn_tuning", 0.0, 0, 0, choice["tune_samples"], part["costs"][-1]["trainable_parameters"], 0)))
        else:
            m = copy.deepcopy(raw)
            rep = recalibrate_bn(m, xc[:choice["tune_samples"]])
            rep_t = _tuned(m, xc, yc, choice, settings, fresh("tuning minibatches", t))
            part["costs"].append(_cost_row(sc, seed, t, rep_t or TuneReport(
                "bn_tuning", 0.0, 0, 0, choice["tune_samples"], rep.trainable_parameters, 0)))
        fitted["bn_recal_tune"] = m
        if retrained_chip is not None:
            r = fit_session(retrained_chip)
            if comp:
                r = copy.deepcopy(r)
                set_compensation(r, False)
            fitted["retrain"] = r
            r = copy.deepcopy(r)
            recalibrate_bn(r, xc[:choice["recal_samples"]])
            fitted["retrain_recal"] = r
            if _untuned(choice):
                fitted["retrain_recal_tune"] = fitted["retrain_recal"]
            else:
                r = copy.deepcopy(fitted["retrain"])
                recalibrate_bn(r, xc[:choice["tune_samples"]])
                _tuned(r, xc, yc, choice, settings, fresh("tuning minibatches", t))
                fitted["retrain_recal_tune"] = r
        # Each distinct fitted model is read once per session (mitigations may share one).
        # Every mitigation's test session draws the same stream, so one model read in its
        # test session gives the same hits whichever mitigation name it has.
        same_hits = {}
        for name in MITIGATIONS:
            if name in fitted:
                key = id(fitted[name])
                if key not in same_hits:
                    same_hits[key] = _hits(fitted[name], x_test, y_test, sc.eval_batch)
                row(name, PROTOCOLS[0], same_hits[key])
        later_hits = {}
        for name in MITIGATIONS:
            if name not in fitted:
                continue
            key = id(fitted[name])
            if not sc.session_dependent:
                # nothing changes between sessions (no drift, no read noise): the later
                # session reads exactly what the fit session read
                later_hits[key] = same_hits[key]
            elif key not in later_hits:
                m = fitted[name] if name == "drift_comp" else copy.deepcopy(fitted[name])
                later_hits[key] = _hits(test_session(m), x_test, y_test, sc.eval_batch)
            row(name, PROTOCOLS[1], later_hits[key])
    return part


def _distortion(part, sc, seed, t, label, m, inputs, x, bn_layers, settings, scatter_rng):
    local = layer_distortion(m, inputs)
    prop = propagated_distortion(m, inputs, x)
    for kind, out in (("ideal", local), ("hardware", prop)):
        for layer, (_y, _z, fit) in out.items():
            part["distortion"].append(dict(
                scenario=label, family=sc.family, t_fit=float(t), seed=seed, layer=layer, inputs=kind,
                followed_by_bn=layer in bn_layers, nmse_total=fit.nmse_total,
                nonabsorbable=fit.nonabsorbable, absorbable=fit.absorbable,
                nonabsorbable_static=fit.nonabsorbable_static,
                nonabsorbable_per_read=fit.nonabsorbable_per_read))
    if seed == 0:
        names = [n for n in local if n in bn_layers] or list(local)
        layer = names[len(names) // 2]
        y_ideal, y_hw, fit = local[layer]
        P, C = y_ideal.shape
        idx = scatter_rng.choice(P * C, min(settings.scatter_points, P * C), replace=False)
        rows, cols = np.divmod(idx, C)
        part["scatter"][label] = (layer, y_ideal[rows, cols], y_hw[rows, cols], fit.gain[cols],
                                  fit.offset[cols], cols)
