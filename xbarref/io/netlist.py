"""SPICE netlists of a crossbar, for ngspice (or any SPICE with B sources).

A netlist describes one operating point: the crossbar of
``docs/formats.md`` driven by one input vector. Node names map back to
the circuit (see ``docs/formats.md``):

=============  =========================================================
node           meaning
=============  =========================================================
``in_<i>``     output of the ideal driver of row ``i`` (``V[i]``)
``r_<i>_<j>``  row node ``r(i, j)``
``c_<i>_<j>``  column node ``c(i, j)``
``s_<j>``      node between the sense source and ``r_sink[j]``
``0``          ground (0 V, the virtual ground of the sense amplifier)
=============  =========================================================

Elements: ``VIN_<i>`` are the row drivers. A resistance is a resistor
(``RSRC_<i>``, ``RROW_<i>_<j>``, ``RCOL_<i>_<j>``, ``RSNK_<j>``) unless it is exactly
0, when it is a 0 V voltage source of the same suffix (``VSRC_``, ``VROW_``,
``VCOL_``), an ideal short, never a tiny resistor. ``VSENSE_<j>`` is a 0 V source
in series with ``r_sink[j]`` from ``c_<M-1>_<j>`` (to ``s_<j>``, or straight to
ground when ``r_sink[j] == 0``); its branch current ``i(vsense_<j>)`` is the output
current ``I[j]``, positive into 0 V. A linear device is the resistor
``RD_<i>_<j>`` of ``1/G``; a ``sinh`` device is the behavioural current source
``BD_<i>_<j> r_<i>_<j> c_<i>_<j> I = G*sinh(k*(v(r)-v(c)))/k``; a device with
``G == 0`` is an open cell and has no element.

Public functions: :func:`netlist_text`, :func:`write_netlist`,
:func:`parse_node_name`.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile

import numpy as np

from xbarref.circuit.crossbar import Crossbar, check_inputs
from xbarref.errors import XbarrefError

__all__ = ["netlist_text", "write_netlist", "parse_node_name", "SPICE_OPTIONS"]

#: ``.options`` line of ngspice's Newton convergence test: a step must change every node
#: voltage by less than ``reltol * |v| + vntol`` (V) and every branch current by less than
#: ``reltol * |i| + abstol`` (A). Newton converges quadratically, so the last step bounds
#: the error far below the 1e-9 agreement the checks ask for. Tighter absolute values
#: (vntol 1e-15, abstol 1e-18) are below the rounding noise of the currents through the
#: 0 V sources of a 40 x 40 sinh crossbar: ngspice then never meets its test, falls back
#: to gmin and source stepping and needs minutes (measured with ngspice 39).
SPICE_OPTIONS = ".options reltol=1e-12 vntol=1e-12 abstol=1e-15"

_NODE_RE = re.compile(r"^(r|c)_(\d+)_(\d+)$|^(in|s)_(\d+)$")


def _num(x):
    """A float written with 17 significant digits: read back bit for bit."""
    return repr(float(x))


def parse_node_name(name):
    """Map a netlist node name back to the circuit.

    Parameters
    ----------
    name : str
        Node name as written by :func:`netlist_text` (case-insensitive, as ngspice
        lower-cases names), optionally wrapped as ``v(...)``.

    Returns
    -------
    tuple
        ``("row", i, j)``, ``("col", i, j)``, ``("in", i)`` or ``("sink", j)``.

    Raises
    ------
    XbarrefError
        If ``name`` is not a crossbar node name.

    Examples
    --------
    >>> parse_node_name("r_3_5")
    ('row', 3, 5)
    >>> parse_node_name("V(C_0_2)")
    ('col', 0, 2)
    """
    text = name.strip().lower()
    if text.startswith("v(") and text.endswith(")"):
        text = text[2:-1]
    m = _NODE_RE.match(text)
    if m is None:
        raise XbarrefError(f"name: {name!r} is not a crossbar node name")
    if m.group(1):
        kind = "row" if m.group(1) == "r" else "col"
        return (kind, int(m.group(2)), int(m.group(3)))
    return ("in" if m.group(4) == "in" else "sink", int(m.group(5)))


def _two_terminal(lines, suffix, n1, n2, resistance):
    """A resistor, or a 0 V source (ideal short) when the resistance is exactly 0."""
    if resistance == 0.0:
        lines.append(f"V{suffix} {n1} {n2} DC 0")
    else:
        lines.append(f"R{suffix} {n1} {n2} {_num(resistance)}")


def netlist_text(crossbar, V, title=None):
    """The ngspice netlist of ``crossbar`` driven by one input vector.

    Parameters
    ----------
    crossbar : Crossbar
        Linear or ``sinh`` device (a user-defined device has no netlist form).
    V : array_like, shape (M,) or (1, M)
        Row driver voltages in volts.
    title : str, optional
        First line of the netlist (a SPICE netlist's first line is its title).

    Returns
    -------
    str
        The netlist, with an ``.options`` line of tight tolerances
        (:data:`SPICE_OPTIONS`) and an ``.op`` analysis.

    Raises
    ------
    XbarrefError
        For a bad ``V`` (wrong shape, not finite, more than one input vector) or a
        device that cannot be written.
    """
    if not isinstance(crossbar, Crossbar):
        raise XbarrefError(f"crossbar: expected a Crossbar, got {type(crossbar).__name__}")
    M, N = crossbar.shape
    V = check_inputs(V, M)
    if V.shape[0] != 1:
        raise XbarrefError(f"V: a netlist takes one input vector, got a batch of {V.shape[0]}")
    V = V[0]
    if crossbar.is_linear:
        k = None
    elif crossbar.device == "sinh":
        k = crossbar.sinh_k
    else:
        raise XbarrefError(
            f"crossbar.device: {type(crossbar.device).__name__} has no netlist form; "
            "only 'linear' and 'sinh' devices can be written"
        )
    G = crossbar.G
    if title is None:
        title = f"xbarref crossbar {M} x {N}, device {crossbar.device}"
    title = " ".join(str(title).split()) or "xbarref crossbar"
    lines = [title if not title.startswith(("*", ".")) else "xbarref " + title]
    lines.append(f"* rows M = {M}, columns N = {N}; node names: in_i, r_i_j, c_i_j, s_j")
    lines.append("* output current I[j] = i(vsense_j), positive into 0 V")
    lines.append("* row drivers and source resistances")
    for i in range(M):
        lines.append(f"VIN_{i} in_{i} 0 DC {_num(V[i])}")
        _two_terminal(lines, f"SRC_{i}", f"in_{i}", f"r_{i}_0", crossbar.r_source[i])
    lines.append("* row wires")
    for i in range(M):
        for j in range(N - 1):
            _two_terminal(lines, f"ROW_{i}_{j}", f"r_{i}_{j}", f"r_{i}_{j + 1}",
                          crossbar.r_wire_row[i, j])
    lines.append("* column wires")
    for i in range(M - 1):
        for j in range(N):
            _two_terminal(lines, f"COL_{i}_{j}", f"c_{i}_{j}", f"c_{i + 1}_{j}",
                          crossbar.r_wire_col[i, j])
    lines.append("* sense sources (0 V, measure I[j]) and sink resistances")
    for j in range(N):
        r = crossbar.r_sink[j]
        if r == 0.0:
            lines.append(f"VSENSE_{j} c_{M - 1}_{j} 0 DC 0")
        else:
            lines.append(f"VSENSE_{j} c_{M - 1}_{j} s_{j} DC 0")
            lines.append(f"RSNK_{j} s_{j} 0 {_num(r)}")
    lines.append("* devices (G == 0: open cell, no element)")
    for i in range(M):
        for j in range(N):
            g = G[i, j]
            if g == 0.0:
                continue
            r, c = f"r_{i}_{j}", f"c_{i}_{j}"
            if k is None:
                lines.append(f"RD_{i}_{j} {r} {c} {_num(1.0 / g)}")
            else:
                lines.append(f"BD_{i}_{j} {r} {c} I = {_num(g)}*sinh({_num(k)}*(v({r})-v({c})))"
                             f"/{_num(k)}")
    lines.append(SPICE_OPTIONS)
    lines.append(".op")
    lines.append(".end")
    return "\n".join(lines) + "\n"


def write_netlist(crossbar, V, path, title=None):
    """Write the ngspice netlist of ``crossbar`` driven by ``V`` to ``path``.

    The file is written to a temporary file in the same folder and renamed.

    Parameters
    ----------
    crossbar : Crossbar
    V : array_like, shape (M,) or (1, M)
        Row driver voltages in volts.
    path : str or os.PathLike
        Destination, usually ``*.cir``.
    title : str, optional
        Title line.

    Returns
    -------
    str
        ``path``.

    See Also
    --------
    netlist_text : the text written, with the node naming.
    """
    text = netlist_text(crossbar, V, title=title)
    path = os.fspath(path)
    if os.path.isdir(path):
        raise XbarrefError(f"path: {path!r} is a directory")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise XbarrefError(f"path: folder {folder!r} of {path!r} does not exist")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(text)
        mask = os.umask(0o022)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def node_arrays(values, M, N):
    """Collect node voltages and sense currents from ``{name: value}`` (ngspice names).

    Parameters
    ----------
    values : dict of str to float
        Lower-case vector names as ngspice writes them: ``v(r_i_j)`` or ``r_i_j`` for
        node voltages, ``i(vsense_j)`` for sense currents.
    M, N : int
        Crossbar shape.

    Returns
    -------
    I : numpy.ndarray, shape (N,)
        Output currents in A.
    V_row, V_col : numpy.ndarray, shape (M, N)
        Row and column node voltages in V.

    Raises
    ------
    XbarrefError
        If a node or sense current is missing from ``values``.
    """
    V_row = np.full((M, N), np.nan)
    V_col = np.full((M, N), np.nan)
    I = np.full(N, np.nan)
    for name, value in values.items():
        key = name.lower()
        if key.startswith("i(vsense_") and key.endswith(")"):
            j = key[len("i(vsense_"):-1]
            if j.isdigit() and int(j) < N:
                I[int(j)] = value
            continue
        if key.startswith("i("):
            continue
        try:
            node = parse_node_name(key)
        except XbarrefError:
            continue
        if node[0] in ("row", "col") and node[1] < M and node[2] < N:
            (V_row if node[0] == "row" else V_col)[node[1], node[2]] = value
    for label, arr in (("i(vsense_j)", I), ("v(r_i_j)", V_row), ("v(c_i_j)", V_col)):
        if np.isnan(arr).any():
            where = tuple(int(k) for k in np.argwhere(np.isnan(arr))[0])
            raise XbarrefError(f"values: {label} missing at index {where}")
    return I, V_row, V_col
