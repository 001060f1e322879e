"""Back ends: where the tasks of a run execute.

Every back end runs ``fn(params, seed)`` for the tasks it is given through
:func:`execute` (which never raises for an ``Exception`` of ``fn``: it returns an
*outcome* dict) and hands each outcome to ``handle(outcome)`` in the calling process;
``handle`` returns True when the task is settled (written, or failed for good) and
False when it must run again (a retry).

:func:`run_in_process`
    one task after the other in this process (no pickling);
:func:`run_local`
    a :class:`concurrent.futures.ProcessPoolExecutor` of ``spawn`` workers with one
    BLAS thread each, rebuilt when a worker process dies;
:func:`run_dask`
    a ``dask.distributed`` cluster (:func:`dask_client`); tasks lost with their worker
    are submitted again.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import os
import pickle
import re
import socket
import time
import traceback
from concurrent.futures.process import BrokenProcessPool

import numpy as np

from xbarref.errors import XbarrefError

__all__ = ["SCHEDULER_ENV", "resolve_scheduler", "dask_client", "execute", "run_in_process",
           "run_local", "run_dask", "local_map"]

#: Environment variable read when ``scheduler`` is not given.
SCHEDULER_ENV = "XBARREF_SCHEDULER"
#: Times a task is resubmitted after the cluster lost it (not counted as retries).
_MAX_LOST = 3


def resolve_scheduler(scheduler=None):
    """The scheduler address to use: ``scheduler``, else ``$XBARREF_SCHEDULER``, else None
    (local processes). A :class:`distributed.Client` is returned unchanged."""
    if scheduler is None:
        scheduler = os.environ.get(SCHEDULER_ENV) or None
    if scheduler is None or not isinstance(scheduler, str):
        return scheduler
    if not re.match(r"^(tcp|tls|inproc|ucx|ws|wss)://[^\s]+$", scheduler):
        raise XbarrefError(f"scheduler: expected an address like tcp://HOST:PORT, got {scheduler!r}")
    return scheduler


def dask_client(scheduler):
    """``(client, owned)``: a Client connected to ``scheduler`` (owned: close it after)."""
    try:
        from distributed import Client
    except ImportError:
        raise XbarrefError(
            f"scheduler {scheduler}: running on a Dask cluster needs the optional extra "
            "'dask' (pip install 'xbarref[dask]')") from None
    if isinstance(scheduler, Client):
        return scheduler, False
    try:
        return Client(scheduler, timeout="20s", set_as_default=False), True
    except (OSError, TimeoutError) as exc:
        raise XbarrefError(f"scheduler: cannot connect to {scheduler}: {exc}") from None


def execute(fn, tid, params, entropy, attempt):
    """Run one task where it is scheduled; never raises for an ``Exception`` of ``fn``."""
    start = time.perf_counter()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    try:
        result = fn(params, np.random.SeedSequence(entropy))
    except Exception as exc:  # reported, retried by the caller
        interrupt = _interrupt_in(exc)
        if interrupt is not None:
            # Ctrl-C / SIGTERM that surfaced wrapped (e.g. Numba's SystemError when the
            # default handler raised inside its result boxing): stop, not a task failure
            raise interrupt from None
        return {"id": tid, "ok": False, "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(), "worker": worker, "attempt": attempt}
    return {"id": tid, "ok": True, "result": result, "seconds": time.perf_counter() - start,
            "worker": worker, "attempt": attempt}


def _interrupt_in(exc):
    """The ``KeyboardInterrupt`` in the cause / context chain of ``exc``, or None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, KeyboardInterrupt):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _watch_parent(parent):
    """Exit this worker as soon as its parent process is gone (SIGKILL included)."""
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(1)


def _worker_init(parent):
    """Set-up of each local worker process.

    Ctrl-C is ignored here: the terminal sends it to the whole process group, and the
    parent alone decides (it stops the pool, so an interrupt is never a task failure).
    The worker dies with its parent: on Linux through ``PR_SET_PDEATHSIG`` (SIGKILL when
    the parent exits for any reason), elsewhere by a thread that polls the parent pid.
    A worker that compiles a kernel says so when the parent shows the compile notice
    (:mod:`xbarref._compile_notice`). The allocator keeps freed memory for the next
    batch (:func:`xbarref._malloc.tune_allocator`; no number changes).
    """
    import signal
    import threading

    from xbarref._malloc import tune_allocator

    tune_allocator()

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    from xbarref._compile_notice import relay_in_worker

    relay_in_worker()  # "compiling kernels" from this worker, if the command shows it


def _stop_workers(pool):
    """Terminate the worker processes of ``pool`` now (after Ctrl-C, SIGTERM, an error)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        with contextlib.suppress(Exception):
            proc.terminate()
    for proc in processes:
        with contextlib.suppress(Exception):
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()


def local_map(fn, items, workers):
    """``[fn(item) for item in items]`` on ``workers`` local processes, in order.

    The processes start as the sweep's workers do (spawned, one BLAS thread each, Ctrl-C
    for the parent alone, dying with it); an error or an interrupt stops them all and is
    raised here. ``workers <= 1`` (or fewer than two items): in this process. ``fn`` must
    be a module-level function and the items picklable. For short numerical jobs (the
    study report's bootstrap intervals), not for tasks that need results kept on disk
    (:func:`xbarref.sweep.run`).
    """
    items = list(items)
    if workers <= 1 or len(items) < 2:
        return [fn(x) for x in items]
    pool = cf.ProcessPoolExecutor(max_workers=min(int(workers), len(items)),
                                  mp_context=multiprocessing.get_context("spawn"),
                                  initializer=_worker_init, initargs=(os.getpid(),))
    try:
        with _one_blas_thread():
            futures = [pool.submit(fn, x) for x in items]
        out = [f.result() for f in futures]
    except BaseException:
        _stop_workers(pool)
        raise
    pool.shutdown()
    return out


def run_in_process(todo, fn, handle, attempts):
    """Run the tasks one after the other in this process."""
    for task in todo:
        while not handle(execute(fn, task.id, task.params, task.seed.entropy,
                                 attempts.get(task.id, 0) + 1)):
            pass


#: Thread-count variables of the BLAS / OpenMP libraries NumPy may use.
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMBA_NUM_THREADS")


@contextlib.contextmanager
def _one_blas_thread():
    """Environment for spawning local workers: one BLAS / OpenMP thread each (N workers
    on N cores, not N x N threads), unless the user set these variables; as
    ``dask worker`` does through its nanny."""
    added = [v for v in _THREAD_VARS if v not in os.environ]
    for v in added:
        os.environ[v] = "1"
    try:
        yield
    finally:
        for v in added:
            os.environ.pop(v, None)


def run_local(todo, fn, n, handle, give_up, attempts, retries):
    """Run on a process pool; rebuild it when a worker process dies. Returns the number
    of rebuilds. After ``max(3, retries + 2)`` rebuilds the tasks still not done are
    reported as failed (some task is probably killing its process)."""
    try:
        pickle.dumps(fn)
    except Exception as exc:
        raise XbarrefError(f"fn: worker processes need a module-level function ({exc}); "
                           "use workers=1 to run it in this process") from None
    pending = {t.id: t for t in todo}
    restarts = 0
    max_restarts = max(3, retries + 2)
    context = multiprocessing.get_context("spawn")

    def submit(pool, t):
        return pool.submit(execute, fn, t.id, t.params, t.seed.entropy,
                           attempts.get(t.id, 0) + 1)

    while pending:
        pool = cf.ProcessPoolExecutor(max_workers=n, mp_context=context,
                                      initializer=_worker_init, initargs=(os.getpid(),))
        broken = False
        try:
            with _one_blas_thread():  # the workers start at these first submissions
                futures = {submit(pool, t): t.id for t in pending.values()}
            while futures and not broken:
                done, _ = cf.wait(futures, return_when=cf.FIRST_COMPLETED)
                for fut in done:
                    tid = futures.pop(fut)
                    try:
                        outcome = fut.result()
                    except BrokenProcessPool:
                        broken = True
                        continue
                    except Exception as exc:  # e.g. a result that cannot be pickled
                        outcome = {"id": tid, "ok": False, "error": f"{type(exc).__name__}: {exc}",
                                   "traceback": "", "worker": "",
                                   "attempt": attempts.get(tid, 0) + 1}
                    if handle(outcome):
                        del pending[tid]
                    elif not broken:
                        futures[submit(pool, pending[tid])] = tid
        except BaseException:
            _stop_workers(pool)
            raise
        pool.shutdown(wait=True, cancel_futures=True)
        if broken:
            restarts += 1
            if restarts > max_restarts:
                for tid in list(pending):
                    give_up(tid, f"a worker process died {restarts} times while this task was "
                                 "pending (a task may crash its process; workers=1 shows which)")
                    del pending[tid]
    return restarts


def run_dask(todo, fn, client, handle, attempts):
    """Run on a Dask cluster; a task lost with its worker is submitted again (up to
    ``_MAX_LOST`` times, not counted as a retry)."""
    from distributed import as_completed

    live = set()
    try:
        key_to_id = {}

        def submit(t):
            attempt = attempts.get(t.id, 0) + 1
            key = f"xbarref-{t.id}-a{attempt}-{os.getpid()}-{time.time_ns()}"
            key_to_id[key] = t.id
            fut = client.submit(execute, fn, t.id, t.params, t.seed.entropy, attempt,
                                key=key, pure=False)
            live.add(fut)
            return fut

        by_id = {t.id: t for t in todo}
        lost = {}
        futures = as_completed([submit(t) for t in todo], loop=client.loop, with_results=False)
        for fut in futures:
            live.discard(fut)
            tid = key_to_id[fut.key]
            try:
                outcome = fut.result()
            except Exception as exc:
                # The task function's own errors come back as outcomes; this is the
                # cluster (a result lost with its worker, KilledWorker after repeated
                # worker deaths...): run the task again, up to _MAX_LOST times.
                fut.release()
                lost[tid] = lost.get(tid, 0) + 1
                if lost[tid] <= _MAX_LOST:
                    futures.add(submit(by_id[tid]))
                    continue
                outcome = {"id": tid, "ok": False, "error": f"{type(exc).__name__}: {exc}",
                           "traceback": "", "worker": "", "attempt": attempts.get(tid, 0) + 1}
            fut.release()
            if not handle(outcome):
                futures.add(submit(by_id[outcome["id"]]))
    except BaseException:
        outstanding = [f for f in live if not f.done()]
        if outstanding:
            client.cancel(outstanding)
        raise
