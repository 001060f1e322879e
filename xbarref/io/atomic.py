"""The one way xbarref writes an output file: checked, temporary file, rename.

Rules (the same for every writer and every command)
    - The output's folder must exist; an output that is a directory is refused.
    - An existing output is replaced only when ``overwrite`` is true (the commands'
      ``--overwrite``); otherwise :class:`~xbarref.errors.OutputExistsError`.
    - Only regular files are ever replaced: a FIFO, a device (``/dev/null``), a socket
      is refused, whatever ``overwrite`` says.
    - A symbolic link is written through (its target is replaced) only when the target
      lies in the same folder as the link; a link that leaves the output folder is
      refused.
    - A file the data was read from (``inputs``) is never the output.
    - The data go to a temporary file ``.<name>.<random>.tmp`` in the destination folder,
      are flushed to disk, and the file is renamed over the destination (atomic on
      POSIX). On any error, Ctrl-C or SIGTERM the temporary file is removed and the
      destination is untouched; SIGINT / SIGTERM arriving during the final flush and
      rename are delivered right after it (see :mod:`xbarref._signals`).

Public API: :func:`check_output`, :func:`atomic_file`, :func:`write_bytes`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile

from xbarref import _signals
from xbarref.errors import OutputExistsError, XbarrefError

__all__ = ["check_output", "atomic_file", "write_bytes"]


def _same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def _kind(mode):
    for test, text in ((stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket")):
        if test(mode):
            return text
    return "special file"


def check_output(path, *, overwrite=False, inputs=(), name="path"):
    """Check that ``path`` may be written under the output rules (module docstring).

    Parameters
    ----------
    path : str or os.PathLike
        The output.
    overwrite : bool, optional
        Allow replacing an existing regular file.
    inputs : iterable of path, optional
        Files the data was read from; ``path`` may not be one of them.
    name : str, optional
        The argument named in error messages.

    Returns
    -------
    str
        The file that will be created or replaced (``path``, or the target of a
        symbolic link within the same folder).

    Raises
    ------
    XbarrefError
        Folder missing, a directory, not a regular file, a symbolic link leaving the
        folder, or one of ``inputs``.
    OutputExistsError
        ``path`` exists and ``overwrite`` is false.
    """
    path = os.fspath(path)
    if not path:
        raise XbarrefError(f"{name}: empty file name")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise XbarrefError(f"{name}: folder {folder!r} of {path!r} does not exist")
    target = path
    if os.path.islink(path):
        real = os.path.realpath(path)
        if os.path.dirname(real) != os.path.realpath(folder):
            raise XbarrefError(f"{name}: {path!r} is a symbolic link to {real!r}, outside the "
                               "output folder; refusing to write through it")
        target = real
    for src in inputs:
        if src is not None and os.path.exists(target) and _same_file(target, os.fspath(src)):
            raise XbarrefError(f"{name}: refusing to overwrite the input file {path!r}; "
                               "write to a new file")
    try:
        st = os.stat(target)
    except FileNotFoundError:
        return target
    if stat.S_ISDIR(st.st_mode):
        raise XbarrefError(f"{name}: {path!r} is a directory")
    if not stat.S_ISREG(st.st_mode):
        raise XbarrefError(f"{name}: {path!r} is a {_kind(st.st_mode)}, not a regular file; "
                           "xbarref replaces only regular files")
    if not overwrite:
        raise OutputExistsError(f"{name}: {path!r} exists (overwrite=True replaces it)", path=path)
    return target


def _umask_mode():
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def _commit(tmp, target, overwrite, path, name):
    """Move the finished ``tmp`` to ``target``: a hard link (fails if something appeared
    there meanwhile) when not overwriting, else an atomic rename."""
    if not overwrite:
        try:
            os.link(tmp, target)
        except FileExistsError:
            raise OutputExistsError(f"{name}: {path!r} appeared while it was written "
                                    "(overwrite=True replaces it)", path=path) from None
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV,
                                 errno.EMLINK, errno.ENOSYS, errno.EACCES):
                raise
            if os.path.lexists(target):
                raise OutputExistsError(f"{name}: {path!r} appeared while it was written "
                                        "(overwrite=True replaces it)", path=path) from None
            os.replace(tmp, target)
        else:
            os.unlink(tmp)
        return
    os.replace(tmp, target)


@contextlib.contextmanager
def atomic_file(path, *, overwrite=False, inputs=(), name="path", text=False, encoding="utf-8"):
    """Write an output file atomically under the output rules.

    Parameters
    ----------
    path : str or os.PathLike
        The output.
    overwrite, inputs, name
        As for :func:`check_output` (checked before anything is written).
    text : bool, optional
        Yield a text file (``encoding``, ``\\n`` line ends) instead of a binary one.

    Yields
    ------
    file object
        Open on the temporary file; when the ``with`` block ends without an exception it
        is flushed, synced and renamed to ``path``. On any exception (also
        ``KeyboardInterrupt``) it is removed and ``path`` is untouched.

    Raises
    ------
    XbarrefError, OutputExistsError
        See :func:`check_output`.
    OSError
        From the operating system (no space, no permission...), after the temporary
        file was removed.
    """
    path = os.fspath(path)
    target = check_output(path, overwrite=overwrite, inputs=inputs, name=name)
    folder = os.path.dirname(os.path.abspath(target))
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(target)[:64] + ".",
                                   suffix=".tmp")
    except OSError as exc:  # name the folder, not the temporary file that could not be made
        raise type(exc)(exc.errno, f"{exc.strerror} (cannot create a file in this folder)",
                        folder) from None
    try:
        try:
            fh = os.fdopen(fd, "w" if text else "wb", **({"encoding": encoding, "newline": "\n"}
                                                          if text else {}))
        except BaseException:
            os.close(fd)
            raise
        with fh:
            os.chmod(tmp, _umask_mode())
            yield fh
            with _signals.deferred():
                fh.flush()
                os.fsync(fh.fileno())
        with _signals.deferred():
            _commit(tmp, target, overwrite, path, name)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename is None and exc.errno is not None:
            # a failed write or sync: name the output it was for
            raise type(exc)(exc.errno, exc.strerror, path) from None
        raise


def write_bytes(path, data, **options):
    """Write ``data`` (bytes-like) to ``path`` with :func:`atomic_file` (``options`` as there)."""
    with atomic_file(path, **options) as fh:
        view = memoryview(data)
        for start in range(0, len(view), 1 << 24):
            fh.write(view[start:start + (1 << 24)])
    return os.fspath(path)
