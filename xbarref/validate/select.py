"""Sub-suites: the cases of a suite that a candidate can express.

:func:`select_cases` keeps the cases of a suite that pass every given filter (device
law, largest dimension, scalar resistances only, case group, probe cases only); the
kept cases are unchanged (same names, circuits, inputs, exact outputs and provenance),
so a candidate made for the sub-suite compares with it exactly as with the full suite.
``xbarref golden select`` writes the result with :func:`xbarref.validate.suite.write_suite`.

Public API: :func:`select_cases`, :func:`is_scalar_case`.
"""

from __future__ import annotations

import numpy as np

from xbarref.errors import XbarrefError
from xbarref.validate.suite import Suite

__all__ = ["select_cases", "is_scalar_case"]


def is_scalar_case(crossbar):
    """True when every resistance of the crossbar is one value (what a scalar-only
    simulator can express): each of ``r_source``, ``r_sink``, ``r_wire_row``,
    ``r_wire_col`` has all its elements equal."""
    for name in ("r_source", "r_sink", "r_wire_row", "r_wire_col"):
        a = getattr(crossbar, name)
        if a.size and np.any(a != a.flat[0]):
            return False
    return True


def select_cases(suite, device=None, max_size=None, scalar_only=False, groups=None, probes_only=False):
    """The sub-suite of the cases that pass every filter.

    Parameters
    ----------
    suite : Suite
    device : {"linear", "sinh"}, optional
        Keep only this device law.
    max_size : int, optional
        Keep cases with max(M, N) <= max_size.
    scalar_only : bool
        Keep cases whose every resistance is a single value (:func:`is_scalar_case`).
    groups : iterable of str, optional
        Keep cases of these generator groups (``generator_params["group"]``).
    probes_only : bool
        Keep only the diagnostic probes.

    Returns
    -------
    Suite
        Same preset, seed and cases (in order); ``generator`` records the selection.

    Raises
    ------
    XbarrefError
        Bad filter values, or no case left.
    """
    if not isinstance(suite, Suite):
        raise XbarrefError(f"suite: expected a Suite, got {type(suite).__name__}")
    if device is not None and device not in ("linear", "sinh"):
        raise XbarrefError(f"device: expected 'linear' or 'sinh', got {device!r}")
    if max_size is not None and (isinstance(max_size, bool) or int(max_size) != max_size or max_size < 1):
        raise XbarrefError(f"max_size: expected an integer >= 1, got {max_size!r}")
    groups = None if groups is None else set(groups)
    known = {str(c.params.get("group", "")) for c in suite.cases}
    if groups is not None and not groups <= known:
        raise XbarrefError(f"groups: no case of group(s) {sorted(groups - known)}; the suite has {sorted(known)}")
    kept = []
    for sc in suite.cases:
        xb = sc.case.crossbar
        dev = "linear" if xb.is_linear else str(xb.device)
        if device is not None and dev != device:
            continue
        if max_size is not None and max(xb.shape) > max_size:
            continue
        if scalar_only and not is_scalar_case(xb):
            continue
        if groups is not None and str(sc.params.get("group", "")) not in groups:
            continue
        if probes_only and not sc.params.get("probe"):
            continue
        kept.append(sc)
    if not kept:
        raise XbarrefError("select: no case of the suite passes the filters")
    what = []
    if device is not None:
        what.append(f"--device {device}")
    if max_size is not None:
        what.append(f"--max-size {int(max_size)}")
    if scalar_only:
        what.append("--scalar-only")
    if groups is not None:
        what += [f"--group {g}" for g in sorted(groups)]
    if probes_only:
        what.append("--probes-only")
    generator = f"{suite.generator} | golden select {' '.join(what)}".strip()
    return Suite(cases=kept, preset=suite.preset, seed=suite.seed, generator=generator)
