"""What the sub-commands show while they work (on standard error).

    compile_notice(enabled)            context manager: prints "compiling kernels (first
                                       run only)" once when Numba compiles an xbarref
                                       kernel inside it (not when it loads one from the
                                       on-disk cache)
    warm_up_for_workers(jobs)          compile the common kernels here before local
                                       worker processes start (inside compile_notice)
    progress_bar(total, desc, enabled) a tqdm bar with the time left (a no-op when disabled)
    ticking(bar)                       redraw a bar every second (elapsed time counts up)
"""

from __future__ import annotations

import contextlib
import sys

from xbarref._compile_notice import COMPILE_NOTICE, notice


def compile_notice(enabled=True, file=None, package="xbarref"):
    """Print :data:`COMPILE_NOTICE` once if a Numba kernel of ``package`` compiles inside.

    Numba announces every compilation with a ``numba:compile`` event, after it has
    looked in its on-disk cache: a kernel loaded from the cache raises no event, so the
    notice appears on a first run (or after the kernel's source changed) and not after.
    It is printed when the first compilation starts, before the wait. Local worker
    processes started inside relay it (once for the command, whoever compiles first;
    see :mod:`xbarref._compile_notice`).

    Parameters
    ----------
    enabled : bool
        False: print nothing.
    file : file object, optional
        Default standard error.
    package : str
        Only kernels whose module name starts with this count.

    Returns
    -------
    context manager yielding dict
        ``{"compiled": n}``, the number of kernels compiled in this process inside the
        block so far.
    """
    return notice(enabled=enabled, file=file, package=package)


def warm_up_for_workers(jobs, scheduler=None):
    """Compile (or load) the common kernels in this process before local workers start.

    With ``jobs`` > 1 local worker processes (no ``scheduler``), each worker would
    otherwise compile the same kernels at the same time on a cold cache; called inside
    :func:`compile_notice`, the notice appears here, before the progress bar, and the
    workers load the kernels from the cache. Does nothing for one process (the kernels
    compile where they are first used, inside the same notice) or a Dask scheduler (its
    workers have their own cache).

    Returns
    -------
    bool
        True when it ran.
    """
    if scheduler is not None or jobs <= 1:
        return False
    import numpy as np

    from xbarref.circuit import warm_up
    from xbarref.devices.converters import ADC, DAC
    from xbarref.nn import warm_up as warm_up_layers

    warm_up()
    warm_up_layers()                             # im2col, batchnorm, ReLU, max pooling
    currents = np.linspace(-1e-6, 1e-6, 6).reshape(2, 3)
    adc = ADC(8)
    adc.convert(currents, 1e-6)                  # the ADC kernel: one full scale (A) ...
    adc.convert(currents, np.full(3, 1e-6))      # ... and one per column (a read-only view)
    for single in (currents.astype(np.float32), currents):
        adc.accumulate(single, np.full(3, 1e-6), np.ones(3), np.zeros((2, 3)))   # fused ADC pass
        ADC(0).accumulate(single, 0.0, np.ones(3), np.zeros((2, 3)))           # ... the ADC off
    x = np.linspace(-1.0, 1.0, 6).reshape(2, 3)
    for inputs in (x, np.asfortranarray(x)):     # C- and F-ordered inputs (im2col)
        DAC(8).phases(inputs)                    # the DAC's scaling pass: quantized, ...
        DAC(0).phases(inputs)                    # ... ideal, ...
        DAC(0).volts_float32(inputs)             # ... and rounded to float32
        DAC(8, signed="two_phase").phases(inputs)   # the max |x| pass of the other modes
    return True


@contextlib.contextmanager
def ticking(bar, every=1.0):
    """Redraw ``bar`` every ``every`` seconds (s) inside the block, so that its elapsed
    time counts up while a long first step runs (tqdm redraws only on updates)."""
    import threading

    stop = threading.Event()
    refresh = getattr(bar, "refresh", None)

    def tick():
        while not stop.wait(every):
            with contextlib.suppress(Exception):
                refresh()

    thread = threading.Thread(target=tick, daemon=True) if refresh is not None else None
    if thread is not None:
        thread.start()
    try:
        yield bar
    finally:
        stop.set()
        if thread is not None:
            thread.join(timeout=every + 1.0)


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

    The bar appears only once a second has passed, so quick runs print nothing, and is
    redrawn every second until closed, so that its elapsed time counts up during a long
    step (tqdm alone redraws only on an update).

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
    import threading

    from tqdm import tqdm

    class _Ticking(tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._stop_ticks = threading.Event()
            self._ticker = threading.Thread(target=self._tick, daemon=True)
            self._ticker.start()

        def _tick(self):
            while not self._stop_ticks.wait(1.0):
                if self.disable:
                    return
                with contextlib.suppress(Exception):
                    if self._time() - self.start_t >= self.delay:
                        self.refresh()

        def close(self):
            stop = getattr(self, "_stop_ticks", None)
            if stop is not None:
                stop.set()
                if self._ticker is not threading.current_thread():
                    self._ticker.join(timeout=2.0)
            super().close()

    return _Ticking(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True,
                    delay=1.0, bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} {unit} "
                                          "[{elapsed} elapsed, {remaining} left]")
