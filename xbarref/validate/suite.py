"""Golden suite files and candidate files (contract: ``docs/suite-format.md``).

A *suite* holds many crossbar cases in one HDF5 file. Each case lives in its own
group ``/cases/<name>/`` and is, inside that group, exactly a case of
``docs/case-format.md`` (attributes ``format`` / ``format_version`` on the group,
``crossbar/``, ``inputs/``, ``outputs/``), plus provenance attributes: the generator
parameters, the case seed, the solver that produced ``outputs/I`` and whether ngspice
confirmed it.

A *candidate* file holds another simulator's answer for the cases of a suite:
``/cases/<name>/outputs/I`` for every case. A suite file is also accepted as a
candidate (its ``outputs/I`` are used). A candidate marks an input it has no answer
for (a case it cannot express, a solve that did not converge) by a row of NaN: every
output of that input NaN; a whole case of NaN rows is "not run" (:func:`no_answer_rows`).

Public API: :class:`SuiteCase`, :class:`Suite`, :func:`read_suite`, :func:`write_suite`,
:func:`read_candidate`, :func:`write_candidate`, :func:`suite_case_names`,
:func:`extract_case`.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field

import h5py
import numpy as np

from xbarref.errors import XbarrefError
from xbarref.io.h5 import (atomic_h5, check_format, fail, open_h5, read_array, read_attr,
                            require_group, write_array)
from xbarref.io.case import Case, read_case_group, write_case_group

__all__ = [
    "SUITE_FORMAT", "SUITE_VERSION", "CANDIDATE_FORMAT", "CANDIDATE_VERSION", "SuiteCase", "Suite",
    "read_suite", "write_suite", "read_candidate", "write_candidate", "suite_case_names",
    "extract_case", "no_answer_rows",
]

SUITE_FORMAT = "xbarref.suite"
SUITE_VERSION = 1
CANDIDATE_FORMAT = "xbarref.candidate"
CANDIDATE_VERSION = 1

_NAME_RE = re.compile(r"^[A-Za-z0-9_.+-]+$")


def no_answer_rows(I, where="outputs"):
    """Which inputs (rows of a (B, N) candidate output) are marked "no answer".

    A row is "no answer" when every one of its N outputs is NaN. A row that mixes NaN
    with numbers, or any infinite value, is refused.

    Parameters
    ----------
    I : ndarray, shape (B, N)
    where : str
        Named in the error message.

    Returns
    -------
    ndarray of bool, shape (B,)

    Raises
    ------
    XbarrefError
    """
    I = np.asarray(I, dtype=np.float64)
    nan = np.isnan(I)
    if np.any(np.isinf(I)):
        raise XbarrefError(f"{where}: must be finite (NaN only as a whole row meaning 'no answer')")
    rows = nan.all(axis=-1) if I.ndim == 2 and I.shape[-1] > 0 else np.zeros(I.shape[:1], bool)
    mixed = nan.any(axis=-1) & ~rows if I.ndim == 2 else nan.any()
    if np.any(mixed):
        b = int(np.flatnonzero(mixed)[0]) if I.ndim == 2 else 0
        raise XbarrefError(f"{where}: input {b} has NaN in some outputs but not all (a 'no answer' "
                           "input must be NaN in every output)")
    return rows


def _check_name(name):
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise XbarrefError(f"case name: {name!r} must be a non-empty string of letters, digits and _ . + -")
    return name


@dataclass(eq=False)
class SuiteCase:
    """One case of a suite with its provenance.

    Attributes
    ----------
    name : str
        Group name under ``/cases``.
    case : Case
        Circuit, inputs and the exact outputs ``case.I`` (A).
    params : dict
        Generator parameters (JSON-serializable): size, resistance regime, device,
        conductance pattern, input kind, nominal wire resistance in ohm, ...
    seed : int
        Seed entropy of the ``numpy.random.Generator`` that drew this case.
    ngspice_verified : bool
        True when ngspice solved the inputs listed in ``ngspice_inputs`` and agreed
        with ``case.I`` within ``ngspice_tol``.
    ngspice_inputs : list of int
        Inputs (rows of ``V``) solved by ngspice; empty if none.
    ngspice_max_rel_error : float
        ``max |I - I_spice| / max |I_spice|`` over those inputs (NaN if none).
    ngspice_tol : float
        Tolerance the flag was decided with (NaN if ngspice did not run).
    residual : float
        Largest relative residual the xbarref solver reported.
    solve_seconds : float
        Wall time of the xbarref solve.
    note : str
        Free text (for example why ngspice failed).
    """

    name: str
    case: Case
    params: dict = field(default_factory=dict)
    seed: int = 0
    ngspice_verified: bool = False
    ngspice_inputs: list = field(default_factory=list)
    ngspice_max_rel_error: float = float("nan")
    ngspice_tol: float = float("nan")
    residual: float = float("nan")
    solve_seconds: float = float("nan")
    note: str = ""

    def __post_init__(self):
        _check_name(self.name)
        if not isinstance(self.case, Case):
            raise XbarrefError(f"case {self.name}: expected a Case, got {type(self.case).__name__}")
        try:
            json.dumps(self.params)
        except (TypeError, ValueError) as exc:
            raise XbarrefError(f"case {self.name}: params must be JSON-serializable ({exc})") from None


@dataclass(eq=False)
class Suite:
    """A golden suite: ordered cases plus the generator settings.

    Attributes
    ----------
    cases : list of SuiteCase
        In generation order; names are unique.
    preset : str
        Generator preset (``quick``, ``standard``, ``large`` or free text).
    seed : int
        Master seed of the generator.
    generator : str
        Who generated it (``"xbarref <version>"``).
    path : str or None
        File it was read from.
    """

    cases: list
    preset: str = ""
    seed: int = 0
    generator: str = ""
    path: str | None = field(default=None, repr=False)

    def __post_init__(self):
        names = [c.name for c in self.cases]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise XbarrefError(f"cases: duplicate case names {dup}")

    @property
    def names(self):
        return [c.name for c in self.cases]

    def __len__(self):
        return len(self.cases)

    def __getitem__(self, name):
        for c in self.cases:
            if c.name == name:
                return c
        raise KeyError(name)


# --------------------------------------------------------------------------- writing


def _write_case_group(grp, case):
    """Write ``case`` into ``grp`` exactly as a case file's root (spec layout)."""
    if not isinstance(case.crossbar.device, str):
        raise XbarrefError("case: only 'linear' and 'sinh' devices can be written to a suite")
    write_case_group(grp, case)


def write_suite(suite, path, *, inputs=(), overwrite=True):
    """Write a suite file (atomically; never over ``suite.path`` or ``inputs``).

    Parameters
    ----------
    suite : Suite
    path : str or os.PathLike
    inputs : iterable of path, optional
        Files ``path`` may not be.

    Returns
    -------
    str
        ``path``.
    """
    if not isinstance(suite, Suite):
        raise XbarrefError(f"suite: expected a Suite, got {type(suite).__name__}")
    path = os.fspath(path)
    with atomic_h5(path, inputs=(suite.path, *inputs), overwrite=overwrite) as f:
        f.attrs["format"] = SUITE_FORMAT
        f.attrs["format_version"] = np.int64(SUITE_VERSION)
        f.attrs["preset"] = str(suite.preset)
        f.attrs["seed"] = np.int64(suite.seed)
        f.attrs["generator"] = str(suite.generator)
        f.attrs["case_order"] = np.array(suite.names, dtype=h5py.string_dtype())
        cases = f.create_group("cases")
        for sc in suite.cases:
            grp = cases.create_group(sc.name)
            _write_case_group(grp, sc.case)
            grp.attrs["generator_params"] = json.dumps(sc.params, sort_keys=True)
            grp.attrs["seed"] = np.int64(sc.seed)
            grp.attrs["ngspice_verified"] = bool(sc.ngspice_verified)
            grp.attrs["ngspice_inputs"] = np.asarray(sc.ngspice_inputs, dtype=np.int64).reshape(-1)
            grp.attrs["ngspice_max_rel_error"] = np.float64(sc.ngspice_max_rel_error)
            grp.attrs["ngspice_tol"] = np.float64(sc.ngspice_tol)
            grp.attrs["residual"] = np.float64(sc.residual)
            grp.attrs["solve_seconds"] = np.float64(sc.solve_seconds)
            grp.attrs["note"] = str(sc.note)
    return path


# --------------------------------------------------------------------------- reading


def _ordered_names(f, fn, group):
    names = list(group.keys())
    order = read_attr(f, "case_order", fn, "str_array", required=False)
    if order is not None and sorted(order) == sorted(names):
        return order
    return sorted(names)


def suite_case_names(path):
    """Names of the cases of a suite (or candidate) file, in the stored order."""
    path = os.fspath(path)
    with open_h5(path) as f:
        grp = require_group(f, "/cases", path)
        return _ordered_names(f, path, grp)


def read_suite(path, names=None):
    """Read a suite file.

    Parameters
    ----------
    path : str or os.PathLike
    names : iterable of str, optional
        Read only these cases (default all).

    Returns
    -------
    Suite

    Raises
    ------
    FileNotFoundError
    FileFormatError
        Corrupt file, wrong ``format``, a case that does not follow the case spec, a
        case without ``outputs/I``; the message names the file and the HDF5 path.
    """
    path = os.fspath(path)
    fn = path
    with open_h5(path) as f:
        check_format(f, fn, SUITE_FORMAT, {SUITE_VERSION})
        cases_grp = require_group(f, "/cases", fn)
        all_names = _ordered_names(f, fn, cases_grp)
        if names is None:
            names = all_names
        else:
            names = list(names)
            for n in names:
                if n not in cases_grp:
                    raise fail(fn, f"/cases/{n}", "missing (no such case in the suite)")
        out = []
        for name in names:
            base = f"/cases/{name}"
            case = read_case_group(require_group(f, base, fn), fn)
            if case.I is None:
                raise fail(fn, f"{base}/outputs/I", "missing (a suite case needs its exact outputs)")
            grp = cases_grp[name]
            raw = read_attr(grp, "generator_params", fn, "str", required=False, default="{}")
            try:
                params = json.loads(raw)
            except ValueError as exc:
                raise fail(fn, f"{base} attribute 'generator_params'", f"not valid JSON: {exc}") from None
            sc = SuiteCase(
                name=name, case=case, params=params,
                seed=read_attr(grp, "seed", fn, "int", required=False, default=0),
                ngspice_verified=read_attr(grp, "ngspice_verified", fn, "bool", required=False, default=False),
                ngspice_inputs=[int(k) for k in read_attr(
                    grp, "ngspice_inputs", fn, "int_array", required=False, default=np.zeros(0, np.int64))],
                ngspice_max_rel_error=read_attr(grp, "ngspice_max_rel_error", fn, "float", required=False,
                                                default=float("nan")),
                ngspice_tol=read_attr(grp, "ngspice_tol", fn, "float", required=False, default=float("nan")),
                residual=read_attr(grp, "residual", fn, "float", required=False, default=float("nan")),
                solve_seconds=read_attr(grp, "solve_seconds", fn, "float", required=False, default=float("nan")),
                note=read_attr(grp, "note", fn, "str", required=False, default=""),
            )
            out.append(sc)
        return Suite(
            cases=out,
            preset=read_attr(f, "preset", fn, "str", required=False, default=""),
            seed=read_attr(f, "seed", fn, "int", required=False, default=0),
            generator=read_attr(f, "generator", fn, "str", required=False, default=""),
            path=path,
        )


def read_candidate(path, expected=None):
    """Read the outputs of a candidate file.

    Parameters
    ----------
    path : str or os.PathLike
        A candidate file (``format = "xbarref.candidate"``) or a suite file.
    expected : dict of str -> tuple, optional
        Case name -> required shape ``(B, N)`` of ``outputs/I``. Every expected case
        must be present with that shape, and the file may hold no other case.

    Returns
    -------
    outputs : dict of str -> ndarray
        ``I`` in A per case; a row of NaN is an input the candidate has no answer for.
    solver : str
        The root attribute ``solver`` ('' if absent).

    Raises
    ------
    FileFormatError
        Naming the file and the HDF5 path of a missing, extra or mis-shaped case
        output, or one with an infinite value or a row only partly NaN.
    """
    path = os.fspath(path)
    fn = path
    with open_h5(path) as f:
        fmt = read_attr(f, "format", fn, "str")
        if fmt == SUITE_FORMAT:
            check_format(f, fn, SUITE_FORMAT, {SUITE_VERSION})
        else:
            check_format(f, fn, CANDIDATE_FORMAT, {CANDIDATE_VERSION})
        cases_grp = require_group(f, "/cases", fn)
        names = _ordered_names(f, fn, cases_grp)
        if expected is not None:
            missing = [n for n in expected if n not in cases_grp]
            if missing:
                more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
                raise fail(fn, f"/cases/{missing[0]}/outputs/I",
                           f"missing: the suite has case {missing[0]!r} but the candidate does not{more}")
            extra = [n for n in names if n not in expected]
            if extra:
                raise fail(fn, f"/cases/{extra[0]}",
                           f"case {extra[0]!r} is not in the suite (candidate and suite do not match)")
            names = list(expected)
        outputs = {}
        for name in names:
            shape = expected[name] if expected is not None else (None, None)
            h5path = f"/cases/{name}/outputs/I"
            arr = read_array(f, h5path, fn, kind="f", shape=shape, finite=fmt == SUITE_FORMAT,
                             dtype=np.float64)
            try:
                no_answer_rows(arr)
            except XbarrefError as exc:
                raise fail(fn, h5path, str(exc).split(": ", 1)[1]) from None
            outputs[name] = arr
        solver = read_attr(f, "solver", fn, "str", required=False, default="")
        if fmt == SUITE_FORMAT and not solver:
            solver = "suite outputs"
        return outputs, solver


def write_candidate(outputs, path, *, solver="", inputs=(), overwrite=True):
    """Write a candidate file: ``/cases/<name>/outputs/I`` for each case.

    Parameters
    ----------
    outputs : dict of str -> array_like (B, N)
        Output currents in A per case name (in suite order). A row of NaN marks an
        input without an answer; NaN for the whole case, a case not run.
    path : str or os.PathLike
    solver : str
        Who computed them (root attribute ``solver``).
    inputs : iterable of path
        Files ``path`` may not be (for example the suite).

    Returns
    -------
    str
    """
    path = os.fspath(path)
    checked = {}
    for name, value in outputs.items():
        _check_name(name)
        arr = np.asarray(value, dtype=np.float64)
        if arr.ndim != 2:
            raise XbarrefError(f"outputs[{name!r}]: expected a (B, N) array, got shape {arr.shape}")
        no_answer_rows(arr, where=f"outputs[{name!r}]")
        checked[name] = arr
    with atomic_h5(path, inputs=inputs, overwrite=overwrite) as f:
        f.attrs["format"] = CANDIDATE_FORMAT
        f.attrs["format_version"] = np.int64(CANDIDATE_VERSION)
        f.attrs["solver"] = str(solver)
        f.attrs["case_order"] = np.array(list(checked), dtype=h5py.string_dtype())
        cases = f.create_group("cases")
        for name, arr in checked.items():
            write_array(cases.create_group(name).create_group("outputs"), "I", arr)
    return path


def extract_case(suite_path, name, path):
    """Write case ``name`` of a suite as a stand-alone case file (``xbarref.io.write_case``)."""
    from xbarref.io.case import write_case

    suite = read_suite(suite_path, names=[name])
    return write_case(suite.cases[0].case, path, inputs=(suite_path,))
