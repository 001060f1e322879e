"""Labelled image / feature datasets in HDF5 (``docs/data-format.md``).

:func:`load_dataset` reads a dataset file (or the bundled UCI handwritten digits when
no path is given) into a :class:`Dataset`; :func:`save_dataset` writes one.
"""

from __future__ import annotations

import importlib.resources
import os
from dataclasses import dataclass, field

import numpy as np

from xbarref.errors import XbarrefError
from xbarref.io.h5 import (atomic_h5, check_format, fail, open_h5, read_array, read_attr,
                            read_strings, write_array, write_str_attr, write_strings)

__all__ = ["Dataset", "load_dataset", "save_dataset", "bundled_dataset_path",
           "FORMAT", "FORMAT_VERSION"]

FORMAT = "xbarref.dataset"
FORMAT_VERSION = 1
_TEXT_ATTRS = ("description", "citation", "licence", "url")


@dataclass(frozen=True, eq=False)
class Dataset:
    """A labelled dataset with a fixed train/test split and an optional validation split.

    Attributes
    ----------
    x_train, x_test : numpy.ndarray, shape (N, *sample_shape)
        Inputs, e.g. (N, C, H, W) images or (N, F) features; finite floats.
    y_train, y_test : numpy.ndarray of int64, shape (N,)
        Class indices in ``0 .. len(classes) - 1``.
    classes : list of str
        Class labels; ``classes[k]`` names label ``k``.
    name : str
        Short name, e.g. ``"digits"``.
    description, citation, licence, url : str
        Free text; empty when unknown.
    train_index, test_index : numpy.ndarray of int64 or None
        Optional provenance: the row of each sample in the original source data.
    x_val, y_val, val_index : numpy.ndarray or None
        Optional validation split (held out from training, for model and
        hyper-parameter choices); None when the dataset has none.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list
    name: str = ""
    description: str = ""
    citation: str = ""
    licence: str = ""
    url: str = ""
    train_index: np.ndarray | None = field(default=None, repr=False)
    test_index: np.ndarray | None = field(default=None, repr=False)
    x_val: np.ndarray | None = field(default=None, repr=False)
    y_val: np.ndarray | None = field(default=None, repr=False)
    val_index: np.ndarray | None = field(default=None, repr=False)

    @property
    def sample_shape(self):
        """Shape of one sample, e.g. ``(1, 8, 8)``."""
        return tuple(self.x_test.shape[1:])

    @property
    def has_validation(self):
        """True when the dataset carries a validation split."""
        return self.y_val is not None

    def __repr__(self):
        val = f"validation={len(self.y_val)}, " if self.has_validation else ""
        return (f"Dataset(name={self.name!r}, train={len(self.y_train)}, {val}"
                f"test={len(self.y_test)}, sample_shape={self.sample_shape}, "
                f"classes={len(self.classes)})")


def bundled_dataset_path(name="digits"):
    """Path of a dataset bundled with xbarref (``xbarref/data/<name>.h5``)."""
    ref = importlib.resources.files("xbarref") / "data" / f"{name}.h5"
    path = os.fspath(ref)
    if not os.path.isfile(path):
        raise XbarrefError(f"name: no bundled dataset {name!r} ({path} is missing)")
    return path


def _read_x(handle, split, filename, out_dtype):
    h5path = f"/{split}/x"
    raw = read_array(handle, h5path, filename, kind="fiu", finite=True)
    if raw.ndim < 2:
        raise fail(filename, h5path, f"must have shape (N, *sample_shape), got {raw.shape}")
    node = handle[h5path]
    scale = read_attr(node, "scale", filename, "float", required=raw.dtype.kind in "iu")
    offset = read_attr(node, "offset", filename, "float", required=False, default=0.0)
    for what, value in (("scale", scale), ("offset", offset)):
        if value is not None and not np.isfinite(value):
            raise fail(filename, f"{h5path} attribute {what!r}", f"must be finite, got {value}")
    if scale is not None and scale <= 0:
        raise fail(filename, f"{h5path} attribute 'scale'", f"must be > 0, got {scale}")
    x = raw.astype(out_dtype)
    if scale is not None and scale != 1.0:
        x *= out_dtype.type(scale)
    if offset:
        x += out_dtype.type(offset)
    return x


def _read_y(handle, split, filename, n, n_classes):
    h5path = f"/{split}/y"
    y = read_array(handle, h5path, filename, kind="iu", shape=(n,))
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        bad = int(y[(y < 0) | (y >= n_classes)][0])
        raise fail(filename, h5path,
                   f"labels must be in 0..{n_classes - 1} (len of /classes), found {bad}")
    return y.astype(np.int64)


def _read_index(handle, split, filename, n):
    h5path = f"/{split}/index"
    if h5path not in handle:
        return None
    return read_array(handle, h5path, filename, kind="iu", shape=(n,)).astype(np.int64)



def _read_other_split(handle, split, filename, out_dtype, sample_shape, n_classes):
    """``x, y, index`` of a split beside ``test``, whose samples must have ``sample_shape``."""
    x = _read_x(handle, split, filename, out_dtype)
    if x.shape[1:] != sample_shape:
        raise fail(filename, f"/{split}/x",
                   f"sample shape {x.shape[1:]} differs from /test/x sample shape {sample_shape}")
    y = _read_y(handle, split, filename, x.shape[0], n_classes)
    return x, y, _read_index(handle, split, filename, x.shape[0])

def load_dataset(path=None, *, dtype=np.float64):
    """Read a dataset file.

    Parameters
    ----------
    path : str or os.PathLike, optional
        An HDF5 file in the layout of ``docs/data-format.md``. ``None`` (default) loads
        the bundled UCI optical-recognition handwritten digits (1797 images 1 x 8 x 8
        scaled to [0, 1], 1437 train / 360 test, stratified split).
    dtype : numpy dtype, optional
        Float dtype of the returned ``x`` arrays (default float64, the dtype of the NumPy
        engine; float32 halves memory for large sets).

    Returns
    -------
    Dataset

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    FileFormatError
        If the file is not HDF5, is damaged, or breaks the layout; the message names
        the file and the HDF5 path.

    Examples
    --------
    >>> from xbarref.io.data import load_dataset
    >>> data = load_dataset()
    >>> data.x_train.shape, data.x_test.shape, data.classes[:3]
    ((1437, 1, 8, 8), (360, 1, 8, 8), ['0', '1', '2'])
    """
    out_dtype = np.dtype(dtype)
    if out_dtype.kind != "f":
        raise XbarrefError(f"dtype: must be a floating-point dtype, got {out_dtype}")
    filename = bundled_dataset_path() if path is None else os.fspath(path)
    with open_h5(filename) as handle:
        check_format(handle, filename, FORMAT, {FORMAT_VERSION})
        name = read_attr(handle, "name", filename, "str")
        text = {key: read_attr(handle, key, filename, "str", required=False, default="")
                for key in _TEXT_ATTRS}
        classes = read_strings(handle, "/classes", filename)
        if not classes:
            raise fail(filename, "/classes", "must hold at least one class label")
        if len(set(classes)) != len(classes):
            raise fail(filename, "/classes", f"class labels must be unique, got {classes}")
        x_test = _read_x(handle, "test", filename, out_dtype)
        y_test = _read_y(handle, "test", filename, x_test.shape[0], len(classes))
        test_index = _read_index(handle, "test", filename, x_test.shape[0])
        if "train" in handle:
            x_train, y_train, train_index = _read_other_split(handle, "train", filename, out_dtype,
                                                              x_test.shape[1:], len(classes))
        else:
            x_train = np.empty((0,) + x_test.shape[1:], dtype=out_dtype)
            y_train = np.empty(0, dtype=np.int64)
            train_index = None
        x_val = y_val = val_index = None
        if "validation" in handle:
            x_val, y_val, val_index = _read_other_split(handle, "validation", filename, out_dtype,
                                                        x_test.shape[1:], len(classes))
    return Dataset(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                   classes=classes, name=name, train_index=train_index,
                   test_index=test_index, x_val=x_val, y_val=y_val, val_index=val_index,
                   **text)


def _check_split(dataset, split, sample_shape):
    x = np.asarray(getattr(dataset, f"x_{split}"))
    y = np.asarray(getattr(dataset, f"y_{split}"))
    if x.ndim < 2 or x.dtype.kind not in "fiu":
        raise XbarrefError(f"dataset.x_{split}: must be a numeric array of shape "
                           f"(N, *sample_shape), got dtype {x.dtype} shape {x.shape}")
    if sample_shape is not None and x.shape[1:] != sample_shape:
        raise XbarrefError(f"dataset.x_{split}: sample shape {x.shape[1:]} differs from "
                           f"x_test's {sample_shape}")
    if not np.all(np.isfinite(x)):
        raise XbarrefError(f"dataset.x_{split}: must be finite")
    if y.shape != (x.shape[0],) or y.dtype.kind not in "iu":
        raise XbarrefError(f"dataset.y_{split}: must be integer labels of shape "
                           f"({x.shape[0]},), got dtype {y.dtype} shape {y.shape}")
    n_classes = len(dataset.classes)
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise XbarrefError(f"dataset.y_{split}: labels must be in 0..{n_classes - 1}")
    return x, y


def _quantize(x, scale, what):
    """``x / scale`` as uint8, checked to be whole numbers in 0..255 to within
    ``max(1e-6, 1024 * eps)`` of ``x``'s float type (1e-6 for float64, 1.2e-4 for float32,
    so ``float32(pixel) / 255`` passes); computed in float64, in chunks of rows."""
    out = np.empty(x.shape, dtype=np.uint8)
    tol = max(1e-6, 1024 * float(np.finfo(x.dtype).eps)) if x.dtype.kind == "f" else 1e-6
    rows = max(1, (1 << 22) // max(1, x[:1].size))
    for lo in range(0, x.shape[0], rows):
        q = np.asarray(x[lo:lo + rows], dtype=np.float64) / scale
        r = np.rint(q)
        if np.any(np.abs(q - r) > tol) or r.min(initial=0) < 0 or r.max(initial=0) > 255:
            raise XbarrefError(f"scale: {what} / scale must be whole numbers in 0..255 to be "
                               "stored as uint8")
        out[lo:lo + rows] = r
    return out


def save_dataset(dataset, path, *, scale=None, compression="gzip", overwrite=True):
    """Write a :class:`Dataset` to an HDF5 file (atomically).

    Parameters
    ----------
    dataset : Dataset
    path : str or os.PathLike
        Destination; written to a temporary file in the same folder and renamed.
    scale : float, optional
        Store ``x`` compactly as uint8 ``round(x / scale)`` with attribute ``scale``
        (e.g. ``1/255`` for 8-bit images scaled to [0, 1]); every ``x / scale`` must be
        a whole number in 0..255 to within 1e-6 (float32 ``x``: 1.2e-4). Default:
        store ``x`` in its own float dtype, bit-exact.
    compression : {"gzip", None}, optional
        HDF5 filter for the arrays (lossless).
    overwrite : bool, optional
        Replace an existing regular file (default True; see :mod:`xbarref.io.atomic`).

    Raises
    ------
    XbarrefError
        If the arrays are inconsistent (shapes, labels outside the classes, non-finite
        values) or ``scale`` cannot represent ``x``.
    """
    if not isinstance(dataset, Dataset):
        raise XbarrefError(f"dataset: must be an xbarref.io.data.Dataset, got "
                           f"{type(dataset).__name__}")
    if compression not in (None, "gzip"):
        raise XbarrefError(f"compression: must be 'gzip' or None, got {compression!r}")
    if scale is not None and not (np.isfinite(scale) and scale > 0):
        raise XbarrefError(f"scale: must be a finite number > 0, got {scale}")
    classes = [str(c) for c in dataset.classes]
    if not classes or len(set(classes)) != len(classes):
        raise XbarrefError(f"dataset.classes: must be non-empty and unique, got {classes}")
    x_test, y_test = _check_split(dataset, "test", None)
    x_train, y_train = _check_split(dataset, "train", x_test.shape[1:])
    splits = [("train", "train", x_train, y_train), ("test", "test", x_test, y_test)]
    if dataset.x_val is not None or dataset.y_val is not None:
        x_val, y_val = _check_split(dataset, "val", x_test.shape[1:])
        splits.insert(1, ("validation", "val", x_val, y_val))
    with atomic_h5(path, overwrite=overwrite) as handle:
        write_str_attr(handle, "format", FORMAT)
        handle.attrs["format_version"] = FORMAT_VERSION
        write_str_attr(handle, "name", str(dataset.name))
        for key in _TEXT_ATTRS:
            value = getattr(dataset, key)
            if value:
                write_str_attr(handle, key, str(value))
        write_strings(handle, "classes", classes)
        for split, attr, x, y in splits:
            if split == "train" and x.shape[0] == 0:
                continue  # an inference-only file has no /train group
            group = handle.create_group(split)
            if scale is None:
                stored = x if x.dtype.kind == "f" else x.astype(np.float64)
            else:
                stored = _quantize(x, scale, f"dataset.x_{attr}")
            ds = write_array(group, "x", stored, compression=compression)
            if scale is not None:
                ds.attrs["scale"] = float(scale)
            write_array(group, "y", y.astype(np.int64), compression=compression)
            index = getattr(dataset, f"{attr}_index")
            if index is not None:
                index = np.asarray(index)
                if index.shape != y.shape or index.dtype.kind not in "iu":
                    raise XbarrefError(f"dataset.{attr}_index: must be integers of shape "
                                       f"{y.shape}")
                write_array(group, "index", index.astype(np.int64), compression=compression)
