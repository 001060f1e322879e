"""Argument checks shared by every package; each error message names the argument.

check_rng(rng, name="rng")           an explicit ``numpy.random.Generator`` (the one check)
check_number(name, value, lo=, hi=)  a finite float inside bounds
check_int(name, value, lo=, hi=)     an int inside bounds
env_limit(variable, default)         a size limit (int >= 1) from an environment variable
"""

from __future__ import annotations

import math
import os

import numpy as np

from xbarref.errors import XbarrefError

__all__ = ["check_rng", "check_number", "check_int", "env_limit"]


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
    if isinstance(value, (bool, np.bool_, str, bytes)):
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


def env_limit(variable, default):
    """A positive integer limit from the environment variable ``variable``.

    Parameters
    ----------
    variable : str
        Name of the environment variable, e.g. ``"XBARREF_MAX_CELLS"``.
    default : int
        The limit when the variable is unset or blank.

    Returns
    -------
    int
        ``int(float(text))`` of the variable's text (so ``"1e6"`` is accepted), or ``default``.

    Raises
    ------
    XbarrefError
        If the text is not a number or is below 1; the message names the variable.
    """
    text = os.environ.get(variable)
    if text is None or not text.strip():
        return default
    try:
        value = int(float(text))
    except ValueError:
        raise XbarrefError(f"{variable}: must be a positive number, got {text!r}") from None
    if value < 1:
        raise XbarrefError(f"{variable}: must be >= 1, got {text!r}")
    return value
