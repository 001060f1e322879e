"""The task file: one small HDF5 file per finished task (format ``xbarref.sweep_task``).

Format version 1
    ``/`` attributes ``format``, ``format_version``, ``task_id``, ``params`` and ``key``
    (JSON), ``sweep_seed``, ``seed_entropy`` (the SeedSequence entropy words),
    ``seconds`` (wall time of the task), ``worker`` (host:pid), ``attempt``; one dataset
    ``/result/<name>`` per entry of the dict the task function returned (numbers and
    arrays, stored bit-exact), or a string attribute ``/result`` ``<name>`` for strings.

The files of a run live in ``<parts folder>/tasks/<task id>.h5`` (:func:`task_path`).
"""

from __future__ import annotations

import json
import os

import numpy as np

from xbarref.errors import FileFormatError, XbarrefError
from xbarref.io.h5 import (atomic_h5, check_format, fail, open_h5, read_array, read_attr,
                             require_group, write_array, write_str_attr)
from xbarref.sweep.tasks import canonical

__all__ = ["TASK_FORMAT", "TASK_FORMAT_VERSION", "task_path", "write_task_file",
           "read_task_file", "load_results", "is_complete"]

TASK_FORMAT = "xbarref.sweep_task"
TASK_FORMAT_VERSION = 1


def task_path(out_dir, tid):
    """``out_dir/tasks/<tid>.h5``."""
    return os.path.join(os.fspath(out_dir), "tasks", f"{tid}.h5")


def write_task_file(path, task, outcome):
    """Write one task's result file (atomically: temporary file, then rename).

    Parameters
    ----------
    path : str
    task : Task
    outcome : dict
        ``result`` (the dict the task function returned), ``seconds`` (s), ``worker``
        and ``attempt``.

    Raises
    ------
    XbarrefError
        When the result is not a dict of numbers, arrays of numbers and strings.
    """
    result = outcome["result"]
    if not isinstance(result, dict):
        raise XbarrefError(f"task {task.id}: the task function must return a dict, got "
                           f"{type(result).__name__}")
    with atomic_h5(path) as h:
        write_str_attr(h, "format", TASK_FORMAT)
        h.attrs["format_version"] = TASK_FORMAT_VERSION
        write_str_attr(h, "task_id", task.id)
        write_str_attr(h, "params", canonical(task.params))
        write_str_attr(h, "key", canonical(task.key))
        h.attrs["sweep_seed"] = task.sweep_seed
        h.attrs["seed_entropy"] = np.array(task.seed.entropy, dtype=np.uint64)
        h.attrs["seconds"] = float(outcome["seconds"])
        write_str_attr(h, "worker", outcome["worker"])
        h.attrs["attempt"] = int(outcome["attempt"])
        group = h.create_group("result")
        for name, value in result.items():
            if not isinstance(name, str) or not name or "/" in name:
                raise XbarrefError(f"task {task.id}: result key {name!r} must be a non-empty "
                                   "string without '/'")
            if isinstance(value, str):
                write_str_attr(group, name, value)
                continue
            arr = np.asarray(value)
            if arr.dtype.kind not in "biuf":
                raise XbarrefError(f"task {task.id}: result {name!r} must be a number, an "
                                   f"array of numbers or a string, got dtype {arr.dtype}")
            write_array(group, name, arr)


def read_task_file(path):
    """Read a task file.

    Returns
    -------
    dict
        ``task_id``, ``params`` and ``key`` (dicts), ``sweep_seed``, ``seconds``, ``worker``,
        ``attempt`` and ``result`` (``{name: numpy array or str}``).

    Raises
    ------
    FileFormatError
        Naming the file and the HDF5 path when the file is not a task file.
    """
    path = os.fspath(path)
    with open_h5(path) as h:
        check_format(h, path, TASK_FORMAT, {TASK_FORMAT_VERSION})
        out = {
            "task_id": read_attr(h, "task_id", path, "str"),
            "sweep_seed": read_attr(h, "sweep_seed", path, "int"),
            "seconds": read_attr(h, "seconds", path, "float"),
            "worker": read_attr(h, "worker", path, "str"),
            "attempt": read_attr(h, "attempt", path, "int"),
        }
        for name in ("params", "key"):
            text = read_attr(h, name, path, "str")
            try:
                out[name] = json.loads(text)
            except json.JSONDecodeError as exc:
                raise fail(path, f"/ attribute {name!r}", f"not valid JSON: {exc}") from None
        group = require_group(h, "/result", path)
        result = {}
        for name in group:
            result[name] = read_array(group, name, path, kind="biuf")
        for name in group.attrs:
            result[name] = read_attr(group, name, path, "str")
        out["result"] = result
    return out


def load_results(out_dir, tasks):
    """The stored results of ``tasks``: ``{task id: {name: numpy array or str}}``.

    Raises
    ------
    XbarrefError
        Naming the first task that has no file (it failed or was not run).
    """
    out = {}
    for t in tasks:
        path = task_path(out_dir, t.id)
        if not os.path.isfile(path):
            raise XbarrefError(f"task {t.id} ({canonical(t.params)[:200]}): no result file "
                               f"{path}")
        out[t.id] = read_task_file(path)["result"]
    return out


def is_complete(path, task):
    """True if ``path`` holds this task's result; raises if it holds another task's."""
    if not os.path.isfile(path):
        return False
    try:
        stored = read_task_file(path)
    except FileFormatError:
        return False  # damaged or foreign: compute again (the new file replaces it)
    if stored["key"] != json.loads(canonical(task.key)) or stored["sweep_seed"] != task.sweep_seed:
        raise XbarrefError(
            f"{path}: holds task {stored['task_id']!r} with key {canonical(stored['key'])} "
            f"and sweep seed {stored['sweep_seed']}, not {canonical(task.key)} with seed "
            f"{task.sweep_seed}; resume into the folder of the same sweep, or use a new folder")
    return True
