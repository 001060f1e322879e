"""What the sub-commands show while they work (on standard error).

    compile_notice(enabled)            context manager: prints "compiling kernels (first
                                       run only)" once when Numba compiles an xbarref
                                       kernel inside it (not when it loads one from the
                                       on-disk cache)
    progress_bar(total, desc, enabled) a tqdm bar with the time left (a no-op when disabled)
"""

from __future__ import annotations

import contextlib
import sys

COMPILE_NOTICE = "compiling kernels (first run only; they are cached on disk afterwards)"


@contextlib.contextmanager
def compile_notice(enabled=True, file=None, package="xbarref"):
    """Print :data:`COMPILE_NOTICE` once if a Numba kernel of ``package`` compiles inside.

    Numba announces every compilation with a ``numba:compile`` event, after it has
    looked in its on-disk cache: a kernel loaded from the cache raises no event, so the
    notice appears on a first run (or after the kernel's source changed) and not after.
    It is printed when the first compilation starts, before the wait.

    Parameters
    ----------
    enabled : bool
        False: print nothing.
    file : file object, optional
        Default standard error.
    package : str
        Only kernels whose module name starts with this count.

    Yields
    ------
    dict
        ``{"compiled": n}``, the number of kernels compiled inside the block so far.
    """
    state = {"compiled": 0}
    if not enabled:
        yield state
        return
    from numba.core import event

    class _Listener(event.Listener):
        def on_start(self, ev):
            dispatcher = (ev.data or {}).get("dispatcher")
            module = getattr(getattr(dispatcher, "py_func", None), "__module__", "") or ""
            if not module.startswith(package):
                return
            state["compiled"] += 1
            if state["compiled"] == 1:
                try:
                    from tqdm import tqdm

                    tqdm.write(COMPILE_NOTICE, file=file or sys.stderr)
                except ImportError:  # tqdm is a dependency; this is only a fallback
                    print(COMPILE_NOTICE, file=file or sys.stderr, flush=True)

        def on_end(self, ev):
            pass

    with event.install_listener("numba:compile", _Listener()):
        yield state


class _NoBar:
    def update(self, n=1):
        pass

    def set_postfix_str(self, text):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def progress_bar(total, desc, enabled=True, unit="it"):
    """A tqdm progress bar on standard error (elapsed and remaining time), or a no-op.

    The bar appears only once a second has passed, so quick runs print nothing.

    Parameters
    ----------
    total : int
        Steps to do.
    desc : str
        Text in front of the bar.
    enabled : bool
        False gives an object with the same methods that prints nothing.
    unit : str
        Name of one step.
    """
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True, delay=1.0,
                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} {unit} "
                           "[{elapsed} elapsed, {remaining} left]")
