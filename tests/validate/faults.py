"""Deliberately wrong circuit models: each is the exact solver run on a circuit changed in
one way, the kind of mistake a simulator author makes. Used to check that the diagnosis
names each injected fault."""

import numpy as np

from xbarref.circuit import solve


def _exact(xb, V):
    return solve(xb, V, method="direct" if xb.is_linear else "auto").I


def exact(xb, V):
    return _exact(xb, V)


def source_ignored(xb, V):
    """Missing terminal resistance: the drivers are ideal."""
    return _exact(xb.replace(r_source=0.0), V)


def sink_ignored(xb, V):
    """The sense amplifiers' input (sink) resistance is left out."""
    return _exact(xb.replace(r_sink=0.0), V)


def terminals_swapped(xb, V):
    """Misplaced terminal resistances: the source resistance is put at the column (sink) end
    and the sink resistance at the drivers (mean values, so any shape works)."""
    return _exact(xb.replace(r_source=float(np.mean(xb.r_sink)), r_sink=float(np.mean(xb.r_source))), V)


def extra_column_segment(xb, V):
    """Wrong segment count: each column has one more wire segment, between the last row and
    the sense amplifier (M segments instead of M - 1)."""
    if xb.shape[0] < 2:
        return _exact(xb, V)
    return _exact(xb.replace(r_sink=xb.r_sink + xb.r_wire_col[-1]), V)


def row_wires_half(xb, V):
    """Scaled wires: the row wire resistance is halved (per-unit-length mix-up)."""
    return _exact(xb.replace(r_wire_row=0.5 * xb.r_wire_row), V)


def sense_at_top(xb, V):
    """Transposed orientation: the columns are read at row 0 instead of below row M - 1."""
    flipped = xb.replace(G=xb.G[::-1], r_source=xb.r_source[::-1], r_wire_row=xb.r_wire_row[::-1],
                         r_wire_col=xb.r_wire_col[::-1])
    return _exact(flipped, V[:, ::-1])


def linear_device(xb, V):
    """Wrong device law: every device is taken as linear."""
    if xb.is_linear:
        return _exact(xb, V)
    return _exact(xb.replace(device="linear", sinh_k=None), V)


def scalar_source(xb, V):
    """Per-row source resistances ignored: every row gets their mean."""
    return _exact(xb.replace(r_source=float(np.mean(xb.r_source))), V)


#: name -> (candidate function, (part, kind) the diagnosis must report)
FAULTS = {
    "source_ignored": (source_ignored, ("source", "ignored")),
    "sink_ignored": (sink_ignored, ("sink", "ignored")),
    "terminals_swapped": (terminals_swapped, ("source", "misplaced")),
    "extra_column_segment": (extra_column_segment, ("column wires", "extra segment")),
    "row_wires_half": (row_wires_half, ("row wires", "scaled")),
    "sense_at_top": (sense_at_top, ("orientation", "flipped")),
    "linear_device": (linear_device, ("device", "law")),
    "scalar_source": (scalar_source, ("source", "per-line")),
}
