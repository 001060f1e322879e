"""Argument checks of the device models (conductance arrays, read counts); the generic
ones (:mod:`xbarref.checks`) are re-exported for the modules of this package."""

from __future__ import annotations

import numpy as np

from xbarref.checks import check_int, check_number, check_rng
from xbarref.errors import XbarrefError

__all__ = ["check_conductances", "check_reads", "check_int", "check_number", "check_rng"]


def check_conductances(name, G):
    """Return ``G`` as a float64 array, finite and >= 0 (siemens)."""
    try:
        arr = np.asarray(G, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise XbarrefError(f"{name}: cannot be read as an array of floats ({exc})") from None
    if not np.all(np.isfinite(arr)):
        raise XbarrefError(f"{name}: conductances must be finite")
    if np.any(arr < 0):
        raise XbarrefError(f"{name}: conductances must be >= 0 S, found {arr.min()}")
    return arr


def check_reads(reads):
    """``None`` (one read, no extra axis) or a positive number of reads."""
    if reads is None:
        return None
    return check_int("reads", reads, lo=1)
