"""xbarref.data: the files bundled with xbarref, by name.

Every bundled file (its provenance and licence: ``xbarref/data/README.md``)
    path(name)              absolute path of a bundled file, e.g. ``path("example_case.h5")``
    names()                 the names of the bundled files, sorted
    write_examples(folder)  copy them into a folder (also ``xbarref examples DIR``)

Loaded, one function per file
    example_case()          the 64 x 64 example crossbar case (:class:`xbarref.io.case.Case`)
    digits_model()          the trained digits CNN (:class:`xbarref.nn.Model`; also
                            ``xbarref.load_model()`` without a path)
    digits()                the UCI digits, train and test splits (:class:`xbarref.io.data.Dataset`)
    fashion_model()         the trained Fashion-MNIST CNN (its data: ``xbarref data fashion-mnist``)
    example_suite()         a small golden suite, preset ``quick`` seed 0 (:class:`xbarref.validate.Suite`)
    example_candidate()     the first-order IR-drop model's outputs on it (dict case name -> I, A)
    example_sweep()         a sweep specification of 4 short tasks (:class:`xbarref.sweep.SweepSpec`)

Examples
--------
>>> import os, xbarref.data
>>> os.path.basename(xbarref.data.path("example_case.h5"))
'example_case.h5'
>>> xbarref.data.example_case().shape
(64, 64)
"""

from __future__ import annotations

import os
import shutil

__all__ = ["BUNDLED", "path", "names", "write_examples", "example_case", "digits_model", "digits",
           "fashion_model",
           "example_suite", "example_candidate", "example_sweep"]

# name -> what it is (shown by ``xbarref examples``)
BUNDLED = {
    "example_case.h5": "64 x 64 crossbar case with 4 input vectors (docs/formats.md)",
    "digits_cnn.h5": "digits CNN with batchnorm, trained on digits.h5 (docs/model-format.md)",
    "digits.h5": "UCI handwritten digits, 8 x 8, 1437 train / 360 test (docs/data-format.md)",
    "fashion_cnn.h5": "Fashion-MNIST CNN with batchnorm, 92.3 % test accuracy in software; its "
                      "data come from the Debian package (xbarref data fashion-mnist)",
    "example_suite.h5": "golden suite of 16 small cases, preset quick, seed 0 (docs/suite-format.md)",
    "example_candidate.h5": "first-order IR-drop model's outputs on example_suite.h5 "
                            "(docs/validation.md)",
    "example_sweep.toml": "sweep specification: 2 drift settings x 2 seeds (docs/scaling.md)",
}


def _folder():
    return os.path.dirname(os.path.abspath(__file__))


def names():
    """Names of the bundled files, sorted.

    Returns
    -------
    list of str
    """
    return sorted(BUNDLED)


def path(name):
    """Absolute path of the bundled file ``name``.

    Parameters
    ----------
    name : str
        One of :func:`names`, e.g. ``"example_case.h5"``.

    Returns
    -------
    str

    Raises
    ------
    XbarrefError
        If ``name`` is not a bundled file (the message lists the names).
    """
    from xbarref.errors import XbarrefError

    if name not in BUNDLED:
        raise XbarrefError(f"name: no bundled file {name!r}; the bundled files are "
                           f"{', '.join(names())}")
    return os.path.join(_folder(), name)


def write_examples(folder, *, overwrite=False):
    """Copy every bundled file into ``folder`` (created if missing).

    Parameters
    ----------
    folder : str or os.PathLike
        Destination folder.
    overwrite : bool, optional
        Replace files of the same name that differ from the bundled ones. Without it an
        existing different file is an error; an identical one is left as it is.

    Returns
    -------
    list of str
        The paths in ``folder``, in the order of :func:`names`.

    Raises
    ------
    XbarrefError
        If ``folder`` exists and is not a folder, or if a file would be replaced without
        ``overwrite``.
    """
    import filecmp

    from xbarref.errors import XbarrefError
    from xbarref.io.atomic import atomic_file

    folder = os.fspath(folder)
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise XbarrefError(f"folder: {folder!r} exists and is not a folder")
    os.makedirs(folder, exist_ok=True)
    targets = [os.path.join(folder, name) for name in names()]
    if not overwrite:
        for name, target in zip(names(), targets):
            if os.path.exists(target) and not filecmp.cmp(path(name), target, shallow=False):
                raise XbarrefError(f"folder: {target!r} exists and differs from the bundled "
                                   f"{name}; remove it or choose another folder")
    for name, target in zip(names(), targets):
        if os.path.exists(target) and filecmp.cmp(path(name), target, shallow=False):
            continue
        with open(path(name), "rb") as src, atomic_file(target, overwrite=True, name="folder") as dst:
            shutil.copyfileobj(src, dst)
    return targets


def example_case():
    """The bundled 64 x 64 example case (``example_case.h5``, solved outputs included).

    Returns
    -------
    xbarref.io.case.Case
    """
    from xbarref.io.case import read_case

    return read_case(path("example_case.h5"))


def digits_model():
    """The bundled digits CNN (``digits_cnn.h5``).

    Returns
    -------
    xbarref.nn.Model
    """
    from xbarref.io.model import load_model

    return load_model(path("digits_cnn.h5"))


def fashion_model():
    """The bundled Fashion-MNIST CNN (``fashion_cnn.h5``; training log beside it).

    Returns
    -------
    xbarref.nn.Model
    """
    from xbarref.io.model import load_model

    return load_model(path("fashion_cnn.h5"))


def digits():
    """The bundled UCI digits (``digits.h5``), train and test splits.

    Returns
    -------
    xbarref.io.data.Dataset
    """
    from xbarref.io.data import load_dataset

    return load_dataset(path("digits.h5"))


def example_suite():
    """The bundled golden suite (``example_suite.h5``: preset quick, seed 0, 16 cases).

    Returns
    -------
    xbarref.validate.Suite
    """
    from xbarref.validate.suite import read_suite

    return read_suite(path("example_suite.h5"))


def example_candidate():
    """Outputs of the first-order IR-drop model on the bundled suite (``example_candidate.h5``).

    Returns
    -------
    dict of str to numpy.ndarray
        Case name -> output currents I (B, N) in A.
    """
    from xbarref.validate.suite import read_candidate

    return read_candidate(path("example_candidate.h5"))[0]


def example_sweep():
    """The bundled sweep specification (``example_sweep.toml``).

    Returns
    -------
    xbarref.sweep.SweepSpec
    """
    from xbarref.sweep import load_spec

    return load_spec(path("example_sweep.toml"))
