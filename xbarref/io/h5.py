"""Shared HDF5 helpers for every xbarref file format (case, model, dataset files).

Writing
    :func:`atomic_h5` yields an ``h5py.File`` open on a temporary file in the folder
    of the destination; on success the file is closed and renamed over the
    destination with :func:`os.replace` (atomic on POSIX and Windows), on any
    exception it is removed and the destination is untouched. It refuses to write
    over a file it was given as an input.

Reading
    :func:`open_h5` opens a file read-only and turns the ``OSError`` that h5py raises
    for a corrupt, truncated or non-HDF5 file into :class:`FileFormatError` naming the
    file. :func:`check_format` checks the ``format`` / ``format_version`` root
    attributes. :func:`read_array`, :func:`read_strings`, :func:`read_attr` and
    :func:`require_group` read one required object and raise ``FileFormatError``
    naming the file and the HDF5 path when it is missing, of the wrong kind, dtype
    or shape, or unreadable.

Damage detection
    Files are written with ``libver=("v110", "latest")``: HDF5 1.10+ formats, whose
    object headers, superblock and chunk indexes carry checksums of the file's
    metadata; :func:`write_array` adds the Fletcher-32 checksum filter to every
    non-empty array; :func:`write_str_attr`, :func:`write_str_array_attr` and
    :func:`write_strings` store strings fixed-length (UTF-8) inside those checksummed
    structures (HDF5 keeps h5py's default variable-length strings in a global heap
    without checksum, and can loop forever on a damaged one). A damaged file then fails inside HDF5 with ``OSError``, which the readers turn into
    :class:`FileFormatError`; editing a file with h5py keeps the checksums valid.
    Files from other tools without checksums are still read, unchecked.

Every error message has the form ``"<file>: <hdf5 path>: <what is wrong>"``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import stat
import warnings

import h5py
import numpy as np

from xbarref import _signals
from xbarref.checks import env_limit
from xbarref.errors import FileFormatError, XbarrefError

__all__ = [
    "atomic_h5",
    "write_array",
    "write_strings",
    "write_str_attr",
    "write_str_array_attr",
    "open_h5",
    "check_format",
    "require_group",
    "read_array",
    "read_strings",
    "read_attr",
    "string_dtype",
    "fail",
    "content_digest",
    "verify_digest",
    "check_storage",
    "max_array_bytes",
    "external_storage_allowed",
    "IntegrityWarning",
    "DIGEST_ATTR",
]

#: HDF5 format bounds for writing: 1.10+ structures, whose metadata (object headers,
#: superblock, chunk indexes) carry checksums; readable by every HDF5 since 1.10 (2018).
#: (With 1.8 structures, chunk indexes are unchecksummed B-trees: a damaged one makes
#: HDF5 silently return the fill value for the chunks it lost.)
LIBVER = ("v110", "latest")

#: Arrays up to this size (bytes) are stored as one chunk.
_SINGLE_CHUNK_BYTES = 16 * 2**20

#: dtype to use for variable-length UTF-8 string datasets and attributes.
string_dtype = h5py.string_dtype(encoding="utf-8")

_KIND_NAMES = {"f": "floating point", "i": "signed integer", "u": "unsigned integer",
               "b": "boolean", "iu": "integer", "fiu": "numeric", "T": "string"}


def fail(filename, h5path, message):
    """Return (not raise) a :class:`FileFormatError` ``"<file>: <h5path>: <message>"``."""
    where = f"{os.fspath(filename)}: {h5path}" if h5path else os.fspath(filename)
    return FileFormatError(f"{where}: {message}")


def max_array_bytes():
    """The largest array (bytes, as declared in a file) the readers accept.

    ``2**31`` (2 GiB) unless the environment variable ``XBARREF_MAX_ARRAY_BYTES`` says
    otherwise; checked from the declared shape before anything is read.
    """
    return env_limit("XBARREF_MAX_ARRAY_BYTES", DEFAULT_MAX_ARRAY_BYTES)


def external_storage_allowed():
    """True if ``XBARREF_ALLOW_EXTERNAL_STORAGE=1``: read virtual datasets, HDF5 external
    raw storage and external links (refused by default; they read other files)."""
    return os.environ.get("XBARREF_ALLOW_EXTERNAL_STORAGE", "") == "1"


@contextlib.contextmanager
def atomic_h5(path, *, inputs=(), overwrite=True, name="path"):
    """Write an HDF5 file atomically, under the output rules of :mod:`xbarref.io.atomic`.

    Parameters
    ----------
    path : str or os.PathLike
        Destination. Its folder must exist.
    inputs : iterable of str or os.PathLike, optional
        Files the data being written was read from; ``path`` may not be any of them
        (xbarref never overwrites an input).
    overwrite : bool, optional
        Replace an existing regular file (default True for library calls; the commands
        pass their ``--overwrite``).
    name : str, optional
        The argument named in error messages.

    Yields
    ------
    h5py.File
        Open for writing on an in-memory image. When the ``with`` block ends without an
        error, the content checksum (:func:`content_digest`) is stored in the root
        attribute ``xbarref_sha256``, the file is closed, and its bytes are written to
        a temporary file in the destination folder that is then renamed (see
        :func:`xbarref.io.atomic.atomic_file`). HDF5 never writes to the disk itself,
        so a full disk or a signal cannot hit it mid-write (h5py crashes when its
        close fails); SIGINT / SIGTERM during the block are delivered after it.

    Raises
    ------
    XbarrefError
        If ``path`` is one of ``inputs``, is a directory, not a regular file, a symbolic
        link leaving its folder, or its folder does not exist.
    OutputExistsError
        If ``path`` exists and ``overwrite`` is false.
    """
    from xbarref.io.atomic import check_output, write_bytes

    path = os.fspath(path)
    check_output(path, overwrite=overwrite, inputs=inputs, name=name)
    image = io.BytesIO()
    with _signals.deferred():
        with h5py.File(image, "w", libver=LIBVER) as handle:
            yield handle
            write_str_attr(handle, DIGEST_ATTR, content_digest(handle, path))
    write_bytes(path, image.getbuffer(), overwrite=overwrite, inputs=inputs, name=name)


#: Root attribute holding the SHA-256 (hex) of the file's canonical content.
DIGEST_ATTR = "xbarref_sha256"
#: Default of :func:`max_array_bytes`.
DEFAULT_MAX_ARRAY_BYTES = 2**31


def _canonical_value(value):
    """dtype, shape and bytes of an attribute or dataset value, independent of layout."""
    if isinstance(value, (bytes, np.bytes_)):
        return b"bytes", b"", bytes(value)
    if isinstance(value, str):
        return b"str", b"", value.encode("utf-8", "surrogateescape")
    arr = np.asarray(value)
    if arr.dtype.kind == "O":
        parts = []
        for v in arr.ravel():
            if isinstance(v, str):
                v = v.encode("utf-8", "surrogateescape")
            elif isinstance(v, (bytes, np.bytes_)):
                v = bytes(v)
            else:
                v = repr(v).encode("utf-8")
            parts.append(len(v).to_bytes(8, "little") + v)
        return b"O", repr(arr.shape).encode(), b"".join(parts)
    arr = np.ascontiguousarray(arr)
    return arr.dtype.str.encode(), repr(arr.shape).encode(), arr.tobytes()


def _feed(h, *fields):
    for f in fields:
        h.update(len(f).to_bytes(8, "little"))
        h.update(f)


def _feed_attrs(h, obj, skip=()):
    for key in sorted(obj.attrs):
        if key in skip:
            continue
        _feed(h, b"attr", key.encode("utf-8", "surrogateescape"), *_canonical_value(obj.attrs[key]))


def content_digest(handle, filename=""):
    """SHA-256 (hex) of everything in an open HDF5 file but the digest attribute itself.

    Every group, dataset and attribute is hashed in sorted path order with its name,
    dtype, shape and values (not the storage layout, chunking, compression or HDF5
    format version), so rewriting the same content gives the same digest and changing
    any stored value, name or attribute changes it.

    Raises
    ------
    SizeLimitError
        If a dataset declares more bytes than :func:`max_array_bytes` (checked before
        it is read).
    FileFormatError
        If an object refers to other files (external link, virtual dataset, external
        storage) and :func:`external_storage_allowed` is false.
    """
    h = hashlib.sha256()
    _feed_attrs(h, handle, skip=(DIGEST_ATTR,))
    names = []
    handle.visit(names.append)
    for name in sorted(names):
        link = handle.get(name, getlink=True)
        if isinstance(link, (h5py.ExternalLink, h5py.SoftLink)):
            if isinstance(link, h5py.ExternalLink):
                check_storage(None, filename, "/" + name, link=link)
            _feed(h, b"link", name.encode("utf-8", "surrogateescape"), repr(link.path).encode("utf-8"))
            continue
        obj = handle[name]
        if isinstance(obj, h5py.Dataset):
            check_storage(obj, filename, obj.name)
            _feed(h, b"dataset", name.encode("utf-8", "surrogateescape"))
            if obj.shape is None:  # empty dataspace
                _feed(h, obj.dtype.str.encode(), b"null")
            else:
                _check_size(obj, filename)
                _feed(h, *_canonical_value(obj[()]))
        else:
            _feed(h, b"group", name.encode("utf-8", "surrogateescape"))
        _feed_attrs(h, obj)
    return h.hexdigest()


def _check_size(obj, filename):
    from xbarref.errors import SizeLimitError

    shape = obj.shape or ()
    nbytes = int(np.prod(shape, dtype=object)) * obj.dtype.itemsize
    limit = max_array_bytes()
    if nbytes > limit:
        raise SizeLimitError(f"{os.fspath(filename)}: {obj.name}: declares shape {tuple(shape)} "
                             f"({nbytes / 2**30:.3g} GiB), above the limit of {limit / 2**30:.3g} GiB "
                             "(XBARREF_MAX_ARRAY_BYTES)")


def check_storage(obj, filename, h5path, link=None):
    """Refuse a dataset whose values are not all in this file, or were never written.

    Virtual datasets, HDF5 external raw storage and external links read other files
    (any file of the system); they are refused unless
    :func:`external_storage_allowed`. A dataset whose storage was never (fully)
    allocated would read as its fill value; it is always refused.
    """
    if link is not None or (obj is not None and (obj.is_virtual or obj.external)):
        if not external_storage_allowed():
            what = ("an external link" if link is not None else
                    "a virtual dataset" if obj.is_virtual else "HDF5 external raw storage")
            raise fail(filename, h5path, f"is {what} (values from another file); refused "
                                         "(set XBARREF_ALLOW_EXTERNAL_STORAGE=1 to read it)")
        return
    if obj is None or obj.shape is None or obj.size == 0:
        return
    dsid = obj.id
    try:
        if obj.chunks is not None:
            want = 1
            for n, c in zip(obj.shape, obj.chunks):
                want *= -(-n // c)
            written = dsid.get_num_chunks()
            complete = written >= want
        else:
            complete = dsid.get_storage_size() >= obj.size * obj.dtype.itemsize or \
                h5py.check_string_dtype(obj.dtype) is not None
    except (OSError, RuntimeError, ValueError) as exc:
        raise fail(filename, h5path, f"storage cannot be inspected: {exc}") from None
    if not complete:
        raise fail(filename, h5path, "was never (completely) written; its values would be "
                                     "the fill value")


def verify_digest(handle, filename):
    """Check the content checksum of an open file (see :func:`content_digest`).

    Returns
    -------
    bool
        True if the file has a checksum (and it matched); False, with a warning, for a
        file without one (written by an older xbarref or another tool).

    Raises
    ------
    FileFormatError
        If the stored checksum does not match the content.
    """
    if DIGEST_ATTR not in handle.attrs:
        warnings.warn(f"{os.fspath(filename)}: no content checksum ({DIGEST_ATTR}); written by an "
                      "older xbarref or another tool, damage to its values cannot be detected",
                      IntegrityWarning, stacklevel=3)
        return False
    stored = read_attr(handle, DIGEST_ATTR, filename, "str")
    actual = content_digest(handle, filename)
    if stored != actual:
        raise fail(filename, f"/ attribute {DIGEST_ATTR!r}",
                   "content checksum mismatch: the file was damaged or changed after it was "
                   "written")
    return True


class IntegrityWarning(UserWarning):
    """A file read without a content checksum (its values cannot be checked)."""


def _fixed_utf8(values):
    """``values`` (str or list of str) as a fixed-length UTF-8 numpy array and its dtype."""
    encoded = [str(v).encode("utf-8") for v in values]
    if any(b"\0" in b for b in encoded):
        from xbarref.errors import XbarrefError
        raise XbarrefError(f"strings to store may not contain NUL characters: {values!r}")
    length = max([len(b) for b in encoded] + [1])
    dtype = h5py.string_dtype("utf-8", length)
    return np.array(encoded, dtype=f"S{length}").view(dtype), dtype


def write_str_attr(obj, name, value):
    """Set attribute ``name`` to the string ``value``, stored as fixed-length UTF-8.

    Fixed-length strings live in the (checksummed) object header; h5py's default
    variable-length strings live in the global heap, which HDF5 does not checksum and
    on whose damage it can hang. h5py reads these back as ``bytes``.
    """
    arr, dtype = _fixed_utf8([value])
    obj.attrs.create(name, arr.reshape(()), dtype=dtype)


def write_str_array_attr(obj, name, values):
    """Set attribute ``name`` to a 1-D array of strings (fixed-length UTF-8)."""
    arr, dtype = _fixed_utf8(list(values))
    obj.attrs.create(name, arr, dtype=dtype)


def write_strings(group, name, values):
    """Create a 1-D dataset of strings (fixed-length UTF-8, Fletcher-32 checked)."""
    arr, dtype = _fixed_utf8(list(values))
    opts = {"fletcher32": True, "chunks": arr.shape} if arr.size else {}
    return group.create_dataset(name, data=arr, dtype=dtype, **opts)


def write_array(group, name, data, *, compression=None):
    """Create dataset ``name`` in ``group`` with the Fletcher-32 checksum filter.

    Parameters
    ----------
    group : h5py.Group
    name : str
        Path relative to ``group`` (intermediate groups are created).
    data : array_like
        Stored in its own dtype, bit-exact.
    compression : {None, "gzip"}, optional
        Lossless compression (with the shuffle filter).

    Returns
    -------
    h5py.Dataset

    Notes
    -----
    Filters need chunked storage, which HDF5 cannot use for scalars or empty arrays;
    those are stored contiguously without a checksum.
    """
    arr = np.asarray(data)
    if arr.ndim == 0 or arr.size == 0:
        return group.create_dataset(name, data=arr)
    opts = {"fletcher32": True,
            "chunks": arr.shape if arr.nbytes <= _SINGLE_CHUNK_BYTES else True}
    if compression is not None:
        opts.update(compression=compression, shuffle=True)
    return group.create_dataset(name, data=arr, **opts)


@contextlib.contextmanager
def open_h5(path, *, verify=True):
    """Open an HDF5 file read-only and check its integrity.

    Parameters
    ----------
    path : str or os.PathLike
    verify : bool, optional
        When the ``with`` block has read what it needs without error, check the content
        checksum of the whole file (:func:`verify_digest`; a file without one is read
        with an :class:`IntegrityWarning`), so nothing read from a damaged file is
        returned.

    Yields
    ------
    h5py.File

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    FileFormatError
        If the file is not a regular file, not a readable HDF5 file (corrupt,
        truncated, another format), fails its checksum, or if h5py raises ``OSError``
        while the ``with`` block reads from it.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, "no such file", path)
    if os.path.isdir(path):
        raise FileFormatError(f"{path}: is a directory, not an HDF5 file")
    if not stat.S_ISREG(os.stat(path).st_mode):
        # a FIFO would block forever, a device would be read without end
        raise FileFormatError(f"{path}: not a regular file (a FIFO, device or socket); "
                              "xbarref reads HDF5 files only from regular files")
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise FileFormatError(
            f"{path}: not a readable HDF5 file (corrupt, truncated or another format): {exc}"
        ) from None
    try:
        with handle:
            yield handle
            if verify:  # after the reader's own checks, which name what is wrong
                verify_digest(handle, path)
    except (OSError, RuntimeError, KeyError, UnicodeError) as exc:
        # h5py reports damaged objects inside a file as OSError / RuntimeError, and as
        # KeyError("Unable to ... open object (...)") when an object header is damaged;
        # a damaged string can fail to decode (UnicodeError).
        if isinstance(exc, FileNotFoundError) or (
                isinstance(exc, KeyError) and "Unable to" not in str(exc)):
            raise
        raise FileFormatError(f"{path}: damaged HDF5 file, reading failed: {exc}") from None


def _decode(value):
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.bytes_):
        return bytes(value).decode("utf-8")
    return value


def read_attr(node, name, filename, kind, *, required=True, default=None):
    """Read attribute ``name`` of an HDF5 group or dataset.

    Parameters
    ----------
    node : h5py.Group or h5py.Dataset
    name : str
    filename : str
        For error messages.
    kind : {"str", "int", "float", "bool", "int_array", "float_array", "str_array"}
        What the attribute must be. Numeric scalars may be stored as 0-d or
        single-element 1-d arrays; ``int`` rejects floats and booleans, ``float``
        accepts integers.
    required : bool, optional
        If False a missing attribute returns ``default``.

    Returns
    -------
    str, int, float, bool, numpy.ndarray or list of str
    """
    where = f"{node.name} attribute {name!r}"
    try:
        present = name in node.attrs
        raw = node.attrs[name] if present else None
    except (OSError, RuntimeError, TypeError) as exc:
        raise fail(filename, where, f"cannot be read: {exc}") from None
    if not present:
        if required:
            raise fail(filename, where, "missing")
        return default
    raw = _decode(raw)
    if kind == "str":
        if isinstance(raw, np.ndarray) and raw.shape in ((), (1,)):
            raw = _decode(raw.reshape(()).item())
        if not isinstance(raw, str):
            raise fail(filename, where, f"must be a string, got {raw!r}")
        return raw
    if kind in ("int", "float", "bool"):
        arr = np.asarray(raw)
        if arr.shape not in ((), (1,)):
            raise fail(filename, where, f"must be a scalar, got shape {arr.shape}")
        value = arr.reshape(()).item()
        if kind == "bool":
            if not isinstance(value, (bool, np.bool_)):
                raise fail(filename, where, f"must be a boolean, got {value!r}")
            return bool(value)
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float)):
            raise fail(filename, where, f"must be a number, got {value!r}")
        if kind == "int":
            if not isinstance(value, int):
                raise fail(filename, where, f"must be an integer, got {value!r}")
            return int(value)
        return float(value)
    if kind in ("int_array", "float_array"):
        arr = np.atleast_1d(np.asarray(raw))
        want = "iu" if kind == "int_array" else "fiu"
        if arr.dtype.kind not in want or arr.ndim != 1:
            raise fail(filename, where,
                       f"must be a 1-D {_KIND_NAMES[want]} array, got {arr!r}")
        return arr.astype(np.int64 if kind == "int_array" else np.float64)
    if kind == "str_array":
        arr = np.atleast_1d(np.asarray(raw, dtype=object))
        out = [_decode(v) for v in arr.ravel()]
        if arr.ndim != 1 or not all(isinstance(v, str) for v in out):
            raise fail(filename, where, f"must be a 1-D array of strings, got {raw!r}")
        return out
    raise ValueError(f"unknown attribute kind {kind!r}")


def check_format(handle, filename, expected, versions):
    """Check the root attributes ``format`` and ``format_version``.

    Parameters
    ----------
    handle : h5py.File
    filename : str
    expected : str
        The required ``format`` string, e.g. ``"xbarref.model"``.
    versions : collection of int
        Supported ``format_version`` values.

    Returns
    -------
    int
        The file's format version.
    """
    fmt = read_attr(handle, "format", filename, "str")
    if fmt != expected:
        raise fail(filename, "/ attribute 'format'", f"expected {expected!r}, got {fmt!r}")
    version = read_attr(handle, "format_version", filename, "int")
    if version not in versions:
        raise fail(filename, "/ attribute 'format_version'",
                   f"unsupported version {version} (this xbarref reads "
                   f"{', '.join(str(v) for v in sorted(versions))})")
    return version


def _get(handle, h5path, filename):
    if not h5path.startswith("/"):
        h5path = handle.name.rstrip("/") + "/" + h5path
    try:
        link = handle.get(h5path, getlink=True)
        if isinstance(link, h5py.ExternalLink):
            check_storage(None, filename, h5path, link=link)
        obj = handle.get(h5path)
    except (OSError, RuntimeError, KeyError) as exc:
        raise fail(filename, h5path, f"cannot be read: {exc}") from None
    if obj is None:
        raise fail(filename, h5path, "missing")
    return obj


def require_group(handle, h5path, filename):
    """Return the group at ``h5path``; FileFormatError if missing or not a group."""
    obj = _get(handle, h5path, filename)
    if not isinstance(obj, h5py.Group):
        raise fail(filename, obj.name, "must be a group, found a dataset")
    return obj


def _shape_text(shape):
    return "(" + ", ".join("*" if s is None else str(s) for s in shape) + \
        ("," if len(shape) == 1 else "") + ")"


def read_array(handle, h5path, filename, *, kind="f", shape=None, ndim=None, finite=False,
               dtype=None):
    """Read a required numeric dataset with its dtype and shape checked.

    Parameters
    ----------
    handle : h5py.File or h5py.Group
    h5path : str
        Path of the dataset (absolute, or relative to ``handle``).
    filename : str
        For error messages.
    kind : str, optional
        Allowed numpy dtype kinds: ``"f"`` float (default), ``"iu"`` integer,
        ``"fiu"`` any numeric, ``"u"`` unsigned.
    shape : tuple of int or None, optional
        Required shape; ``None`` entries match any length.
    ndim : int, optional
        Required number of dimensions (when ``shape`` is not given).
    finite : bool, optional
        Reject NaN and infinities.
    dtype : numpy dtype, optional
        Convert the result to this dtype (after the checks).

    Returns
    -------
    numpy.ndarray
        The stored values, in the stored dtype unless ``dtype`` is given.
    """
    obj = _get(handle, h5path, filename)
    name = obj.name
    if not isinstance(obj, h5py.Dataset):
        raise fail(filename, name, "must be a dataset, found a group")
    if obj.dtype.kind not in kind:
        raise fail(filename, name, f"must be {_KIND_NAMES.get(kind, kind)}, "
                                   f"got dtype {obj.dtype}")
    if shape is not None:
        shape = tuple(shape)
        if len(obj.shape) != len(shape) or any(
                want is not None and got != want for got, want in zip(obj.shape, shape)):
            raise fail(filename, name,
                       f"expected shape {_shape_text(shape)}, got {tuple(obj.shape)}")
    elif ndim is not None and len(obj.shape) != ndim:
        raise fail(filename, name, f"expected {ndim} dimensions, got shape {tuple(obj.shape)}")
    check_storage(obj, filename, name)
    if obj.shape is not None:
        _check_size(obj, filename)
    try:
        arr = obj[()]
    except (OSError, RuntimeError, ValueError) as exc:
        raise fail(filename, name, f"cannot be read (damaged file?): {exc}") from None
    arr = np.asarray(arr)
    if finite and arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        bad = tuple(int(k) for k in np.argwhere(~np.isfinite(arr))[0])
        raise fail(filename, name, f"must be finite, found {arr[bad]} at index {bad}")
    if dtype is not None:
        arr = arr.astype(dtype, copy=False)
    return arr


def read_strings(handle, h5path, filename, *, length=None):
    """Read a required 1-D string dataset as a list of ``str``.

    Accepts variable- or fixed-length strings (UTF-8 or ASCII).
    """
    obj = _get(handle, h5path, filename)
    name = obj.name
    if not isinstance(obj, h5py.Dataset):
        raise fail(filename, name, "must be a dataset, found a group")
    if obj.dtype.kind not in "SOUT" or h5py.check_string_dtype(obj.dtype) is None:
        raise fail(filename, name, f"must be a 1-D string dataset, got dtype {obj.dtype}")
    if obj.ndim != 1:
        raise fail(filename, name, f"must be 1-D, got shape {tuple(obj.shape)}")
    if length is not None and obj.shape[0] != length:
        raise fail(filename, name, f"expected {length} strings, got {obj.shape[0]}")
    check_storage(obj, filename, name)
    _check_size(obj, filename)
    try:
        values = obj.asstr()[()]
    except (OSError, RuntimeError, ValueError, UnicodeDecodeError) as exc:
        raise fail(filename, name, f"cannot be read: {exc}") from None
    return [str(v) for v in values]
