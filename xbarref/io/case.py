"""Crossbar case files (``docs/case-format.md``, format ``xbarref.case`` v1).

A case is one crossbar circuit, a batch of input vectors and, optionally, the solved
outputs. :func:`read_case` accepts every variant the spec allows (scalar or full
resistance arrays, a 1-D ``V`` as a batch of one, any subset of the outputs) and
rejects anything else with :class:`~xbarref.errors.FileFormatError` naming the file
and the HDF5 path. :func:`write_case` writes exactly the spec, atomically, and never
over the file the case was read from. :func:`read_case_group` and
:func:`write_case_group` do the same for a case held in a group of an open HDF5 file
(the golden suites of :mod:`xbarref.validate.suite` keep one per group).
``docs/formats.md`` describes the choices.

Public API: :class:`Case`, :func:`read_case`, :func:`write_case`, :func:`read_case_group`,
:func:`write_case_group`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from xbarref.checks import env_limit
from xbarref.circuit.crossbar import Crossbar, check_inputs
from xbarref.errors import XbarrefError
from xbarref.io.h5 import atomic_h5, fail, open_h5, read_array, read_attr, require_group, write_array

__all__ = ["Case", "read_case", "read_case_group", "write_case", "write_case_group",
           "CASE_FORMAT", "CASE_VERSION"]

CASE_FORMAT = "xbarref.case"
CASE_VERSION = 1

_RESISTANCES = ("r_source", "r_sink", "r_wire_row", "r_wire_col")


def _resistance_shapes(M, N):
    return {"r_source": (M,), "r_sink": (N,), "r_wire_row": (M, N - 1), "r_wire_col": (M - 1, N)}


def _checked_output(name, value, shape):
    if value is None:
        return None
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise XbarrefError(f"{name}: cannot be read as an array of floats ({exc})") from None
    if arr.shape != shape:
        raise XbarrefError(f"{name}: expected shape {shape}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise XbarrefError(f"{name}: must be finite")
    return arr


@dataclass(eq=False)
class Case:
    """A crossbar, its input vectors and (optionally) its solved outputs.

    Parameters
    ----------
    crossbar : Crossbar
        The circuit (device ``linear`` or ``sinh``).
    V : array_like, shape (B, M) or (M,)
        Row driver voltages in volts, one input vector per row; a 1-D vector is a
        batch of one. Stored as a float64 (B, M) array.
    I : array_like, shape (B, N), optional
        Solved output currents in A.
    V_row, V_col : array_like, shape (B, M, N), optional
        Solved row and column node voltages in V.
    solver : str, optional
        Who solved the outputs (free text).
    path : str, optional
        The file this case was read from; :func:`write_case` refuses to write over it.

    Raises
    ------
    XbarrefError
        For a wrong type, shape or a non-finite value; the message names the field.
    """

    crossbar: Crossbar
    V: np.ndarray
    I: np.ndarray | None = None
    V_row: np.ndarray | None = None
    V_col: np.ndarray | None = None
    solver: str | None = None
    path: str | None = field(default=None, repr=False)

    def __post_init__(self):
        if not isinstance(self.crossbar, Crossbar):
            raise XbarrefError(f"crossbar: expected a Crossbar, got {type(self.crossbar).__name__}")
        M, N = self.crossbar.shape
        self.V = check_inputs(self.V, M, name="V")
        B = self.V.shape[0]
        if B < 1:
            raise XbarrefError("V: a case needs at least one input vector, got shape "
                               f"{self.V.shape}")
        self.I = _checked_output("I", self.I, (B, N))
        self.V_row = _checked_output("V_row", self.V_row, (B, M, N))
        self.V_col = _checked_output("V_col", self.V_col, (B, M, N))
        if self.solver is not None and not isinstance(self.solver, str):
            raise XbarrefError(f"solver: expected a string, got {type(self.solver).__name__}")
        if self.solver is not None and "\x00" in self.solver:
            raise XbarrefError("solver: may not contain NUL characters (HDF5 strings cannot)")
        if self.path is not None:
            self.path = os.fspath(self.path)

    @property
    def shape(self):
        """``(M, N)`` of the crossbar."""
        return self.crossbar.shape

    @property
    def batch_size(self):
        """Number of input vectors ``B``."""
        return self.V.shape[0]

    @property
    def has_outputs(self):
        """True if any of ``I``, ``V_row``, ``V_col`` is present."""
        return any(x is not None for x in (self.I, self.V_row, self.V_col))

    def with_outputs(self, I=None, V_row=None, V_col=None, solver=None):
        """A new case with the same circuit and inputs and these outputs (not read from a file)."""
        return Case(self.crossbar, self.V, I=I, V_row=V_row, V_col=V_col, solver=solver)


def _read_float(handle, h5path, filename, allowed_shapes=None, *, nonneg=False):
    """A required floating-point dataset, finite, of one of ``allowed_shapes`` (None: any)."""
    arr = read_array(handle, h5path, filename, kind="f", finite=True)
    if arr.dtype.kind != "f":
        raise fail(filename, h5path, "must be a float64 dataset (found an empty dataspace)")
    if allowed_shapes is not None and arr.shape not in allowed_shapes:
        want = " or ".join(str(s) for s in allowed_shapes)
        raise fail(filename, h5path, f"expected shape {want}, got {arr.shape}")
    if nonneg and np.any(arr < 0):
        bad = tuple(int(k) for k in np.argwhere(arr < 0)[0]) if arr.ndim else ()
        raise fail(filename, h5path, f"must be >= 0, found {arr[bad]} at index {bad}")
    return arr.astype(np.float64)


#: Default of :func:`max_cells`.
DEFAULT_MAX_CELLS = 2**24


def max_cells():
    """The largest crossbar (``M * N`` cells) a case may declare: ``2**24`` (4096 x 4096)
    unless the environment variable ``XBARREF_MAX_CELLS`` says otherwise. Checked from
    the declared shape of ``G`` before anything is read."""
    return env_limit("XBARREF_MAX_CELLS", DEFAULT_MAX_CELLS)


def _check_cells(group, h5path, fn):
    from xbarref.errors import SizeLimitError

    try:
        obj = group.get(h5path)
        shape = getattr(obj, "shape", None)
    except (OSError, RuntimeError, KeyError):
        return  # reported by the read that follows
    if shape is not None and len(shape) == 2:
        cells = int(shape[0]) * int(shape[1])
        if cells > max_cells():
            raise SizeLimitError(f"{fn}: {h5path}: declares a {shape[0]} x {shape[1]} crossbar "
                                 f"({cells:,} cells), above the limit of {max_cells():,} cells "
                                 "(XBARREF_MAX_CELLS)")


def read_case_group(group, filename):
    """Read and validate the case stored in an open HDF5 group.

    The group holds a case exactly as a case file's root does (attributes ``format``
    and ``format_version``, ``crossbar/``, ``inputs/``, optional ``outputs/``); it is
    the root of a case file or, for example, ``/cases/<name>`` of a golden suite.

    Parameters
    ----------
    group : h5py.Group or h5py.File
        The open group (a file is its root group).
    filename : str or os.PathLike
        The file the group belongs to, named in error messages.

    Returns
    -------
    Case
        With ``V`` as (B, M) (a 1-D ``inputs/V`` is a batch of one), the outputs
        present in the group (others None) and ``path`` None.

    Raises
    ------
    FileFormatError
        If the group does not follow ``docs/case-format.md`` (see
        :func:`read_case`); the message is ``<filename>: <HDF5 path>: <problem>``
        with the absolute HDF5 path.
    """
    fn = os.fspath(filename)
    base = "" if group.name == "/" else group.name
    fmt = read_attr(group, "format", fn, "str")
    if fmt != CASE_FORMAT:
        raise fail(fn, f"{group.name} attribute 'format'", f"expected {CASE_FORMAT!r}, got {fmt!r}")
    version = read_attr(group, "format_version", fn, "int")
    if version != CASE_VERSION:
        raise fail(fn, f"{group.name} attribute 'format_version'",
                   f"unsupported version {version} (this xbarref reads {CASE_VERSION})")
    cb = require_group(group, f"{base}/crossbar", fn)
    _check_cells(group, f"{base}/crossbar/G", fn)
    G = _read_float(group, f"{base}/crossbar/G", fn, nonneg=True)
    if G.ndim != 2 or G.shape[0] < 1 or G.shape[1] < 1:
        raise fail(fn, f"{base}/crossbar/G", f"expected shape (M, N) with M, N >= 1, got {G.shape}")
    M, N = G.shape
    shapes = _resistance_shapes(M, N)
    res = {name: _read_float(group, f"{base}/crossbar/{name}", fn, [(), shapes[name]], nonneg=True)
           for name in _RESISTANCES}
    device = read_attr(cb, "device", fn, "str")
    if device not in ("linear", "sinh"):
        raise fail(fn, f"{base}/crossbar attribute 'device'",
                   f"unknown device {device!r}; expected 'linear' or 'sinh'")
    sinh_k = None
    if device == "sinh":
        sinh_k = read_attr(cb, "sinh_k", fn, "float")
        if not np.isfinite(sinh_k) or sinh_k <= 0:
            raise fail(fn, f"{base}/crossbar attribute 'sinh_k'", f"must be finite and > 0 (1/V), got {sinh_k}")
    elif "sinh_k" in cb.attrs:
        raise fail(fn, f"{base}/crossbar attribute 'sinh_k'", "only allowed with device 'sinh'")
    require_group(group, f"{base}/inputs", fn)
    V = _read_float(group, f"{base}/inputs/V", fn)
    if V.ndim == 1 and V.shape == (M,):
        V = V[None, :]
    if V.ndim != 2 or V.shape[1] != M:
        raise fail(fn, f"{base}/inputs/V", f"expected shape (B, {M}) or ({M},), got {V.shape}")
    if V.shape[0] < 1:
        raise fail(fn, f"{base}/inputs/V", f"needs at least one input vector, got shape {V.shape}")
    B = V.shape[0]
    outputs = {"I": None, "V_row": None, "V_col": None}
    solver = None
    if "outputs" in group:
        out = require_group(group, f"{base}/outputs", fn)
        want = {"I": (B, N), "V_row": (B, M, N), "V_col": (B, M, N)}
        for name in outputs:
            if name in out:
                outputs[name] = _read_float(group, f"{base}/outputs/{name}", fn, [want[name]])
        solver = read_attr(out, "solver", fn, "str", required=False)
    try:
        crossbar = Crossbar(G, device=device, sinh_k=sinh_k, **res)
        return Case(crossbar, V, solver=solver, **outputs)
    except XbarrefError as exc:  # not expected after the checks above
        raise fail(fn, f"{base}/crossbar", str(exc)) from None


def read_case(path):
    """Read a crossbar case file.

    Parameters
    ----------
    path : str or os.PathLike
        An HDF5 file following ``docs/case-format.md`` (format version 1).

    Returns
    -------
    Case
        With ``V`` as (B, M) (a 1-D ``/inputs/V`` is a batch of one), the outputs
        present in the file (others None) and ``path`` set.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    FileFormatError
        If the file is not readable HDF5 (corrupt, truncated) or does not follow the
        spec: a missing required path, a wrong shape, a non-finite or negative
        value, an unknown ``format``, ``format_version`` or ``device``, a missing
        ``sinh_k``. The message names the file and the HDF5 path.

    Notes
    -----
    Datasets must be floating point (float64 per the spec; other float widths are
    converted). Extra groups, datasets and attributes are ignored. ``sinh_k`` on a
    ``linear`` device and an empty batch (``B == 0``) are rejected. The checks are
    those of :func:`read_case_group` on the root group.
    """
    path = os.fspath(path)
    with open_h5(path) as f:
        case = read_case_group(f, path)
    case.path = path
    return case


def _compact(arr):
    """A scalar if every element is equal (or there are none), else the full array."""
    arr = np.asarray(arr, dtype=np.float64)
    if arr.size == 0:
        return np.float64(0.0)
    first = arr.flat[0]
    if np.all(arr == first):
        return np.float64(first)
    return arr


def _check_writable(case):
    """XbarrefError unless ``case`` is a :class:`Case` whose device a case file can hold."""
    if not isinstance(case, Case):
        raise XbarrefError(f"case: expected a Case, got {type(case).__name__}")
    xb = case.crossbar
    if not isinstance(xb.device, str):
        raise XbarrefError(
            f"case.crossbar.device: a {type(xb.device).__name__} device cannot be written to a "
            "case file; only 'linear' and 'sinh'"
        )


def write_case_group(group, case):
    """Write ``case`` into an open, empty HDF5 group exactly as a case file's root.

    Parameters
    ----------
    group : h5py.Group or h5py.File
        Where to write (a file is its root group); gets the attributes ``format`` and
        ``format_version`` and the groups ``crossbar``, ``inputs`` and, when the case
        has outputs, ``outputs`` (see :func:`write_case` for the layout choices).
    case : Case

    Raises
    ------
    XbarrefError
        If ``case`` is not a :class:`Case` or its device cannot be written (only
        ``linear`` and ``sinh`` can).
    """
    _check_writable(case)
    xb = case.crossbar
    group.attrs["format"] = CASE_FORMAT
    group.attrs["format_version"] = np.int64(CASE_VERSION)
    grp = group.create_group("crossbar")
    write_array(grp, "G", np.asarray(xb.G, dtype=np.float64))
    for name in _RESISTANCES:
        write_array(grp, name, _compact(getattr(xb, name)))
    grp.attrs["device"] = xb.device
    if xb.device == "sinh":
        grp.attrs["sinh_k"] = np.float64(xb.sinh_k)
    write_array(group.create_group("inputs"), "V", np.asarray(case.V, dtype=np.float64))
    if case.has_outputs:
        out = group.create_group("outputs")
        for name in ("I", "V_row", "V_col"):
            value = getattr(case, name)
            if value is not None:
                write_array(out, name, np.asarray(value, dtype=np.float64))
        if case.solver is not None:
            out.attrs["solver"] = case.solver


def write_case(case, path, *, inputs=(), overwrite=True):
    """Write a case file following ``docs/case-format.md`` exactly.

    Parameters
    ----------
    case : Case
    path : str or os.PathLike
        Destination. Written to a temporary file in the same folder, then renamed.
    inputs : iterable of path, optional
        Further files ``path`` may not be (besides ``case.path``).
    overwrite : bool, optional
        Replace an existing regular file (default True; see :mod:`xbarref.io.atomic`).

    Returns
    -------
    str
        ``path``.

    Raises
    ------
    XbarrefError
        If ``path`` is the file the case was read from (or one of ``inputs``), or the
        device cannot be written (only ``linear`` and ``sinh`` can).

    Notes
    -----
    All datasets are float64, non-empty arrays with the Fletcher-32 checksum filter
    and the file with HDF5 1.8+ metadata checksums (see :mod:`xbarref.io.h5`), so a
    damaged file is detected when read. A resistance whose values are all equal is written as
    a scalar (shape ``()``), otherwise as its full array; ``G`` and ``V`` are always
    full arrays (``V`` as (B, M)). ``/outputs`` is written only when the case has
    outputs, with the ``solver`` attribute when it is set.
    """
    _check_writable(case)
    path = os.fspath(path)
    with atomic_h5(path, inputs=(case.path, *inputs), overwrite=overwrite) as f:
        write_case_group(f, case)
    return path
