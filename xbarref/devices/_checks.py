"""Small argument checks shared by the device models (messages name the argument)."""

from __future__ import annotations

import math

import numpy as np

from xbarref.errors import XbarrefError


def check_rng(rng, name="rng"):
    """Require an explicit ``numpy.random.Generator``."""
    if not isinstance(rng, np.random.Generator):
        raise XbarrefError(
            f"{name}: expected a numpy.random.Generator (e.g. numpy.random.default_rng(seed)), "
            f"got {type(rng).__name__}"
        )
    return rng


def check_number(name, value, *, lo=None, hi=None, lo_open=False, hi_open=False, unit=""):
    """Return ``value`` as a finite float inside the given bounds, or raise naming ``name``."""
    if isinstance(value, bool):
        raise XbarrefError(f"{name}: must be a number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise XbarrefError(f"{name}: must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise XbarrefError(f"{name}: must be finite, got {v}")
    u = f" {unit}" if unit else ""
    if lo is not None and (v < lo or (lo_open and v == lo)):
        raise XbarrefError(f"{name}: must be {'>' if lo_open else '>='} {lo}{u}, got {v}")
    if hi is not None and (v > hi or (hi_open and v == hi)):
        raise XbarrefError(f"{name}: must be {'<' if hi_open else '<='} {hi}{u}, got {v}")
    return v


def check_int(name, value, *, lo=None, hi=None):
    """Return ``value`` as an int inside ``[lo, hi]``, or raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise XbarrefError(f"{name}: must be an integer, got {value!r}")
    v = int(value)
    if lo is not None and v < lo:
        raise XbarrefError(f"{name}: must be >= {lo}, got {v}")
    if hi is not None and v > hi:
        raise XbarrefError(f"{name}: must be <= {hi}, got {v}")
    return v


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
