"""The study runner: every scenario x chip x mitigation, under a deployment protocol.

The scenarios come from the catalogue (:mod:`xbarref.tune.scenarios`). For every
scenario and chip (``seed``) one task (:func:`study_task`) runs the protocol:

1. **Programming.** The model is programmed on a new chip (:func:`xbarref.map_model`).
   With ``adc.range = "programmed"`` every column's ADC range is set right after
   programming (``t = 0``) from the currents of the chip's calibration set and then
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
(then the batchnorm mitigations on that chip): like with like.

Random draws: every generator is a :class:`numpy.random.SeedSequence` keyed by the base
seed, the scenario's *name*, the chip and the purpose (SHA-256 of the key; no stream
numbers), so a scenario gives the same numbers in a full study and alone (``--only``).
The validation split (carved from the training split) is keyed by the base seed only;
the calibration set of a chip is drawn from the rest of the training split.

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
import socket
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from xbarref.errors import XbarrefError
from xbarref.mapping import calibrate_adc, map_model, set_compensation, set_inference_time
from xbarref.nn.train import run_inference
from xbarref.sweep import make_tasks, resolve_scheduler, run
from xbarref.tune.batchnorm import BN_KINDS, recalibrate_bn, tune_bn
from xbarref.tune.distortion import layer_distortion, layer_inputs, propagated_distortion
from xbarref.tune.retrain import retrain_with_validation
from xbarref.tune.scenarios import (DRIFT_LABELS, DRIFT_TIMES, Scenario, bn_followed_layers,
                                    default_scenarios, scenario_from_dict, scenario_label)

__all__ = ["StudySettings", "StudyResults", "run_study", "study_task", "MITIGATIONS", "PROTOCOLS",
           "key_rng", "data_splits", "count_units", "task_cost", "later_session_time", "Scenario",
           "default_scenarios", "bn_followed_layers", "scenario_label", "DRIFT_TIMES", "DRIFT_LABELS",
           "pack_correct", "unpack_correct", "image_subset", "row_images"]

MITIGATIONS = ("none", "drift_comp", "adc_recal", "bn_recal", "bn_recal_tune", "retrain",
               "retrain_recal", "retrain_recal_tune")
PROTOCOLS = ("same session", "later session")
T0 = 20.0


@dataclass(frozen=True)
class StudySettings:
    """Sizes and hyper-parameters of a study run (defaults: the documented default run).

    Attributes
    ----------
    seeds : int
        Chips per scenario (each: programming, calibration set, sessions), >= 1.
    calibration_samples : int
        Labelled training samples (outside the validation split) per chip, for the ADC
        ranges, recalibration and tuning.
    validation_fraction : float
        Share of the training split carved off as the validation split (retraining
        budget), 0 < f < 1.
    tune_steps, tune_batch : int
    tune_lr : float
        Adam on batchnorm gamma and beta.
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
    bootstrap_resamples : int
        Resamples of every bootstrap confidence interval.
    """

    seeds: int = 10
    calibration_samples: int = 256
    validation_fraction: float = 0.2
    tune_steps: int = 20
    tune_batch: int = 32
    tune_lr: float = 0.01
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
    bootstrap_resamples: int = 2000

    def __post_init__(self):
        for name in ("seeds", "calibration_samples", "tune_steps", "tune_batch", "retrain_batch",
                     "retrain_max_steps", "retrain_eval_every", "retrain_patience", "reprogram_every",
                     "distortion_images", "distortion_rows", "scatter_points", "bootstrap_resamples"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise XbarrefError(f"{name}: must be a positive integer, got {v!r}")
        if self.calibration_samples < 2:
            raise XbarrefError("calibration_samples: must be >= 2")
        if self.test_samples is not None and (isinstance(self.test_samples, bool) or self.test_samples < 1):
            raise XbarrefError(f"test_samples: must be a positive integer, got {self.test_samples!r}")
        if not 0 < self.validation_fraction < 1:
            raise XbarrefError("validation_fraction: must be in (0, 1)")
        if not self.gap_factor >= 1:
            raise XbarrefError("gap_factor: must be >= 1")
        object.__setattr__(self, "retrain_lrs", tuple(float(v) for v in self.retrain_lrs))
        if not self.retrain_lrs or not all(v > 0 for v in self.retrain_lrs) or not self.tune_lr > 0:
            raise XbarrefError("tune_lr, retrain_lrs: learning rates must be > 0")


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
        ``test_samples``, ``validation_samples``, ``train_samples``.
    retraining : dict
        ``{scenario: dict(lr, steps, curves, weight_change, seconds, ...)}``.
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
    scenarios: list = field(default_factory=list)
    settings: StudySettings | None = None
    seconds: float = 0.0


# ----------------------------------------------------------------------------- draws
def key_rng(*key):
    """A Generator from a :class:`numpy.random.SeedSequence` keyed by ``key`` (any JSON-able
    parts, e.g. ``(base_seed, scenario name, chip, "fit session", t)``): SHA-256 of the
    canonical JSON, so keys never collide and do not depend on any position."""
    text = json.dumps([k.item() if isinstance(k, np.generic) else k for k in key], sort_keys=True)
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return np.random.default_rng(np.random.SeedSequence(
        [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 32, 4)]))


def data_splits(n_train, settings, base_seed):
    """``(train, validation)`` index arrays of the training split (keyed by the base seed)."""
    order = key_rng(base_seed, "validation split").permutation(n_train)
    n_val = max(1, int(round(settings.validation_fraction * n_train)))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


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
    return np.sort(key_rng(base_seed, "test subset", int(k)).choice(n_test, int(k), replace=False))


def row_images(row, n_test):
    """Boolean mask over the ``n_test`` test images of an accuracy row (all, or its subset)."""
    if "subset" in row:
        return unpack_correct(row["subset"], n_test)
    return np.ones(n_test, dtype=bool)


def _hits(model, x, y):
    return run_inference(model, x, y, batch_size=512).predictions == y


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


#: Cost of one retraining task in :func:`task_cost` units (measured on the digits CNN).
RETRAIN_COST = 40.0


def count_units(scenarios, settings):
    """Progress units of :func:`run_study`: the summed :func:`task_cost` of its tasks."""
    return sum(task_cost(sc) for sc in scenarios) * settings.seeds + RETRAIN_COST * sum(
        sc.retrain for sc in scenarios)


def _file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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
        Called as each task finishes with its :func:`task_cost`.
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
    train, val = data_splits(len(dataset.y_train), settings, base_seed)
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
    res.reference.update(software=float(soft.mean()), software_correct=pack_correct(soft),
                         ideal_hardware=float(_hits(map_model(model, "ideal", key_rng(base_seed, "ideal")),
                                                    x_test, y_test).mean()),
                         test_samples=n_test, validation_samples=len(val), train_samples=len(train))
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
        # Phase 1: every chip task of the scenarios without retraining, and the retraining
        # of each retraining scenario (once per scenario, as a task of its own, so that it
        # runs beside the others); phase 2: the chip tasks that need a retrained model.
        first = [dict(common, kind="chip", scenario=sc.to_dict(), seed=seed, retrained=None)
                 for sc in scenarios if not sc.retrain for seed in range(settings.seeds)]
        first += [dict(common, kind="retrain", scenario=sc.to_dict()) for sc in scenarios if sc.retrain]
        parts = _run_tasks(first, jobs, scheduler, tick, folder, resume)
        retrained = {}
        for sc in scenarios:
            if sc.retrain:
                retrained[sc.name], res.retraining[sc.name] = _save_retrained(
                    model, parts.pop((sc.name, "retrain")), sc, folder)
        second = [dict(common, kind="chip", scenario=sc.to_dict(), seed=seed, retrained=retrained[sc.name])
                  for sc in scenarios if sc.retrain for seed in range(settings.seeds)]
        if second:
            parts.update(_run_tasks(second, jobs, scheduler, tick, folder, resume))
        for sc in scenarios:
            for seed in range(settings.seeds):
                part = parts[sc.name, seed]
                res.accuracy += part["accuracy"]
                res.costs += part["costs"]
                res.distortion += part["distortion"]
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
    return dict(model=mp, model_sha256=_file_sha256(mp), data=dp, data_sha256=_file_sha256(dp))


def _retrain_task(model, dataset, sc, settings, base_seed):
    """Noise-aware retraining of one scenario (chips do not change it), its budget chosen
    on the validation split. Returns the task result (parameters, buffers, info)."""
    train, val = data_splits(len(dataset.y_train), settings, base_seed)
    hw = sc.hardware.replace(drift=sc.hardware.drift.__class__(0.0, sc.hardware.drift.drift_scale, "none"))
    rng = key_rng(base_seed, sc.name, "retraining")
    cal = dataset.x_train[train[key_rng(base_seed, sc.name, "retraining calibration").choice(
        len(train), min(64, len(train)), replace=False)]] if sc.adc_ranged else None
    out = retrain_with_validation(
        model, hw, dataset.x_train[train], dataset.y_train[train], dataset.x_train[val], dataset.y_train[val],
        lrs=settings.retrain_lrs, batch_size=settings.retrain_batch, max_steps=settings.retrain_max_steps,
        eval_every=settings.retrain_eval_every, patience=settings.retrain_patience,
        reprogram_every=settings.reprogram_every, rng=rng,
        val_seed=int(key_rng(base_seed, sc.name, "retraining validation chip").integers(2 ** 62)),
        t_inference=sc.times[0], calibration=cal)
    rep = out.report
    info = dict(lr=out.lr, steps=out.steps, weight_change=out.weight_change,
                curves={f"{lr:g}": [[int(s_), float(v)] for s_, v in c] for lr, c in out.curves.items()},
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
    return dict(path=path, sha256=_file_sha256(path)), json.loads(result["info"])


def _run_tasks(params, jobs, scheduler, tick, folder, resume):
    """Run task parameter dicts through the run engine (:func:`xbarref.sweep.run`):
    ``{(scenario, seed or "retrain"): part}``."""
    scheduler = resolve_scheduler(scheduler)

    def cost(p):
        return RETRAIN_COST if p["kind"] == "retrain" else task_cost(scenario_from_dict(p["scenario"]))

    def ident(p):
        return (p["scenario"]["name"], p["seed"] if p["kind"] == "chip" else "retrain")

    # Expensive tasks first (load balance; the progress units are these costs).
    params = sorted(params, key=lambda p: (-cost(p), p["scenario"]["name"], str(ident(p)[1])))
    tasks = make_tasks(params, int(params[0]["base_seed"]),
                       prefix=lambda p: f"{p['scenario']['name']}-{ident(p)[1]}")
    info = {t.id: ident(t.params) for t in tasks}
    costs = {t.id: cost(t.params) for t in tasks}

    def describe(tid):
        name, which = info[tid]
        return f"{name}, " + (f"chip {which}" if which != "retrain" else "retraining")

    def on_result(tid, outcome):
        tick(costs[tid], describe(tid))

    stored = run(tasks, study_task, folder, scheduler=scheduler, workers=int(jobs), progress=False,
                 resume=resume, on_result=on_result, desc="study",
                 label=lambda t: describe(t.id)).results
    return {info[t.id]: (stored[t.id] if info[t.id][1] == "retrain" else _part_from_result(stored[t.id]))
            for t in tasks}


def _settings_dict(settings):
    d = asdict(settings)
    d["retrain_lrs"] = list(d["retrain_lrs"])
    return d


@functools.lru_cache(maxsize=4)
def _load(path, sha256, kind):
    """A model or data set file, checked against the SHA-256 the study started with."""
    from xbarref.io.data import load_dataset
    from xbarref.io.model import load_model

    if not os.path.isfile(path):
        raise XbarrefError(f"{kind}: {path} does not exist on worker {socket.gethostname()} "
                           "(the workers need the same files at the same paths)")
    if _file_sha256(path) != sha256:
        raise XbarrefError(f"{kind}: {path} on worker {socket.gethostname()} differs from the file "
                           "the study was started with")
    return load_model(path) if kind == "model" else load_dataset(path)


_SCATTER_FIELDS = ("y_ideal", "y_hw", "gain", "offset", "column")


def study_task(params, seed):
    """Executor task function: one (scenario, chip) of a study.

    ``params`` carries everything the task needs: the model and data file paths with
    their SHA-256 (``files``), the scenario (``Scenario.to_dict``), the chip ``seed``,
    the settings, the base seed, the number of test samples and the retrained model's
    file (``retrained``, or None). The executor's ``seed`` argument is ignored: the
    draws are keyed by the scenario's name and the chip (:func:`key_rng`), so the
    results do not depend on where the task runs or on the other scenarios.

    Returns
    -------
    dict
        ``accuracy``, ``costs``, ``distortion``, ``scatter`` (JSON strings) and the
        scatter arrays ``scatter.<j>.<field>``.
    """
    del seed
    f = params["files"]
    model = _load(f["model"], f["model_sha256"], "model")
    dataset = _load(f["data"], f["data_sha256"], "data")
    settings = StudySettings(**{**params["settings"], "retrain_lrs": tuple(params["settings"]["retrain_lrs"])})
    sc = scenario_from_dict(params["scenario"])
    if params["kind"] == "retrain":
        return _retrain_task(model, dataset, sc, settings, int(params["base_seed"]))
    retrained = None
    if params.get("retrained"):
        r = params["retrained"]
        retrained = _load(r["path"], r["sha256"], "model")
    part = _task(model, dataset, sc, int(params["seed"]), settings, int(params["base_seed"]),
                 int(params["n_test"]), retrained)
    out = {"accuracy": json.dumps(part["accuracy"]), "costs": json.dumps(part["costs"]),
           "distortion": json.dumps(part["distortion"])}
    labels = []
    for j, (label, (layer, *arrays)) in enumerate(part["scatter"].items()):
        labels.append([label, layer])
        for name, arr in zip(_SCATTER_FIELDS, arrays):
            out[f"scatter.{j}.{name}"] = np.asarray(arr)
    out["scatter"] = json.dumps(labels)
    return out


def _part_from_result(result):
    part = {k: json.loads(result[k]) for k in ("accuracy", "costs", "distortion")}
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


def _task(model, dataset, sc, seed, settings, base_seed, n_test, retrained):
    from xbarref.tune.batchnorm import TuneReport

    part = {"accuracy": [], "costs": [], "distortion": [], "scatter": {}}
    x_test, y_test = dataset.x_test[:n_test], dataset.y_test[:n_test]
    subset = image_subset(n_test, sc.test_images, base_seed)
    if subset is not None:
        x_test, y_test = x_test[subset], y_test[subset]
        mask = np.zeros(n_test, dtype=bool)
        mask[subset] = True
        subset_text = pack_correct(mask)
    train, _val = data_splits(len(dataset.y_train), settings, base_seed)
    cal = train[key_rng(base_seed, sc.name, seed, "calibration set").choice(
        len(train), settings.calibration_samples, replace=False)]
    xc, yc = dataset.x_train[cal], dataset.y_train[cal]
    hw = sc.hardware
    comp = hw.drift.compensation != "none"
    adc_mit = sc.adc_ranged and (sc.has_drift or sc.read_noisy or hw.noise.read_scale > 0)

    def program(m):
        return map_model(m, hw, key_rng(base_seed, sc.name, seed, "chip"), t_inference=0.0,
                         calibration=xc if sc.adc_ranged else None)

    chip = program(model)
    inputs = None
    if sc.distortion:
        x_d = x_test[:settings.distortion_images]
        inputs = layer_inputs(model, x_d, max_rows=settings.distortion_rows,
                              rng=key_rng(base_seed, "distortion rows"))
    bn_layers = bn_followed_layers(model)
    for t in sc.times:
        t_test = later_session_time(t, settings)
        label = scenario_label(sc, t)

        def fit_session(m):
            return set_inference_time(m, t, rng=key_rng(base_seed, sc.name, seed, "fit session", t))

        def test_session(m):
            return set_inference_time(m, t_test, rng=key_rng(base_seed, sc.name, seed, "test session", t))

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
        if sc.distortion:
            _distortion(part, sc, seed, t, label, copy.deepcopy(raw), inputs,
                        x_test[:settings.distortion_images], bn_layers, settings, base_seed)
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
        part["costs"].append(_cost_row(sc, seed, t, recalibrate_bn(m, xc)))
        fitted["bn_recal"] = m
        m = copy.deepcopy(m)
        part["costs"].append(_cost_row(sc, seed, t, tune_bn(
            m, xc, yc, steps=settings.tune_steps, batch_size=settings.tune_batch, lr=settings.tune_lr,
            rng=key_rng(base_seed, sc.name, seed, "tuning minibatches", t))))
        fitted["bn_recal_tune"] = m
        if retrained is not None:
            r = fit_session(program(retrained))
            fitted["retrain"] = r
            r = copy.deepcopy(r)
            recalibrate_bn(r, xc)
            fitted["retrain_recal"] = r
            r = copy.deepcopy(r)
            tune_bn(r, xc, yc, steps=settings.tune_steps, batch_size=settings.tune_batch, lr=settings.tune_lr,
                    rng=key_rng(base_seed, sc.name, seed, "tuning minibatches", t))
            fitted["retrain_recal_tune"] = r
        for name in MITIGATIONS:
            if name in fitted:
                row(name, PROTOCOLS[0], _hits(fitted[name], x_test, y_test))
        same = {r["mitigation"]: r for r in part["accuracy"] if r["label"] == label}
        for name in MITIGATIONS:
            if name not in fitted:
                continue
            if not sc.session_dependent:
                # nothing changes between sessions (no drift, no read noise): the later
                # session reads exactly what the fit session read
                hits = unpack_correct(same[name]["correct"], len(y_test))
            else:
                m = fitted[name] if name == "drift_comp" else copy.deepcopy(fitted[name])
                hits = _hits(test_session(m), x_test, y_test)
            row(name, PROTOCOLS[1], hits)
    return part


def _distortion(part, sc, seed, t, label, m, inputs, x, bn_layers, settings, base_seed):
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
        rng = key_rng(base_seed, label, "scatter points")
        P, C = y_ideal.shape
        idx = rng.choice(P * C, min(settings.scatter_points, P * C), replace=False)
        rows, cols = np.divmod(idx, C)
        part["scatter"][label] = (layer, y_ideal[rows, cols], y_hw[rows, cols], fit.gain[cols],
                                  fit.offset[cols], cols)
