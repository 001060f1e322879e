"""What the sub-commands show while they work (on standard error).

    compile_notice(modules, enabled)   print "compiling kernels (first run only)" when the
                                       Numba kernels of these modules are not in the on-disk
                                       cache yet; returns whether it did
    progress_bar(total, desc, enabled) a tqdm bar with the time left (a no-op when disabled)
"""

from __future__ import annotations

import importlib
import sys

COMPILE_NOTICE = "compiling kernels (first run only; they are cached on disk afterwards)"

# The kernel modules a command runs, by what it does.
SOLVER_KERNELS = ("xbarref.circuit._assemble", "xbarref.circuit._pcg")
HARDWARE_KERNELS = SOLVER_KERNELS + ("xbarref.mapping._kernels",)


def _dispatchers(module):
    from numba.core.registry import CPUDispatcher

    return [v for v in vars(module).values() if isinstance(v, CPUDispatcher)]


def _uncached(dispatcher):
    """True when calling ``dispatcher`` will compile: nothing compiled in this process and
    no usable entry in its on-disk cache (a missing or stale index)."""
    if dispatcher.signatures:
        return False
    cache_file = getattr(getattr(dispatcher, "_cache", None), "_cache_file", None)
    if cache_file is None:  # cache=False: compiled on every run
        return True
    return not cache_file._load_index()  # {} when absent or when the source changed


def kernels_need_compiling(modules):
    """Whether running the kernels of ``modules`` compiles them first.

    A module counts as compiled when most of its kernels are in Numba's on-disk cache
    (a kernel that no command calls never gets an entry). Returns False when Numba's
    cache cannot be inspected.
    """
    try:
        for name in modules:
            found = _dispatchers(importlib.import_module(name))
            missing = sum(_uncached(d) for d in found)
            if found and 2 * missing > len(found):
                return True
    except Exception:  # noqa: BLE001 - a notice must never break a command
        return False
    return False


def compile_notice(modules, enabled=True, file=None):
    """Print :data:`COMPILE_NOTICE` if the kernels of ``modules`` will be compiled.

    Returns
    -------
    bool
        Whether the notice was printed.
    """
    if not enabled or not kernels_need_compiling(modules):
        return False
    print(COMPILE_NOTICE, file=file or sys.stderr, flush=True)
    return True


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
