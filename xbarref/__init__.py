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
sweep     one executor for long runs: local processes or a Dask cluster, resume
data      the bundled files by name: ``xbarref.data.path("example_case.h5")``, loaders
commands  the ``xbarref`` command's sub-commands (``xbarref --help``)

Shortcuts
---------
load_model(path=None)          a model file; no path: the bundled digits CNN
map_model(model, hw, rng)      a model with its Conv2d / Linear layers on simulated crossbars

Examples
--------
>>> import xbarref
>>> model = xbarref.load_model()
>>> model.name
'digits_cnn'
"""

__version__ = "0.1.0"

# Top-level shortcuts, imported lazily (name -> module that defines it).
_LAZY = {
    "map_model": "xbarref.mapping",
    "load_model": "xbarref.io.model",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'xbarref' has no attribute {name!r}")
