"""xbarref.io: files in and out of xbarref.

Model files (:mod:`xbarref.io.model`, contract ``docs/model-format.md``)
    save_model(model, path)        write an :class:`xbarref.nn.Model` (atomic, bit-exact)
    load_model(path)               read it back (also ``xbarref.load_model``)
    bundled_model_path()           path of the bundled digits CNN, load_model's default

Dataset files (:mod:`xbarref.io.data`, contract ``docs/data-format.md``)
    Dataset                        x_train, y_train, x_test, y_test, classes, name, citation...
    load_dataset(path=None)        read a dataset file; no path: the bundled UCI digits
    save_dataset(dataset, path)    write one (atomic; optional uint8 storage with a scale)
                                   (optional validation split: x_val, y_val, val_index)

IDX files and Fashion-MNIST (:mod:`xbarref.io.idx`)
    read_idx(path)                 one IDX array (MNIST format), gzipped or not, checked
    load_fashion_mnist(dir=None)   the Debian package's Fashion-MNIST as a Dataset with a
                                   seeded stratified validation split (``xbarref data``)

Checked inputs (:mod:`xbarref.io.inputs`)
    load_inputs(model, data, split)   model + dataset split, checked against each other
    file_sha256(path), check_file(path, sha256, name)   a task's files, checked by hash

PyTorch export (:mod:`xbarref.io.torch`, needs the optional extra ``torch``)
    export(module, path, example_input)   torch.nn module -> model file, checked on the
                                          example input (torch.fx, arbitrary wiring)
    to_xbarref(module, example_input)     the same, returning the Model without a file

Crossbar case files (:mod:`xbarref.io.case`, contract ``docs/case-format.md``)
    Case, read_case(path), write_case(case, path)
    read_case_group(group, filename), write_case_group(group, case)   one case in an open HDF5 group

SPICE netlists (:mod:`xbarref.io.netlist`)
    netlist_text(...), write_netlist(...)

HDF5 helpers of every file format (:mod:`xbarref.io.h5`)
    atomic_h5, open_h5, check_format, read_array, read_attr, write_array, ...
                                   (checksummed storage, size limits, messages naming
                                   the file and the HDF5 path)

Output files (:mod:`xbarref.io.atomic`)
    check_output(path, overwrite=...)     the output rules, checked before any work
    atomic_file(path), write_bytes(path, data)   temporary file, sync, rename

Every reader raises :class:`xbarref.errors.FileFormatError` naming the file and the HDF5
path for a corrupt, truncated, damaged (content checksum) or non-conforming file; every
writer follows the output rules of :mod:`xbarref.io.atomic` (temporary file in the
destination folder, renamed; never its input, never a non-regular file). The
names above are imported lazily (``from xbarref.io import load_model`` does not import
torch).
"""

import importlib

_LAZY = {
    "save_model": "xbarref.io.model",
    "load_model": "xbarref.io.model",
    "Dataset": "xbarref.io.data",
    "load_dataset": "xbarref.io.data",
    "save_dataset": "xbarref.io.data",
    "read_idx": "xbarref.io.idx",
    "load_fashion_mnist": "xbarref.io.idx",
    "bundled_model_path": "xbarref.io.model",
    "load_inputs": "xbarref.io.inputs",
    "file_sha256": "xbarref.io.inputs",
    "check_file": "xbarref.io.inputs",
    "export": "xbarref.io.torch",
    "to_xbarref": "xbarref.io.torch",
    "Case": "xbarref.io.case",
    "read_case": "xbarref.io.case",
    "write_case": "xbarref.io.case",
    "read_case_group": "xbarref.io.case",
    "write_case_group": "xbarref.io.case",
    "netlist_text": "xbarref.io.netlist",
    "check_output": "xbarref.io.atomic",
    "atomic_file": "xbarref.io.atomic",
    "write_bytes": "xbarref.io.atomic",
    "write_netlist": "xbarref.io.netlist",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'xbarref.io' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
