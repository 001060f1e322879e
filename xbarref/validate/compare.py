"""Compare a candidate simulator with a golden suite, case by case.

For a case with exact outputs ``I`` (A), ideal outputs ``I0 = V @ G`` and candidate
outputs ``P`` (all (B, N)), :func:`case_metrics` computes

``max_rel_error``
    ``max |P - I| / max |I|``: the worst output error relative to the case's full-scale
    current (the largest exact output magnitude). This is the figure the tolerance
    applies to. (An all-zero ``I`` gives 0 if ``P`` is all zero, else ``inf``.)
``nrmse``
    ``||P - I||_2 / ||I||_2`` over all outputs of the case (root-mean-square error
    normalized by the root-mean-square exact output).
``nf_error``
    Error in the non-ideality factor ``NF = (I0 - I) / I0``:
    ``max |NF_P - NF_I| = max |P - I| / |I0|`` over the outputs with
    ``|I0| >= NF_FLOOR * max |I0|``. Outputs whose ideal current is (near) zero are
    left out, because there the non-ideality factor is undefined (bipolar inputs and
    differential columns cancel); ``nf_excluded`` counts them. NaN when every output
    is excluded.
``slope``, ``correlation``
    How well the candidate predicts the deviation from ideal: with the true
    deviation ``d = I - I0`` and the predicted ``q = P - I0`` (flattened),
    ``slope = sum(q d) / sum(d d)`` (least squares through the origin: 1 is the right
    magnitude, 0.5 predicts half of the IR drop) and ``correlation`` is Pearson's
    ``r`` of ``q`` and ``d``. Both are NaN when the true deviation is zero (an ideal
    case: no wire, source or sink resistance and a linear device), or below
    ``1e-12 max|I|`` (rounding); such cases are judged on ``max_rel_error`` alone.

A candidate may have no answer for some inputs of a case (a row of NaN, see
``docs/suite-format.md``): the metrics are then over the inputs it answered, and the case
``status`` is ``partial``; a case with no answered input is ``not run`` (its metrics are
NaN). Neither counts as passed. Each case also carries the error of the ideal model
``V @ G`` (``ideal_error``) and the flag ``worse_than_ideal`` (above the tolerance and
above ``ideal_error``), its resistances, conductance range, device and input kind, and
a one-line ``reason`` (:func:`case_reason`).

The overall summary has the worst case of each error, the number of cases above the
tolerance, the slope and correlation pooled over all cases with the deviations of
each case divided by its full-scale ideal current ``max |I0|`` (so large and small
crossbars count alike; the cases with the largest relative deviation dominate them),
and the medians over cases of the per-case slope and correlation.

Public API: :class:`CaseMetrics`, :class:`Comparison`, :func:`case_metrics`,
:func:`compare_outputs`, :func:`run_candidate`, :func:`compare_files`, :func:`case_reason`,
:func:`describe_values`,
:data:`DEFAULT_TOL`, :data:`NF_FLOOR`.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field

import numpy as np

from xbarref.errors import XbarrefError

__all__ = ["CaseMetrics", "Comparison", "case_metrics", "compare_outputs", "run_candidate",
           "compare_files", "case_reason", "describe_values", "DEFAULT_TOL", "NF_FLOOR"]

#: Default tolerance on max_rel_error.
DEFAULT_TOL = 1e-3
#: Outputs with |I_ideal| below this fraction of the case's max |I_ideal| have no NF.
NF_FLOOR = 1e-3
#: True deviations below this fraction of max|I| count as zero (no slope/correlation).
DEVIATION_FLOOR = 1e-12


@dataclass
class CaseMetrics:
    """Metrics of one case (see the module docstring for the definitions)."""

    name: str
    shape: tuple  # (M, N) of the crossbar when compared through a suite, else (B, N)
    max_rel_error: float
    nrmse: float
    nf_error: float
    nf_excluded: int
    slope: float
    correlation: float
    true_deviation: float
    r_wire: float = float("nan")
    g_max: float = float("nan")
    group: str = ""
    passed: bool = True
    seconds: float = float("nan")
    status: str = ""               # passed, failed, partial (some inputs without answer), not run
    answered: int = 0              # inputs the candidate answered
    inputs: int = 0                # inputs of the case
    ideal_error: float = float("nan")   # max relative error of the ideal model V @ G
    worse_than_ideal: bool = False
    resistances: dict = field(default_factory=dict)   # r_source, r_sink, r_wire_row, r_wire_col (ohm): text
    r_source: float = float("nan")  # max source resistance, ohm
    r_sink: float = float("nan")    # max sink resistance, ohm
    g_range: tuple = (float("nan"), float("nan"))     # (min, max) of the non-zero G, S
    device: str = ""
    input_kind: str = ""
    regime: str = ""
    reason: str = ""

    def as_row(self):
        return dict(name=self.name, M=self.shape[0], N=self.shape[1], max_rel_error=self.max_rel_error,
                    nrmse=self.nrmse, nf_error=self.nf_error, slope=self.slope,
                    correlation=self.correlation, true_deviation=self.true_deviation, passed=self.passed,
                    status=self.status, ideal_error=self.ideal_error, worse_than_ideal=self.worse_than_ideal,
                    **{k: v for k, v in self.resistances.items()}, g_range=self.g_range, device=self.device,
                    inputs=self.input_kind, reason=self.reason)


@dataclass
class Comparison:
    """A candidate compared with a suite.

    Attributes
    ----------
    cases : list of CaseMetrics
    tol : float
        Tolerance on ``max_rel_error``.
    candidate : str
        Who produced the candidate outputs.
    deviations : dict of str -> (ndarray, ndarray)
        Per case, the true and predicted deviations from ideal divided by the case's
        full-scale ideal current ``max|V @ G|`` (for the pooled figures and plots).
    """

    cases: list
    tol: float
    candidate: str = ""
    deviations: dict = field(default_factory=dict, repr=False)
    suite: object = field(default=None, repr=False)
    outputs: dict = field(default_factory=dict, repr=False)
    _diagnosis: object = field(default=None, repr=False)

    @property
    def failed(self):
        """Names of the cases above the tolerance (on the inputs the candidate answered)."""
        return [c.name for c in self.cases if c.status == "failed" or (not c.status and not c.passed)]

    @property
    def not_run(self):
        """Names of the cases with no answer at all (``not run``)."""
        return [c.name for c in self.cases if c.status == "not run"]

    @property
    def partial(self):
        """Names of the cases with an answer for some inputs only."""
        return [c.name for c in self.cases if c.status == "partial"]

    @property
    def complete(self):
        """True when the candidate answered every input of every case."""
        return not self.not_run and not self.partial

    @property
    def passed(self):
        """True when every case was answered in full and is within the tolerance."""
        return not self.failed and self.complete

    def worst(self):
        """The cases, worst first: failed by decreasing error, then partial, passed, not run."""
        def key(c):
            err = c.max_rel_error if not math.isnan(c.max_rel_error) else -1.0
            return (c.status == "not run", c.passed, -err)
        return sorted(self.cases, key=key)

    @property
    def diagnosis(self):
        """Attribution from the diagnostic probes (:func:`xbarref.validate.diagnose.diagnose`)."""
        if self._diagnosis is None:
            from xbarref.validate.diagnose import Diagnosis, diagnose

            if self.suite is None:
                self._diagnosis = Diagnosis(probes=[], findings=[], tol=self.tol)
            else:
                self._diagnosis = diagnose(self.suite, self.outputs, self.tol)
        return self._diagnosis

    def summary(self):
        """Overall figures as a dict (worst cases, pooled slope and correlation)."""
        def worst(attr):
            vals = [(getattr(c, attr), c.name) for c in self.cases if not math.isnan(getattr(c, attr))]
            return max(vals) if vals else (float("nan"), "")
        d = [v[0] for v in self.deviations.values()]
        q = [v[1] for v in self.deviations.values()]
        slope, corr = _slope_corr(np.concatenate(d) if d else np.zeros(0),
                                  np.concatenate(q) if q else np.zeros(0), 0.0)
        mre, mre_case = worst("max_rel_error")
        nrmse, nrmse_case = worst("nrmse")
        nf, nf_case = worst("nf_error")
        return dict(cases=len(self.cases), failed=len(self.failed), not_run=len(self.not_run),
                    partial=len(self.partial),
                    worse_than_ideal=sum(c.worse_than_ideal for c in self.cases), tol=self.tol,
                    max_rel_error=mre, max_rel_error_case=mre_case, nrmse=nrmse, nrmse_case=nrmse_case,
                    nf_error=nf, nf_error_case=nf_case,
                    median_max_rel_error=_nanmedian([c.max_rel_error for c in self.cases]),
                    slope=slope, correlation=corr,
                    median_slope=_nanmedian([c.slope for c in self.cases]),
                    median_correlation=_nanmedian([c.correlation for c in self.cases]))


def _nanmedian(values):
    vals = [v for v in values if not math.isnan(v)]
    return float(np.median(vals)) if vals else float("nan")


def _slope_corr(d, q, floor):
    d = np.ravel(d)
    q = np.ravel(q)
    if d.size == 0 or not np.max(np.abs(d)) > floor:
        return float("nan"), float("nan")
    slope = float(np.dot(q, d) / np.dot(d, d))
    if d.size < 2 or np.std(d) == 0 or np.std(q) == 0:
        corr = float("nan")
    else:
        corr = float(np.corrcoef(d, q)[0, 1])
    return slope, corr


def case_metrics(name, I_true, I_ideal, I_pred, tol=DEFAULT_TOL):
    """Metrics of one case.

    Parameters
    ----------
    name : str
    I_true, I_ideal, I_pred : array_like, shape (B, N)
        Exact, ideal (``V @ G``) and candidate output currents in A.
    tol : float
        Tolerance on ``max_rel_error`` (sets ``passed``).

    Returns
    -------
    CaseMetrics
    """
    from xbarref.validate.suite import no_answer_rows

    I = np.asarray(I_true, dtype=np.float64)
    I0 = np.asarray(I_ideal, dtype=np.float64)
    P = np.asarray(I_pred, dtype=np.float64)
    if P.shape != I.shape:
        raise XbarrefError(f"case {name}: candidate outputs have shape {P.shape}, the suite expects {I.shape}")
    if P.ndim == 2:
        missing = no_answer_rows(P, where=f"case {name}: candidate outputs")
    else:
        if not np.all(np.isfinite(P)):
            raise XbarrefError(f"case {name}: candidate outputs are not all finite")
        missing = np.zeros(0, bool)
    B = int(P.shape[0]) if P.ndim else 1
    if np.any(missing):
        keep_rows = ~missing
        if not np.any(keep_rows):
            nan = float("nan")
            return CaseMetrics(name=name, shape=I.shape, max_rel_error=nan, nrmse=nan, nf_error=nan,
                               nf_excluded=0, slope=nan, correlation=nan, true_deviation=nan, passed=False,
                               status="not run", answered=0, inputs=B)
        I, I0, P = I[keep_rows], I0[keep_rows], P[keep_rows]
    answered = B - int(np.count_nonzero(missing))
    err = np.abs(P - I)
    scale = float(np.max(np.abs(I))) if I.size else 0.0
    emax = float(np.max(err)) if err.size else 0.0
    if scale > 0:
        mre = emax / scale
    else:
        mre = 0.0 if emax == 0 else float("inf")
    norm = float(np.linalg.norm(I))
    enorm = float(np.linalg.norm(P - I))
    nrmse = enorm / norm if norm > 0 else (0.0 if enorm == 0 else float("inf"))
    a0 = np.abs(I0)
    keep = a0 >= NF_FLOOR * (float(a0.max()) if a0.size else 0.0)
    keep &= a0 > 0
    nf = float(np.max(err[keep] / a0[keep])) if np.any(keep) else float("nan")
    d = I - I0
    q = P - I0
    slope, corr = _slope_corr(d, q, DEVIATION_FLOOR * scale)
    true_dev = float(np.max(np.abs(d)) / scale) if scale > 0 else 0.0
    passed = bool(mre <= tol)
    if answered < B:
        status = "partial" if passed else "failed"
        passed = False
    else:
        status = "passed" if passed else "failed"
    ideal = float(np.max(np.abs(I0 - I)) / scale) if scale > 0 else 0.0
    return CaseMetrics(name=name, shape=I.shape, max_rel_error=mre, nrmse=nrmse, nf_error=nf,
                       nf_excluded=int(np.count_nonzero(~keep)), slope=slope, correlation=corr,
                       true_deviation=true_dev, passed=passed, status=status, answered=answered, inputs=B,
                       ideal_error=ideal, worse_than_ideal=bool(mre > tol and mre > ideal))


def describe_values(a, unit="ohm"):
    """A resistance or conductance array in words: ``"0"``, ``"30 ohm"`` or ``"1-5 ohm"``."""
    a = np.asarray(a, dtype=np.float64)
    if a.size == 0:
        return "-"
    lo, hi = float(a.min()), float(a.max())
    if hi == 0:
        return "0"
    if lo == hi:
        return f"{lo:.3g} {unit}"
    return f"{lo:.3g}-{hi:.3g} {unit}"


def case_reason(m, tol):
    """A one-line reason for a case's result (from its metrics)."""
    if m.status == "not run":
        return "no answer from the candidate (not run)"
    parts = []
    if m.status == "partial" or m.answered < m.inputs:
        parts.append(f"answered {m.answered} of {m.inputs} inputs")
    if m.max_rel_error <= tol:
        parts.insert(0, "within tolerance")
        return "; ".join(parts)
    if m.worse_than_ideal:
        parts.append(f"worse than the ideal V @ G ({m.max_rel_error:.2g} vs {m.ideal_error:.2g})")
    if math.isnan(m.slope):
        parts.append("wrong although there is no IR drop (device law or current summation)")
    elif abs(m.slope) < 0.02:
        parts.append("predicts no IR drop (no better than the ideal V @ G)")
    elif m.slope < 0.8:
        parts.append(f"predicts {m.slope:.2f} x the true IR drop (too little)")
    elif m.slope > 1.25:
        parts.append(f"predicts {m.slope:.2f} x the true IR drop (too much)")
    elif not math.isnan(m.correlation) and m.correlation < 0.9:
        parts.append(f"IR drop on the wrong outputs (correlation {m.correlation:.2f})")
    else:
        parts.append(f"about the right IR drop (slope {m.slope:.2f}) but off by {m.max_rel_error:.2g}")
    return "; ".join(parts)


def _check_tol(tol):
    try:
        tol = float(tol)
    except (TypeError, ValueError):
        raise XbarrefError(f"tol: expected a number, got {tol!r}") from None
    if not tol >= 0:
        raise XbarrefError(f"tol: expected a number >= 0, got {tol}")
    return tol


def _load_suite(suite):
    from xbarref.validate.suite import Suite, read_suite

    if isinstance(suite, Suite):
        return suite
    if isinstance(suite, (str, os.PathLike)):
        return read_suite(suite)
    raise XbarrefError(f"suite: expected a Suite or a path, got {type(suite).__name__}")


def compare_outputs(suite, outputs, tol=DEFAULT_TOL, candidate="", seconds=None, progress=None):
    """Compare candidate outputs (dict name -> (B, N) array) with a suite.

    ``progress(done, total)``, when given, is called after each case.

    Raises
    ------
    XbarrefError
        If a suite case is missing from ``outputs``, ``outputs`` has a case the suite
        does not, or a shape differs; the message names the case.
    """
    suite = _load_suite(suite)
    tol = _check_tol(tol)
    names = suite.names
    missing = [n for n in names if n not in outputs]
    if missing:
        raise XbarrefError(f"case {missing[0]}: no candidate outputs ({len(missing)} suite case(s) missing)")
    extra = [n for n in outputs if n not in set(names)]
    if extra:
        raise XbarrefError(f"case {extra[0]}: candidate has outputs for a case that is not in the suite")
    rows = []
    devs = {}
    for sc in suite.cases:
        case = sc.case
        xb = case.crossbar
        I0 = case.V @ xb.G
        m = case_metrics(sc.name, case.I, I0, outputs[sc.name], tol=tol)
        m.shape = tuple(case.shape)
        m.r_wire = float(max(np.max(xb.r_wire_row, initial=0.0), np.max(xb.r_wire_col, initial=0.0)))
        m.r_source = float(np.max(xb.r_source))
        m.r_sink = float(np.max(xb.r_sink))
        m.resistances = {k: describe_values(getattr(xb, k))
                         for k in ("r_source", "r_sink", "r_wire_row", "r_wire_col")}
        g = xb.G[xb.G > 0]
        m.g_range = (float(g.min()), float(g.max())) if g.size else (0.0, 0.0)
        m.g_max = float(sc.params.get("g_max", m.g_range[1]))
        m.device = "linear" if xb.is_linear else (f"sinh k={xb.sinh_k:g}" if xb.device == "sinh" else "user")
        m.input_kind = str(sc.params.get("inputs", ""))
        m.regime = str(sc.params.get("regime", ""))
        m.group = str(sc.params.get("group", ""))
        m.reason = case_reason(m, tol)
        if seconds is not None:
            m.seconds = float(seconds.get(sc.name, float("nan")))
        scale = float(np.max(np.abs(I0))) or 1.0
        P = np.asarray(outputs[sc.name], dtype=np.float64)
        answered = ~np.all(np.isnan(P), axis=1) if P.ndim == 2 else np.ones(1, bool)
        devs[sc.name] = ((case.I - I0)[answered].ravel() / scale, (P - I0)[answered].ravel() / scale)
        rows.append(m)
        if progress is not None:
            progress(len(rows), len(suite.cases))
    return Comparison(cases=rows, tol=tol, candidate=candidate, deviations=devs, suite=suite,
                      outputs=dict(outputs))


def run_candidate(suite, fn, tol=DEFAULT_TOL, name=None):
    """Run a user's simulator over a suite and compare it with the exact outputs.

    Parameters
    ----------
    suite : Suite or path
        A golden suite (:func:`xbarref.validate.suite.read_suite`).
    fn : callable
        ``fn(crossbar, V) -> I``: ``crossbar`` an :class:`xbarref.circuit.Crossbar`,
        ``V`` a (B, M) float64 array of input voltages (V); returns the (B, N) output
        currents (A). A row of NaN marks an input without an answer; raising
        ``NotImplementedError`` marks the whole case "not run".
    tol : float
        Tolerance on each case's ``max_rel_error``.
    name : str, optional
        Label of the candidate (default the function's name).

    Returns
    -------
    Comparison

    Raises
    ------
    XbarrefError
        If ``fn`` returns something that is not a (B, N) array of finite values and
        whole NaN rows; the message names the case.

    Examples
    --------
    The ideal model ``I = V @ G`` on the bundled suite (no IR drop at all):

    >>> import xbarref.data
    >>> from xbarref.validate import run_candidate, read_suite
    >>> suite = read_suite(xbarref.data.path("example_suite.h5"))
    >>> result = run_candidate(suite, lambda xb, V: V @ xb.G)
    >>> len(result.cases), result.summary()["max_rel_error"] > 0.1
    (16, True)
    """
    suite = _load_suite(suite)
    if not callable(fn):
        raise XbarrefError(f"fn: expected a callable fn(crossbar, V) -> I, got {type(fn).__name__}")
    outputs = {}
    seconds = {}
    for sc in suite.cases:
        t0 = time.perf_counter()
        try:
            out = fn(sc.case.crossbar, sc.case.V.copy())
        except NotImplementedError:   # the candidate cannot express this case: no answer
            out = np.full(sc.case.I.shape, np.nan)
        except XbarrefError as exc:
            raise XbarrefError(f"case {sc.name}: the candidate raised: {exc}") from None
        seconds[sc.name] = time.perf_counter() - t0
        try:
            arr = np.asarray(out, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise XbarrefError(f"case {sc.name}: candidate output is not an array of floats ({exc})") from None
        if arr.shape != sc.case.I.shape:
            raise XbarrefError(f"case {sc.name}: candidate returned shape {arr.shape}, "
                               f"expected {sc.case.I.shape} (B, N)")
        outputs[sc.name] = arr
    label = name if name is not None else getattr(fn, "__name__", "candidate")
    return compare_outputs(suite, outputs, tol=tol, candidate=label, seconds=seconds)


def compare_files(suite_path, candidate_path, tol=DEFAULT_TOL, progress=None):
    """Compare a candidate file with a suite file (``progress`` as for
    :func:`compare_outputs`).

    Raises
    ------
    FileFormatError
        Corrupt files, a case missing from the candidate or not in the suite, a shape
        mismatch; the message names the file, the case and the HDF5 path.
    """
    from xbarref.validate.suite import read_candidate

    suite = _load_suite(suite_path)
    expected = {sc.name: sc.case.I.shape for sc in suite.cases}
    outputs, solver = read_candidate(candidate_path, expected=expected)
    return compare_outputs(suite, outputs, tol=tol, candidate=solver or os.fspath(candidate_path),
                           progress=progress)
