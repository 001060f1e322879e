"""Newton-Raphson for crossbars with non-linear devices.

The unknowns are the node voltages; the equations are Kirchhoff's current law at every
node (or merged group of nodes, see :mod:`xbarref.circuit.system`). The Jacobian has the
structure of the linear nodal matrix with each device conductance replaced by its
differential conductance ``di/dv`` at the present voltages, so each Newton step is one
linear crossbar solve: the grid PCG solver when every wire segment is non-zero, else the
direct sparse solver.

Convergence is tested the SPICE way, on both
- the update: ``|dv_n| <= reltol * max|v| + vntol`` for every node, and
- the currents: ``|KCL residual_n| <= reltol * S_n + abstol`` for every node, where
  ``S_n`` is the sum of the magnitudes of the branch currents at node ``n`` (plus the
  floor that the rounding of the node voltages sets).

Steps are damped by a backtracking line search on the residual norm. The first
iterate is the solution of the circuit linearized at 0 V. When plain Newton fails,
source stepping ramps the inputs from 0 to their values, each stage starting from the
last. If that fails too, :class:`~xbarref.errors.ConvergenceError` reports the
iterations, the last residual and the worst node.

One input (:meth:`NewtonSolver.solve_one`) runs these named steps, each returning a
small frozen result: :meth:`~NewtonSolver._attempt` (plain Newton,
:class:`AttemptResult`), :meth:`~NewtonSolver._line_search` (:class:`LineSearchResult`),
:meth:`~NewtonSolver._converged` (the SPICE tests) and
:meth:`~NewtonSolver._source_stepping` (:class:`SteppingResult`). On the direct path
the Jacobian's node grouping, ordering and sparsity pattern are found once
(:class:`_Jacobian`); an iteration refills its values and factors it again. The
linearized circuit of the first iterate is factored once for all the inputs that share
the crossbar's conductances.

On the grid, a batch of inputs iterates together (:meth:`NewtonSolver.solve_batch`):
batch kernels evaluate the devices and residuals, the Newton steps are one batched,
threaded PCG solve with inexact inner tolerances, and the line search and convergence
tests run per input; inputs that plain Newton does not converge on take the one-input
path with source stepping.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from xbarref.circuit import _assemble, _newton, _pcg
from xbarref.circuit.crossbar import check_inputs
from xbarref.circuit.direct import CrossbarSolution, DirectSolver, check_solution
from xbarref.circuit.grid import (THREAD_MIN_INPUTS, TOL, cached_parameters, default_max_iter,
                                  n_threads, no_coarse, run_split, solve_batch)
from xbarref.circuit.grid import solve_rhs_batch as grid_solve_rhs
from xbarref.circuit.laws import device_law
from xbarref.circuit.system import ND_LEAF, NodalSystem, factorize
from xbarref.errors import ConvergenceError, XbarrefError


@dataclass(frozen=True)
class NewtonOptions:
    """Convergence settings of Newton's method.

    Attributes
    ----------
    reltol : float
        Relative tolerance on node-voltage updates and on Kirchhoff residuals.
    vntol : float
        Absolute tolerance on node-voltage updates, volts.
    abstol : float
        Absolute tolerance on Kirchhoff residuals, amperes.
    max_iter : int
        Newton iterations per attempt (plain, and each source-stepping stage).
    linear_tol : float
        Error target of the inner PCG solves, relative to the Newton step.
    source_stepping : bool
        Ramp the inputs from 0 V when plain Newton fails.
    min_source_step : float
        Smallest source-stepping increment (fraction of the inputs) before giving up.
    """

    reltol: float = 1e-11
    vntol: float = 1e-15
    abstol: float = 1e-18
    max_iter: int = 50
    linear_tol: float = 1e-10
    source_stepping: bool = True
    min_source_step: float = 1e-3

    def __post_init__(self):
        for name in ("reltol", "vntol", "abstol", "linear_tol", "min_source_step"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise XbarrefError(f"NewtonOptions.{name}: must be finite and >= 0, got {value}")
        if int(self.max_iter) < 1:
            raise XbarrefError(f"NewtonOptions.max_iter: must be >= 1, got {self.max_iter}")


#: Error target of the linear solve that gives the first iterate of a batched solve.
START_TOL = 1e-8
#: Cells (inputs x M x N) per chunk of a batched Newton solve. It bounds the work arrays
#: and keeps a chunk's arrays in cache: at 128 x 128 chunks of 8 inputs ran 2x faster per
#: input than chunks of 256 (``1 << 22``), bit for bit the same results.
BATCH_CELLS = 1 << 17


@dataclass(frozen=True)
class AttemptResult:
    """What one Newton attempt from a given start returns (one input).

    Attributes
    ----------
    converged : bool
        Both SPICE tests passed (:meth:`NewtonSolver._converged`).
    iterations : int
        Newton iterations taken.
    residual : float
        Kirchhoff residual 2-norm in A before the last step.
    worst : tuple of (str, int, int) or None
        ``(kind, i, j)`` of the node with the worst Kirchhoff test when not converged.
    """

    converged: bool
    iterations: int
    residual: float
    worst: tuple | None = None


@dataclass(frozen=True)
class SteppingResult:
    """What source stepping (:meth:`NewtonSolver._source_stepping`) returns.

    Attributes
    ----------
    converged : bool
        The inputs were ramped all the way to 1.
    iterations : int
        Newton iterations over every stage, failed stages included.
    reached : float
        Fraction of the inputs reached by the last converged stage.
    last : AttemptResult or None
        The last failed stage (its residual and worst node), None if none failed.
    """

    converged: bool
    iterations: int
    reached: float
    last: AttemptResult | None


@dataclass(frozen=True)
class LineSearchResult:
    """What the one-input backtracking line search returns.

    Attributes
    ----------
    accepted : bool
        A step size was found (else 30 halvings did not decrease the residual).
    alpha : float
        The step size taken, of the full Newton step.
    norm : float
        Kirchhoff residual 2-norm in A at the new iterate.
    """

    accepted: bool
    alpha: float
    norm: float


@dataclass
class BatchNewtonResult:
    """What one batched Newton attempt returns (grid layout, inputs of the batch).

    Attributes
    ----------
    v : ndarray, shape (B, 2, M, N)
        Row and column node voltages in volts.
    iterations : ndarray of int, shape (B,)
        Newton iterations taken per input.
    converged : ndarray of bool, shape (B,)
        Where both SPICE tests passed; elsewhere the input needs the one-input path
        (source stepping) or fails.
    excess : ndarray, shape (B,)
        Worst ``|KCL residual| / tolerance`` per input (<= 1 where converged).
    """

    v: np.ndarray
    iterations: np.ndarray
    converged: np.ndarray
    excess: np.ndarray


class _Work:
    """Work arrays of one input: device currents and conductances, residuals, tolerances."""

    def __init__(self, M, N):
        self.i_dev = np.empty((M, N))
        self.g_dev = np.empty((M, N))
        self.res = np.empty((2, M, N))
        self.mag = np.empty((2, M, N))


class _Jacobian:
    """The nodal matrix of Newton's Jacobian on the direct path, built once per pattern
    of open cells and refilled with new differential conductances at every iteration.

    The node grouping and the nested-dissection ordering come from the crossbar's
    :class:`NodalSystem` (they depend on the resistances only); the sparsity pattern and
    where each element lands in the CSR arrays are found here once. An iteration then
    costs one refill (:func:`xbarref.circuit._assemble.refill_csr`, the same values to
    the bit as a fresh assembly) and one numeric factorization.
    """

    def __init__(self, crossbar, system, g_dev):
        M, N = g_dev.shape
        MN = M * N
        self.mask = g_dev > 0.0
        fresh = NodalSystem.from_crossbar(crossbar, G=g_dev, like=system)
        self.matrix = fresh.matrix
        a, b, g = _assemble.edge_list(g_dev, crossbar.r_source, crossbar.r_sink, crossbar.r_wire_row,
                                      crossbar.r_wire_col)
        label = system.label
        self.group_a = np.where(a < 0, a, label[np.maximum(a, 0)])
        self.group_b = np.where(b < 0, b, label[np.maximum(b, 0)])
        n = fresh.n_unknown
        m = self.matrix
        rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(m.indptr))
        keys = rows * n + m.indices          # row-major and sorted within rows: increasing
        both = (self.group_a >= 0) & (self.group_b >= 0)
        self.pos_a = np.where(both, np.searchsorted(keys, self.group_a * n + self.group_b), -1)
        self.pos_b = np.where(both, np.searchsorted(keys, self.group_b * n + self.group_a), -1)
        self.diag_pos = np.searchsorted(keys, np.arange(n, dtype=np.int64) * (n + 1))
        self.device = np.flatnonzero((a >= 0) & (a < MN) & (b == a + MN))
        self.device_cells = a[self.device]
        self.edge_g = g.copy()
        self.n_unknown = n
        # the refill must give the assembled values exactly (e.g. no duplicate entries)
        self.exact = np.array_equal(self._values(g_dev), m.data)

    def _values(self, g_dev):
        self.edge_g[self.device] = g_dev.reshape(-1)[self.device_cells]
        data = np.empty_like(self.matrix.data)
        _assemble.refill_csr(self.edge_g, self.group_a, self.group_b, self.pos_a, self.pos_b,
                             self.diag_pos, self.n_unknown, data)
        return data

    def factor(self, crossbar, system, g_dev):
        """SuperLU factors of the Jacobian at differential conductances ``g_dev`` (M, N)."""
        if not self.exact:
            return NodalSystem.from_crossbar(crossbar, G=g_dev, like=system).factor()
        m = self.matrix
        matrix = sp.csr_matrix((self._values(g_dev), m.indices, m.indptr), shape=m.shape)
        matrix.has_sorted_indices = True
        return factorize(matrix)


class _BatchWork:
    """Work arrays of a batched Newton solve: device currents and conductances, residuals,
    tolerances, residual norms and excesses (every entry of the batch)."""

    def __init__(self, B, M, N):
        self.i_dev = np.empty((B, M, N))
        self.g_dev = np.empty((B, M, N))
        self.res = np.empty((B, 2, M, N))
        self.mag = np.empty((B, 2, M, N))
        self.norm = np.full(B, np.inf)
        self.excess = np.full(B, np.inf)
        self.dv = np.zeros((B, 2, M, N))


#: Node groups per crossbar (they depend only on its read-only resistances).
_GROUPS = weakref.WeakKeyDictionary()


def node_groups(crossbar):
    """``(label, n_unknown)`` of :func:`_assemble.group_nodes` in the nested-dissection
    order, computed once per crossbar (``label`` read-only)."""
    hit = _GROUPS.get(crossbar)
    if hit is None:
        M, N = crossbar.shape
        rank = _assemble.nested_dissection_rank(M, N, ND_LEAF)
        label, n_unknown, _ = _assemble.group_nodes(
            crossbar.r_source, crossbar.r_sink, crossbar.r_wire_row, crossbar.r_wire_col, rank
        )
        label.setflags(write=False)
        hit = _GROUPS[crossbar] = (label, n_unknown)
    return hit


class NewtonSolver:
    """Newton's method for one crossbar: one input at a time, or a whole batch at once.

    Parameters
    ----------
    crossbar : Crossbar
        The circuit; any device law.
    options : NewtonOptions, optional
    """

    def __init__(self, crossbar, options=None):
        self.crossbar = crossbar
        self.options = options or NewtonOptions()
        self.law = device_law(crossbar)
        M, N = crossbar.shape
        self.label, self.n_unknown = node_groups(crossbar)
        self.grid = bool(np.all(crossbar.r_wire_row > 0) and np.all(crossbar.r_wire_col > 0))
        if self.grid:
            p = cached_parameters(crossbar)
            self.gs, self.gk, self.gr, self.gc, self.ps, self.pk = (p[k] for k in ("gs", "gk", "gr", "gc", "ps", "pk"))
            self.params = p
        else:
            self._system = NodalSystem.from_crossbar(crossbar)  # grouping and ordering, reused
            self._jacobian = None                                # pattern, built at the first step
        # mask of nodes with an equation (not pinned to a terminal)
        self.free = (self.label >= 0).reshape(2, M, N)
        self._linear_solver = None  # the linearized circuit of crossbar.G, factored at first use

    # -- pieces of one iteration -------------------------------------------------------
    def _device_currents(self, vr, vc, G, i_dev, g_dev):
        """Device currents (A) and differential conductances (S) at node voltages ``vr``, ``vc``."""
        law = self.law
        if law.builtin >= 0:
            _newton.builtin_currents(vr, vc, G, law.builtin, law.params, i_dev, g_dev)
        else:
            _newton.device_currents(vr, vc, G, law.current, law.conductance, law.params, i_dev, g_dev)

    def _evaluate(self, G, Vin, v, i_dev, g_dev, res, mag):
        """Device currents and the Kirchhoff residuals; ``mag`` gets the tolerance scale
        ``reltol * sum|branch currents| + rounding floor + abstol`` of each node."""
        xb = self.crossbar
        o = self.options
        floor = np.empty_like(mag)
        self._device_currents(v[0], v[1], G, i_dev, g_dev)
        _newton.node_residual(v[0], v[1], Vin, i_dev, xb.r_source, xb.r_sink, xb.r_wire_row, xb.r_wire_col,
                              res, mag, floor)
        mag *= o.reltol
        mag += floor
        mag += o.abstol

    def _equations(self, res):
        """The Kirchhoff residuals of the equations: free nodes, or merged groups."""
        if self.grid:
            return res[self.free]
        return _newton.group_sum(res, self.label, self.n_unknown)

    def _kcl_excess(self, res, tol):
        """Per equation: |residual| / tolerance (from ``_evaluate``); converged where <= 1."""
        return np.abs(self._equations(res)) / self._equations(tol)

    def _step(self, G, g_dev, res):
        """Solve ``J dv = res`` for the Newton step in node space (2, M, N)."""
        M, N = G.shape
        if self.grid:
            b = np.where(self.free, res, 0.0)
            dv = np.zeros((2, M, N))
            _pcg.pcg_core(g_dev, self.gs, self.gk, self.gr, self.gc, self.ps, self.pk, b, dv,
                          self.options.linear_tol, 20 * (M + N) + 200, no_coarse())
            return dv
        if self.n_unknown == 0:
            return np.zeros((2, M, N))
        rhs = _newton.group_sum(res, self.label, self.n_unknown)
        jac = self._jacobian
        if jac is None or not np.array_equal(jac.mask, g_dev > 0.0):
            jac = self._jacobian = _Jacobian(self.crossbar, self._system, g_dev)
        dx = jac.factor(self.crossbar, self._system, g_dev).solve(rhs)
        return _newton.group_spread(dx, self.label, M, N)

    def _worst_node(self, res, mag):
        """(kind, i, j) of the node (first node of the group) with the worst KCL test."""
        M, N = self.crossbar.shape
        excess = self._kcl_excess(res, mag)
        if self.grid:
            node = np.flatnonzero(self.free.reshape(-1))[int(np.argmax(excess))]
        else:
            node = int(np.flatnonzero(self.label == int(np.argmax(excess)))[0])
        s, i, j = np.unravel_index(node, (2, M, N))
        return ("row" if s == 0 else "column", int(i), int(j))

    def _norm(self, res):
        """Kirchhoff residual 2-norm (A) over the equations."""
        return np.linalg.norm(self._equations(res))

    def _line_search(self, G, Vin, v, dv, norm, work):
        """Backtracking on the residual 2-norm from ``v`` along ``dv`` (``v`` is updated).

        The step is halved up to 30 times until the norm decreases by the Armijo factor
        ``1 - 1e-4 alpha`` (or reaches 0), or the step is below the update tolerance (the
        rounding floor); ``work`` holds the evaluation at the new iterate.
        """
        o = self.options
        alpha = 1.0
        v_old = v.copy()
        floor = o.reltol * np.max(np.abs(v_old)) + o.vntol
        for _ in range(30):
            v[:] = v_old + alpha * dv
            self._evaluate(G, Vin, v, work.i_dev, work.g_dev, work.res, work.mag)
            new_norm = self._norm(work.res)
            if np.isfinite(new_norm) and new_norm <= (1.0 - 1e-4 * alpha) * norm or new_norm == 0.0:
                return LineSearchResult(True, alpha, new_norm)
            if np.isfinite(new_norm) and np.max(np.abs(alpha * dv)) <= floor:
                return LineSearchResult(True, alpha, new_norm)  # at the rounding floor
            alpha *= 0.5
        return LineSearchResult(False, alpha, new_norm)

    def _converged(self, step, v, work):
        """The SPICE tests of one input: the update ``max|alpha dv|`` (V) against
        ``reltol * max|v| + vntol``, and every equation's Kirchhoff residual against its
        tolerance (from ``work``)."""
        o = self.options
        update_ok = step <= o.reltol * np.max(np.abs(v)) + o.vntol
        return bool(update_ok and np.all(self._kcl_excess(work.res, work.mag) <= 1.0))

    def _attempt(self, G, Vin, v):
        """Plain Newton from ``v`` (updated in place); returns an :class:`AttemptResult`."""
        o = self.options
        M, N = G.shape
        work = _Work(M, N)
        self._evaluate(G, Vin, v, work.i_dev, work.g_dev, work.res, work.mag)
        norm = self._norm(work.res)
        for it in range(1, o.max_iter + 1):
            dv = self._step(G, work.g_dev, work.res)
            search = self._line_search(G, Vin, v, dv, norm, work)
            if not search.accepted:
                return AttemptResult(False, it, float(norm), self._worst_node(work.res, work.mag))
            norm = search.norm
            if self._converged(np.max(np.abs(search.alpha * dv)), v, work):
                return AttemptResult(True, it, float(norm))
        return AttemptResult(False, o.max_iter, float(norm), self._worst_node(work.res, work.mag))

    def _source_stepping(self, G, Vin, v):
        """Ramp the inputs from 0 to ``Vin``, each stage a Newton attempt from the last
        converged one: the increment starts at 1/4, grows by 1.5 after a success and is
        halved after a failure, down to ``min_source_step``. ``v`` ends at the last
        converged iterate; returns a :class:`SteppingResult`."""
        o = self.options
        lam = 0.0
        step = 0.25
        v[:] = 0.0
        v_good = v.copy()
        total = 0
        last = None
        while lam < 1.0:
            target = min(1.0, lam + step)
            stage = self._attempt(G, target * Vin, v)
            total += stage.iterations
            if stage.converged:
                lam = target
                v_good[:] = v
                step = min(1.0, step * 1.5)
                continue
            last = stage
            v[:] = v_good
            step *= 0.5
            if step < o.min_source_step:
                return SteppingResult(False, total, lam, last)
        return SteppingResult(True, total, lam, last)

    def _linear_start(self, G, Vin):
        """Node voltages of the circuit linearized at 0 V (the first Newton iterate)."""
        M, N = G.shape
        zero = np.zeros_like(G)
        i0 = np.empty_like(G)
        g0 = np.empty_like(G)
        self._device_currents(zero, zero, G, i0, g0)
        lin = self.crossbar.replace(G=g0, device="linear", sinh_k=None)
        if self.grid:
            _, x, _, res = solve_batch(g0[None], self.params, Vin[None], TOL, default_max_iter(M, N), True)
            if res[0] <= TOL:
                return x[0]
        if G is self.crossbar.G:
            # the same linearized circuit for every input: assembled and factored once
            if self._linear_solver is None:
                self._linear_solver = DirectSolver(lin)
            solver = self._linear_solver
        else:
            solver = DirectSolver(lin)
        sol = solver._solve(Vin[None], nodes=True)
        return np.stack([sol.V_row[0], sol.V_col[0]])

    # -- batched Newton on the grid ----------------------------------------------------
    def _evaluate_batch(self, which, V, v, G_all, work):
        """Device currents, residuals, norms and excesses of the inputs ``which`` (threads)."""
        law, xb, o = self.law, self.crossbar, self.options
        tail = (xb.r_source, xb.r_sink, xb.r_wire_row, xb.r_wire_col, self.free, o.reltol, o.abstol,
                work.i_dev, work.g_dev, work.res, work.mag, work.norm, work.excess)
        if law.builtin >= 0:
            def run(part):
                _newton.evaluate_builtin(part, V, v, G_all, law.builtin, law.params, *tail)
        else:
            def run(part):
                _newton.evaluate_user(part, V, v, G_all, law.current, law.conductance, law.params, *tail)
        run_split(run, np.ascontiguousarray(which, np.int64))

    def _newton_steps(self, which, work, tol):
        """Newton steps ``J dv = residual`` of the inputs ``which`` (batched grid PCG) to the
        relative error ``tol``."""
        M, N = self.crossbar.shape
        b = work.res
        b *= self.free  # pinned nodes have no equation: zero right-hand side (res is re-evaluated)
        dv, _, _ = grid_solve_rhs(work.g_dev, self.params, b, which, tol, 20 * (M + N) + 200, x_all=work.dv)
        return dv

    def _step_tolerance(self, which, work, norm_start):
        """Inexact Newton (a forcing term): the inner error target of the next steps.

        Far from the solution a step need not be exact: the target is ``0.1 x`` the
        residual norm relative to the start (at most 1e-4, at least ``linear_tol``), the
        worst over the active inputs. Convergence is still decided by the exact
        Kirchhoff test, so only the number of inner iterations changes.
        """
        rel = float(np.max(work.norm[which] / np.where(norm_start[which] > 0, norm_start[which], 1.0)))
        return max(self.options.linear_tol, min(1e-4, 0.1 * rel))

    def _line_search_batch(self, which, V, v, dv, G_all, work):
        """Backtracking on the residual 2-norm, per input (the step is halved up to 30
        times until the norm decreases, or the step is below the update tolerance).
        Returns ``(accepted (n,), step size max|alpha dv| (n,))``; ``v`` is updated."""
        o = self.options
        n = which.size
        norm0 = work.norm[which].copy()
        v_old = np.empty((n,) + v.shape[1:])
        step_max = np.empty(n)
        v_max = np.empty(n)
        _newton.line_search_start(which, v, dv, v_old, step_max, v_max)
        floor = o.reltol * v_max + o.vntol
        alpha = np.ones(n)
        pending = np.ones(n, bool)
        for _ in range(30):
            idx = np.flatnonzero(pending)
            k = which[idx]
            _newton.line_search_trial(idx, which, v, v_old, dv, alpha)
            self._evaluate_batch(k, V, v, G_all, work)
            new = work.norm[k]
            fin = np.isfinite(new)
            ok = (fin & (new <= (1.0 - 1e-4 * alpha[idx]) * norm0[idx])) | (new == 0.0) \
                | (fin & (alpha[idx] * step_max[idx] <= floor[idx]))
            alpha[idx[~ok]] *= 0.5
            pending[idx[ok]] = False
            if not pending.any():
                break
        accepted = ~pending
        return accepted, alpha * step_max

    def _converged_batch(self, which, step, v, work):
        """SPICE tests per input: the update and every node's Kirchhoff residual."""
        o = self.options
        v_max = np.empty(which.size)
        _newton.abs_max(which, v, v_max)
        return (step <= o.reltol * v_max + o.vntol) & (work.excess[which] <= 1.0)

    def _linear_start_batch(self, G_all, V):
        """First iterates (B, 2, M, N): the circuit linearized at 0 V, for every input."""
        B, M = V.shape
        N = G_all.shape[2]
        zero = np.zeros((M, N))
        g0 = np.empty_like(G_all)
        i0 = np.empty((M, N))
        for k in range(G_all.shape[0]):
            self._device_currents(zero, zero, G_all[k], i0, g0[k])
        # only a first iterate: 1e-8 is ample (Newton's test decides the accuracy)
        _, x, _, res = solve_batch(g0, self.params, V, START_TOL, default_max_iter(M, N), True)
        for k in np.flatnonzero(~np.isfinite(res)):  # no usable start from PCG: direct
            lin = self.crossbar.replace(G=g0[0 if g0.shape[0] == 1 else k], device="linear", sinh_k=None)
            sol = DirectSolver(lin)._solve(V[k:k + 1], nodes=True)
            x[k, 0], x[k, 1] = sol.V_row[0], sol.V_col[0]
        return x

    def solve_batch(self, V, G_all):
        """Plain Newton on the grid for every input at once (one attempt, no stepping).

        The inputs iterate together: device evaluation and residuals in one kernel call,
        the Newton steps as one batched PCG solve split over threads, the line search per
        input; converged inputs leave the active set. Returns a :class:`BatchNewtonResult`.
        """
        o = self.options
        B = V.shape[0]
        M, N = self.crossbar.shape
        v = self._linear_start_batch(G_all, V)
        work = _BatchWork(B, M, N)
        iterations = np.zeros(B, np.int64)
        converged = np.zeros(B, bool)
        active = np.arange(B)
        self._evaluate_batch(active, V, v, G_all, work)
        norm_start = work.norm.copy()
        for it in range(1, o.max_iter + 1):
            if active.size == 0:
                break
            iterations[active] = it
            dv = self._newton_steps(active, work, self._step_tolerance(active, work, norm_start))
            accepted, step = self._line_search_batch(active, V, v, dv, G_all, work)
            moved = active[accepted]
            done = self._converged_batch(moved, step[accepted], v, work)
            converged[moved[done]] = True
            active = moved[~done]
        return BatchNewtonResult(v=v, iterations=iterations, converged=converged, excess=work.excess.copy())

    def solve_one(self, Vin, G=None):
        """Solve one input vector: plain Newton from the linearized start, then source
        stepping if that fails. Returns ``(v (2, M, N), I (N,), iterations, relative
        residual)``; raises :class:`ConvergenceError` when both fail."""
        G = self.crossbar.G if G is None else G
        o = self.options
        M, N = G.shape
        v = self._linear_start(G, Vin)
        first = self._attempt(G, Vin, v)
        total = first.iterations
        if not first.converged:
            if not o.source_stepping:
                self._raise(first, total)
            ramp = self._source_stepping(G, Vin, v)
            total += ramp.iterations
            if not ramp.converged:
                self._raise(ramp.last, total, stepping=ramp.reached)
        work = _Work(M, N)
        self._evaluate(G, Vin, v, work.i_dev, work.g_dev, work.res, work.mag)
        # relative Kirchhoff residual: the worst |residual| / tolerance, times reltol
        rel = float(np.max(self._kcl_excess(work.res, work.mag), initial=0.0)) * o.reltol
        I = _newton.sink_currents_nodes(v[1], work.res, self.crossbar.r_sink, self.label)
        return v, I, total, rel

    def outputs(self, v, Vin, G=None):
        """Output currents (N,) in amperes at node voltages ``v`` (2, M, N)."""
        G = self.crossbar.G if G is None else G
        work = _Work(*G.shape)
        self._evaluate(G, Vin, v, work.i_dev, work.g_dev, work.res, work.mag)
        return _newton.sink_currents_nodes(v[1], work.res, self.crossbar.r_sink, self.label)

    def _raise(self, fail, total, stepping=None):
        kind, i, j = fail.worst
        extra = "" if stepping is None else f"; source stepping reached {stepping:.3g} of the inputs"
        raise ConvergenceError(
            f"Newton did not converge after {total} iterations (last residual norm {fail.residual:.3e} A, "
            f"worst node: {kind} node ({i}, {j})){extra}; "
            f"reltol={self.options.reltol}, vntol={self.options.vntol} V, abstol={self.options.abstol} A"
        )


def solve_newton(crossbar, V, nodes=False, G_batch=None, options=None):
    """Solve a crossbar with any device law by Newton's method, input by input.

    Parameters
    ----------
    crossbar : Crossbar
    V : array_like, shape (B, M) or (M,)
        Input voltages in volts.
    nodes : bool
        Also return node voltages.
    G_batch : array_like, shape (B, M, N), optional
        One conductance matrix per input (per-read noise).
    options : NewtonOptions, optional

    Returns
    -------
    CrossbarSolution
        With ``iterations`` (Newton iterations per input, source stepping included) and
        ``residuals``: the worst Kirchhoff residual relative to its tolerance, times
        ``reltol`` (so at most ``reltol`` when converged).

    Raises
    ------
    ConvergenceError
        With iterations, the last residual and the worst node.
    """
    M, N = crossbar.shape
    V = check_inputs(V, M)
    if options is None:
        options = NewtonOptions()
    solver = NewtonSolver(crossbar, options)
    B = V.shape[0]
    I = np.empty((B, N))
    iters = np.empty(B, np.int64)
    res = np.empty(B)
    V_row = np.empty((B, M, N)) if nodes else None
    V_col = np.empty((B, M, N)) if nodes else None
    t0 = time.perf_counter()
    todo = np.arange(B)
    if solver.grid:
        # every input at once, in chunks that bound the work arrays; the inputs plain
        # Newton does not converge on go through the one-input path (source stepping)
        chunk = max(THREAD_MIN_INPUTS * n_threads(), BATCH_CELLS // (M * N))  # every thread busy
        left = []
        for k0 in range(0, B, chunk):
            ks = np.arange(k0, min(B, k0 + chunk))
            G_all = crossbar.G[None] if G_batch is None else np.ascontiguousarray(G_batch[ks])
            out = solver.solve_batch(np.ascontiguousarray(V[ks]), G_all)
            for t, k in enumerate(ks):
                if not out.converged[t]:
                    left.append(k)
                    continue
                v = out.v[t]
                iters[k] = out.iterations[t]
                res[k] = float(out.excess[t]) * options.reltol
                I[k] = solver.outputs(v, V[k], None if G_batch is None else G_batch[k])
                if nodes:
                    V_row[k] = v[0]
                    V_col[k] = v[1]
        todo = np.array(left, np.int64)
    for k in todo:
        G = None if G_batch is None else G_batch[k]
        v, I[k], iters[k], res[k] = solver.solve_one(V[k], G)
        if nodes:
            V_row[k] = v[0]
            V_col[k] = v[1]
    info = {"solve": time.perf_counter() - t0, "linear_solver": "pcg" if solver.grid else "direct",
            "one_input_path": todo}
    sol = CrossbarSolution(I=I, V_row=V_row, V_col=V_col, residuals=res, iterations=iters,
                           method="newton", info=info)
    # checked here too, for callers of this function (finite, resolvable, converged)
    return check_solution(sol, options.reltol, "solve_newton")
