"""The solver front door: pick the right exact method for a crossbar and a batch of inputs.

What the solvers are given (:func:`conditioned`)
    Resistances and conductances whose ratios float64 cannot resolve are settled
    exactly before any solver sees them, by bounds that hold for every passive network
    with these values (node voltages lie between the lowest and the highest terminal
    voltage, so no branch carries more than its wire's total device conductance times
    that range). With ``Gs`` the largest sum of device conductances on one row or
    column wire (times ``cosh(k * range)`` for the ``sinh`` device), ``Gmax`` the
    largest device conductance, and ``tol`` the requested tolerance:

    - a resistance ``0 < r <= SHORT_FRACTION * tol / ((M + N + 2) * Gs)`` is an exact
      short (``r = 0``): shorting all of them moves no node voltage by more than
      ``SHORT_FRACTION * tol`` of the voltage range;
    - a device ``0 < G <= SHORT_FRACTION * tol * Gmax / (M + N)`` is open (``G = 0``):
      opening all of them moves no output by more than ``SHORT_FRACTION * tol`` of the
      full-scale current ``Gmax * range``;
    - the network is then scaled by a power of two ``s`` (exact in floating point) so
      that ``Gmax * s`` is about 1: conductances times ``s``, resistances divided by
      ``s``, currents divided by ``s`` at the end; a circuit whose conductances are all
      1e-300 S solves as well as one at 1 S. Linear circuits always (the results are
      bit-identical to solving unscaled, where that works); ``sinh`` circuits only when
      ``Gmax`` is outside ``2**-100 .. 2**100`` S, with Newton's ``abstol`` scaled too;
    - with every device open (``G == 0``) no current flows: every resistance is an
      exact short.

    ``SHORT_FRACTION`` is 1e-3. Devices with a user-defined law are passed unchanged.

What comes back (:func:`~xbarref.circuit.direct.check_solution`)
    Every result is checked before it is returned: non-finite outputs, and a residual
    above ``tol`` after the direct fall-back, raise
    :class:`~xbarref.errors.ConvergenceError` naming the input and the achieved
    residual. Solver options are checked first (``tol`` in (0, 1), ``max_iter >= 1``).
    Currents from the effective matrix (``method="auto"``, large batches) carry a
    per-input estimate: the matrix's measured relative error (see
    :meth:`~xbarref.circuit.DirectSolver.effective_error`) times
    ``max(|V_k| @ A) / max|I_k|`` (how much the input's currents cancel); inputs above
    ``tol`` are solved by PCG instead.
"""

from __future__ import annotations

import math
import numbers
import time
import weakref

import numpy as np

from xbarref import _signals
from xbarref.circuit.crossbar import check_inputs
from xbarref.circuit.direct import SCHUR_WORK, CrossbarSolution, DirectSolver, check_solution
from xbarref.circuit.grid import (TOL, cached_coarse, cached_parameters, default_max_iter,
                                  grid_solvable, solve_batch)
from xbarref.circuit.newton import NewtonOptions, solve_newton
from xbarref.errors import ConvergenceError, XbarrefError

METHODS = ("auto", "pcg", "direct")
#: Share of ``tol`` that treating tiny resistances as shorts (and tiny conductances as
#: opens) may cost at most (see the module docstring).
SHORT_FRACTION = 1e-3
#: Circuits with the ``sinh`` device are scaled only when ``Gmax`` is outside
#: ``2**-SINH_SCALE_EXPONENT .. 2**SINH_SCALE_EXPONENT`` S.
SINH_SCALE_EXPONENT = 100
#: ``solve(method="auto")`` tries the effective-matrix route only when ``tol`` is at least
#: this: the Schur-complement form is accurate to 2e-13 .. 4e-12 (measured at 128 .. 256),
#: so at tighter tolerances it would be built only to be refused by its own check.
EFFECTIVE_ROUTE_TOL = 1e-11


def _check_method(method):
    if method not in METHODS:
        raise XbarrefError(f"method: expected one of {METHODS}, got {method!r}")


def check_options(tol, max_iter):
    """Return ``(tol, max_iter)`` checked: ``0 < tol < 1`` finite, ``max_iter`` an int >= 1 or None."""
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not 0 < float(tol) < 1:
        raise XbarrefError(f"tol: must be a number in (0, 1), got {tol!r}")
    if max_iter is not None:
        if isinstance(max_iter, bool) or not isinstance(max_iter, numbers.Integral) or max_iter < 1:
            raise XbarrefError(f"max_iter: must be an integer >= 1, got {max_iter!r}")
        max_iter = int(max_iter)
    return float(tol), max_iter


def _voltage_range(V):
    return float(max(np.max(V, initial=0.0), 0.0) - min(np.min(V, initial=0.0), 0.0))


#: The conditioned circuit of each linear crossbar per tolerance: it depends only on the
#: crossbar (whose arrays are read-only) and ``tol``, and building it (a new, checked
#: Crossbar) is a measurable part of a small solve.
_CONDITIONED = weakref.WeakKeyDictionary()


def conditioned(crossbar, V, tol, G_batch=None):
    """The circuit the solvers are given: tiny resistances shorted, tiny devices opened,
    circuits scaled by a power of two (see the module docstring).

    Parameters
    ----------
    crossbar : Crossbar
    V : ndarray, shape (B, M)
        Input voltages (for the voltage range of the ``sinh`` bound).
    tol : float
        Requested tolerance.
    G_batch : ndarray, shape (B, M, N), optional
        Per-read conductances (replacing ``crossbar.G``).

    Returns
    -------
    crossbar : Crossbar
        The conditioned circuit (``crossbar`` itself when nothing changed).
    G_batch : ndarray or None
        The conditioned per-read conductances.
    scale : float
        ``s``: solve the conditioned circuit, then divide currents by ``s``.
    changes : dict
        ``{"shorted": n, "opened": n, "scale": s}``.
    """
    if G_batch is None and crossbar.is_linear:
        cache = _CONDITIONED.setdefault(crossbar, {})
        if tol not in cache:
            out, _, scale, changes = _conditioned(crossbar, V, tol, None)
            # (the crossbar itself is kept as None: a value referring to its weak key
            # would keep the key alive)
            cache[tol] = (None if out is crossbar else out, scale, changes)
        out, scale, changes = cache[tol]
        return crossbar if out is None else out, None, scale, dict(changes)
    return _conditioned(crossbar, V, tol, G_batch)


def _conditioned(crossbar, V, tol, G_batch):
    G_all = G_given = crossbar.G[None] if G_batch is None else G_batch
    M, N = crossbar.shape
    changes = {"shorted": 0, "opened": 0, "scale": 1.0}
    if not isinstance(crossbar.device, str):
        return crossbar, G_batch, 1.0, changes
    g_max = float(G_all.max(initial=0.0))
    if g_max == 0.0:
        # every device open: no current flows anywhere, so every resistance is an exact
        # short (rows sit at their source voltage, columns at 0 V)
        fields = {name: 0.0 for name in ("r_source", "r_sink", "r_wire_row", "r_wire_col")
                  if np.any(getattr(crossbar, name) > 0)}
        if not fields:
            return crossbar, G_batch, 1.0, changes
        changes["shorted"] = int(sum(np.count_nonzero(getattr(crossbar, n)) for n in fields))
        return crossbar.replace(**fields), G_batch, 1.0, changes
    g_wire = float(max(G_all.sum(axis=2).max(), G_all.sum(axis=1).max()))
    if crossbar.device == "sinh":
        with np.errstate(over="ignore"):
            g_wire *= math.cosh(min(crossbar.sinh_k * _voltage_range(V), 710.0))
    fields = {}
    with np.errstate(over="ignore", divide="ignore", under="ignore"):
        r_short = SHORT_FRACTION * tol / ((M + N + 2) * g_wire)
        g_open = SHORT_FRACTION * tol * g_max / (M + N)
    for name in ("r_source", "r_sink", "r_wire_row", "r_wire_col"):
        r = getattr(crossbar, name)
        tiny = (r > 0) & (r <= r_short)
        if tiny.any():
            changes["shorted"] += int(tiny.sum())
            fields[name] = np.where(tiny, 0.0, r)
    # (no device is tiny when even the smallest one, open cells included, is above g_open)
    if not G_all.min() > g_open:
        tiny = (G_all > 0) & (G_all <= g_open)
        if tiny.any():
            changes["opened"] = int(tiny.sum())
            G_all = np.where(tiny, 0.0, G_all)
    exponent = -math.frexp(g_max)[1]
    # linear circuits always (bit-identical results, tested); sinh only when its
    # conductances are far from 1 S (Newton's absolute tolerance is scaled with it)
    if crossbar.is_linear or abs(exponent) > SINH_SCALE_EXPONENT:
        s = math.ldexp(1.0, min(max(exponent, -1000), 1000))
        scaled = {name: np.asarray(fields.get(name, getattr(crossbar, name))) / s
                  for name in ("r_source", "r_sink", "r_wire_row", "r_wire_col")}
        # every G * s is at most g_max * s (about 1): finite when that is
        if s != 1.0 and all(np.all(np.isfinite(r)) for r in scaled.values()) and math.isfinite(g_max * s):
            fields = scaled
            G_all = G_all * s
            changes["scale"] = s
    if not fields and G_all is G_given:  # nothing changed: the crossbar itself
        return crossbar, G_batch, 1.0, changes
    if G_batch is None:
        fields["G"] = G_all[0]
        return crossbar.replace(**fields), None, changes["scale"], changes
    if fields:
        crossbar = crossbar.replace(**fields)
    return crossbar, np.ascontiguousarray(G_all), changes["scale"], changes


def _scaled_options(options, scale):
    """Newton options for the circuit scaled by ``scale``: the absolute current tolerance
    (amperes) scales with the currents; relative and voltage tolerances do not."""
    if scale == 1.0:
        return options
    import dataclasses

    return dataclasses.replace(options, abstol=options.abstol * scale)


def _unscale(sol, scale):
    if scale != 1.0:
        sol.I = sol.I / scale
    return sol


def solve(crossbar, V, nodes=False, method="auto", tol=TOL, max_iter=None, newton_options=None):
    """Solve a crossbar for a batch of input voltages.

    Parameters
    ----------
    crossbar : Crossbar
        The circuit.
    V : array_like, shape (B, M) or (M,)
        Row driver voltages in volts.
    nodes : bool
        Also return row and column node voltages (B, M, N).
    method : {"auto", "pcg", "direct"}
        ``pcg``: the batched preconditioned conjugate-gradient solver (needs non-zero
        wire segments; inputs it does not converge on are re-solved directly);
        ``direct``: sparse factorization; ``auto``: PCG where it applies, except for
        batches of currents only of more than ``max(M, N) / 8`` inputs on arrays large
        enough for the Schur-complement effective matrix (see
        :meth:`DirectSolver.effective_matrix`), which then costs less than the solves;
        direct where PCG does not apply. Non-linear devices are
        always solved by Newton's method (:func:`xbarref.circuit.newton.solve_newton`).
    tol : float
        Relative residual of the iterative solvers.
    max_iter : int, optional
        Iteration limit of the iterative solver.
    newton_options : NewtonOptions, optional
        Convergence settings for non-linear devices.

    Returns
    -------
    CrossbarSolution
    """
    _check_method(method)
    tol, max_iter = check_options(tol, max_iter)
    M, N = crossbar.shape
    V = check_inputs(V, M)
    crossbar, _, scale, changes = conditioned(crossbar, V, tol)
    if not crossbar.is_linear:
        options = _scaled_options(newton_options or NewtonOptions(), scale)
        sol = solve_newton(crossbar, V, nodes=nodes, options=options)
        sol.info["conditioned"] = changes
        # Newton's residuals are its worst Kirchhoff residual relative to its tolerance,
        # times reltol: at most reltol when converged
        return check_solution(_unscale(sol, scale), options.reltol)
    sol = _solve_linear(crossbar, V, nodes, method, tol, max_iter)
    sol.info["conditioned"] = changes
    return check_solution(_unscale(sol, scale), tol)


def _solve_linear(crossbar, V, nodes, method, tol, max_iter):
    M, N = crossbar.shape
    B = V.shape[0]
    if method == "pcg" and not grid_solvable(crossbar):
        method = "direct"
    if method == "auto":
        if not grid_solvable(crossbar):
            method = "direct"
        elif not nodes and tol >= EFFECTIVE_ROUTE_TOL and B > max(M, N) // 8 \
                and 2 * M * N * min(M, N) > SCHUR_WORK:
            solver = DirectSolver(crossbar)
            t0 = time.perf_counter()
            err = solver.effective_error()
            method = "pcg"
            if err <= tol:
                A = solver.effective_matrix(tol=tol)
                I = V @ A
                info = dict(solver.timings, matmul=time.perf_counter() - t0, effective_error=err)
                with np.errstate(divide="ignore", invalid="ignore"):
                    bound = (np.abs(V) @ A).max(axis=1, initial=0.0)
                    peak = np.abs(I).max(axis=1, initial=0.0)
                    res = np.where(bound > 0, err * bound / peak, 0.0)
                sol = CrossbarSolution(I=I, residuals=res, method="effective-matrix", info=info)
                bad = np.flatnonzero(~(res <= tol))
                if not bad.size:
                    return sol
                fix = _solve_pcg(crossbar, crossbar.G[None], V[bad], False, tol, max_iter)
                sol.I[bad] = fix.I
                sol.residuals[bad] = fix.residuals
                sol.method = "effective-matrix+" + fix.method
                sol.info["pcg_inputs"] = bad
                return sol
        else:
            method = "pcg"
    if method == "direct":
        return DirectSolver(crossbar)._solve(V, nodes=nodes)
    return _solve_pcg(crossbar, crossbar.G[None], V, nodes, tol, max_iter, own_g=True)


def solve_per_read(crossbar, G_batch, V, nodes=False, tol=TOL, max_iter=None, newton_options=None):
    """Solve a batch in which every input has its own conductance matrix.

    This is what read noise needs: read ``k`` applies ``V[k]`` to the crossbar with
    conductances ``G_batch[k]`` (the resistances of ``crossbar`` are shared; its own
    ``G`` is ignored). Each read is its own circuit, solved by the batched PCG solver;
    reads on which it does not reach ``tol`` (and circuits with zero wire segments) are
    solved by the direct solver.

    Parameters
    ----------
    crossbar : Crossbar
        Resistances and device (linear).
    G_batch : array_like, shape (B, M, N)
        Conductances in siemens of each read, finite and >= 0.
    V : array_like, shape (B, M)
        Input voltages of each read.
    newton_options : NewtonOptions, optional
        Convergence settings for non-linear devices (each read is its own Newton solve).

    Returns
    -------
    CrossbarSolution
    """
    tol, max_iter = check_options(tol, max_iter)
    M, N = crossbar.shape
    V = check_inputs(V, M)
    G_batch = np.asarray(G_batch, dtype=np.float64)
    if G_batch.ndim != 3 or G_batch.shape[1:] != (M, N) or G_batch.shape[0] != V.shape[0]:
        raise XbarrefError(
            f"G_batch: expected shape ({V.shape[0]}, {M}, {N}) (one conductance matrix per input), "
            f"got {G_batch.shape}"
        )
    # one pass each: a NaN makes the minimum NaN, an infinity the maximum infinite
    if G_batch.size and not (G_batch.min() >= 0 and math.isfinite(G_batch.max())):
        raise XbarrefError("G_batch: conductances must be finite and >= 0 S")
    crossbar, G_batch, scale, changes = conditioned(crossbar, V, tol, G_batch=G_batch)
    if not crossbar.is_linear:
        options = _scaled_options(newton_options or NewtonOptions(), scale)
        sol = solve_newton(crossbar, V, nodes=nodes, G_batch=G_batch, options=options)
        sol.info["conditioned"] = changes
        return check_solution(_unscale(sol, scale), options.reltol, "solve_per_read")
    if not grid_solvable(crossbar):
        sol = _direct_per_read(crossbar, G_batch, V, nodes, np.arange(V.shape[0]))
    else:
        sol = _solve_pcg(crossbar, np.ascontiguousarray(G_batch), V, nodes, tol, max_iter)
    sol.info["conditioned"] = changes
    return check_solution(_unscale(sol, scale), tol, "solve_per_read")


def _solve_pcg(crossbar, G_all, V, nodes, tol, max_iter, own_g=False):
    M, N = crossbar.shape
    if max_iter is None:
        max_iter = default_max_iter(M, N)
    t0 = time.perf_counter()
    with _signals.deferred():  # a signal must not land in Numba's boxing of the results
        # the crossbar's own G: its coarse space is built once per crossbar
        coarse = cached_coarse(crossbar) if own_g else "auto"
        I, x, iters, res = solve_batch(G_all, cached_parameters(crossbar), V, tol, max_iter, nodes, coarse)
    info = {"solve": time.perf_counter() - t0}
    sol = CrossbarSolution(I=I, residuals=res, iterations=iters, method="pcg", info=info)
    if nodes:
        sol.V_row = np.ascontiguousarray(x[:, 0])
        sol.V_col = np.ascontiguousarray(x[:, 1])
    bad = np.flatnonzero(~(res <= tol))
    if bad.size:
        # fall back to the direct solver for the inputs PCG did not converge on
        fix = _direct_per_read(crossbar, G_all, V, nodes, bad)
        sol.I[bad] = fix.I
        sol.residuals[bad] = fix.residuals
        if nodes:
            sol.V_row[bad] = fix.V_row
            sol.V_col[bad] = fix.V_col
        sol.method = "pcg+direct"
        sol.info["direct_fallback"] = bad
    return sol


def _direct_per_read(crossbar, G_all, V, nodes, which):
    """Direct solves of the inputs ``which``; ``G_all`` is (1, M, N) or (B, M, N)."""
    M, N = crossbar.shape
    n = len(which)
    I = np.empty((n, N))
    res = np.empty(n)
    V_row = np.empty((n, M, N)) if nodes else None
    V_col = np.empty((n, M, N)) if nodes else None
    if G_all.shape[0] == 1:
        s = DirectSolver(crossbar.replace(G=G_all[0]))._solve(V[which], nodes=nodes)
        return s
    for t, k in enumerate(which):
        s = DirectSolver(crossbar.replace(G=G_all[k]))._solve(V[k:k + 1], nodes=nodes)
        I[t] = s.I[0]
        res[t] = s.residuals[0]
        if nodes:
            V_row[t] = s.V_row[0]
            V_col[t] = s.V_col[0]
    return CrossbarSolution(I=I, V_row=V_row, V_col=V_col, residuals=res, method="direct")
