"""Cross-check xbarref against ngspice.

ngspice runs in batch mode (``ngspice -b -r out.raw netlist.cir``) on a netlist that
:mod:`xbarref.io.netlist` writes into a temporary folder; the operating point is
read back from the raw file (binary: every value as written by ngspice, a float64;
ASCII raw files, 16 significant digits, are read too), so no digits are lost to
printing.

Public functions: :func:`find_ngspice`, :func:`ngspice_version`, :func:`run_ngspice`, :func:`read_rawfile`,
:func:`spice_operating_point`, :func:`relative_difference`, :func:`spice_check`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass

import numpy as np

from xbarref.circuit.crossbar import Crossbar, check_inputs
from xbarref.errors import SpiceError, XbarrefError

__all__ = [
    "SpiceError",
    "SpiceResult",
    "find_ngspice",
    "ngspice_version",
    "run_ngspice",
    "read_rawfile",
    "spice_operating_point",
    "relative_difference",
    "CheckRow",
    "spice_check",
]


# SpiceError lives in xbarref.errors with the other exceptions (re-exported here).


def find_ngspice(ngspice=None):
    """Return the path of the ngspice executable.

    Parameters
    ----------
    ngspice : str, optional
        Executable name or path; default ``$XBARREF_NGSPICE`` or ``ngspice`` on PATH.

    Raises
    ------
    SpiceError
        If it cannot be found.
    """
    name = ngspice or os.environ.get("XBARREF_NGSPICE") or "ngspice"
    path = shutil.which(name)
    if path is None:
        raise SpiceError(f"ngspice: {name!r} not found on PATH (Debian/Ubuntu: apt-get install ngspice)")
    return path


def ngspice_version(ngspice=None):
    """The version line of ngspice, e.g. ``"ngspice-39"`` (``"ngspice"`` if not reported)."""
    exe = find_ngspice(ngspice)
    try:
        proc = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SpiceError(f"ngspice: cannot run {exe!r}: {exc}") from None
    for line in (proc.stdout or "").splitlines():
        for word in line.replace("*", " ").split():
            if word.lower().startswith("ngspice-"):
                return word
    return "ngspice"


def read_rawfile(path):
    """Read the first plot of a SPICE raw file (binary or ASCII, real values).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    dict of str to numpy.ndarray
        Lower-case vector name (``v(r_0_1)``, ``i(vsense_0)``) to its values, one
        per point (one point for an operating point).

    Raises
    ------
    SpiceError
        If the file is not a raw file this reader understands.
    """
    with open(path, "rb") as handle:
        data = handle.read()
    pos = 0
    header = {}
    names = []
    mode = None
    while pos < len(data):
        end = data.find(b"\n", pos)
        if end < 0:
            raise SpiceError(f"{path}: raw file ends inside its header")
        line = data[pos:end].decode("latin-1").rstrip("\r")
        pos = end + 1
        if line.strip() in ("Binary:", "Values:"):
            mode = line.strip()[:-1]
            break
        if line.startswith("Variables:"):
            try:
                count = int(header["no. variables"])
            except (KeyError, ValueError):
                raise SpiceError(f"{path}: 'No. Variables' missing before 'Variables:'") from None
            for _ in range(count):
                end = data.find(b"\n", pos)
                if end < 0:
                    raise SpiceError(f"{path}: raw file ends inside its variable list")
                fields = data[pos:end].decode("latin-1").split()
                pos = end + 1
                if len(fields) < 2:
                    raise SpiceError(f"{path}: bad variable line {fields!r}")
                names.append(fields[1].lower())
            continue
        if ":" in line:
            key, _, value = line.partition(":")
            header[key.strip().lower()] = value.strip()
    if mode is None:
        raise SpiceError(f"{path}: no 'Binary:' or 'Values:' section")
    flags = header.get("flags", "").lower().split()
    if "complex" in flags:
        raise SpiceError(f"{path}: complex data; an operating point is real")
    try:
        npoints = int(header["no. points"])
    except (KeyError, ValueError):
        raise SpiceError(f"{path}: 'No. Points' missing") from None
    nvars = len(names)
    if nvars == 0:
        raise SpiceError(f"{path}: no variables")
    if mode == "Binary":
        need = npoints * nvars * 8
        if len(data) - pos < need:
            raise SpiceError(f"{path}: binary section has {len(data) - pos} bytes, expected {need}")
        values = np.frombuffer(data, dtype="<f8", count=npoints * nvars, offset=pos)
    else:
        tokens = data[pos:].decode("latin-1").split()
        # Each point: its index, then nvars values.
        per = nvars + 1
        if len(tokens) < npoints * per:
            raise SpiceError(f"{path}: ASCII section has {len(tokens)} numbers, expected {npoints * per}")
        try:
            table = np.array([float(t) for t in tokens[: npoints * per]]).reshape(npoints, per)
        except ValueError as exc:
            raise SpiceError(f"{path}: bad number in ASCII values: {exc}") from None
        values = table[:, 1:]
    values = np.asarray(values, dtype=np.float64).reshape(npoints, nvars)
    return {name: values[:, k].copy() for k, name in enumerate(names)}


def run_ngspice(netlist, workdir, ngspice=None, timeout=None):
    """Run ngspice in batch mode on a netlist and return its operating point.

    Parameters
    ----------
    netlist : str
        Netlist text (with an ``.op`` analysis).
    workdir : str
        Existing folder for the netlist, raw file and log.
    ngspice : str, optional
        Executable (see :func:`find_ngspice`).
    timeout : float, optional
        Seconds before ngspice is stopped.

    Returns
    -------
    dict of str to float
        Lower-case vector names to values.

    Raises
    ------
    SpiceError
        If ngspice fails, times out or writes no operating point.
    """
    exe = find_ngspice(ngspice)
    cir = os.path.join(workdir, "crossbar.cir")
    raw = os.path.join(workdir, "crossbar.raw")
    with open(cir, "w", encoding="ascii") as handle:
        handle.write(netlist)
    env = dict(os.environ)
    env.pop("SPICE_ASCIIRAWFILE", None)
    try:
        proc = subprocess.run(
            [exe, "-b", "-r", raw, cir], cwd=workdir, env=env, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise SpiceError(f"ngspice: no result within {timeout} s") from None
    log = (proc.stdout or "") + (proc.stderr or "")
    failed = proc.returncode != 0 or not os.path.exists(raw)
    lowered = log.lower()
    for marker in ("singular matrix", "no convergence", "timestep too small", "error:",
                   "gmin stepping failed", "source stepping failed"):
        if marker in lowered:
            failed = True
    if failed:
        tail = "\n".join(log.strip().splitlines()[-15:])
        raise SpiceError(f"ngspice failed (exit code {proc.returncode}):\n{tail}")
    table = read_rawfile(raw)
    return {name: float(vals[0]) for name, vals in table.items()}


@dataclass
class SpiceResult:
    """An ngspice operating point of a crossbar.

    Attributes
    ----------
    I : numpy.ndarray, shape (N,)
        Output currents in A (through ``r_sink[j]`` into 0 V).
    V_row, V_col : numpy.ndarray, shape (M, N)
        Row and column node voltages in V.
    seconds : float
        Wall time of the ngspice run.
    """

    I: np.ndarray
    V_row: np.ndarray
    V_col: np.ndarray
    seconds: float


def spice_operating_point(crossbar, V, ngspice=None, timeout=None, keep_dir=None):
    """Solve one input of ``crossbar`` with ngspice.

    Parameters
    ----------
    crossbar : Crossbar
    V : array_like, shape (M,) or (1, M)
        Row driver voltages in volts.
    ngspice : str, optional
        Executable.
    timeout : float, optional
        Seconds.
    keep_dir : str, optional
        Existing folder to run in (its netlist and raw file are kept); default a
        temporary folder that is removed.

    Returns
    -------
    SpiceResult
    """
    from xbarref.io.netlist import netlist_text, node_arrays

    M, N = crossbar.shape
    text = netlist_text(crossbar, V)
    start = time.perf_counter()
    if keep_dir is not None:
        values = run_ngspice(text, keep_dir, ngspice=ngspice, timeout=timeout)
    else:
        with tempfile.TemporaryDirectory(prefix="xbarref-spice-") as tmp:
            values = run_ngspice(text, tmp, ngspice=ngspice, timeout=timeout)
    seconds = time.perf_counter() - start
    try:
        I, V_row, V_col = node_arrays(values, M, N)
    except XbarrefError as exc:
        raise SpiceError(f"ngspice output incomplete: {exc}") from None
    return SpiceResult(I=I, V_row=V_row, V_col=V_col, seconds=seconds)


def relative_difference(actual, reference):
    """``max |actual - reference| / max |reference|`` (0 when both are all zero).

    Parameters
    ----------
    actual, reference : array_like, same shape

    Returns
    -------
    float
        ``inf`` if ``reference`` is all zero and ``actual`` is not.
    """
    a = np.asarray(actual, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    if a.shape != r.shape:
        raise XbarrefError(f"actual: shape {a.shape} differs from reference shape {r.shape}")
    diff = float(np.max(np.abs(a - r))) if a.size else 0.0
    scale = float(np.max(np.abs(r))) if r.size else 0.0
    if scale == 0.0:
        return 0.0 if diff == 0.0 else float("inf")
    return diff / scale


@dataclass
class CheckRow:
    """One input of :func:`spice_check`.

    Attributes
    ----------
    index : int
        Input number (row of ``V``).
    rel_I : float
        ``max_j |I - I_spice| / max_j |I_spice|``.
    rel_nodes : float
        The same over all row and column node voltages (scale: max node voltage).
    seconds_spice : float
        ngspice wall time.
    """

    index: int
    rel_I: float
    rel_nodes: float
    seconds_spice: float


def spice_circuit(crossbar, V, tol=None):
    """The circuit given to ngspice: ``crossbar`` with the resistances xbarref solves as
    exact shorts (:func:`xbarref.circuit.solve.conditioned`) written as ideal shorts.

    A resistance that small (1e-16 ohm wires next to 1e-4 S devices) is below what
    ngspice's own float64 solve resolves; xbarref treats it as a short, moving no node
    voltage by more than 1e-3 of ``tol`` of the voltage range, and ngspice is given
    the same rule so that the comparison checks the solution, not ngspice's rounding.

    Returns
    -------
    crossbar : Crossbar
    shorted : int
        How many resistances were replaced by shorts.
    """
    from xbarref.circuit.grid import TOL
    from xbarref.circuit.solve import conditioned

    cond, _, _, changes = conditioned(crossbar, check_inputs(V, crossbar.shape[0]),
                                      TOL if tol is None else tol)
    if not changes["shorted"]:
        return crossbar, 0
    fields = {}
    for name in ("r_source", "r_sink", "r_wire_row", "r_wire_col"):
        r = getattr(crossbar, name)
        shorted = (np.asarray(getattr(cond, name)) == 0) & (r > 0)
        if shorted.any():
            fields[name] = np.where(shorted, 0.0, r)
    return crossbar.replace(**fields), int(changes["shorted"])


def spice_check(crossbar, V, inputs=None, ngspice=None, timeout=None, solution=None):
    """Compare xbarref's solution of ``crossbar`` with ngspice, input by input.

    Parameters
    ----------
    crossbar : Crossbar
    V : array_like, shape (B, M) or (M,)
        Input voltages in volts.
    inputs : sequence of int, optional
        Which inputs (rows of ``V``) to check; default all.
    ngspice : str, optional
        Executable.
    timeout : float, optional
        Seconds per ngspice run.
    solution : CrossbarSolution, optional
        xbarref's solution of all of ``V`` with node voltages; solved here if None.

    Returns
    -------
    list of CheckRow

    Resistances xbarref solves as exact shorts are given to ngspice as shorts too
    (:func:`spice_circuit`).
    """
    if not isinstance(crossbar, Crossbar):
        raise XbarrefError(f"crossbar: expected a Crossbar, got {type(crossbar).__name__}")
    V = check_inputs(V, crossbar.shape[0])
    B = V.shape[0]
    if inputs is None:
        inputs = range(B)
    inputs = [int(k) for k in inputs]
    for k in inputs:
        if not 0 <= k < B:
            raise XbarrefError(f"inputs: input {k} out of range, the case has {B} input(s) (0..{B - 1})")
    if solution is None or solution.V_row is None:
        from xbarref.circuit import solve

        solution = solve(crossbar, V[inputs], nodes=True)
        rows = {k: n for n, k in enumerate(inputs)}
    else:
        rows = {k: k for k in inputs}
    out = []
    spice_xb, _ = spice_circuit(crossbar, V)
    for k in inputs:
        ref = spice_operating_point(spice_xb, V[k], ngspice=ngspice, timeout=timeout)
        n = rows[k]
        rel_I = relative_difference(solution.I[n], ref.I)
        rel_nodes = relative_difference(
            np.concatenate([solution.V_row[n].ravel(), solution.V_col[n].ravel()]),
            np.concatenate([ref.V_row.ravel(), ref.V_col.ravel()]),
        )
        out.append(CheckRow(index=k, rel_I=rel_I, rel_nodes=rel_nodes, seconds_spice=ref.seconds))
    return out
