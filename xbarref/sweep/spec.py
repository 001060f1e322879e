"""Sweep specification files (TOML) and the per-task inference function.

A sweep runs every model on every hardware setting for every noise seed; one task is
one (model, setting, seed): the model is programmed onto the setting's simulated
hardware with that seed's random draws and evaluated on the data set. Example::

    # xbarref sweep specification
    [sweep]
    name = "wires-and-drift"   # free text
    seed = 0                   # master seed (integer >= 0)
    seeds = 5                  # noise seeds per (model, setting): 5 -> 0..4, or a list [0, 3, 7]
    hardware = "default"       # base hardware: preset name or TOML file (relative to this file)
    split = "test"             # "test" or "train"
    samples = 0                # first N samples of the split per task (0 = all)
    batch_size = 256           # samples per forward pass

    [grid]                     # every combination of these hardware keys (dotted: section.key)
    "parasitics.r_wire_row" = [0.35, 2.0]
    "parasitics.r_wire_col" = [0.35, 2.0]
    "drift.t_inference" = [0.0, 86400.0]

    [[settings]]               # and/or an explicit list of settings
    name = "short-wires"       # optional; default made from the keys
    "parasitics.r_wire_row" = 0.0
    "parasitics.r_wire_col" = 0.0

    [[models]]                 # default: the bundled digits CNN on the bundled digits
    name = "digits_cnn"
    model = "model.h5"         # optional, default the bundled digits CNN
    data = "data.h5"           # optional, default the bundled UCI digits

Settings are the grid's combinations followed by the listed ones; with neither, the
base hardware alone. A grid setting is named after its keys that take more than one
value (``parasitics.r_wire_row=2,drift.t_inference=86400``). Hardware keys are those of a hardware TOML file
(``docs/hardware.md``), written ``"section.key"`` or as nested tables. Unknown keys,
wrong types and out-of-range values raise :class:`~xbarref.errors.XbarrefError` naming
the key, before any work starts.

Each task's identifying key is ``{model, setting, seed, hardware (the full resolved
configuration), split, samples}`` (not the file paths), so its seed
(:func:`xbarref.sweep.task_seed`) survives moving the files.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import os

from xbarref.checks import env_limit
from xbarref.config import PRESETS, HardwareConfig, as_hardware, parse_toml, read_toml
from xbarref.errors import SizeLimitError, XbarrefError
from xbarref.io.data import bundled_dataset_path
from xbarref.io.inputs import check_file, file_sha256, load_inputs
from xbarref.io.model import bundled_model_path
from xbarref.sweep.tasks import make_tasks, named_streams

__all__ = ["SweepSpec", "Setting", "ModelEntry", "load_spec", "loads_spec", "spec_tasks",
           "infer_task", "check_models"]

_SWEEP_KEYS = ("name", "seed", "seeds", "hardware", "split", "samples", "batch_size")
_TOP_KEYS = ("sweep", "grid", "settings", "models")
_MODEL_KEYS = ("name", "model", "data")


@dataclasses.dataclass(frozen=True)
class Setting:
    """One hardware setting: a name, the overrides of the base and the resolved config dict."""

    name: str
    overrides: dict
    hardware: dict


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """A model file and a data file (absolute paths; None = bundled)."""

    name: str
    model: str | None
    data: str | None


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """A parsed sweep specification (see the module docstring)."""

    name: str
    seed: int
    seeds: tuple
    settings: tuple
    models: tuple
    split: str = "test"
    samples: int = 0
    batch_size: int = 256
    source: str = "<string>"

    @property
    def n_tasks(self):
        return len(self.models) * len(self.settings) * len(self.seeds)


def _int(key, value, lo):
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise XbarrefError(f"{key}: must be an integer >= {lo}, got {value!r}")
    if value >= 2**63:  # seeds are stored as int64
        raise XbarrefError(f"{key}: must be an integer in [{lo}, 2**63), got {value!r}")
    return value


def _flatten(table, prefix=""):
    out = {}
    for k, v in table.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _resolve(base, overrides, where):
    """Apply dotted ``overrides`` to the base config dict; errors name ``where.key``."""
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for key, value in overrides.items():
        parts = key.split(".")
        if key == "name":
            data["name"] = value
            continue
        if len(parts) != 2 or parts[0] not in data or not isinstance(data[parts[0]], dict):
            raise XbarrefError(f"{where}.{key}: unknown hardware key (expected section.key, "
                               f"sections: {', '.join(k for k in base if k != 'name')})")
        if parts[1] not in data[parts[0]]:
            raise XbarrefError(f"{where}.{key}: unknown hardware key (known in [{parts[0]}]: "
                               f"{', '.join(sorted(data[parts[0]]))})")
        data[parts[0]][parts[1]] = value
    try:
        return HardwareConfig.from_dict(data, source=where).to_dict()
    except XbarrefError as exc:
        raise XbarrefError(f"{where}: {exc}") from None


def _value_text(v):
    return f"{v:g}" if isinstance(v, float) else str(v)


#: Default of :func:`max_tasks`.
DEFAULT_MAX_TASKS = 100_000
#: Largest spec file read (bytes).
MAX_SPEC_BYTES = 1 << 20


def max_tasks():
    """The most tasks (and so settings or seeds) a sweep spec may declare: 100 000
    unless the environment variable ``XBARREF_MAX_TASKS`` says otherwise. Checked from
    the declared counts before anything is expanded."""
    return env_limit("XBARREF_MAX_TASKS", DEFAULT_MAX_TASKS)


def _check_count(what, count, source):
    limit = max_tasks()
    if count > limit:
        raise SizeLimitError(f"{source}: {what}: declares {count:,} tasks, above the limit of "
                             f"{limit:,} (XBARREF_MAX_TASKS)")


def _settings(data, base, source):
    settings = []
    grid = data.get("grid")
    if grid is not None:
        if not isinstance(grid, dict) or not grid:
            raise XbarrefError(f"{source}: grid: must be a non-empty [grid] table")
        flat = _flatten(grid)
        for key, values in flat.items():
            if not isinstance(values, list) or not values:
                raise XbarrefError(f"{source}: grid.{key}: must be a non-empty list of values, "
                                   f"got {values!r}")
        keys = list(flat)
        _check_count("grid", math.prod(len(flat[k]) for k in keys), source)
        varying = [k for k in keys if len(flat[k]) > 1] or keys
        for combo in itertools.product(*(flat[k] for k in keys)):
            over = dict(zip(keys, combo))
            name = ",".join(f"{k}={_value_text(over[k])}" for k in varying)
            settings.append(Setting(name, over, _resolve(base, over, f"{source}: grid")))
    listed = data.get("settings")
    if listed is not None:
        if not isinstance(listed, list) or not all(isinstance(s, dict) for s in listed):
            raise XbarrefError(f"{source}: settings: must be an array of tables [[settings]]")
        for i, entry in enumerate(listed):
            entry = dict(entry)
            name = entry.pop("name", None)
            over = _flatten(entry)
            if name is None:
                name = ",".join(f"{k}={_value_text(v)}" for k, v in over.items()) or "base"
            if not isinstance(name, str) or not name:
                raise XbarrefError(f"{source}: settings[{i}].name: must be a non-empty string")
            settings.append(Setting(name, over, _resolve(base, over, f"{source}: settings[{i}]")))
    if not settings:
        settings.append(Setting("base", {}, dict(base)))
    names = [s.name for s in settings]
    for n in names:
        if names.count(n) > 1:
            raise XbarrefError(f"{source}: settings: two settings are named {n!r}")
    return tuple(settings)


def _path(value, key, folder):
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise XbarrefError(f"{key}: must be a file path string, got {value!r}")
    path = value if os.path.isabs(value) else os.path.join(folder, value)
    if not os.path.isfile(path):
        raise XbarrefError(f"{key}: no such file {path!r}")
    return os.path.abspath(path)


def loads_spec(text, source="<string>", folder="."):
    """Parse sweep-specification TOML text; relative paths are relative to ``folder``."""
    return _spec(parse_toml(text, source), source, folder)


def _spec(data, source, folder):
    for key in data:
        if key not in _TOP_KEYS:
            raise XbarrefError(f"{source}: {key}: unknown key (known: {', '.join(_TOP_KEYS)})")
    sweep = data.get("sweep", {})
    if not isinstance(sweep, dict):
        raise XbarrefError(f"{source}: sweep: must be a [sweep] table")
    for key in sweep:
        if key not in _SWEEP_KEYS:
            raise XbarrefError(f"{source}: sweep.{key}: unknown key (known: {', '.join(_SWEEP_KEYS)})")
    name = sweep.get("name", "sweep")
    if not isinstance(name, str):
        raise XbarrefError(f"{source}: sweep.name: must be a string, got {name!r}")
    seed = _int(f"{source}: sweep.seed", sweep.get("seed", 0), 0)
    seeds = sweep.get("seeds", 5)
    if isinstance(seeds, list):
        seeds = tuple(_int(f"{source}: sweep.seeds[{i}]", s, 0) for i, s in enumerate(seeds))
        if not seeds or len(set(seeds)) != len(seeds):
            raise XbarrefError(f"{source}: sweep.seeds: must be a non-empty list of distinct "
                               f"integers, got {list(seeds)}")
    else:
        count = _int(f"{source}: sweep.seeds", seeds, 1)
        _check_count("sweep.seeds", count, source)
        seeds = tuple(range(count))
    split = sweep.get("split", "test")
    if split not in ("test", "train"):
        raise XbarrefError(f"{source}: sweep.split: expected \"test\" or \"train\", got {split!r}")
    samples = _int(f"{source}: sweep.samples", sweep.get("samples", 0), 0)
    batch_size = _int(f"{source}: sweep.batch_size", sweep.get("batch_size", 256), 1)
    hw = sweep.get("hardware", "default")
    if not isinstance(hw, str):
        raise XbarrefError(f"{source}: sweep.hardware: must be a preset name or a TOML path")
    if hw not in PRESETS and not os.path.isabs(hw):
        hw = os.path.join(folder, hw)
    if hw not in PRESETS and not os.path.isfile(hw):
        raise XbarrefError(f"{source}: sweep.hardware: {hw!r} is neither a preset "
                           f"({', '.join(PRESETS)}) nor a file")
    base = as_hardware(hw).to_dict()
    settings = _settings(data, base, source)

    entries = data.get("models", [{"name": "digits_cnn"}])
    if not isinstance(entries, list) or not entries or not all(isinstance(m, dict) for m in entries):
        raise XbarrefError(f"{source}: models: must be a non-empty array of tables [[models]]")
    models = []
    for i, m in enumerate(entries):
        for key in m:
            if key not in _MODEL_KEYS:
                raise XbarrefError(f"{source}: models[{i}].{key}: unknown key (known: "
                                   f"{', '.join(_MODEL_KEYS)})")
        mname = m.get("name", f"model{i}")
        if not isinstance(mname, str) or not mname:
            raise XbarrefError(f"{source}: models[{i}].name: must be a non-empty string")
        models.append(ModelEntry(mname, _path(m.get("model"), f"{source}: models[{i}].model", folder),
                                 _path(m.get("data"), f"{source}: models[{i}].data", folder)))
    _check_count("models x settings x seeds", len(models) * len(settings) * len(seeds), source)
    mnames = [m.name for m in models]
    for n in mnames:
        if mnames.count(n) > 1:
            raise XbarrefError(f"{source}: models: two models are named {n!r}")
    return SweepSpec(name=name, seed=seed, seeds=seeds, settings=settings, models=tuple(models),
                     split=split, samples=samples, batch_size=batch_size, source=source)


def load_spec(path):
    """Read a sweep-specification TOML file (see the module docstring)."""
    path = os.fspath(path)
    return _spec(read_toml(path, max_bytes=MAX_SPEC_BYTES), path,
                 os.path.dirname(os.path.abspath(path)))


def check_models(spec):
    """Load every model and data set once and check they fit (before any task runs)."""
    for m in spec.models:
        _model, x, _y = _inputs(m.model, m.data, spec.split, 0)
        if spec.samples > len(x):
            raise XbarrefError(f"{spec.source}: sweep.samples: {spec.samples} > the "
                               f"{len(x)} samples of model {m.name!r}'s {spec.split} split")


def spec_tasks(spec):
    """The :class:`~xbarref.sweep.Task` list of a spec: models x settings x seeds.

    A task's parameters carry what it needs: the resolved hardware, and the absolute
    paths and SHA-256 of its model and data files (the bundled ones when the spec names
    none), checked by the task before it loads them (:func:`xbarref.io.inputs.check_file`).
    Its key (id and seed) holds neither path nor hash.
    """
    params, keys = [], []
    files = {m.name: _files(m) for m in spec.models}
    for m in spec.models:
        for s in spec.settings:
            for seed in spec.seeds:
                key = {"model": m.name, "setting": s.name, "seed": seed, "hardware": s.hardware,
                       "split": spec.split, "samples": spec.samples}
                keys.append(key)
                params.append({**key, **files[m.name], "batch_size": spec.batch_size})
    return make_tasks(params, spec.seed, keys=keys,
                      prefix=lambda k: f"{k['model']}-s{k['seed']}")


def _files(m):
    """Absolute paths and SHA-256 of a model entry's model and data files."""
    model = os.path.abspath(m.model or bundled_model_path())
    data = os.path.abspath(m.data or bundled_dataset_path())
    return {"model_path": model, "model_sha256": file_sha256(model),
            "data_path": data, "data_sha256": file_sha256(data)}


@functools.lru_cache(maxsize=4)
def _load(model_path, data_path):
    model, _x, _y, dataset = load_inputs(model_path, data_path, "test")
    return model, dataset


def _inputs(model_path, data_path, split, samples):
    model, dataset = _load(model_path, data_path)
    x, y = (dataset.x_test, dataset.y_test) if split == "test" else (dataset.x_train, dataset.y_train)
    if samples:
        x, y = x[:samples], y[:samples]
    return model, x, y


def infer_task(params, seed):
    """One sweep task: program the model onto one hardware setting with one seed and
    evaluate it.

    Parameters
    ----------
    params : dict
        ``model_path``, ``model_sha256``, ``data_path``, ``data_sha256`` (the files,
        checked before they are loaded), ``hardware`` (config dict), ``split``,
        ``samples``, ``batch_size`` (see :func:`spec_tasks`).
    seed : numpy.random.SeedSequence
        The task's seed: its named stream ``"hardware"``
        (:func:`~xbarref.sweep.tasks.named_streams`) programs every layer and draws every
        read noise.

    Returns
    -------
    dict
        ``accuracy``, ``n_correct``, ``n_samples``, ``predictions`` (int64 array).
    """
    from xbarref.mapping import map_model
    from xbarref.nn import run_inference

    check_file(params["model_path"], params["model_sha256"], "model_path")
    check_file(params["data_path"], params["data_sha256"], "data_path")
    model, x, y = _inputs(params["model_path"], params["data_path"], params["split"],
                          params["samples"])
    hw = HardwareConfig.from_dict(params["hardware"])
    mapped = map_model(model, hw, named_streams(seed, "hardware")["hardware"])
    res = run_inference(mapped, x, y, params["batch_size"])
    return {"accuracy": res.accuracy, "n_correct": res.n_correct, "n_samples": res.n_samples,
            "predictions": res.predictions}
