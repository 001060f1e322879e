"""Inputs of a run: a model with a dataset split, checked against each other
(:func:`load_inputs`), and the files a task names checked against the SHA-256 its run
started with (:func:`file_sha256`, :func:`check_file`); the bundled model's path is
re-exported from :mod:`xbarref.io.model`."""

from __future__ import annotations

import hashlib
import os
import socket

from xbarref.errors import XbarrefError
from xbarref.io.data import load_dataset
from xbarref.io.model import BUNDLED_MODEL, bundled_model_path, load_model

__all__ = ["BUNDLED_MODEL", "bundled_model_path", "load_inputs", "file_sha256", "check_file"]


def file_sha256(path):
    """Hex SHA-256 of the file ``path`` (read in 1 MiB chunks).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    str
        64 hexadecimal digits.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_file(path, sha256, name):
    """Require that ``path`` exists here and is the file a run started with.

    A task's parameters carry the paths and SHA-256 of the files it loads, so a worker
    (local or on a cluster) refuses a missing or changed file instead of computing
    with it.

    Parameters
    ----------
    path : str
        The file's path, as the run resolved it.
    sha256 : str
        Its SHA-256 when the run started (:func:`file_sha256`).
    name : str
        The argument or parameter that named the file, for the message.

    Raises
    ------
    XbarrefError
        If the file is missing or differs; the message names ``name``, the path and the host.
    """
    if not os.path.isfile(path):
        raise XbarrefError(f"{name}: {path} does not exist on {socket.gethostname()} "
                           "(the workers need the same files at the same paths)")
    if file_sha256(path) != sha256:
        raise XbarrefError(f"{name}: {path} on {socket.gethostname()} differs from the file the "
                           "run was started with")


def load_inputs(model_path, data_path, split="test"):
    """Load the model and the chosen split of the dataset, checking they fit each other.

    ``model_path`` / ``data_path`` None: the bundled digits CNN / UCI digits.

    Returns
    -------
    model : xbarref.nn.Model
    x, y : numpy.ndarray
    dataset : xbarref.io.data.Dataset
    """
    model = load_model(bundled_model_path() if model_path is None else model_path)
    dataset = load_dataset(data_path)
    x, y = (dataset.x_test, dataset.y_test) if split == "test" else (dataset.x_train, dataset.y_train)
    data_name = "bundled digits" if data_path is None else data_path
    if tuple(x.shape[1:]) != tuple(model.input_shape):
        raise XbarrefError(f"data_path: samples of {data_name} have shape {tuple(x.shape[1:])}, the model "
                           f"expects input_shape {tuple(model.input_shape)}")
    if model.classes is not None and len(model.classes) != len(dataset.classes):
        raise XbarrefError(f"data_path: {data_name} has {len(dataset.classes)} classes, the model "
                           f"{len(model.classes)}")
    return model, x, y, dataset
