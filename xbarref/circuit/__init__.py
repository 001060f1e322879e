"""Crossbar circuits and their exact solvers.

Crossbar            the circuit: conductances, parasitic resistances, device law
check_inputs        input voltages as a (B, M) array
"""

from xbarref.circuit.crossbar import Crossbar, check_inputs

__all__ = ["Crossbar", "check_inputs"]
