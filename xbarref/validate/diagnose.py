"""Attribution: which part of a candidate's circuit model is wrong, from the diagnostic probes.

The ``diagnostic`` cases of a suite (:func:`xbarref.validate.generate._diagnostic`,
group ``diagnostic``) each let one part of the circuit act alone: the device law (every
resistance 0), the source resistance, the sink resistance, the row wires, the column
wires, one row or column different from the others, and all of them at once in a wide
and a tall array. For every probe on which the candidate is above the tolerance,
:func:`diagnose` asks what circuit would have produced the candidate's currents:

1. **Orientation hypotheses.** The exact solution of the probe's circuit turned
   around: sense amplifiers at row 0 instead of below row M-1 (rows flipped), drivers
   at column N-1 instead of column 0 (columns flipped), row and column wire
   resistances swapped. A hypothesis that reproduces the candidate (to within
   ``max(tol, 5 %`` of its error``)``) is the finding.
2. **Effective parameters.** Otherwise a few *effective* circuit parameters of the
   exact model are fitted to the candidate's currents by non-linear least squares
   (:func:`scipy.optimize.least_squares`, finite-difference sensitivities of the exact
   solver, parameters >= 0):

   ========================  ======================================================
   probe                     fitted parameters
   ========================  ======================================================
   source-only, one-row-     source resistance of every row; one sink resistance
   source                    shared by the columns
   sink-only, one-col-sink   sink resistance of every column; one shared source
                             resistance
   row-wires-only            row wire scale factor; extra source and sink
                             resistance in units of one row segment
   col-wires-only            column wire scale factor; extra sink and source
                             resistance in units of one column segment
   one-row-wire              row wire scale factor of every row
   one-col-wire              column wire scale factor of every column
   all (wide, tall)          source, sink, row wire and column wire scale factors
   device-only               sinh coefficient k (k = 0 is the linear law) and a gain
   ========================  ======================================================

   The fitted values, compared with the true ones, are stated in plain words
   ("source resistance ignored", "the column wires behave as if they had 1 extra
   segment between the last row and the sense amplifier", "row wire resistance about
   0.5 times the true value", ...). A value counts as wrong when it is off by more than
   5 % (:data:`REL_THRESHOLD`) of the true value, or by more than a quarter of a
   segment for the extra-segment parameters.
3. A probe that neither explains is reported as unexplained, with its error.

A candidate within the tolerance on every probe gets "no modelling error found". The
diagnosis needs the probes in the suite (``golden make --preset diagnostic`` or
``standard``); without them it says so.

Public API: :class:`Finding`, :class:`ProbeResult`, :class:`Diagnosis`,
:func:`diagnose`, :func:`error_map`, :func:`terminal_only_currents`, :data:`REL_THRESHOLD`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from xbarref.circuit.laws import Device, sinh_conductance, sinh_current
from xbarref.errors import XbarrefError

__all__ = ["Finding", "ProbeResult", "Diagnosis", "diagnose", "error_map", "terminal_only_currents",
           "REL_THRESHOLD"]

#: A fitted scale factor counts as wrong when it differs from 1 by more than this.
REL_THRESHOLD = 0.05
#: An extra-segment parameter counts when it exceeds this many segments.
SEGMENT_THRESHOLD = 0.25
#: A hypothesis or fit "explains" the candidate when its residual is at most
#: max(tol, EXPLAINED * candidate error) (hypotheses) or max(2 tol, FIT_EXPLAINED * error).
EXPLAINED = 0.05
FIT_EXPLAINED = 0.2

#: Upper bound of every fitted parameter (in units of its true or nominal value).
FIT_UPPER = 100.0


@dataclass
class Finding:
    """One plain-words statement about the candidate's circuit model.

    Attributes
    ----------
    part : str
        ``source``, ``sink``, ``row wires``, ``column wires``, ``orientation``,
        ``device`` or ``other``.
    kind : str
        ``ignored``, ``scaled``, ``misplaced``, ``extra segment``, ``spurious``,
        ``per-line``, ``flipped``, ``law`` or ``unexplained``.
    text : str
        The statement.
    probes : list of str
        Names of the probe cases it rests on.
    value : float
        The fitted quantity it is about (a ratio, a number of segments, k in 1/V), or NaN.
    """

    part: str
    kind: str
    text: str
    probes: list = field(default_factory=list)
    value: float = float("nan")


@dataclass
class ProbeResult:
    """The analysis of one probe case.

    Attributes
    ----------
    name, probe : str
        Case name and probe kind (``generator_params["probe"]``).
    isolates : str
        What the probe isolates.
    error : float
        The candidate's max relative error on it.
    status : str
        ``agrees`` (within tolerance), ``explained`` (by a hypothesis or the fit),
        ``partly explained``, ``unexplained`` or ``not run``.
    residual : float
        Max relative difference between the best explanation and the candidate.
    fitted : dict of str -> (fitted, true)
        Fitted effective parameters (ohm, scale factors or segments) and their true values.
    hypothesis : str
        The orientation hypothesis that explains it, if any.
    findings : list of Finding
    """

    name: str
    probe: str
    isolates: str
    error: float
    status: str = "agrees"
    residual: float = float("nan")
    fitted: dict = field(default_factory=dict)
    hypothesis: str = ""
    findings: list = field(default_factory=list)


@dataclass
class Diagnosis:
    """Attribution over all the probes of a suite."""

    probes: list
    findings: list
    tol: float

    @property
    def has_probes(self):
        return bool(self.probes)

    def lines(self):
        """The diagnosis in plain words, one statement per line."""
        if not self.probes:
            return ["no diagnostic probes in this suite (the presets diagnostic and standard "
                    "have them): no attribution"]
        run = [p for p in self.probes if p.status != "not run"]
        if not run:
            return [f"the candidate answered none of the {len(self.probes)} diagnostic probes: no attribution"]
        if not self.findings:
            return [f"no modelling error found: the candidate agrees with the exact solution within "
                    f"{self.tol:g} on all {len(run)} diagnostic probes it answered"
                    + (f" ({len(self.probes) - len(run)} not run)" if len(run) < len(self.probes) else "")]
        return [f.text for f in self.findings]


# --------------------------------------------------------------------------- model evaluation


def _solve(xb, V):
    """Exact output currents (A) of crossbar ``xb`` for inputs ``V`` (B, M)."""
    from xbarref.circuit import solve

    if xb.is_linear and not np.any(xb.r_wire_row) and not np.any(xb.r_wire_col):
        return terminal_only_currents(xb, V)
    if xb.is_linear:
        return solve(xb, V, method="direct").I
    return solve(xb, V).I


def terminal_only_currents(xb, V):
    """Exact outputs of a linear crossbar without wire resistance (only source and sink).

    Every row is then one node ``a_i`` and every column one node ``b_j``; Kirchhoff's
    current law, written with resistances so that 0 ohm (an ideal short) needs no
    special case, is the (M + N) x (M + N) linear system

        a_i (1 + rs_i g_i) - rs_i sum_j G_ij b_j = V_i,   g_i = sum_j G_ij
        b_j (1 + rk_j h_j) - rk_j sum_i G_ij a_i = 0,     h_j = sum_i G_ij

    and ``I_j = sum_i G_ij (a_i - b_j)``. Used to fit the source and sink probes quickly
    (the tests check it against :func:`xbarref.circuit.solve`).
    """
    G = xb.G
    M, N = G.shape
    rs, rk = xb.r_source, xb.r_sink
    A = np.zeros((M + N, M + N))
    A[:M, :M] = np.diag(1.0 + rs * G.sum(axis=1))
    A[:M, M:] = -rs[:, None] * G
    A[M:, M:] = np.diag(1.0 + rk * G.sum(axis=0))
    A[M:, :M] = -rk[:, None] * G.T
    rhs = np.zeros((M + N, V.shape[0]))
    rhs[:M] = V.T
    x = np.linalg.solve(A, rhs)
    a, b = x[:M].T, x[M:].T                          # (B, M), (B, N)
    return a @ G - b * G.sum(axis=0)[None, :]


def _flip_rows(xb):
    return xb.replace(G=xb.G[::-1], r_source=xb.r_source[::-1], r_wire_row=xb.r_wire_row[::-1],
                      r_wire_col=xb.r_wire_col[::-1])


def _flip_cols(xb):
    return xb.replace(G=xb.G[:, ::-1], r_sink=xb.r_sink[::-1], r_wire_row=xb.r_wire_row[:, ::-1],
                      r_wire_col=xb.r_wire_col[:, ::-1])


def _hypotheses(xb, V):
    """Orientation hypotheses: name -> outputs (B, N) the turned-around circuit gives."""
    out = {}
    M, N = xb.shape
    has_row = xb.r_wire_row.size and np.any(xb.r_wire_row > 0)
    has_col = xb.r_wire_col.size and np.any(xb.r_wire_col > 0)
    if M > 1 and (has_col or has_row):
        out["the sense amplifiers are placed at row 0 (the column wires are walked from the other "
            "end)"] = _solve(_flip_rows(xb), V[:, ::-1])
    if N > 1 and (has_row or has_col):
        out["the drivers are placed at the far end of the rows (column N-1 instead of column 0)"] = \
            _solve(_flip_cols(xb), V)[:, ::-1]
    if has_row != has_col or (has_row and not np.isclose(xb.r_wire_row.mean(), xb.r_wire_col.mean())):
        rr = float(xb.r_wire_row.mean()) if xb.r_wire_row.size else 0.0
        rc = float(xb.r_wire_col.mean()) if xb.r_wire_col.size else 0.0
        out["the row and column wire resistances are swapped"] = _solve(
            xb.replace(r_wire_row=rc, r_wire_col=rr), V)
    return out


#: probe -> (the parameter it isolates, part, words) for the "left out" test.
_NULL = {
    "source-only": ("r_source", "source", "source resistance"),
    "one-row-source": ("r_source", "source", "source resistance"),
    "sink-only": ("r_sink", "sink", "sink resistance"),
    "one-col-sink": ("r_sink", "sink", "sink resistance"),
    "row-wires-only": ("r_wire_row", "row wires", "row wire resistance"),
    "one-row-wire": ("r_wire_row", "row wires", "row wire resistance"),
    "col-wires-only": ("r_wire_col", "column wires", "column wire resistance"),
    "one-col-wire": ("r_wire_col", "column wires", "column wire resistance"),
}


def describe(a):
    """``"30"`` or ``"30-300"``: the value or range of an array (no unit)."""
    a = np.asarray(a)
    lo, hi = float(a.min()), float(a.max())
    return f"{lo:g}" if lo == hi else f"{lo:g}-{hi:g}"


def _knobs(xb, probe):
    """Fitted parameters of a probe: (names, true values x0, builder theta -> Crossbar, units)."""
    M, N = xb.shape
    rs, rk = xb.r_source, xb.r_sink
    rr, rc = xb.r_wire_row, xb.r_wire_col
    if probe in ("source-only", "one-row-source"):
        nom = float(rs.max())
        names = [f"r_source[{i}]" for i in range(M)] + ["r_sink"]
        x0 = np.r_[rs / nom, 0.0]
        return names, x0, lambda t: xb.replace(r_source=t[:M] * nom, r_sink=t[M] * nom), nom
    if probe in ("sink-only", "one-col-sink"):
        nom = float(rk.max())
        names = [f"r_sink[{j}]" for j in range(N)] + ["r_source"]
        x0 = np.r_[rk / nom, 0.0]
        return names, x0, lambda t: xb.replace(r_sink=t[:N] * nom, r_source=t[N] * nom), nom
    if probe == "row-wires-only":
        seg = float(rr.max())
        return (["row wire scale", "extra source (segments)", "extra sink (segments)"], np.array([1.0, 0, 0]),
                lambda t: xb.replace(r_wire_row=rr * t[0], r_source=t[1] * seg, r_sink=t[2] * seg), seg)
    if probe == "col-wires-only":
        seg = float(rc.max())
        return (["column wire scale", "extra sink (segments)", "extra source (segments)"], np.array([1.0, 0, 0]),
                lambda t: xb.replace(r_wire_col=rc * t[0], r_sink=t[1] * seg, r_source=t[2] * seg), seg)
    if probe == "one-row-wire":  # per-row scale; extra source in units of each row's own segment
        return ([f"row wire scale[{i}]" for i in range(M)] + ["extra source (segments)"], np.r_[np.ones(M), 0.0],
                lambda t: xb.replace(r_wire_row=rr * t[:M, None], r_source=t[M] * rr[:, 0]), 1.0)
    if probe == "one-col-wire":  # per-column scale; extra sink in units of each column's own segment
        return ([f"column wire scale[{j}]" for j in range(N)] + ["extra sink (segments)"], np.r_[np.ones(N), 0.0],
                lambda t: xb.replace(r_wire_col=rc * t[None, :N], r_sink=t[N] * rc[-1]), 1.0)
    if probe == "all":
        return (["source scale", "sink scale", "row wire scale", "column wire scale"], np.ones(4),
                lambda t: xb.replace(r_source=rs * t[0], r_sink=rk * t[1], r_wire_row=rr * t[2],
                                     r_wire_col=rc * t[3]), 1.0)
    raise XbarrefError(f"probe: unknown kind {probe!r}")


def _fit(build, x0, V, P, scale):
    from scipy.optimize import least_squares

    def resid(t):
        try:
            I = _solve(build(np.clip(t, 0.0, FIT_UPPER)), V)
        except (RuntimeError, ValueError, XbarrefError):  # a singular circuit at an extreme value
            return np.full(P.size, 1e3)
        return ((I - P) / scale).ravel()

    sol = least_squares(resid, x0, bounds=(0.0, FIT_UPPER), method="trf", x_scale=1.0,
                        xtol=1e-10, ftol=1e-12, gtol=1e-12, max_nfev=60)
    return np.maximum(sol.x, 0.0), float(np.max(np.abs(resid(sol.x))))


# --------------------------------------------------------------------------- interpretation


def _ohm(value, scale):
    """A fitted resistance for the text: 3 digits, or 0 below 1e-4 of ``scale`` (fit noise)."""
    return "0" if value < 1e-4 * scale else f"{value:.3g}"


def _ratio_words(part, ratio, true_text):
    if ratio < REL_THRESHOLD:
        return "ignored", (f"{part} ignored (the candidate's currents fit {ratio:.2g} x the true value, "
                           f"true {true_text})")
    return "scaled", f"{part} about {ratio:.2g} times the true value (true {true_text})"


def _terminal_findings(true, probe, fitted, nom, line):
    """Findings of a source/sink probe from per-line fitted values and their true values
    (both in units of ``nom`` ohm; the last fitted value is the other terminal's)."""
    own, other = ("source", "sink") if probe in ("source-only", "one-row-source") else ("sink", "source")
    lines_word = "row" if own == "source" else "column"
    values = fitted[:-1]
    spurious = fitted[-1]
    out = []
    k = None if line is None else int(line[1])
    others = np.ones(values.size, bool)
    if k is not None:
        others[k] = False
    rho = float(np.median(values[others] / true[others]))
    typical = float(np.median(true[others]))
    spurious = spurious / typical      # in units of the typical true value of this probe
    true_text = f"{nom:g} ohm" if k is None else f"{nom * true[others][0]:g} ohm, {lines_word} {k} {nom * true[k]:g} ohm"
    if spurious > 0.3 and rho < 0.5:
        out.append(Finding(own, "misplaced",
                           f"{own} resistance is applied at the {other} end instead (fitted: {own} "
                           f"{_ohm(rho * nom * typical, nom)} ohm, {other} {_ohm(spurious * nom * typical, nom)} ohm; "
                           f"true: {own} {true_text}, {other} 0)", value=float(spurious)))
        return out
    if abs(rho - 1) > REL_THRESHOLD:
        kind, text = _ratio_words(f"{own} resistance", rho, true_text)
        out.append(Finding(own, kind, text, value=rho))
    elif spurious > REL_THRESHOLD:
        out.append(Finding(other, "spurious", f"a {other} resistance of about {spurious * nom * typical:.3g} ohm "
                           f"appears where there is none", value=float(spurious)))
    if k is not None and rho >= REL_THRESHOLD:
        special = float(values[k] / true[k])
        if abs(special / rho - 1) > 0.2:
            out.append(Finding(own, "per-line",
                               f"per-{lines_word} {own} resistances are not used as given: {lines_word} {k} "
                               f"(true {nom * true[k]:g} ohm, {true[k] / true[others][0]:g} x the others) "
                               f"behaves as {nom * values[k]:.3g} ohm, the other {lines_word}s as "
                               f"{nom * typical * rho:.3g} ohm (true {nom * typical:g})", value=special))
    elif k is None and rho >= REL_THRESHOLD:
        dev = np.abs(values / true / rho - 1)
        if np.max(dev) > 0.2:
            bad = np.flatnonzero(dev > 0.2)
            out.append(Finding(own, "per-line", f"{own} resistance differs by {lines_word} "
                               f"({lines_word}s {', '.join(map(str, bad[:8]))} off by up to "
                               f"{np.max(dev):.0%})", value=float(np.max(dev))))
    return out


def _wire_findings(probe, fitted, seg):
    out = []
    if probe == "row-wires-only":
        part, term, far = "row wires", "between the driver and the first column", "sink"
    else:
        part, term, far = "column wires", "between the last row and the sense amplifier", "source"
    a, extra, other = fitted
    if abs(a - 1) > REL_THRESHOLD:
        word = "row wire resistance" if probe == "row-wires-only" else "column wire resistance"
        kind, text = _ratio_words(word, a, f"{seg:g} ohm per segment")
        out.append(Finding(part, kind, text, value=float(a)))
    if extra > SEGMENT_THRESHOLD:
        n = round(extra)
        count = "one extra segment" if n == 1 else f"{extra:.2g} extra segments"
        out.append(Finding(part, "extra segment", f"the {part} behave as if they had {count} {term} "
                           f"(fitted {extra:.2f} segments of {seg:g} ohm)", value=float(extra)))
    if other > SEGMENT_THRESHOLD:
        out.append(Finding(far, "spurious", f"a {far} resistance of about {other * seg:.3g} ohm appears "
                           f"where there is none (probe with {part} only)", value=float(other)))
    return out


def _line_wire_findings(probe, fitted, line):
    part, word = ("row wires", "row") if probe == "one-row-wire" else ("column wires", "column")
    term = ("between the driver and the first column" if probe == "one-row-wire"
            else "between the last row and the sense amplifier")
    fitted, extra = fitted[:-1], float(fitted[-1])
    k = int(line[1])
    others = np.ones(fitted.size, bool)
    others[k] = False
    a = float(np.median(fitted[others]))
    out = []
    if abs(a - 1) > REL_THRESHOLD:
        kind, text = _ratio_words(f"{word} wire resistance", a, "per-segment value")
        out.append(Finding(part, kind, text, value=a))
    if extra > SEGMENT_THRESHOLD:
        count = "one extra segment" if round(extra) == 1 else f"{extra:.2g} extra segments"
        out.append(Finding(part, "extra segment", f"the {part} behave as if they had {count} {term} "
                           f"(fitted {extra:.2f} segments)", value=extra))
    special = float(fitted[k])
    if a >= REL_THRESHOLD and abs(special / a - 1) > 0.2:
        out.append(Finding(part, "per-line", f"per-{word} wire resistances are not used as given: {word} {k} "
                           f"(true {line[2]:g} ohm per segment) behaves as {special * line[2]:.3g} ohm",
                           value=special))
    return out


def _all_findings(fitted):
    out = []
    for (part, word), a in zip((("source", "source resistance"), ("sink", "sink resistance"),
                                ("row wires", "row wire resistance"),
                                ("column wires", "column wire resistance")), fitted):
        if abs(a - 1) > REL_THRESHOLD:
            kind, text = _ratio_words(word, float(a), "value")
            out.append(Finding(part, kind, text, value=float(a)))
    return out


def _device_probe(sc, V, P, scale, res):
    xb = sc.case.crossbar
    G = xb.G
    from scipy.optimize import minimize_scalar

    def law(k):
        if k <= 1e-9:
            return V @ G
        # i(V, 1 S) of the solver's sinh law; the cell currents G i(V, 1) summed down columns
        return Device(sinh_current, sinh_conductance, params=[k]).currents(V, 1.0) @ G

    def err(k):
        return float(np.max(np.abs(law(k) - P)) / scale)

    best = minimize_scalar(err, bounds=(0.0, 50.0), method="bounded", options=dict(xatol=1e-6))
    k_fit = float(best.x) if err(best.x) < err(0.0) else 0.0
    r_fit = err(k_fit)
    I_lin = law(k_fit)
    gain = float(np.sum(I_lin * P) / np.sum(I_lin * I_lin)) if np.any(I_lin) else 1.0
    r_gain = float(np.max(np.abs(gain * I_lin - P)) / scale)
    k_true = float(xb.sinh_k) if xb.device == "sinh" else 0.0
    res.fitted = {"sinh k (1/V)": (k_fit, k_true), "gain": (gain, 1.0)}
    res.residual = min(r_fit, r_gain)
    out = []
    law_true = "linear" if k_true == 0 else f"sinh with k = {k_true:g} /V"
    if k_true > 0 and k_fit < 0.1 * k_true:
        out.append(Finding("device", "law", f"device law: the sinh device is treated as linear (fitted "
                           f"k = {k_fit:.2g} /V, true k = {k_true:g} /V)", value=k_fit))
    elif k_true == 0 and k_fit > 0.5:
        out.append(Finding("device", "law", f"device law: the linear device is treated as non-linear "
                           f"(behaves as sinh with k = {k_fit:.2g} /V)", value=k_fit))
    elif k_true > 0 and abs(k_fit / k_true - 1) > REL_THRESHOLD:
        out.append(Finding("device", "law", f"device law: sinh with k about {k_fit:.3g} /V instead of "
                           f"{k_true:g} /V", value=k_fit))
    if abs(gain - 1) > REL_THRESHOLD * 0.2:
        out.append(Finding("device", "scaled", f"with every resistance 0 the outputs are {gain:.4g} x those "
                           f"of the {law_true} device law (conductance or current summation scaled)",
                           value=gain))
    return out


def _analyse(sc, P, tol):
    spec = sc.params
    probe = spec["probe"]
    res = ProbeResult(name=sc.name, probe=probe, isolates=spec.get("isolates", ""), error=float("nan"))
    keep = ~np.all(np.isnan(P), axis=1)
    if not np.any(keep):
        res.status = "not run"
        return res
    I = sc.case.I[keep]
    V = sc.case.V[keep]
    P = P[keep]
    scale = float(np.max(np.abs(I))) or 1.0
    e0 = float(np.max(np.abs(P - I)) / scale)
    res.error = e0
    if e0 <= tol:
        return res
    xb = sc.case.crossbar
    if probe == "device-only":
        found = _device_probe(sc, V, P, scale, res)
    else:
        hyps = _hypotheses(xb, V) if probe in ("row-wires-only", "col-wires-only", "one-row-wire",
                                               "one-col-wire", "all") else {}
        best = min(((float(np.max(np.abs(out - P)) / scale), h) for h, out in hyps.items()), default=None)
        if best is not None and best[0] <= max(tol, EXPLAINED * e0):
            res.hypothesis, res.residual, res.status = best[1], best[0], "explained"
            res.findings = [Finding("orientation", "flipped", f"orientation: {best[1]}", [sc.name])]
            return res
        null = _NULL.get(probe)
        if null is not None:   # cheap first test: is this part simply left out?
            param, part, word = null
            r_null = float(np.max(np.abs(_solve(xb.replace(**{param: 0.0}), V) - P)) / scale)
            if r_null <= max(tol, EXPLAINED * e0):
                true = getattr(xb, param)
                how = "exactly" if r_null == 0 else f"to {r_null:.2g} of full scale"
                res.residual, res.status = r_null, "explained"
                res.fitted = {f"{param} scale": (0.0, 1.0)}
                res.findings = [Finding(part, "ignored", f"{word} ignored (the candidate's currents are those of "
                                        f"the circuit without it, {how}; true {describe(true)} ohm)", [sc.name], 0.0)]
                return res
        names, x0, build, nom = _knobs(xb, probe)
        fitted, resid = _fit(build, x0, V, P, scale)
        res.residual = resid
        unit = nom if probe in ("source-only", "one-row-source", "sink-only", "one-col-sink") else 1.0
        res.fitted = {n + (" (ohm)" if unit != 1.0 else ""): (float(f) * unit, float(t) * unit)
                      for n, f, t in zip(names, fitted, x0)}
        line = spec.get("line")
        if probe in ("source-only", "one-row-source", "sink-only", "one-col-sink"):
            found = _terminal_findings(x0[:-1], probe, fitted, nom, line)
        elif probe in ("row-wires-only", "col-wires-only"):
            found = _wire_findings(probe, fitted, nom)
        elif probe in ("one-row-wire", "one-col-wire"):
            found = _line_wire_findings(probe, fitted, line)
        else:
            found = _all_findings(fitted)
    explained = res.residual <= max(2 * tol, FIT_EXPLAINED * e0)
    if found and explained:
        res.status = "explained"
    elif explained and res.fitted:
        res.status = "explained"
        name, (f, t) = max(res.fitted.items(), key=lambda kv: _deviation(*kv[1]))
        found = [Finding("other", "small deviations",
                         f"probe {sc.name} ({res.isolates}): error {e0:.2g}, explained by effective circuit "
                         f"parameters close to the true ones (largest deviation: {name} {f:.3g} where the true "
                         f"value is {t:.3g}); an approximation of the solution rather than a wrong circuit?")]
    elif found and res.residual < 0.7 * e0:
        res.status = "partly explained"
        for f in found:
            f.text += f" (explains part of the error: {e0:.2g} -> {res.residual:.2g})"
    else:
        res.status = "unexplained"
        found = [Finding("other", "unexplained",
                         f"probe {sc.name} ({res.isolates}): error {e0:.2g} not explained by a change of "
                         f"resistance values, orientation or device law"
                         + (" (the fitted values are within 5 % of the true ones: an approximation or "
                            "convergence error rather than a wrong circuit)" if not found else ""))]
    for f in found:
        f.probes = [sc.name]
    res.findings = found
    return res


def _deviation(fitted, true):
    """How far a fitted parameter is from its true value (relative, or absolute from 0)."""
    return abs(fitted - true) / abs(true) if true else abs(fitted)


def _aggregate(results):
    """Merge the findings of all probes: one statement per (part, kind), the single-part
    probes first; the combined (``all``) probes only add orientation findings unless
    nothing else was found."""
    merged = {}
    order = []
    single = [r for r in results if r.probe != "all"]
    combined = [r for r in results if r.probe == "all"]
    for r in single + combined:
        for f in r.findings:
            if r.probe == "all" and f.part != "orientation" and (merged or any(x.findings for x in single)):
                continue
            key = (f.part, f.kind) if f.part != "other" else (f.part, f.kind, f.probes[0])
            if key in merged:
                merged[key].probes += [p for p in f.probes if p not in merged[key].probes]
            else:
                merged[key] = Finding(f.part, f.kind, f.text, list(f.probes), f.value)
                order.append(key)
    out = [merged[k] for k in order]
    for f in out:
        if f.part != "other":
            f.text += f" [probe{'s' if len(f.probes) > 1 else ''}: {', '.join(p.split('_', 1)[0] for p in f.probes)}]"
    rank = {"device": 0, "source": 1, "sink": 2, "row wires": 3, "column wires": 4, "orientation": 5, "other": 6}
    return sorted(out, key=lambda f: rank.get(f.part, 9))


def diagnose(suite, outputs, tol):
    """Attribute a candidate's errors to parts of its circuit model.

    Parameters
    ----------
    suite : Suite
        A golden suite; its ``diagnostic`` cases (those with ``generator_params["probe"]``)
        are used.
    outputs : dict of str -> ndarray (B, N)
        The candidate's output currents in A (NaN rows: no answer).
    tol : float
        Probes with max relative error <= tol agree and are not analysed.

    Returns
    -------
    Diagnosis
    """
    results = []
    for sc in suite.cases:
        if not sc.params.get("probe") or sc.name not in outputs:
            continue
        results.append(_analyse(sc, np.asarray(outputs[sc.name], dtype=np.float64), tol))
    return Diagnosis(probes=results, findings=_aggregate(results), tol=tol)


def error_map(sc, P):
    """Per-row x per-column error map of a probe with one-hot inputs.

    Returns
    -------
    ndarray (M, N) or None
        ``(P - I)[b, j] / max|I|`` for the inputs ``b < M`` that drive row ``b`` alone,
        so entry ``[i, j]`` is the error of column ``j`` when only row ``i`` is driven;
        NaN where the candidate gave no answer. None if the case has no one-hot inputs.
    """
    if sc.params.get("inputs") != "one-hot":
        return None
    M = sc.case.shape[0]
    I = sc.case.I[:M]
    P = np.asarray(P, dtype=np.float64)[:M]
    scale = float(np.nanmax(np.abs(sc.case.I))) or 1.0
    return (P - I) / scale
