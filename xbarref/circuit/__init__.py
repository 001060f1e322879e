"""Crossbar circuits and their exact solvers.

Crossbar            the circuit: conductances, parasitic resistances, device law
check_inputs        input voltages as a (B, M) array
solve               output currents (and node voltages) for a batch of inputs
solve_per_read      a batch in which every input has its own conductance matrix
DirectSolver        sparse factorization: factor once, solve many; effective matrix
effective_matrix    the exact (M, N) matrix A with I = V @ A (linear devices)
CrossbarSolution    what the solvers return: I, V_row, V_col, residual, iterations
NodalSystem         the assembled nodal equations (merged shorts, CSR matrix)
warm_up             compile the solver kernels once (before worker processes start)
"""

from xbarref.circuit.crossbar import Crossbar, check_inputs
from xbarref.circuit.direct import CrossbarSolution, DirectSolver, effective_matrix
from xbarref.circuit.solve import solve, solve_per_read
from xbarref.circuit.system import NodalSystem
from xbarref.circuit.warmup import warm_up

__all__ = [
    "Crossbar", "check_inputs", "solve", "solve_per_read", "DirectSolver", "effective_matrix",
    "CrossbarSolution", "NodalSystem", "warm_up",
]
