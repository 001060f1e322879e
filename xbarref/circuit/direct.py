"""Direct sparse solver: factor once, solve many; the exact effective matrix.

Every result is checked before it is returned (:func:`check_solution`): non-finite
currents, currents below the resolution of float64, and an error estimate above the
requested tolerance raise :class:`~xbarref.errors.ComputationError` (a
``ConvergenceError``) naming the input and the achieved value - also when the solver is
called directly, not through :func:`xbarref.circuit.solve`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg as la

from xbarref.circuit.crossbar import check_inputs
from xbarref.circuit.grid import TOL
from xbarref.circuit.system import NodalSystem
from xbarref.errors import ConvergenceError, XbarrefError

#: Iterative-refinement steps are taken while the relative residual is above this.
REFINE_TOL = 1e-14
#: ``n_unknown * min(M, N)`` above which ``effective_matrix`` uses the Schur complement.
SCHUR_WORK = 2e6
#: Right-hand sides per block when the effective matrix is built by solves.
RHS_BLOCK = 64
#: Default tolerance of :meth:`DirectSolver.effective_matrix`: the largest relative error
#: of ``A`` (measured on probe inputs, see there) that is returned without an error. The
#: Schur-complement form measured 2e-13 .. 4e-12 at 128 x 128 .. 256 x 256.
EFFECTIVE_TOL = 1e-10
#: The smallest positive float64 (subnormal): the spacing of float64 numbers near 0.
_SMALLEST = float(np.nextafter(0.0, 1.0))


@dataclass
class CrossbarSolution:
    """Solved crossbar outputs.

    Attributes
    ----------
    I : ndarray, shape (B, N)
        Output currents in amperes: current into 0 V through each sink.
    V_row, V_col : ndarray, shape (B, M, N), or None
        Row and column node voltages in volts (when requested).
    residual : float
        Largest relative residual over the batch, measured as the forward error it
        implies: the Kirchhoff residual is summed from branch currents and turned into
        the correction one more step would make (exact for the direct solver, through
        the wire preconditioner for PCG); the residual is that correction relative to
        the outputs and node voltages, ``max(max|dI| / max|I|, max|dv| / max|v|)``.
    residuals : ndarray, shape (B,)
        The residual of each input.
    iterations : ndarray of int, shape (B,), or None
        Iterations per input of an iterative or Newton solve.
    method : str
        Which solver produced it: ``"direct"``, ``"pcg"``, ``"newton"``...
    info : dict
        Solver details (timings in seconds, fall-backs taken, ...).
    """

    I: np.ndarray
    V_row: np.ndarray | None = None
    V_col: np.ndarray | None = None
    residuals: np.ndarray = field(default_factory=lambda: np.zeros(0))
    iterations: np.ndarray | None = None
    method: str = ""
    info: dict = field(default_factory=dict)

    @property
    def residual(self):
        """The largest of ``residuals`` (NaN when the solve has none, e.g. via ``V @ A``)."""
        return float(self.residuals.max()) if self.residuals.size else 0.0


class DirectSolver:
    """Sparse direct solver of a linear crossbar: factor once, solve many inputs.

    The nodal matrix (merged shorts, see :mod:`xbarref.circuit.system`) is ordered by
    geometric nested dissection with the unknowns that touch a terminal last, and
    factored by SuperLU with that ordering kept (symmetric mode, diagonal pivots: the
    matrix is symmetric positive definite). Solves are refined iteratively, with the
    residual summed from branch currents, while it is above ``REFINE_TOL``.

    Parameters
    ----------
    crossbar : Crossbar
        A crossbar with the linear device.

    Examples
    --------
    >>> import numpy as np
    >>> from xbarref.circuit import Crossbar, DirectSolver
    >>> xb = Crossbar(np.full((3, 2), 1e-4), r_source=10.0, r_sink=5.0, r_wire_row=1.0, r_wire_col=1.0)
    >>> solver = DirectSolver(xb)
    >>> sol = solver.solve(np.ones((4, 3)))
    >>> sol.I.shape
    (4, 2)
    >>> bool(np.allclose(sol.I, np.ones((4, 3)) @ solver.effective_matrix(), rtol=1e-12))
    True
    """

    def __init__(self, crossbar):
        if not crossbar.is_linear:
            raise XbarrefError("DirectSolver: needs the linear device; use solve() for non-linear devices")
        self.crossbar = crossbar
        t0 = time.perf_counter()
        self.system = NodalSystem.from_crossbar(crossbar)
        t1 = time.perf_counter()
        self._lu = None
        if self.system.n_unknown:
            self._lu = self.system.factor()
        t2 = time.perf_counter()
        self.timings = {"assemble": t1 - t0, "factor": t2 - t1}
        self._A = {}

    @property
    def shape(self):
        return self.crossbar.shape

    def solve_unknowns(self, V):
        """Node-group voltages (n_unknown, B) for source voltages ``V`` (B, M), and errors.

        Each solve is refined iteratively with the residual summed from branch
        currents; the size of the last correction, relative to the outputs and to the
        node voltages, is the reported error estimate (B,) (see ``CrossbarSolution``).
        """
        rhs = self.system.rhs(V)
        B = V.shape[0]
        if self._lu is None:
            return np.zeros_like(rhs), np.zeros(B)
        x = self._lu.solve(rhs)
        zero = np.zeros_like(V)
        previous = np.inf
        for _ in range(3):
            dx = self._lu.solve(self.system.residual(x, V))
            est = _relative_change(self.system.currents(x, V), self.system.currents(dx, zero), x, dx, V)
            x += dx
            if est.max() <= REFINE_TOL or est.max() > 0.5 * previous:  # done, or at the rounding floor
                break
            previous = est.max()
        return x, est

    def solve(self, V, nodes=False, tol=TOL):
        """Output currents (and node voltages) for a batch of input voltages.

        Parameters
        ----------
        V : array_like, shape (B, M) or (M,)
            Row driver voltages in volts.
        nodes : bool
            Also return row and column node voltages.
        tol : float
            Largest error estimate (``CrossbarSolution.residuals``) accepted, in (0, 1).

        Returns
        -------
        CrossbarSolution

        Raises
        ------
        ConvergenceError
            An input whose error estimate after refinement is above ``tol``, or whose
            currents are not finite (see :func:`check_solution`).
        """
        tol = _check_tol(tol)
        return check_solution(self._solve(V, nodes), tol, "DirectSolver.solve")

    def _solve(self, V, nodes=False):
        """:meth:`solve` without the result check (callers check, naming their own inputs)."""
        V = check_inputs(V, self.shape[0])
        t0 = time.perf_counter()
        x, res = self.solve_unknowns(V)
        if self.system.n_unknown == 0:
            # every node is a terminal: I = V @ G, computed as that very product
            I = V @ self.effective_matrix()
        else:
            I = self.system.currents(x, V)
        sol = CrossbarSolution(I=I, residuals=res, method="direct", info=dict(self.timings))
        if nodes:
            sol.V_row, sol.V_col = self.system.node_voltages(x, V)
        sol.info["solve"] = time.perf_counter() - t0
        return sol

    def effective_matrix(self, method="auto", tol=EFFECTIVE_TOL):
        """The exact (M, N) matrix ``A`` with ``I = V @ A`` in siemens.

        ``A`` is the Schur complement of the network onto its terminals,
        ``A = P^T K^{-1} Q + D``, where ``P`` and ``Q`` are the conductances from the
        unknowns to the sources and to the sinks and ``D`` those directly between
        terminals. With every resistance 0, ``A == G`` exactly.

        Parameters
        ----------
        method : {"auto", "schur", "solve"}
            ``schur``: with the unknowns that touch a terminal (the boundary ``b``)
            ordered last, the trailing block of the LU factors is the Schur complement
            ``S_bb`` of the interior onto the boundary, and ``A = P_b^T S_bb^{-1} Q_b + D``
            costs two dense triangular solves of size |b| - no sparse solves; accurate
            to rounding times the condition of ``S_bb`` (about 1e-12 of ``max A`` in
            the benchmarks). ``solve``: ``K X = Q`` for every sink, blocked, each refined
            with branch-current residuals to rounding (N sparse solves). ``auto``:
            ``solve`` while ``n_unknown * min(M, N) <= SCHUR_WORK`` (2e6), else ``schur``.
        tol : float
            Largest relative error of ``A`` accepted (default ``EFFECTIVE_TOL``, 1e-10).
            The error is measured (:meth:`effective_error`) on two probe inputs, all
            ones and a ramp from 1 to 2 V, whose currents are also solved directly:
            ``max |p @ A - I_direct| / max |I_direct|``. Above ``tol`` the ``schur``
            form is replaced by the ``solve`` form (with ``method="auto"``); above it
            still, :class:`~xbarref.errors.ConvergenceError`.

        Returns
        -------
        ndarray, shape (M, N)

        Raises
        ------
        ConvergenceError
            The measured error of ``A`` is above ``tol`` (after the fall-back).
        """
        if method not in ("auto", "schur", "solve"):
            raise XbarrefError(f"method: expected 'auto', 'schur' or 'solve', got {method!r}")
        tol = _check_tol(tol)
        s = self.system
        chosen = method
        if method == "auto":
            chosen = "solve" if s.n_unknown * min(s.M, s.N) <= SCHUR_WORK else "schur"
        A, err = self._built(chosen)
        if err > tol and method == "auto" and chosen == "schur":
            chosen = "solve"
            A, err = self._built(chosen)
        if not err <= tol:
            raise ConvergenceError(
                f"effective_matrix: the {chosen} form's measured relative error {err:.3g} is above "
                f"the tolerance {tol:.3g}; the resistance and conductance ratios of this circuit "
                "are beyond what float64 builds to this tolerance (solve the inputs instead)")
        return A

    def effective_error(self, method="auto"):
        """The measured relative error of the effective matrix of ``method`` (built if needed).

        ``max |p @ A - I_p| / max |I_p|`` over two probe inputs ``p`` (all ones; a ramp from
        1 to 2 V), where ``I_p`` are their currents from refined direct solves. ``A >= 0``
        and the probes are positive, so nothing cancels: the value is the relative error
        of the column sums of ``A`` (weighted two ways). 0 when every node is a terminal
        (``A`` is then exact).
        """
        s = self.system
        if method == "auto":
            method = "solve" if s.n_unknown * min(s.M, s.N) <= SCHUR_WORK else "schur"
        return self._built(method)[1]

    def _built(self, method):
        if self._A.get(method) is None:
            t0 = time.perf_counter()
            A = self._effective_matrix(method)
            self.timings["effective_matrix"] = time.perf_counter() - t0
            self._A[method] = (A, self._probe_error(A))
        return self._A[method]

    def _probe_error(self, A):
        s = self.system
        if s.n_unknown == 0:
            return 0.0
        if not np.all(np.isfinite(A)):
            return float("inf")
        probes = np.stack([np.ones(s.M), np.linspace(1.0, 2.0, s.M)])
        x, est = self.solve_unknowns(probes)
        ref = s.currents(x, probes)
        scale = np.abs(ref).max(axis=1)
        if not np.all(scale > 0):  # no current can flow (every device open): A must be 0
            return 0.0 if not np.any(A) else float("inf")
        err = np.abs(probes @ A - ref).max(axis=1) / scale
        return float(max(err.max(), est.max()))

    def _effective_matrix(self, method):
        s = self.system
        A = s.direct_matrix()
        if s.n_unknown == 0:
            return A
        n, nb = s.n_unknown, s.n_boundary
        lu = self._lu
        ident = np.arange(n)
        if method == "schur" and nb <= 4 * (s.M + s.N) + 64 and np.array_equal(lu.perm_c, ident) \
                and np.array_equal(lu.perm_r, ident):
            L22 = _trailing_block(lu.L.tocsc(), n - nb)
            U22 = _trailing_block(lu.U.tocsc(), n - nb)
            P, Q = s.terminal_coupling(np.arange(n - nb, n))
            Y = la.solve_triangular(L22, Q, lower=True, unit_diagonal=True, check_finite=False)
            Y = la.solve_triangular(U22, Y, lower=False, check_finite=False)
            return A + P.T @ Y
        # by solves: column j of K^-1 Q is the network with sink j at 1 V, all else at 0 V
        P, Q = s.terminal_coupling(np.arange(n))
        for j0 in range(0, s.N, RHS_BLOCK):
            cols = np.arange(j0, min(s.N, j0 + RHS_BLOCK))
            V0 = np.zeros((len(cols), s.M))
            V_sink = np.zeros((len(cols), s.N))
            V_sink[np.arange(len(cols)), cols] = 1.0
            X = lu.solve(np.ascontiguousarray(Q[:, cols]))
            for _ in range(3):
                dX = lu.solve(s.residual(X, V0, V_sink))
                X += dX
                if np.abs(dX).max() <= REFINE_TOL * np.abs(X).max():
                    break
            A[:, cols] += P.T @ X
        return A


def _check_tol(tol):
    if isinstance(tol, bool) or not isinstance(tol, (int, float, np.floating)) or not 0 < float(tol) < 1:
        raise XbarrefError(f"tol: must be a number in (0, 1), got {tol!r}")
    return float(tol)


def check_solution(sol, tol, what="solve"):
    """Raise :class:`ConvergenceError` unless every output is finite, above float64's
    resolution, and every residual (error estimate) is at most ``tol``; returns ``sol``.

    The message names ``what`` (the function), the first bad input (by its index in the
    batch) and the achieved residual.
    """
    I = np.asarray(sol.I)
    bad_rows = np.flatnonzero(~np.all(np.isfinite(I.reshape(I.shape[0], -1)), axis=1)) if I.size else []
    if len(bad_rows):
        k = int(bad_rows[0])
        raise ConvergenceError(f"{what}: input {k}: the {sol.method} solver returned non-finite "
                               f"currents ({len(bad_rows)} of {I.shape[0]} inputs); no result")
    if I.size:
        peak = np.abs(I.reshape(I.shape[0], -1)).max(axis=1)
        # an output so small that float64's spacing there (subnormal numbers) is above tol
        lost = np.flatnonzero((peak > 0) & (_SMALLEST / np.where(peak > 0, peak, 1.0) > tol))
        if lost.size:
            k = int(lost[0])
            raise ConvergenceError(
                f"{what}: input {k}: output currents of {peak[k]:.3g} A are below the resolution "
                f"of float64 (spacing {_SMALLEST:.3g} A) to the tolerance {tol:.3g}; scale the "
                "conductances or the input voltages up")
    res = np.asarray(sol.residuals, dtype=np.float64)
    if res.size == 0:
        return sol
    over = np.flatnonzero(~(res <= tol))
    if over.size:
        k = int(over[np.argmax(np.nan_to_num(res[over], nan=np.inf))])
        raise ConvergenceError(
            f"{what}: input {k}: achieved residual {res[k]:.3g} is above the tolerance {tol:.3g} "
            f"after the {sol.method} solve ({over.size} of {res.size} inputs); the resistance "
            "and conductance ratios of this circuit are beyond what float64 solves to this "
            "tolerance")
    return sol


def _relative_change(I, dI, x, dx, V):
    """Per input: ``max(max|dI| / max|I|, max|dx| / max|v|)`` (0 where both are 0)."""
    i_max = np.abs(I).max(axis=1)
    v_max = np.maximum(np.abs(x).max(axis=0), np.abs(V).max(axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        e_i = np.where(i_max > 0, np.abs(dI).max(axis=1) / i_max, 0.0)
        e_v = np.where(v_max > 0, np.abs(dx).max(axis=0) / v_max, 0.0)
    return np.maximum(e_i, e_v)


def _trailing_block(F, start):
    """Dense ``F[start:, start:]`` of a CSC triangular factor, read from its arrays."""
    n = F.shape[0]
    nb = n - start
    out = np.zeros((nb, nb))
    lo = F.indptr[start]
    cols = np.repeat(np.arange(nb), np.diff(F.indptr[start:]))
    rows = F.indices[lo:]
    keep = rows >= start
    out[rows[keep] - start, cols[keep]] = F.data[lo:][keep]
    return out


def effective_matrix(crossbar, tol=EFFECTIVE_TOL):
    """The exact (M, N) effective matrix ``A`` of a linear crossbar: ``I = V @ A``.

    Its measured relative error is at most ``tol`` or :class:`ConvergenceError` is
    raised; see :meth:`DirectSolver.effective_matrix`.
    """
    return DirectSolver(crossbar).effective_matrix(tol=tol)
