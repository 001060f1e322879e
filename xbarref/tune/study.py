"""The study: accuracy lost to each non-ideality, and how much each mitigation recovers.

:func:`default_scenarios` derives the scenarios from a base hardware configuration;
:func:`run_study` programs the model onto every scenario's hardware for every seed,
applies every mitigation and measures test accuracy, the mitigation costs and the
dot-product distortion (:mod:`xbarref.tune.distortion`). The results are plain rows
(dicts) that :mod:`xbarref.tune.report` turns into tables, figures and files.

Mitigations (each starts from the same programmed hardware sample):

``none``
    the mapped model as trained, raw hardware outputs;
``drift_comp``
    global drift compensation (per-layer output scale from a calibration read,
    Joshi et al. 2020), only in scenarios with drift;
``bn_recal``
    batchnorm running statistics recomputed through the hardware on the calibration set;
``bn_recal_tune``
    ``bn_recal`` followed by Adam steps on batchnorm gamma and beta (hardware in the loop);
``retrain``
    noise-aware retraining of all weights (:func:`retrain_noise_aware`), then
    programmed on the seed's hardware sample; only in the scenarios marked ``retrain``;
``retrain_recal``
    ``retrain`` followed by ``bn_recal`` on the deployed hardware sample (retraining
    averages its running statistics over many hardware samples, not the deployed one).

Only ``drift_comp`` uses the compensation scale; every other mitigation runs on raw
hardware outputs, so each one is measured on its own.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import os
import socket
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from xbarref.config import (ADCConfig, DACConfig, DeviceConfig, DriftConfig, FaultConfig,
                            HardwareConfig, MappingConfig, NoiseConfig, ParasiticsConfig,
                            TileConfig, as_hardware, preset)
from xbarref.errors import XbarrefError
from xbarref.mapping import map_model, set_inference_time
from xbarref.nn.train import run_inference
from xbarref.sweep import make_tasks, resolve_scheduler, run
from xbarref.tune.batchnorm import BN_KINDS, recalibrate_bn, tune_bn
from xbarref.tune.distortion import layer_distortion, layer_inputs
from xbarref.tune.drift import set_drift_compensation
from xbarref.tune.retrain import retrain_noise_aware

__all__ = ["Scenario", "StudySettings", "StudyResults", "default_scenarios", "run_study",
           "MITIGATIONS", "DRIFT_TIMES", "FAMILIES", "DEFAULT_FAMILIES", "bn_followed_layers",
           "count_units", "scenario_label", "study_task"]

MITIGATIONS = ("none", "drift_comp", "bn_recal", "bn_recal_tune", "retrain", "retrain_recal")

#: Drift times of the study, s: 1 s, 1 hour, 1 day, 1 month (30 days), 1 year (365 days).
DRIFT_TIMES = (1.0, 3600.0, 86400.0, 30 * 86400.0, 365 * 86400.0)
DRIFT_LABELS = {1.0: "1 s", 3600.0: "1 h", 86400.0: "1 day", 30 * 86400.0: "1 month",
                365 * 86400.0: "1 year"}


@dataclass(frozen=True)
class Scenario:
    """One hardware setting of the study.

    Attributes
    ----------
    name : str
        Unique, e.g. ``"wires 3.5 ohm, tile 64"``.
    family : str
        One of :data:`FAMILIES`.
    hardware : HardwareConfig
    times : tuple of float
        Times of inference, s, since programming (several for the drift family: the
        same programmed devices are read at each).
    retrain : bool
        Also run the noise-aware retraining baseline.
    distortion : bool
        Also measure the dot-product distortion.
    """

    name: str
    family: str
    hardware: HardwareConfig
    times: tuple = (0.0,)
    retrain: bool = False
    distortion: bool = True

    @property
    def deterministic(self):
        """True when the hardware has no random element (programming is seed-independent)."""
        hw = self.hardware
        return hw.device.model == "ideal" and hw.faults.stuck_min_rate == hw.faults.stuck_max_rate == 0.0

    @property
    def has_drift(self):
        return self.hardware.device.model != "ideal" and self.hardware.drift.drift_scale > 0 and any(
            t > 0 for t in self.times)


@dataclass(frozen=True)
class StudySettings:
    """Sizes and hyper-parameters of a study run (defaults: the documented default run).

    Attributes
    ----------
    seeds : int
        Hardware samples (programming, read noise, calibration set) per scenario, >= 1.
    calibration_samples : int
        Labelled training samples for recalibration and tuning.
    tune_steps, tune_batch : int
    tune_lr : float
        Adam on batchnorm gamma and beta.
    retrain_steps, retrain_batch, reprogram_every : int
    retrain_lr : float
        Adam on all parameters, over the whole training split.
    test_samples : int or None
        Evaluate on the first ``test_samples`` test samples (None: all).
    distortion_images, distortion_rows : int
        Test images whose layer inputs feed the distortion analysis; rows kept per layer.
    scatter_points : int
        Points per scenario stored for the distortion scatter plot.
    """

    seeds: int = 5
    calibration_samples: int = 256
    tune_steps: int = 20
    tune_batch: int = 32
    tune_lr: float = 0.01
    retrain_steps: int = 60
    retrain_batch: int = 32
    retrain_lr: float = 1e-4
    reprogram_every: int = 10
    test_samples: int | None = None
    distortion_images: int = 32
    distortion_rows: int = 1024
    scatter_points: int = 1500

    def __post_init__(self):
        for name in ("seeds", "calibration_samples", "tune_steps", "tune_batch", "retrain_steps",
                     "retrain_batch", "reprogram_every", "distortion_images", "distortion_rows",
                     "scatter_points"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise XbarrefError(f"{name}: must be a positive integer, got {v!r}")
        if self.calibration_samples < 2:
            raise XbarrefError("calibration_samples: must be >= 2")
        if self.test_samples is not None and (isinstance(self.test_samples, bool) or self.test_samples < 1):
            raise XbarrefError(f"test_samples: must be a positive integer, got {self.test_samples!r}")
        for name in ("tune_lr", "retrain_lr"):
            if not getattr(self, name) > 0:
                raise XbarrefError(f"{name}: must be > 0")


@dataclass
class StudyResults:
    """Rows measured by :func:`run_study`.

    Attributes
    ----------
    accuracy : list of dict
        ``scenario, family, t_inference, mitigation, seed, accuracy``.
    costs : list of dict
        ``scenario, t_inference, seed`` and the :class:`TuneReport` fields.
    distortion : list of dict
        ``scenario, family, t_inference, seed, layer, followed_by_bn, nmse_total,
        nmse_residual, absorbable`` (``scenario`` names the drift time for the drift family).
    scatter : dict
        ``{scenario: (layer, y_ideal, y_hw, gain, offset, column)}`` sample points (seed 0).
    reference : dict
        ``software`` (digital accuracy on the same test samples), ``ideal_hardware`` and
        ``test_samples``.
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
    scenarios: list = field(default_factory=list)
    settings: StudySettings | None = None
    seconds: float = 0.0


def _noise_model(base):
    return base.device.model if base.device.model != "ideal" else "pcm"


#: Scenario families of the default run, in report order.
DEFAULT_FAMILIES = ("quantization", "wires", "programming", "read_noise", "drift", "faults", "combined")
#: Every family :func:`default_scenarios` can build (``combined_read_noise`` is left out of
#: the default run for its cost: about 20 CPU-seconds per seed on the digits CNN).
FAMILIES = DEFAULT_FAMILIES + ("combined_read_noise",)


def default_scenarios(base=None, quick=False, families=None):
    """The study's scenarios, derived from a base hardware configuration.

    From ``base`` (default preset when None) the scenarios keep the conductance window,
    weight mapping scheme and scaling, DAC voltage and signed-input mode, ADC range mode,
    driver and sink resistances, the device model (``pcm`` if ``base`` has ``ideal``
    devices), the tile size (except in the tile sweep) and the drift compensation mode.
    Each family switches on only its own non-ideality:

    - ``quantization``: 4-bit weights (or ``base.mapping.weight_bits`` if set) with the
      base DAC / ADC bits (8 / 8 by default), and with 6-bit DAC / ADC;
    - ``wires``: wire resistance ``r`` and ``10 r`` per cell segment
      (``r = base.parasitics.r_wire_row``, 0.35 ohm if that is 0) on tiles of 32, 64
      and 128;
    - ``programming``: programming noise of the device model (scale 1);
    - ``read_noise``: read noise scaled 1, 3, 10 (at 20 s, ``t_inference = 0``);
    - ``drift``: drift (no other noise) read at 1 s, 1 h, 1 day, 1 month, 1 year;
    - ``faults``: 1 % and 5 % stuck devices, half at g_min and half at g_max;
    - ``combined``: 4-bit weights with the base DAC / ADC, programming noise, drift at
      1 day, 1 % faults and wire resistance ``r`` (static devices: no read noise); it is
      the one scenario that also runs the retraining baseline;
    - ``combined_read_noise`` (not in the default run): the same with read noise (scale
      ``base.noise.read_scale``) and ideal wires. Read noise together with wire
      resistance needs a circuit solve per read (about 170 s per pass over the 360 test
      digits, measured on the shared 2-core machine), too slow for a study.

    ``quick=True`` keeps one level per family (for tests and smoke runs); ``families``
    selects families (default :data:`DEFAULT_FAMILIES`).
    """
    families = DEFAULT_FAMILIES if families is None else tuple(families)
    for f in families:
        if f not in FAMILIES:
            raise XbarrefError(f"families: unknown family {f!r}; expected some of {', '.join(FAMILIES)}")
    base = as_hardware(base)
    model = _noise_model(base)
    ideal = preset("ideal")
    off = NoiseConfig(0.0, 0.0, 0.0)
    comp = base.drift.compensation if base.drift.compensation != "none" else "global"
    common = ideal.replace(
        conductance=base.conductance,
        mapping=MappingConfig(scheme=base.mapping.scheme, scale=base.mapping.scale, weight_bits=0),
        dac=DACConfig(bits=0, v_read=base.dac.v_read, signed=base.dac.signed),
        adc=ADCConfig(bits=0, range=base.adc.range, i_max=base.adc.i_max),
        tiles=base.tiles,
    )
    wbits = base.mapping.weight_bits or 4
    dbits = base.dac.bits or 8
    abits = base.adc.bits or 8
    r = base.parasitics.r_wire_row or 0.35
    rp = base.parasitics

    def wires(rw, tile):
        return common.replace(
            name=f"wires {rw:g} ohm tile {tile}", tiles=TileConfig(tile, tile),
            parasitics=ParasiticsConfig(r_source=rp.r_source, r_sink=rp.r_sink, r_wire_row=rw, r_wire_col=rw))

    def quant(bits_dac, bits_adc):
        return common.replace(
            mapping=MappingConfig(scheme=base.mapping.scheme, scale=base.mapping.scale, weight_bits=wbits),
            dac=DACConfig(bits=bits_dac, v_read=base.dac.v_read, signed=base.dac.signed),
            adc=ADCConfig(bits=bits_adc, range=base.adc.range, i_max=base.adc.i_max))

    def device(noise, drift_scale=0.0, compensation="none"):
        return common.replace(device=DeviceConfig(model=model), noise=noise,
                              drift=DriftConfig(0.0, drift_scale, compensation))

    sc = [Scenario(f"weights {wbits} b, DAC/ADC {dbits}/{abits} b", "quantization", quant(dbits, abits))]
    if not quick:
        sc.append(Scenario(f"weights {wbits} b, DAC/ADC 6/6 b", "quantization", quant(6, 6)))
    for rw in ((r,) if quick else (r, 10 * r)):
        for tile in ((64,) if quick else (32, 64, 128)):
            sc.append(Scenario(f"wires {rw:g} ohm, tile {tile}", "wires", wires(rw, tile)))
    sc.append(Scenario("programming noise", "programming",
                       device(NoiseConfig(base.noise.programming_scale or 1.0, 0.0, 0.0))))
    for s in ((3.0,) if quick else (1.0, 3.0, 10.0)):
        sc.append(Scenario(f"read noise x{s:g}", "read_noise", device(NoiseConfig(0.0, s, 0.0))))
    sc.append(Scenario("drift", "drift", device(off, base.drift.drift_scale or 1.0, comp),
                       times=(DRIFT_TIMES[2], DRIFT_TIMES[4]) if quick else DRIFT_TIMES))
    for rate in ((0.05,) if quick else (0.01, 0.05)):
        sc.append(Scenario(f"faults {100 * rate:g} %", "faults", common.replace(
            device=DeviceConfig(model="ideal"), faults=FaultConfig(rate / 2, rate / 2))))
    prog = base.noise.programming_scale or 1.0
    static = quant(dbits, abits).replace(
        parasitics=ParasiticsConfig(r_source=rp.r_source, r_sink=rp.r_sink, r_wire_row=r, r_wire_col=r),
        device=DeviceConfig(model=model), noise=NoiseConfig(prog, 0.0, 0.0),
        drift=DriftConfig(0.0, base.drift.drift_scale or 1.0, comp), faults=FaultConfig(0.005, 0.005))
    sc.append(Scenario(f"combined: wires {r:g} ohm, no read noise", "combined", static,
                       times=(DRIFT_TIMES[2],), retrain=True))
    sc.append(Scenario("combined: read noise, ideal wires", "combined_read_noise", static.replace(
        parasitics=ParasiticsConfig(), noise=NoiseConfig(prog, base.noise.read_scale or 1.0, 0.0)),
        times=(DRIFT_TIMES[2],)))
    return [replace_name(s) for s in sc if s.family in families]


def replace_name(s):
    """The scenario with its hardware named after it."""
    return Scenario(s.name, s.family, s.hardware.replace(name=s.name), s.times, s.retrain, s.distortion)


def bn_followed_layers(model):
    """Names of the Conv2d / Linear nodes whose output goes only into a batchnorm layer."""
    consumers = {}
    for node in model.nodes:
        for name in node.inputs:
            consumers.setdefault(name, []).append(node.layer.kind)
    out = set()
    for node in model.nodes:
        if node.layer.kind in ("conv2d", "linear"):
            kinds = consumers.get(node.name, [])
            if kinds and all(k in BN_KINDS for k in kinds):
                out.add(node.name)
    return out


def _rng(*key):
    return np.random.default_rng([int(k) for k in key])


def _accuracy(model, x, y):
    return run_inference(model, x, y, batch_size=128).accuracy


def run_study(model, dataset, scenarios, settings=None, *, progress=None, base_seed=0, jobs=1,
              scheduler=None, source=None, work_dir=None, parts_dir=None, resume=False):
    """Run every scenario x seed x mitigation.

    Parameters
    ----------
    model : xbarref.nn.Model
        Trained digital model with batchnorm layers; left unchanged.
    dataset : xbarref.io.data.Dataset
        Its training split gives the calibration set (and the retraining data), its test
        split the accuracy.
    scenarios : list of Scenario
    settings : StudySettings
    progress : callable ``(n, description) -> None``, optional
        Called after each (scenario, seed) task.
    base_seed : int
        Seed ``s`` of scenario ``k`` draws its hardware from
        ``default_rng([base_seed, s, k])``; the calibration set of seed ``s`` from
        ``default_rng([base_seed, s, 7])``. Results do not depend on ``jobs``.
    jobs : int
        Local worker processes of the run engine :func:`xbarref.sweep.run` (spawned, one
        BLAS thread each; each loads the model and data set once, from ``source``);
        1 runs everything here. Ignored with a scheduler.
    scheduler : str or distributed.Client, optional
        ``tcp://HOST:PORT`` of a Dask scheduler (default: ``$XBARREF_SCHEDULER``, else
        local processes); the tasks run through :func:`xbarref.sweep.run`.
    source : dict, optional
        How a worker process rebuilds the inputs: ``model``, ``data`` and ``config``
        (file paths, None for the bundled model / data and the default preset),
        ``quick`` (bool) and ``families`` (list or None), as given to
        :func:`default_scenarios`; ``scenarios`` must be what these give. Needed when
        ``jobs > 1`` or a scheduler is used (the workers need the same files at the same
        paths; their SHA-256 is checked); without it everything runs in this process.
    work_dir : str, optional
        Where the temporary folder of the task results is made (default: the system's
        temporary folder); it is removed when the study ends, even on an error.
    parts_dir : str, optional
        A folder for the task results instead of a temporary one: kept (so that
        ``resume`` can finish an interrupted or failed study); the caller removes it once
        the results are written.
    resume : bool
        Reuse the complete task results found in ``parts_dir``; compute only the rest.

    Returns
    -------
    StudyResults
    """
    settings = settings or StudySettings()
    if not model.layers_of_kind(*BN_KINDS):
        raise XbarrefError("model: has no batchnorm layer; the study tunes batchnorm")
    if len(dataset.y_train) < settings.calibration_samples:
        raise XbarrefError(f"DATA: the training split has {len(dataset.y_train)} samples, the study "
                           f"needs calibration_samples = {settings.calibration_samples}")
    if isinstance(jobs, bool) or not isinstance(jobs, (int, np.integer)) or jobs < 1:
        raise XbarrefError(f"jobs: must be a positive integer, got {jobs!r}")
    n_test = len(dataset.y_test) if settings.test_samples is None else min(settings.test_samples,
                                                                         len(dataset.y_test))
    tick = progress or (lambda n, desc: None)
    start = time.perf_counter()
    res = StudyResults(scenarios=list(scenarios), settings=settings)
    ctx = _Context(model, dataset, list(scenarios), settings, base_seed, n_test)
    res.reference["software"] = _accuracy(model, ctx.x_test, ctx.y_test)
    res.reference["ideal_hardware"] = _accuracy(map_model(model, "ideal", _rng(base_seed)),
                                                ctx.x_test, ctx.y_test)
    res.reference["test_samples"] = n_test
    # Expensive tasks first (read noise draws a circuit per read), for load balance.
    tasks = sorted(((k, seed) for k in range(len(scenarios)) for seed in range(settings.seeds)),
                   key=lambda ks: (-_cost_guess(scenarios[ks[0]]), ks))
    parts = _run_parts(ctx, tasks, source, jobs, scheduler, tick, work_dir, parts_dir, resume)
    for key in sorted(parts):
        part = parts[key]
        res.accuracy += part.accuracy
        res.costs += part.costs
        res.distortion += part.distortion
        res.scatter.update(part.scatter)
    res.seconds = time.perf_counter() - start
    return res


class _Context:
    """Everything a (scenario, seed) task needs."""

    def __init__(self, model, dataset, scenarios, settings, base_seed, n_test):
        self.model, self.dataset, self.scenarios = model, dataset, scenarios
        self.settings, self.base_seed = settings, base_seed
        self.x_test, self.y_test = dataset.x_test[:n_test], dataset.y_test[:n_test]
        self.bn_layers = bn_followed_layers(model)
        self.inputs = layer_inputs(model, self.x_test[:settings.distortion_images],
                                   max_rows=settings.distortion_rows, rng=_rng(base_seed, 99))
        self.cache = {}


#: Contexts of the studies running in this process, by their JSON description: the
#: tasks that run here use them instead of loading the files again.
_CONTEXTS = {}


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _dumps(value):
    return json.dumps(value, default=_json_default)


def _file_sha256(path):
    """SHA-256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _source_paths(source):
    """The model and data files of ``source`` (bundled ones when None)."""
    from xbarref.commands.infer import bundled_model_path
    from xbarref.io.data import bundled_dataset_path

    return (source.get("model") or bundled_model_path(), source.get("data") or bundled_dataset_path())


@functools.lru_cache(maxsize=2)
def _load_context(text):
    """Rebuild a study context from its JSON description (on a worker process)."""
    from xbarref.config import load_hardware
    from xbarref.io.data import load_dataset
    from xbarref.io.model import load_model

    d = json.loads(text)
    model_path, data_path = _source_paths(d)
    for name, path in (("model", model_path), ("data", data_path)):
        if not os.path.isfile(path):
            raise XbarrefError(f"{name}: {path} does not exist on worker {socket.gethostname()} "
                               "(the workers need the same files at the same paths)")
        if _file_sha256(path) != d[f"{name}_sha256"]:
            raise XbarrefError(f"{name}: {path} on worker {socket.gethostname()} differs from the "
                               "file the study was started with")
    base = preset("default") if d.get("config") is None else load_hardware(d["config"])
    scenarios = default_scenarios(base, quick=d["quick"], families=d["families"])
    settings = StudySettings(**d["settings"])
    return _Context(load_model(model_path), load_dataset(data_path), scenarios, settings,
                    d["base_seed"], d["n_test"])


def study_task(params, seed):
    """Executor task function: one (scenario ``k``, hardware seed ``seed``) of a study.

    ``params`` holds ``context`` (the JSON description of the study, see
    :func:`run_study`), ``k`` and ``seed``. The executor's ``seed`` argument is ignored:
    the draws come from ``default_rng([base_seed, seed, k, ...])`` as in a local run, so
    the results do not depend on where the task runs.

    Returns
    -------
    dict
        ``accuracy``, ``costs``, ``distortion``, ``scatter`` (JSON strings of the rows
        and of the scatter labels) and the scatter arrays ``scatter.<j>.<field>``.
    """
    del seed
    ctx = _CONTEXTS.get(params["context"]) or _load_context(params["context"])
    part = _task(ctx, int(params["k"]), int(params["seed"]))
    out = {"accuracy": _dumps(part.accuracy), "costs": _dumps(part.costs),
           "distortion": _dumps(part.distortion)}
    labels = []
    for j, (label, (layer, *arrays)) in enumerate(part.scatter.items()):
        labels.append([label, layer])
        for name, arr in zip(_SCATTER_FIELDS, arrays):
            out[f"scatter.{j}.{name}"] = np.asarray(arr)
    out["scatter"] = _dumps(labels)
    return out


_SCATTER_FIELDS = ("y_ideal", "y_hw", "gain", "offset", "column")


def _part_from_result(result):
    part = StudyResults()
    part.accuracy = json.loads(result["accuracy"])
    part.costs = json.loads(result["costs"])
    part.distortion = json.loads(result["distortion"])
    for j, (label, layer) in enumerate(json.loads(result["scatter"])):
        part.scatter[label] = (layer, *(result[f"scatter.{j}.{name}"] for name in _SCATTER_FIELDS))
    return part


def _run_parts(ctx, order, source, jobs, scheduler, tick, work_dir, parts_dir=None, resume=False):
    """Run the (k, seed) tasks through the run engine; returns ``{(k, seed): part}``."""
    scheduler = resolve_scheduler(scheduler)
    description = dict(settings=asdict(ctx.settings), base_seed=int(ctx.base_seed),
                       n_test=int(len(ctx.y_test)))
    if source is not None:
        model_path, data_path = _source_paths(source)
        description.update(model=os.path.abspath(model_path), data=os.path.abspath(data_path),
                           config=None if source.get("config") is None
                           else os.path.abspath(source["config"]),
                           quick=bool(source.get("quick", False)),
                           families=None if source.get("families") is None
                           else list(source["families"]),
                           model_sha256=_file_sha256(model_path), data_sha256=_file_sha256(data_path))
    elif scheduler is not None or jobs > 1:
        raise XbarrefError("source: run_study needs the model, data and config paths (source=...) "
                           "to run on worker processes or a Dask scheduler; give source or use jobs=1")
    text = json.dumps(description, sort_keys=True)
    params, keys = [], []
    for k, seed in order:
        sc = ctx.scenarios[k]
        params.append({"context": text, "k": k, "seed": seed})
        keys.append({"scenario": sc.name, "k": k, "seed": seed, "hardware": sc.hardware.to_dict(),
                     "times": [float(t) for t in sc.times], "retrain": sc.retrain,
                     "distortion": sc.distortion, "settings": description["settings"],
                     "base_seed": description["base_seed"], "n_test": description["n_test"],
                     "model_sha256": description.get("model_sha256"),
                     "data_sha256": description.get("data_sha256")})
    tasks = make_tasks(params, int(ctx.base_seed), keys=keys,
                       prefix=lambda key: f"{key['scenario']}-s{key['seed']}")
    names = {t.id: f"{ctx.scenarios[t.params['k']].name}, seed {t.params['seed']}" for t in tasks}
    _CONTEXTS[text] = ctx
    try:
        done = run(tasks, study_task, parts_dir, scheduler=scheduler, workers=int(jobs),
                   progress=False, resume=resume, temp_parent=work_dir, desc="study",
                   label=lambda t: names[t.id],
                   on_result=lambda tid, outcome: tick(1, names[tid]))
    finally:
        _CONTEXTS.pop(text, None)
    return {(t.params["k"], t.params["seed"]): _part_from_result(done.results[t.id])
            for t in tasks}


def _cost_guess(sc):
    hw = sc.hardware
    read = hw.device.model != "ideal" and hw.noise.read_scale > 0
    return (20.0 if read else 1.0) * len(sc.times) + (5.0 if sc.retrain else 0.0)


def _task(ctx, k, seed):
    sc, settings, base_seed = ctx.scenarios[k], ctx.settings, ctx.base_seed
    res = StudyResults()
    cal = _rng(base_seed, seed, 7).choice(len(ctx.dataset.y_train), settings.calibration_samples,
                                          replace=False)
    xc, yc = ctx.dataset.x_train[cal], ctx.dataset.y_train[cal]
    if sc.deterministic and k in ctx.cache:
        hw_model = copy.deepcopy(ctx.cache[k])
    else:
        hw_model = map_model(ctx.model, sc.hardware, _rng(base_seed, seed, k), t_inference=sc.times[0])
        if sc.deterministic:
            ctx.cache[k] = copy.deepcopy(hw_model)
    for i, t in enumerate(sc.times):
        if i > 0:
            set_inference_time(hw_model, t)
        if sc.distortion:
            _distortion(res, sc, seed, t, hw_model, ctx.inputs, ctx.bn_layers, settings)
        _mitigate(res, sc, seed, t, hw_model, xc, yc, ctx.x_test, ctx.y_test, settings,
                  _rng(base_seed, seed, k, i, 3))
    if sc.retrain:
        _retrain(res, sc, seed, k, ctx.model, ctx.dataset, xc, ctx.x_test, ctx.y_test, settings,
                 base_seed)
    return res


def count_units(scenarios, settings):
    """Number of progress units :func:`run_study` reports (one per scenario and seed)."""
    return len(scenarios) * settings.seeds


def _row(sc, seed, t, mitigation, accuracy):
    return dict(scenario=sc.name, family=sc.family, t_inference=float(t), mitigation=mitigation,
                seed=seed, accuracy=float(accuracy))


def _cost_row(sc, seed, t, report):
    return dict(scenario=sc.name, family=sc.family, t_inference=float(t), seed=seed,
                method=report.method, seconds=report.seconds, steps=report.steps,
                samples_seen=report.samples_seen, calibration_samples=report.calibration_samples,
                trainable_parameters=report.trainable_parameters,
                optimizer_bytes=report.optimizer_bytes, loss_first=report.loss_first,
                loss_last=report.loss_last)


def _mitigate(res, sc, seed, t, hw_model, xc, yc, x_test, y_test, settings, rng):
    comp = sc.hardware.drift.compensation != "none"
    if comp:
        res.accuracy.append(_row(sc, seed, t, "drift_comp", _accuracy(hw_model, x_test, y_test)))
    m = copy.deepcopy(hw_model)
    if comp:
        set_drift_compensation(m, False)
    res.accuracy.append(_row(sc, seed, t, "none", _accuracy(m, x_test, y_test)))
    rep = recalibrate_bn(m, xc)
    res.costs.append(_cost_row(sc, seed, t, rep))
    res.accuracy.append(_row(sc, seed, t, "bn_recal", _accuracy(m, x_test, y_test)))
    rep = tune_bn(m, xc, yc, steps=settings.tune_steps, batch_size=settings.tune_batch,
                  lr=settings.tune_lr, rng=rng)
    res.costs.append(_cost_row(sc, seed, t, rep))
    res.accuracy.append(_row(sc, seed, t, "bn_recal_tune", _accuracy(m, x_test, y_test)))


def _retrain(res, sc, seed, k, model, dataset, xc, x_test, y_test, settings, base_seed):
    hw = sc.hardware.replace(drift=DriftConfig(0.0, sc.hardware.drift.drift_scale, "none"))
    t = sc.times[0]
    retrained, rep = retrain_noise_aware(
        model, hw, dataset.x_train, dataset.y_train, steps=settings.retrain_steps,
        batch_size=settings.retrain_batch, lr=settings.retrain_lr,
        reprogram_every=settings.reprogram_every, rng=_rng(base_seed, seed, k, 5), t_inference=t)
    res.costs.append(_cost_row(sc, seed, t, rep))
    deployed = map_model(retrained, hw, _rng(base_seed, seed, k), t_inference=t)
    res.accuracy.append(_row(sc, seed, t, "retrain", _accuracy(deployed, x_test, y_test)))
    recalibrate_bn(deployed, xc)
    res.accuracy.append(_row(sc, seed, t, "retrain_recal", _accuracy(deployed, x_test, y_test)))


def scenario_label(sc, t):
    """``sc.name``, with the drift time for scenarios read at several times."""
    return sc.name if len(sc.times) == 1 else f"{sc.name} {DRIFT_LABELS.get(t, f'{t:g} s')}"


def _distortion(res, sc, seed, t, hw_model, inputs, bn_layers, settings):
    m = copy.deepcopy(hw_model)
    if sc.hardware.drift.compensation != "none":
        set_drift_compensation(m, False)
    out = layer_distortion(m, inputs)
    for layer, (y_ideal, y_hw, fit) in out.items():
        res.distortion.append(dict(scenario=scenario_label(sc, t), family=sc.family, t_inference=float(t),
                                   seed=seed, layer=layer,
                                   followed_by_bn=layer in bn_layers, nmse_total=fit.nmse_total,
                                   nmse_residual=fit.nmse_residual, absorbable=fit.absorbable))
    if seed == 0:
        names = [n for n in out if n in bn_layers] or list(out)
        layer = names[len(names) // 2]
        y_ideal, y_hw, fit = out[layer]
        rng = _rng(7, int(t))
        P, C = y_ideal.shape
        idx = rng.choice(P * C, min(settings.scatter_points, P * C), replace=False)
        rows, cols = np.divmod(idx, C)
        res.scatter[scenario_label(sc, t)] = (layer, y_ideal[rows, cols], y_hw[rows, cols], fit.gain[cols],
                                fit.offset[cols], cols)
