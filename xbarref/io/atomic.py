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
    - The data go to a temporary file in the destination folder, are flushed to disk,
      and the file is renamed over the destination (atomic on POSIX). On any error,
      Ctrl-C or SIGTERM the temporary file is removed and the destination is untouched;
      SIGINT / SIGTERM arriving during the final flush and rename are delivered right
      after it (see :mod:`xbarref._signals`).
    - A folder output (:func:`atomic_dir`, e.g. a study report) follows the same rules:
      it is built as a temporary sibling folder and swapped in at the end; an existing
      non-empty folder is replaced only with ``overwrite``.

Temporary files left by a killed process
    SIGKILL (or a power cut) cannot be caught, so a write it interrupts leaves its
    temporary file behind. Temporary names are recognisable:
    ``.<name>.xbr<host>-<pid>-<random>.tmp`` - ``<name>`` the output's name (at most 64
    characters), ``<host>`` 8 hex digits of the SHA-256 of the host name, ``<pid>`` the
    writing process, ``<random>`` 8 characters. The first write of a process into a
    folder removes (:func:`remove_stale`) the temporary files and folders in it whose
    name matches this pattern exactly, whose host tag is this host's, that belong to
    this user, and whose writing process no longer exists (once per folder and process:
    a sweep writing 100 000 task files does not list its folder 100 000 times). Nothing else is ever removed: not a file
    of a live process, not a file of another user or host, not a name that only
    resembles the pattern.

Public API: :func:`check_output`, :func:`atomic_file`, :func:`write_bytes`,
:func:`check_output_dir`, :func:`atomic_dir`, :func:`remove_stale`, :func:`make_temp_dir`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import socket
import stat
import tempfile

from xbarref import _signals
from xbarref.errors import OutputExistsError, XbarrefError

__all__ = ["check_output", "atomic_file", "write_bytes", "check_output_dir", "atomic_dir",
           "remove_stale", "make_temp_dir"]

#: Host tag of temporary names: 8 hex digits of the SHA-256 of the host name.
HOST_TAG = hashlib.sha256(socket.gethostname().encode("utf-8", "surrogateescape")).hexdigest()[:8]
#: The exact pattern of a temporary name (see the module docstring).
TEMP_PATTERN = re.compile(r"\A\.(?P<name>[^/\x00]{1,64})\.xbr(?P<host>[0-9a-f]{8})-(?P<pid>[1-9][0-9]{0,9})"
                          r"-(?P<random>[a-z0-9_]{8})\.tmp\Z")


def _temp_prefix(target):
    return f".{os.path.basename(target)[:64]}.xbr{HOST_TAG}-{os.getpid()}-"


def _process_exists(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # someone else's process (or cannot tell): keep its files
    return True


#: Folders this process has already cleaned (each is scanned once per process: a
#: sweep writing 100 000 task files into one folder must not list it 100 000 times).
_CLEANED = set()


def _clean_once(folder):
    key = os.path.realpath(folder)
    if key not in _CLEANED:
        remove_stale(folder)
        _CLEANED.add(key)


def remove_stale(folder):
    """Remove temporary files and folders left in ``folder`` by killed xbarref writers.

    Only entries whose name matches :data:`TEMP_PATTERN` exactly, with this host's tag,
    owned by this user, not symbolic links, whose writing process does not exist, are
    removed (a folder with its content). Errors are ignored (a file another cleaner
    removed first, a folder that cannot be listed).

    Returns
    -------
    list of str
        The paths removed.
    """
    removed = []
    uid = os.getuid() if hasattr(os, "getuid") else None
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = TEMP_PATTERN.match(entry.name)
        if m is None or m["host"] != HOST_TAG:
            continue
        pid = int(m["pid"])
        if pid == os.getpid() or _process_exists(pid):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if uid is not None and st.st_uid != uid:
                continue
            if stat.S_ISREG(st.st_mode):
                os.unlink(entry.path)
            elif stat.S_ISDIR(st.st_mode):
                shutil.rmtree(entry.path)
            else:
                continue
        except OSError:
            continue
        removed.append(entry.path)
    return removed


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
    _clean_once(folder)
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=_temp_prefix(target), suffix=".tmp")
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


def check_output_dir(path, *, overwrite=False, name="path"):
    """Check that the folder ``path`` may be written under the output rules.

    Its parent folder must exist; ``path`` may be missing or an empty folder; a
    non-empty folder is replaced only when ``overwrite`` is true; anything that is not
    a folder (a file, a symbolic link, a FIFO...) is refused.

    Returns
    -------
    str
        The absolute path of the folder.

    Raises
    ------
    XbarrefError
        Parent missing, ``path`` not a folder or a symbolic link.
    OutputExistsError
        ``path`` is a non-empty folder and ``overwrite`` is false.
    """
    path = os.fspath(path)
    if not path:
        raise XbarrefError(f"{name}: empty folder name")
    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        raise XbarrefError(f"{name}: the parent folder {parent!r} of {path!r} does not exist")
    if os.path.islink(path):
        raise XbarrefError(f"{name}: {path!r} is a symbolic link; refusing to replace it")
    if os.path.lexists(path):
        if not os.path.isdir(path):
            raise XbarrefError(f"{name}: {path!r} exists and is not a folder")
        if os.listdir(path) and not overwrite:
            raise OutputExistsError(f"{name}: {path!r} exists and is not empty "
                                    "(overwrite=True replaces it)", path=path)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise XbarrefError(f"{name}: cannot write in the folder {parent!r}")
    return path


def _exchange(a, b):
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False if unsupported."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    AT_FDCWD, RENAME_EXCHANGE = -100, 2
    if renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), b)


@contextlib.contextmanager
def atomic_dir(path, *, overwrite=False, name="path"):
    """Write an output folder atomically under the output rules.

    Yields the path of a temporary sibling folder (a recognisable temporary name, see
    the module docstring) to be filled; when the ``with`` block ends without an
    exception it takes the place of ``path`` - atomically swapped with an existing
    folder where the system can (Linux), else by two renames - and the old content is
    removed. On any exception (also ``KeyboardInterrupt``) the temporary folder is
    removed and ``path`` is untouched.

    Raises
    ------
    XbarrefError, OutputExistsError
        See :func:`check_output_dir` (checked before anything is written, and again at
        the end).
    """
    path = check_output_dir(path, overwrite=overwrite, name=name)
    parent = os.path.dirname(path)
    _clean_once(parent)
    tmp = tempfile.mkdtemp(dir=parent, prefix=_temp_prefix(path), suffix=".tmp")
    try:
        os.chmod(tmp, 0o777 & ~_umask_dir())
        yield tmp
        with _signals.deferred():
            check_output_dir(path, overwrite=overwrite, name=name)
            if not os.path.lexists(path):
                os.rename(tmp, path)
                return
            if not _exchange(tmp, path):
                aside = tempfile.mkdtemp(dir=parent, prefix=_temp_prefix(path), suffix=".tmp")
                os.rename(path, os.path.join(aside, "old"))
                os.rename(tmp, path)
                tmp = aside
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _umask_dir():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def make_temp_dir(parent, name):
    """A new working folder in ``parent`` with a recognisable temporary name (module
    docstring), after removing those of dead processes there (:func:`remove_stale`).

    For the scratch folders of long runs (task files of a sweep or study that keeps
    none): a SIGKILL leaves the folder behind, and the next run in ``parent`` removes it.
    The caller removes the folder when done.
    """
    parent = os.fspath(parent) if parent is not None else tempfile.gettempdir()
    remove_stale(parent)
    return tempfile.mkdtemp(dir=parent, prefix=_temp_prefix(name), suffix=".tmp")
