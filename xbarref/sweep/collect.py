"""Gather the task files of a run into one results table (CSV and HDF5).

:func:`collect` reads ``out_dir/tasks/*.h5`` (or the files of the given tasks) and
returns a :class:`ResultsTable`: one row per task with its id, its parameters
(flattened to dotted column names, e.g. ``hardware.parasitics.r_wire_row``), every
scalar result and the task's wall time and worker. :func:`write_results` writes it as
``results.csv`` and ``results.h5`` (format ``xbarref.sweep_results``: one dataset per
column under ``/columns``, the column order in the root attribute ``columns``, and the
array results of each task under ``/arrays/<task id>/<name>``), both atomically.
"""

from __future__ import annotations

import csv
import dataclasses
import glob
import io
import json
import os

import numpy as np

from xbarref.errors import XbarrefError
from xbarref.sweep.taskfile import read_task_file, task_path

__all__ = ["ResultsTable", "collect", "write_results", "group_summary"]

RESULTS_FORMAT = "xbarref.sweep_results"


@dataclasses.dataclass
class ResultsTable:
    """Rows of a sweep, one per task (in the order of the tasks given to :func:`collect`,
    else sorted by task id).

    Attributes
    ----------
    columns : list of str
    rows : list of dict
        ``{column: value}``; a missing value is ``None``.
    arrays : dict
        ``{task id: {name: numpy array}}``: the non-scalar results.
    missing : list of str
        Ids of the requested tasks that have no file.
    """

    columns: list
    rows: list
    arrays: dict
    missing: list

    def column(self, name):
        """The values of one column, as a list."""
        return [r.get(name) for r in self.rows]


def _flatten(value, prefix, out):
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(v, f"{prefix}.{k}" if prefix else k, out)
    elif isinstance(value, list):
        out[prefix] = json.dumps(value)
    else:
        out[prefix] = value


def collect(out_dir, tasks=None):
    """Read the task files of a run.

    Parameters
    ----------
    out_dir : str or os.PathLike
    tasks : sequence of Task, optional
        Only these tasks (their missing files are listed in ``missing``); default every
        file in ``out_dir/tasks``.

    Returns
    -------
    ResultsTable
    """
    out_dir = os.fspath(out_dir)
    if tasks is None:
        paths = sorted(glob.glob(os.path.join(out_dir, "tasks", "*.h5")))
        missing = []
    else:
        paths, missing = [], []
        for t in tasks:
            p = task_path(out_dir, t.id)
            (paths if os.path.isfile(p) else missing).append(p if os.path.isfile(p) else t.id)
    rows, arrays, columns = [], {}, ["task_id"]
    for p in paths:
        stored = read_task_file(p)
        row = {"task_id": stored["task_id"]}
        _flatten(stored["params"], "", row)
        scalars = {}
        for name, value in sorted(stored["result"].items()):
            if isinstance(value, str) or np.ndim(value) == 0:
                scalars[name] = value if isinstance(value, str) else np.asarray(value).item()
            else:
                arrays.setdefault(stored["task_id"], {})[name] = value
        row.update(scalars)
        row["task_seconds"] = stored["seconds"]
        row["worker"] = stored["worker"]
        for c in row:
            if c not in columns:
                columns.append(c)
        rows.append(row)
    return ResultsTable(columns=columns, rows=rows, arrays=arrays, missing=missing)


def _csv_text(table):
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(table.columns)
    for r in table.rows:
        writer.writerow(["" if r.get(c) is None else (repr(r[c]) if isinstance(r[c], float) else r[c])
                         for c in table.columns])
    return buf.getvalue()


def write_results(table, out_dir, stem="results"):
    """Write ``out_dir/<stem>.csv`` and ``out_dir/<stem>.h5``; returns both paths.

    Floats in the CSV are written with ``repr`` (shortest text that reads back
    bit-exact).
    """
    from xbarref.io.h5 import atomic_h5, write_array, write_str_array_attr, write_str_attr, write_strings

    out_dir = os.fspath(out_dir)
    csv_path = os.path.join(out_dir, f"{stem}.csv")
    h5_path = os.path.join(out_dir, f"{stem}.h5")
    from xbarref.io.atomic import write_bytes

    write_bytes(csv_path, _csv_text(table).encode("utf-8"), overwrite=True)
    with atomic_h5(h5_path) as h:
        write_str_attr(h, "format", RESULTS_FORMAT)
        h.attrs["format_version"] = 1
        write_str_array_attr(h, "columns", table.columns)
        cols = h.create_group("columns")
        for c in table.columns:
            values = table.column(c)
            kinds = {type(v) for v in values if v is not None}
            if kinds and kinds <= {int, bool} and None not in values:
                write_array(cols, c, np.array(values, dtype=np.int64))
            elif kinds and kinds <= {int, float} and not (kinds & {bool}):
                write_array(cols, c, np.array([np.nan if v is None else v for v in values],
                                              dtype=np.float64))
            else:
                write_strings(cols, c, ["" if v is None else str(v) for v in values])
        arr = h.create_group("arrays")
        for tid, items in table.arrays.items():
            g = arr.create_group(tid)
            for name, value in items.items():
                write_array(g, name, value)
    return csv_path, h5_path


def group_summary(table, by=("model", "setting"), value="accuracy"):
    """Mean, standard deviation (ddof=1; 0 for one row), min, max and count of ``value``
    per group; returns a list of dicts in order of first appearance."""
    for col in (*by, value):
        if col not in table.columns:
            raise XbarrefError(f"by: the results have no column {col!r}")
    groups = {}
    for r in table.rows:
        groups.setdefault(tuple(r.get(b) for b in by), []).append(r.get(value))
    out = []
    for key, vals in groups.items():
        v = np.array([x for x in vals if x is not None], dtype=float)
        out.append({**dict(zip(by, key)), "n": int(v.size),
                    "mean": float(v.mean()) if v.size else float("nan"),
                    "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
                    "min": float(v.min()) if v.size else float("nan"),
                    "max": float(v.max()) if v.size else float("nan")})
    return out
