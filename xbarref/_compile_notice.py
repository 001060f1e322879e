"""The "compiling kernels (first run only)" notice, in a command and in its worker processes.

Numba compiles a kernel on its first call and caches it on disk (``cache=True``). It
announces every compilation with a ``numba:compile`` event, after it has looked in the
cache: a kernel loaded from the cache raises no event. :func:`notice` listens for the
events of xbarref's kernels and prints :data:`COMPILE_NOTICE` when the first one starts.

Worker processes (``study``, ``sweep``, ``golden make`` with ``--jobs`` > 1) are new
processes: a listener of the parent does not hear their compilations. While
:func:`notice` is active it names a marker file in the environment variable
:data:`ENV`, which spawned workers inherit; :func:`relay_in_worker` (called by each local
worker at start-up) listens there too. Whoever compiles first - the parent or a worker -
creates the marker and prints the notice, so the user sees it once per command and
never twice. The commands also compile the common kernels in the parent before they
start workers (:func:`xbarref.circuit.warm_up`), so that workers usually only load
them; the relay covers what that warm-up does not (e.g. the two-level solver of large
tiles).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile

__all__ = ["COMPILE_NOTICE", "ENV", "notice", "relay_in_worker"]

COMPILE_NOTICE = "compiling kernels (first run only; they are cached on disk afterwards)"
#: Environment variable naming the marker file of the active notice (inherited by workers).
ENV = "XBARREF_COMPILE_NOTICE"


def _claim(marker):
    """True for the first caller (of any process) that creates ``marker``."""
    if marker is None:
        return True
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        return False
    except OSError:  # the folder is gone (the command ended): say it rather than not
        return True


def _say(file):
    file = file or sys.stderr
    try:
        from tqdm import tqdm

        tqdm.write(COMPILE_NOTICE, file=file)  # above a progress bar of this process
    except ImportError:  # tqdm is a dependency; this is only a fallback
        print(COMPILE_NOTICE, file=file, flush=True)
    with contextlib.suppress(AttributeError, OSError, ValueError):
        file.flush()


def _listener(state, marker, file, package):
    from numba.core import event

    class _Listener(event.Listener):
        def on_start(self, ev):
            dispatcher = (ev.data or {}).get("dispatcher")
            module = getattr(getattr(dispatcher, "py_func", None), "__module__", "") or ""
            if not module.startswith(package):
                return
            state["compiled"] += 1
            if state["compiled"] == 1 and _claim(marker):
                _say(file)

        def on_end(self, ev):
            pass

    return _Listener()


@contextlib.contextmanager
def notice(enabled=True, file=None, package="xbarref"):
    """Print :data:`COMPILE_NOTICE` once if a Numba kernel of ``package`` compiles inside,
    in this process or in a worker process started inside (see the module docstring).

    Parameters
    ----------
    enabled : bool
        False: print nothing (and workers started inside print nothing either).
    file : file object, optional
        Default standard error.
    package : str
        Only kernels whose module name starts with this count.

    Yields
    ------
    dict
        ``{"compiled": n}``, the number of kernels compiled in this process inside the
        block so far.
    """
    state = {"compiled": 0}
    if not enabled:
        yield state
        return
    from numba.core import event

    outer = os.environ.get(ENV)
    folder = None
    if outer:  # inside another notice: share its marker (one notice per command)
        marker = outer
    else:
        folder = tempfile.mkdtemp(prefix="xbarref-compile-notice-")
        marker = os.path.join(folder, "said")
        os.environ[ENV] = marker
    try:
        with event.install_listener("numba:compile", _listener(state, marker, file, package)):
            yield state
    finally:
        if folder is not None:
            os.environ.pop(ENV, None)
            shutil.rmtree(folder, ignore_errors=True)


def relay_in_worker():
    """In a worker process: print the notice if this worker compiles a kernel first.

    Does nothing unless the parent runs inside :func:`notice` (the environment variable
    :data:`ENV` is set). The listener stays for the life of the worker.
    """
    marker = os.environ.get(ENV)
    if not marker:
        return
    from numba.core import event

    event.register("numba:compile", _listener({"compiled": 0}, marker, None, "xbarref"))
