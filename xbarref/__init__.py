"""xbarref: the circuit-exact reference simulator for analog in-memory computing.

Subpackages
-----------
circuit   crossbar circuits and their exact solvers
devices   device I-V laws and non-idealities (noise, drift, faults, converters)
mapping   weights to conductances, tiling, the AnalogMatrix
nn        NumPy DNN engine with hand-written backward passes
tune      batchnorm tuning and other mitigations
io        HDF5 case, model and data files; PyTorch export; SPICE netlists
validate  golden suites and candidate comparison
"""

__version__ = "0.1.0"
