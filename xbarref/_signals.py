"""Ctrl-C and SIGTERM that stop a command cleanly, even inside Numba kernels and HDF5 writes.

Why Ctrl-C crashed inside a kernel
    Python runs a signal handler only between two bytecodes of Python code. A Numba
    kernel holds the main thread in machine code, so the handler waits; the first
    Python code to run afterwards is inside Numba's own wrapper, which, while boxing the
    kernel's result arrays, calls back into Python (``numba.core.serialize`` rebuilds
    the result's dtype). The default handler raises ``KeyboardInterrupt`` right there,
    inside a C call that does not expect a Python exception: the wrapper returns a
    result with an exception set (``SystemError: CPUDispatcher(...) returned a result
    with an exception set``), or, when the NULL it got is used, the process dies with
    SIGSEGV. The threading layer is not involved (the single-input kernel, which is not
    parallel, fails the same way). The same happens in h5py callbacks, where the
    exception is printed as "ignored" and the write goes on as if nothing happened.

The fix
    :func:`install` (called by the ``xbarref`` command) sets handlers for SIGINT and
    SIGTERM that raise ``KeyboardInterrupt`` / :class:`~xbarref.errors.Terminated` only
    in ordinary Python code: when the interrupted frame belongs to Numba (or h5py), or
    while a :func:`deferred` block runs, the signal is remembered and delivered again
    as soon as that code has returned. :func:`deferred` is used around kernel calls and
    around the write-and-rename of every output file, also when :func:`install` was not
    called (library use), so a signal never lands in the middle of either.

A kernel cannot be interrupted mid-way: Ctrl-C takes effect when the running kernel
call returns (every kernel loop is bounded).
"""

from __future__ import annotations

import _thread
import contextlib
import os
import signal
import threading

from xbarref.errors import Terminated

__all__ = ["install", "deferred", "exit_status"]

#: Modules whose Python frames must never see an exception raised by a signal handler.
_FRAGILE = ("numba", "h5py", "llvmlite")
_SIGNALS = (signal.SIGINT, signal.SIGTERM)

_state = threading.local()
_pending = []


def _depth():
    return getattr(_state, "depth", 0)


def _fragile(frame, depth=4):
    """True if one of the innermost ``depth`` frames runs code of Numba or h5py."""
    for _ in range(depth):
        if frame is None:
            return False
        name = frame.f_globals.get("__name__", "") or ""
        if name.split(".", 1)[0] in _FRAGILE:
            return True
        frame = frame.f_back
    return False


def _raise_for(signum):
    if signum == signal.SIGTERM:
        raise Terminated("terminated (SIGTERM)")
    raise KeyboardInterrupt


def _handler(signum, frame):
    if _depth() > 0:
        _pending.append(signum)
        return
    if _fragile(frame):
        # deliver it again once Numba / h5py has returned to ordinary Python code
        _thread.interrupt_main(signum)
        return
    _raise_for(signum)


def install():
    """Install the SIGINT / SIGTERM handlers of the ``xbarref`` command (main thread only).

    SIGINT raises ``KeyboardInterrupt`` and SIGTERM :class:`~xbarref.errors.Terminated`,
    both only where Python code can be interrupted safely (see the module docstring).
    A signal that is ignored (``SIG_IGN``, e.g. SIGINT in a background job) stays ignored.
    Returns the handlers it replaced, for :func:`restore`.
    """
    saved = {}
    if threading.current_thread() is not threading.main_thread():
        return saved
    for sig in _SIGNALS:
        old = signal.getsignal(sig)
        if old is not signal.SIG_IGN:
            saved[sig] = old
            signal.signal(sig, _handler)
    return saved


def restore(saved):
    """Put back the handlers that :func:`install` replaced (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig, old in saved.items():
        signal.signal(sig, old if old is not None else signal.SIG_DFL)


@contextlib.contextmanager
def deferred():
    """Hold SIGINT and SIGTERM back while the block runs; deliver them when it ends.

    In the main thread only (elsewhere signals are not delivered to Python code anyway).
    If a signal arrived, the block still completes, and then the signal takes effect as
    it would have: ``KeyboardInterrupt`` / ``Terminated`` with :func:`install`'s
    handlers, otherwise the handler that was in place (the default SIGTERM action
    ends the process). Blocks nest.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    depth = _depth()
    saved = None
    if depth == 0:
        saved = {}
        for sig in _SIGNALS:
            old = signal.getsignal(sig)
            if old is not _handler and old is not signal.SIG_IGN and old is not None:
                saved[sig] = old
                signal.signal(sig, _handler)
    _state.depth = depth + 1
    try:
        yield
    finally:
        _state.depth = depth
        if depth == 0:
            for sig, old in saved.items():
                signal.signal(sig, old)
            pending, _pending[:] = list(_pending), []
            if pending:
                _deliver(pending[0], saved)


def _deliver(signum, saved):
    old = saved.get(signum, _handler)
    if old is _handler:
        _raise_for(signum)
    if callable(old):
        old(signum, None)
    elif old == signal.SIG_DFL:
        os.kill(os.getpid(), signum)


def exit_status(exc):
    """Shell exit status for an interrupt: 143 for SIGTERM, 130 for Ctrl-C (128 + signal)."""
    return 128 + (signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)
