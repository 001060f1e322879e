"""Reading IDX files (the MNIST / Fashion-MNIST array format), gzipped or not.

An IDX file is a 4-byte magic number ``0x00 0x00 T D`` (``T`` the element type,
``D`` the number of dimensions), then ``D`` big-endian unsigned 32-bit sizes, then the
elements in C order, big-endian (LeCun et al., "The MNIST database of handwritten
digits", http://yann.lecun.com/exdb/mnist/). :func:`read_idx` checks the magic number
and that the payload has exactly the announced number of bytes.
"""

from __future__ import annotations

import gzip
import os
import zlib

import numpy as np

from xbarref.errors import FileFormatError, XbarrefError

__all__ = ["read_idx", "IDX_TYPES", "load_fashion_mnist", "stratified_split",
           "FASHION_MNIST_DIR", "FASHION_MNIST_CLASSES"]

IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
"""IDX element-type code -> big-endian NumPy dtype."""


def _raw_bytes(path):
    with open(path, "rb") as handle:
        head = handle.read(2)
        handle.seek(0)
        if head == b"\x1f\x8b":  # gzip member
            try:
                with gzip.GzipFile(fileobj=handle) as gz:
                    return gz.read()
            except (OSError, EOFError, zlib.error) as exc:
                raise FileFormatError(f"{path}: damaged gzip stream ({exc})") from None
        return handle.read()


def read_idx(path, *, ndim=None, dtype=None):
    """Read one IDX file into a NumPy array (native byte order).

    Parameters
    ----------
    path : str or os.PathLike
        IDX file, optionally gzip-compressed (detected from its first bytes).
    ndim : int, optional
        Required number of dimensions.
    dtype : str, optional
        Required element type as a NumPy dtype string, e.g. ``"u1"``.

    Returns
    -------
    numpy.ndarray
        Shape as announced in the header.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    FileFormatError
        Bad magic number, wrong type or dimension count, or a payload shorter or longer
        than the header announces; the message names the file.
    """
    path = os.fspath(path)
    data = _raw_bytes(path)
    if len(data) < 4:
        raise FileFormatError(f"{path}: too short for an IDX header ({len(data)} bytes)")
    if data[0] != 0 or data[1] != 0 or data[2] not in IDX_TYPES:
        raise FileFormatError(f"{path}: bad IDX magic number 0x{data[:4].hex()} (expected "
                              "00 00, a type code in "
                              f"{sorted(hex(t) for t in IDX_TYPES)} and a dimension count)")
    kind, dims = IDX_TYPES[data[2]], data[3]
    if dims < 1:
        raise FileFormatError(f"{path}: IDX magic number 0x{data[:4].hex()} announces 0 dimensions")
    if ndim is not None and dims != ndim:
        raise FileFormatError(f"{path}: expected a {ndim}-D IDX array, the header says {dims}-D")
    if dtype is not None and np.dtype(kind).newbyteorder("=") != np.dtype(dtype):
        raise FileFormatError(f"{path}: expected IDX elements of type {np.dtype(dtype)}, the "
                              f"header says {np.dtype(kind).newbyteorder('=')}")
    header = 4 + 4 * dims
    if len(data) < header:
        raise FileFormatError(f"{path}: truncated IDX header ({len(data)} bytes, {dims}-D needs {header})")
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">u4", count=dims, offset=4))
    expected = int(np.prod(shape, dtype=np.int64)) * np.dtype(kind).itemsize
    if len(data) - header != expected:
        raise FileFormatError(f"{path}: IDX payload has {len(data) - header} bytes, the header "
                              f"shape {shape} needs {expected}")
    array = np.frombuffer(data, dtype=kind, offset=header).reshape(shape)
    return array.astype(np.dtype(kind).newbyteorder("="))


# ----------------------------------------------------------------------------- Fashion-MNIST
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
"""Where the Debian package ``dataset-fashion-mnist`` installs the IDX files."""

FASHION_MNIST_APT = "apt-get install -y dataset-fashion-mnist"

FASHION_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
"""The four IDX files (each may also be present with a ``.gz`` suffix)."""

FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot"]
FASHION_MNIST_COUNTS = {"train": 60000, "test": 10000}
FASHION_MNIST_CITATION = ("Xiao, H., Rasul, K. and Vollgraf, R. (2017). Fashion-MNIST: a Novel "
                          "Image Dataset for Benchmarking Machine Learning Algorithms. "
                          "arXiv:1708.07747.")
FASHION_MNIST_URL = "https://github.com/zalandoresearch/fashion-mnist"
VALIDATION_SEED = 20261201
"""Seed of the default validation split (``numpy.random.default_rng``)."""


def _find(directory, stem):
    for name in (stem, stem + ".gz"):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    return None


def stratified_split(labels, n_split, rng):
    """Indices of a stratified sample of ``n_split`` rows of ``labels`` and of the rest.

    Each class ``k`` gives ``round(n_split * n_k / n)`` rows (largest remainders
    settle the rounding), drawn without replacement by ``rng.permutation``. Both index
    arrays are sorted ascending.

    Parameters
    ----------
    labels : numpy.ndarray of int, shape (N,)
    n_split : int, 0 <= n_split < N
    rng : numpy.random.Generator

    Returns
    -------
    split, rest : numpy.ndarray of int64
    """
    labels = np.asarray(labels)
    n = len(labels)
    if not (0 <= n_split < n):
        raise XbarrefError(f"validation: must be in 0..{n - 1} samples, got {n_split}")
    classes, counts = np.unique(labels, return_counts=True)
    exact = n_split * counts / n
    take = np.floor(exact).astype(np.int64)
    short = n_split - int(take.sum())
    take[np.argsort(-(exact - take), kind="stable")[:short]] += 1
    chosen = []
    for k, m in zip(classes, take):
        rows = np.flatnonzero(labels == k)
        chosen.append(rows[rng.permutation(len(rows))[:m]])
    split = np.sort(np.concatenate(chosen)).astype(np.int64)
    rest = np.setdiff1d(np.arange(n, dtype=np.int64), split)
    return split, rest


def load_fashion_mnist(directory=None, *, validation=5000, seed=VALIDATION_SEED):
    """Read the Fashion-MNIST IDX files into a :class:`xbarref.io.data.Dataset`.

    Checks every file (magic number, element type, dimension count, payload length),
    the counts (60 000 training and 10 000 test samples), the image shape 28 x 28, that
    images and labels have the same count and that every label is in 0..9.

    Parameters
    ----------
    directory : str or os.PathLike, optional
        Folder with ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` (each optionally
        ``.gz``). Default: :data:`FASHION_MNIST_DIR`.
    validation : int
        Number of training samples held out as the validation split (stratified by
        class, drawn from ``numpy.random.default_rng(seed)``); 0 for none.
    seed : int

    Returns
    -------
    Dataset
        ``x`` float32 in [0, 1] (pixel / 255), shape (N, 1, 28, 28); ``index`` arrays
        are the rows in the original files (train and validation rows index the
        training file).

    Raises
    ------
    FileNotFoundError
        A file is missing; the message names it and the apt command that installs it.
    FileFormatError
        A file breaks the IDX format or the counts, shapes or labels above.
    """
    from xbarref.io.data import Dataset

    directory = FASHION_MNIST_DIR if directory is None else os.fspath(directory)
    paths = {}
    for key, stem in FASHION_MNIST_FILES.items():
        path = _find(directory, stem)
        if path is None:
            raise FileNotFoundError(f"{os.path.join(directory, stem)}[.gz] not found; install "
                                    f"Fashion-MNIST with `{FASHION_MNIST_APT}` or pass the folder that holds them (directory)")
        paths[key] = path
    arrays = {}
    for split in ("train", "test"):
        images = read_idx(paths[f"{split}_images"], ndim=3, dtype="u1")
        labels = read_idx(paths[f"{split}_labels"], ndim=1, dtype="u1")
        want = FASHION_MNIST_COUNTS[split]
        if images.shape != (want, 28, 28):
            raise FileFormatError(f"{paths[f'{split}_images']}: expected {want} images of 28 x 28, "
                                  f"got shape {images.shape}")
        if labels.shape != (want,):
            raise FileFormatError(f"{paths[f'{split}_labels']}: expected {want} labels, got "
                                  f"{labels.shape[0]}")
        if labels.max() > 9:
            raise FileFormatError(f"{paths[f'{split}_labels']}: labels must be in 0..9, found "
                                  f"{int(labels.max())}")
        arrays[split] = (images, labels.astype(np.int64))
    images, labels = arrays["train"]
    rows = np.arange(len(labels), dtype=np.int64)
    val_rows, train_rows = (stratified_split(labels, validation, np.random.default_rng(seed))
                            if validation else (None, rows))

    def x_of(imgs):
        return (imgs[:, None, :, :].astype(np.float32) / np.float32(255.0))

    test_images, test_labels = arrays["test"]
    description = (f"Fashion-MNIST: 28 x 28 grey images of 10 kinds of Zalando article; "
                   f"x = pixel / 255. Training file split into {len(train_rows)} train and "
                   f"{0 if val_rows is None else len(val_rows)} validation samples "
                   f"(stratified by class, numpy.random.default_rng({seed})); the 10000 test "
                   "images are the t10k file.")
    return Dataset(
        x_train=x_of(images[train_rows]), y_train=labels[train_rows],
        x_test=x_of(test_images), y_test=test_labels,
        classes=list(FASHION_MNIST_CLASSES), name="fashion-mnist", description=description,
        citation=FASHION_MNIST_CITATION, licence="MIT", url=FASHION_MNIST_URL,
        train_index=train_rows, test_index=np.arange(len(test_labels), dtype=np.int64),
        x_val=None if val_rows is None else x_of(images[val_rows]),
        y_val=None if val_rows is None else labels[val_rows],
        val_index=val_rows)
