"""The nodal system of a crossbar: merged node groups, the SPD matrix, terminal couplings."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from xbarref.circuit import _assemble

#: Cells per leaf rectangle of the nested-dissection ordering.
ND_LEAF = 16


def factorize(matrix, ordering="NATURAL"):
    """SuperLU factors of a symmetric positive definite matrix.

    The one set of options of every sparse factorization of the solvers: symmetric mode
    with diagonal pivots (the matrix is symmetric positive definite, so no pivoting is
    needed) and, by default, the matrix's own order (``"NATURAL"``: the nodal systems come
    in nested-dissection order).

    Parameters
    ----------
    matrix : scipy.sparse matrix
    ordering : str, optional
        SuperLU's ``permc_spec``; the coarse space of the grid solver, assembled in no
        particular order, uses ``"MMD_AT_PLUS_A"`` (minimum degree on ``A + A^T``).

    Returns
    -------
    scipy.sparse.linalg.SuperLU
    """
    return spla.splu(matrix.tocsc(), permc_spec=ordering, diag_pivot_thresh=0.0,
                     options=dict(SymmetricMode=True))


@dataclass(frozen=True, eq=False)
class NodalSystem:
    """The linear nodal equations ``K x = rhs(V)`` of a crossbar with linear devices.

    Attributes
    ----------
    M, N : int
        Rows (inputs) and columns (outputs).
    label : ndarray of int64, shape (2*M*N,)
        Unknown index of each node (row nodes first, then column nodes, row-major), or a
        negative terminal code (see :mod:`xbarref.circuit._assemble`).
    n_unknown : int
        Number of unknown node groups.
    n_boundary : int
        Number of unknowns coupled to a terminal; they are numbered last.
    matrix : scipy.sparse.csr_matrix, shape (n_unknown, n_unknown)
        The symmetric positive definite nodal conductance matrix in siemens, ordered
        by nested dissection (boundary last).
    coup_u, coup_t, coup_g : ndarray
        Unknown--terminal couplings: unknown index, terminal index (sources ``0..M-1``,
        sinks ``M..M+N-1``) and conductance in siemens.
    direct_t1, direct_t2, direct_g : ndarray
        Terminal--terminal conductances (a device between two shorted terminals).
    """

    M: int
    N: int
    label: np.ndarray
    n_unknown: int
    n_boundary: int
    matrix: sp.csr_matrix
    coup_u: np.ndarray
    coup_t: np.ndarray
    coup_g: np.ndarray
    direct_t1: np.ndarray
    direct_t2: np.ndarray
    direct_g: np.ndarray

    @classmethod
    def from_crossbar(cls, crossbar, G=None, like=None):
        """Assemble the system of ``crossbar`` (optionally with conductances ``G`` instead).

        ``like``: a system of the same crossbar whose node grouping and ordering are
        reused (they depend on the resistances only), e.g. for Newton's Jacobians.
        """
        G = crossbar.G if G is None else G
        M, N = G.shape
        if like is not None:
            label, n_unknown = like.label, like.n_unknown
            is_boundary = np.zeros(n_unknown, np.bool_)
            is_boundary[n_unknown - like.n_boundary:] = True
        else:
            rank = _assemble.nested_dissection_rank(M, N, ND_LEAF)
            label, n_unknown, is_boundary = _assemble.group_nodes(
                crossbar.r_source, crossbar.r_sink, crossbar.r_wire_row, crossbar.r_wire_col, rank
            )
        edges = _assemble.edge_list(G, crossbar.r_source, crossbar.r_sink, crossbar.r_wire_row, crossbar.r_wire_col)
        (indptr, indices, data, coup_u, coup_t, coup_g, d1, d2, dg) = _assemble.assemble_csr(
            *edges, label, n_unknown, M + N
        )
        matrix = sp.csr_matrix((data, indices, indptr), shape=(n_unknown, n_unknown))
        matrix.has_sorted_indices = True
        return cls(M, N, label, int(n_unknown), int(is_boundary.sum()), matrix,
                   coup_u, coup_t, coup_g, d1, d2, dg)

    def factor(self):
        """SuperLU factors of the matrix (:func:`factorize`)."""
        return factorize(self.matrix)

    def rhs(self, V):
        """Right-hand sides (n_unknown, B) in amperes for input voltages ``V`` (B, M)."""
        return _assemble.source_rhs(V, self.coup_u, self.coup_t, self.coup_g, self.n_unknown, self.M)

    def currents(self, x, V):
        """Output currents (B, N) in amperes from the unknowns ``x`` (n_unknown, B)."""
        return _assemble.sink_currents(x, V, self.coup_u, self.coup_t, self.coup_g,
                                       self.direct_t1, self.direct_t2, self.direct_g, self.M, self.N)

    def node_voltages(self, x, V):
        """Row and column node voltages, each (B, M, N), in volts."""
        return _assemble.node_voltages(x, V, self.label, self.M, self.N)

    def residual(self, x, V, V_sink=None):
        """Kirchhoff residual (n_unknown, B) summed from branch currents.

        ``V`` (B, M) are the source voltages; the sinks are at 0 V unless ``V_sink``
        (B, N) says otherwise.
        """
        m = self.matrix
        Vt = np.zeros((V.shape[0], self.M + self.N))
        Vt[:, :self.M] = V
        if V_sink is not None:
            Vt[:, self.M:] = V_sink
        return _assemble.branch_residual(m.indptr, m.indices, m.data, x, Vt,
                                         self.coup_u, self.coup_t, self.coup_g)

    def direct_matrix(self):
        """Terminal--terminal conductance part of the effective matrix, (M, N) in siemens."""
        D = np.zeros((self.M, self.N))
        t1, t2, g, M = self.direct_t1, self.direct_t2, self.direct_g, self.M
        fwd = (t1 < M) & (t2 >= M)
        rev = (t2 < M) & (t1 >= M)
        np.add.at(D, (t1[fwd], t2[fwd] - M), g[fwd])
        np.add.at(D, (t2[rev], t1[rev] - M), g[rev])
        return D

    def terminal_coupling(self, rows):
        """Dense couplings of unknowns ``rows`` (an index array) to sources (., M) and sinks (., N)."""
        pos = np.full(self.n_unknown, -1, np.int64)
        pos[rows] = np.arange(len(rows))
        P = np.zeros((len(rows), self.M))
        Q = np.zeros((len(rows), self.N))
        k = pos[self.coup_u]
        src = (self.coup_t < self.M) & (k >= 0)
        snk = (self.coup_t >= self.M) & (k >= 0)
        np.add.at(P, (k[src], self.coup_t[src]), self.coup_g[src])
        np.add.at(Q, (k[snk], self.coup_t[snk] - self.M), self.coup_g[snk])
        return P, Q
