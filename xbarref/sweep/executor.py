"""One executor for every long run: local processes by default, a Dask cluster on request.

A run is a list of :class:`Task` (a stable id, a dict of parameters and an individual
seed) and a task function ``fn(params, seed) -> dict``. :func:`run_tasks` runs the
function once per task, either in local worker processes
(:class:`concurrent.futures.ProcessPoolExecutor`) or on a ``dask.distributed`` cluster,
and writes each result, as soon as it arrives, to its own small HDF5 file
``out_dir/tasks/<task id>.h5`` (atomic: temporary file, then rename). Results are
written by the process that called :func:`run_tasks`, so cluster workers need no
shared file system for the results.

Determinism
    A task's seed is a :class:`numpy.random.SeedSequence` built from the sweep seed and
    a SHA-256 digest of the task's identifying key (by default its parameters;
    :func:`task_seed`): it does not depend on
    the order of the tasks, the executor or the number of workers, so a task function
    that draws only from ``numpy.random.default_rng(seed)`` gives bit-identical results
    everywhere.

Resume, retries, failures
    With ``resume=True`` every task whose file exists (and holds the same key and sweep
    seed) is skipped. A task that raises is retried ``retries`` more times, then
    reported with its parameters in :attr:`RunReport.failed` (and in
    ``out_dir/failed.json``); the other tasks go on. A worker process that dies is
    replaced and its task runs again (Dask reschedules it; the local pool is rebuilt,
    at most ``max(3, retries + 2)`` times per run).

Task file (format ``xbarref.sweep_task``, version 1)
    ``/`` attributes ``format``, ``format_version``, ``task_id``, ``params`` and ``key`` (JSON),
    ``sweep_seed``, ``seed_entropy`` (the SeedSequence entropy words), ``seconds``
    (wall time of the task), ``worker`` (host:pid), ``attempt``; one dataset
    ``/result/<name>`` per entry of the dict the task function returned (numbers and
    arrays, stored bit-exact), or a string attribute ``/result`` ``<name>`` for strings.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import hashlib
import json
import multiprocessing
import os
import re
import socket
import time
import traceback

import numpy as np

from xbarref.errors import XbarrefError

__all__ = ["Task", "RunReport", "TaskFailure", "make_tasks", "task_seed", "task_id",
           "run_tasks", "read_task_file", "load_results", "task_path", "resolve_scheduler", "SCHEDULER_ENV"]

#: Environment variable read when ``scheduler`` is not given.
SCHEDULER_ENV = "XBARREF_SCHEDULER"
TASK_FORMAT = "xbarref.sweep_task"
TASK_FORMAT_VERSION = 1
#: Times a task is resubmitted after the cluster lost it (not counted as retries).
_MAX_LOST = 3
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=+-]{0,199}$")


def _canonical(params):
    """Canonical JSON of a parameter dict (sorted keys, no spaces); raises if not JSON-able."""
    if not isinstance(params, dict):
        raise XbarrefError(f"params: expected a dict, got {type(params).__name__}")
    for key in params:
        if not isinstance(key, str):
            raise XbarrefError(f"params: keys must be strings, got {key!r}")
    try:
        return json.dumps(params, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise XbarrefError(f"params: must hold only JSON values (str, int, finite float, bool, "
                           f"lists, dicts): {exc}") from None


def _check_seed(sweep_seed):
    if isinstance(sweep_seed, bool) or not isinstance(sweep_seed, (int, np.integer)) or sweep_seed < 0:
        raise XbarrefError(f"sweep_seed: expected an integer >= 0, got {sweep_seed!r}")
    return int(sweep_seed)


def task_seed(sweep_seed, params):
    """The individual seed of a task.

    Parameters
    ----------
    sweep_seed : int
        Master seed of the sweep (>= 0).
    params : dict
        The task's parameters (JSON values).

    Returns
    -------
    numpy.random.SeedSequence
        Entropy ``[sweep_seed, w0, ..., w7]`` where ``w`` are the eight 32-bit words of
        the SHA-256 digest of the canonical JSON of ``params``: the same parameters
        always give the same seed, whatever else is in the sweep.
    """
    sweep_seed = _check_seed(sweep_seed)
    digest = hashlib.sha256(_canonical(params).encode("utf-8")).digest()
    words = [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 32, 4)]
    return np.random.SeedSequence([sweep_seed, *words])


def task_id(params, prefix=""):
    """A stable, file-name-safe id: ``prefix`` then the first 12 hex digits of the
    SHA-256 of the canonical parameters."""
    digest = hashlib.sha256(_canonical(params).encode("utf-8")).hexdigest()[:12]
    prefix = re.sub(r"[^A-Za-z0-9_.=+-]+", "_", str(prefix)).strip("_.")[:80]
    return f"{prefix}-{digest}" if prefix else digest


@dataclasses.dataclass(frozen=True)
class Task:
    """One unit of work.

    Attributes
    ----------
    id : str
        Stable id, also the name of the result file (letters, digits, ``_ . = + -``).
    params : dict
        JSON parameters handed to the task function.
    sweep_seed : int
        Master seed of the run; with :attr:`key` it fixes :attr:`seed`.
    key : dict or None
        What identifies the task: its seed and the resume check use it. ``None`` (the
        default) means ``params``. Give a key without machine-specific values (file
        paths) so that the seed does not change when the files move.
    """

    id: str
    params: dict
    sweep_seed: int = 0
    key: dict | None = None

    def __post_init__(self):
        if not isinstance(self.id, str) or not _ID_RE.match(self.id):
            raise XbarrefError(f"task id: {self.id!r} must be 1-200 letters, digits or _ . = + - "
                               "(it names a file)")
        _canonical(self.params)
        if self.key is None:
            object.__setattr__(self, "key", self.params)
        _canonical(self.key)
        object.__setattr__(self, "sweep_seed", _check_seed(self.sweep_seed))

    @property
    def seed(self):
        """The task's :class:`numpy.random.SeedSequence` (``task_seed(sweep_seed, key)``)."""
        return task_seed(self.sweep_seed, self.key)


def make_tasks(param_list, sweep_seed=0, *, prefix=None, keys=None):
    """Tasks for a list of parameter dicts, with ids from :func:`task_id` of their keys.

    Parameters
    ----------
    param_list : iterable of dict
    sweep_seed : int
    prefix : callable(key) -> str, optional
        Readable start of each id (the digest keeps it unique).
    keys : iterable of dict, optional
        One identifying key per task (see :class:`Task`); default the params.

    Raises
    ------
    XbarrefError
        If two tasks have the same key.
    """
    param_list = list(param_list)
    keys = list(param_list if keys is None else keys)
    if len(keys) != len(param_list):
        raise XbarrefError(f"keys: expected {len(param_list)} keys, got {len(keys)}")
    tasks, seen = [], {}
    for i, (params, key) in enumerate(zip(param_list, keys)):
        tid = task_id(key, prefix(key) if prefix else "")
        if tid in seen:
            raise XbarrefError(f"tasks: task {i} has the same parameters as task {seen[tid]}: "
                               f"{_canonical(key)}")
        seen[tid] = i
        tasks.append(Task(tid, dict(params), sweep_seed, dict(key)))
    return tasks


@dataclasses.dataclass
class TaskFailure:
    """A task that failed on every attempt."""

    task_id: str
    params: dict
    attempts: int
    error: str
    traceback: str = ""

    def to_dict(self):
        return dataclasses.asdict(self)


@dataclasses.dataclass
class RunReport:
    """What :func:`run_tasks` did.

    Attributes
    ----------
    executor : str
        ``"in-process"``, ``"local processes (N)"`` or ``"dask tcp://..."``.
    total : int
        Tasks asked for.
    skipped : list of str
        Ids found complete on disk (``resume=True``), not run again.
    computed : list of str
        Ids computed now, in the order they finished.
    failed : list of TaskFailure
    retried : int
        Attempts that failed and were run again.
    retry_errors : list of (str, str)
        ``(task id, error)`` of each of those attempts.
    restarts : int
        Local worker pools rebuilt after a worker process died.
    seconds : float
        Wall time of the run.
    task_seconds : dict
        Wall time of each computed task, s.
    """

    executor: str
    total: int
    skipped: list = dataclasses.field(default_factory=list)
    computed: list = dataclasses.field(default_factory=list)
    failed: list = dataclasses.field(default_factory=list)
    retried: int = 0
    retry_errors: list = dataclasses.field(default_factory=list)
    restarts: int = 0
    seconds: float = 0.0
    task_seconds: dict = dataclasses.field(default_factory=dict)

    @property
    def ok(self):
        """True when no task failed."""
        return not self.failed

    def summary_lines(self):
        """The summary table printed at the end of a run."""
        ts = np.array(list(self.task_seconds.values()), dtype=float)
        busy = float(ts.sum()) if ts.size else 0.0
        lines = [
            f"executor          {self.executor}",
            f"tasks             {self.total}",
            f"  computed now    {len(self.computed)}",
            f"  already done    {len(self.skipped)}",
            f"  failed          {len(self.failed)}",
            f"  retried         {self.retried}",
            f"wall time         {self.seconds:.2f} s",
        ]
        if ts.size:
            lines += [
                f"task time         mean {ts.mean():.3f} s, min {ts.min():.3f} s, max {ts.max():.3f} s",
                f"busy / wall       {busy / max(self.seconds, 1e-12):.2f} (task-seconds per second)",
            ]
        for f in self.failed:
            lines.append(f"FAILED {f.task_id} after {f.attempts} attempt(s): {f.error}")
            lines.append(f"       params {_canonical(f.params)}")
        return lines


def task_path(out_dir, tid):
    """``out_dir/tasks/<tid>.h5``."""
    return os.path.join(os.fspath(out_dir), "tasks", f"{tid}.h5")


def _execute(fn, tid, params, entropy, attempt):
    """Run one task where it is scheduled; never raises for an ``Exception`` of ``fn``."""
    start = time.perf_counter()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    try:
        result = fn(params, np.random.SeedSequence(entropy))
    except Exception as exc:  # reported, retried by the caller
        return {"id": tid, "ok": False, "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(), "worker": worker, "attempt": attempt}
    return {"id": tid, "ok": True, "result": result, "seconds": time.perf_counter() - start,
            "worker": worker, "attempt": attempt}


def _write_task_file(path, task, outcome):
    from xbarref.io._h5 import atomic_h5, write_array, write_str_attr

    result = outcome["result"]
    if not isinstance(result, dict):
        raise XbarrefError(f"task {task.id}: the task function must return a dict, got "
                           f"{type(result).__name__}")
    with atomic_h5(path) as h:
        write_str_attr(h, "format", TASK_FORMAT)
        h.attrs["format_version"] = TASK_FORMAT_VERSION
        write_str_attr(h, "task_id", task.id)
        write_str_attr(h, "params", _canonical(task.params))
        write_str_attr(h, "key", _canonical(task.key))
        h.attrs["sweep_seed"] = task.sweep_seed
        h.attrs["seed_entropy"] = np.array(task.seed.entropy, dtype=np.uint64)
        h.attrs["seconds"] = float(outcome["seconds"])
        write_str_attr(h, "worker", outcome["worker"])
        h.attrs["attempt"] = int(outcome["attempt"])
        group = h.create_group("result")
        for name, value in result.items():
            if not isinstance(name, str) or not name or "/" in name:
                raise XbarrefError(f"task {task.id}: result key {name!r} must be a non-empty "
                                   "string without '/'")
            if isinstance(value, str):
                write_str_attr(group, name, value)
                continue
            arr = np.asarray(value)
            if arr.dtype.kind not in "biuf":
                raise XbarrefError(f"task {task.id}: result {name!r} must be a number, an "
                                   f"array of numbers or a string, got dtype {arr.dtype}")
            write_array(group, name, arr)


def read_task_file(path):
    """Read a task file.

    Returns
    -------
    dict
        ``task_id``, ``params`` and ``key`` (dicts), ``sweep_seed``, ``seconds``, ``worker``,
        ``attempt`` and ``result`` (``{name: numpy array or str}``).

    Raises
    ------
    FileFormatError
        Naming the file and the HDF5 path when the file is not a task file.
    """
    from xbarref.io._h5 import check_format, fail, open_h5, read_array, read_attr, require_group

    path = os.fspath(path)
    with open_h5(path) as h:
        check_format(h, path, TASK_FORMAT, {TASK_FORMAT_VERSION})
        out = {
            "task_id": read_attr(h, "task_id", path, "str"),
            "sweep_seed": read_attr(h, "sweep_seed", path, "int"),
            "seconds": read_attr(h, "seconds", path, "float"),
            "worker": read_attr(h, "worker", path, "str"),
            "attempt": read_attr(h, "attempt", path, "int"),
        }
        for name in ("params", "key"):
            text = read_attr(h, name, path, "str")
            try:
                out[name] = json.loads(text)
            except json.JSONDecodeError as exc:
                raise fail(path, f"/ attribute {name!r}", f"not valid JSON: {exc}") from None
        group = require_group(h, "/result", path)
        result = {}
        for name in group:
            result[name] = read_array(group, name, path, kind="biuf")
        for name in group.attrs:
            result[name] = read_attr(group, name, path, "str")
        out["result"] = result
    return out


def load_results(out_dir, tasks):
    """The stored results of ``tasks``: ``{task id: {name: numpy array or str}}``.

    Raises
    ------
    XbarrefError
        Naming the first task that has no file (it failed or was not run).
    """
    out = {}
    for t in tasks:
        path = task_path(out_dir, t.id)
        if not os.path.isfile(path):
            raise XbarrefError(f"task {t.id} ({_canonical(t.params)[:200]}): no result file "
                               f"{path}")
        out[t.id] = read_task_file(path)["result"]
    return out


def _complete(path, task):
    """True if ``path`` holds this task's result; raises if it holds another task's."""
    from xbarref.errors import FileFormatError

    if not os.path.isfile(path):
        return False
    try:
        stored = read_task_file(path)
    except FileFormatError:
        return False  # damaged or foreign: compute again (the new file replaces it)
    if stored["key"] != json.loads(_canonical(task.key)) or stored["sweep_seed"] != task.sweep_seed:
        raise XbarrefError(
            f"{path}: holds task {stored['task_id']!r} with key {_canonical(stored['key'])} "
            f"and sweep seed {stored['sweep_seed']}, not {_canonical(task.key)} with seed "
            f"{task.sweep_seed}; resume into the folder of the same sweep, or use a new folder")
    return True


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


def _dask_client(scheduler):
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


class _Progress:
    def __init__(self, total, done, enabled, desc):
        self.bar = None
        self.total, self.done, self.failed = total, done, 0
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=done, desc=desc, unit="task", dynamic_ncols=True)
            self._postfix()

    def _postfix(self):
        if self.bar is not None:
            self.bar.set_postfix(done=self.done, failed=self.failed,
                                 remaining=self.total - self.done - self.failed, refresh=False)

    def step(self, ok):
        if ok:
            self.done += 1
        else:
            self.failed += 1
        if self.bar is not None:
            self._postfix()
            self.bar.update(1)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def run_tasks(tasks, fn, out_dir, *, scheduler=None, workers=None, resume=False, retries=1,
              progress=True, on_result=None, desc="sweep"):
    """Run ``fn`` once per task and write each result to ``out_dir/tasks/<id>.h5``.

    Parameters
    ----------
    tasks : sequence of Task
        Unique ids.
    fn : callable(params: dict, seed: numpy.random.SeedSequence) -> dict
        A module-level function (it is pickled to the workers). It returns
        ``{name: number, array or str}``; it should draw randomness only from
        ``numpy.random.default_rng(seed)``. It is called once per task and attempt:
        cut the work so that one call is one seed x one setting.
    out_dir : str or os.PathLike
        Created if missing; results go to ``out_dir/tasks/``.
    scheduler : str or distributed.Client, optional
        ``"tcp://HOST:PORT"`` of a running ``dask scheduler`` (or a Client). Default:
        the environment variable ``XBARREF_SCHEDULER``, else local processes.
    workers : int, optional
        Local worker processes (default ``os.cpu_count()``, at most the number of tasks
        to run), started with ``spawn`` and one BLAS thread each; ``1`` runs the tasks in
        this process, one after the other. Ignored with a scheduler (the cluster has its
        own workers).
    resume : bool
        Skip the tasks whose file is already complete.
    retries : int
        Extra attempts for a task that raised (default 1).
    progress : bool
        tqdm bar on standard error with done / failed / remaining.
    on_result : callable(task_id, outcome), optional
        Called in this process after each task file is written (outcome: dict with
        ``result``, ``seconds``, ``worker``, ``attempt``).
    desc : str
        Label of the progress bar.

    Returns
    -------
    RunReport

    Raises
    ------
    XbarrefError
        Bad arguments, duplicate task ids, an out_dir holding another sweep's task
        under the same id, no dask installed for a scheduler.
    """
    tasks = list(tasks)
    for t in tasks:
        if not isinstance(t, Task):
            raise XbarrefError(f"tasks: expected Task objects, got {type(t).__name__}")
    ids = [t.id for t in tasks]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise XbarrefError(f"tasks: duplicate task id {dup!r}")
    if not callable(fn):
        raise XbarrefError("fn: must be callable")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise XbarrefError(f"retries: expected an integer >= 0, got {retries!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise XbarrefError(f"workers: expected an integer >= 1, got {workers!r}")
    scheduler = resolve_scheduler(scheduler)
    out_dir = os.fspath(out_dir)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise XbarrefError(f"out_dir: {out_dir!r} exists and is not a folder")
    client = owned = None
    if scheduler is not None:
        client, owned = _dask_client(scheduler)  # connect before writing anything
    try:
        return _run(tasks, fn, out_dir, scheduler, client, workers, resume, retries, progress,
                    on_result, desc)
    finally:
        if owned:
            client.close()


def _run(tasks, fn, out_dir, scheduler, client, workers, resume, retries, progress, on_result,
         desc):
    os.makedirs(os.path.join(out_dir, "tasks"), exist_ok=True)

    start = time.perf_counter()
    by_id = {t.id: t for t in tasks}
    skipped = [t.id for t in tasks if resume and _complete(task_path(out_dir, t.id), t)]
    todo = [t for t in tasks if t.id not in set(skipped)]
    if scheduler is not None:
        label = f"dask {scheduler if isinstance(scheduler, str) else 'client'}"
    else:
        n = workers or os.cpu_count() or 1
        n = max(1, min(n, len(todo))) if todo else 1
        label = "in-process" if n == 1 else f"local processes ({n})"
    report = RunReport(executor=label, total=len(tasks), skipped=skipped)
    bar = _Progress(len(tasks), len(skipped), progress, desc)
    attempts = {}

    def handle(outcome):
        """Write a success, or decide on a retry; returns True when the task is settled."""
        task = by_id[outcome["id"]]
        attempts[task.id] = attempts.get(task.id, 0) + 1
        if outcome["ok"]:
            try:
                _write_task_file(task_path(out_dir, task.id), task, outcome)
            except XbarrefError as exc:
                outcome = {**outcome, "ok": False, "error": str(exc), "traceback": ""}
            else:
                report.computed.append(task.id)
                report.task_seconds[task.id] = float(outcome["seconds"])
                bar.step(True)
                if on_result is not None:
                    on_result(task.id, outcome)
                return True
        if attempts[task.id] <= retries:
            report.retried += 1
            report.retry_errors.append((task.id, outcome["error"]))
            return False
        report.failed.append(TaskFailure(task.id, dict(task.params), attempts[task.id],
                                         outcome["error"], outcome.get("traceback", "")))
        bar.step(False)
        return True

    def give_up(tid, error):
        task = by_id[tid]
        report.failed.append(TaskFailure(tid, dict(task.params), attempts.get(tid, 0), error))
        bar.step(False)

    try:
        if not todo:
            pass
        elif scheduler is not None:
            _run_dask(todo, fn, client, handle, attempts)
        elif label == "in-process":
            for task in todo:
                while not handle(_execute(fn, task.id, task.params, task.seed.entropy,
                                          attempts.get(task.id, 0) + 1)):
                    pass
        else:
            report.restarts = _run_local(todo, fn, n, handle, give_up, attempts, retries)
    finally:
        bar.close()
        report.seconds = time.perf_counter() - start
        _write_failures(out_dir, report)
    return report


def _write_failures(out_dir, report):
    """``out_dir/failed.json``: the failed tasks of the last run (removed when none failed)."""
    path = os.path.join(out_dir, "failed.json")
    if not report.failed:
        if os.path.exists(path):
            os.unlink(path)
        return
    tmp = path + f".{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump([f.to_dict() for f in report.failed], fh, indent=1)
    os.replace(tmp, path)


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


def _run_local(todo, fn, n, handle, give_up, attempts, retries):
    """Run on a process pool; rebuild it when a worker process dies. Returns the number
    of rebuilds. After ``max(3, retries + 2)`` rebuilds the tasks still not done are
    reported as failed (some task is probably killing its process)."""
    from concurrent.futures.process import BrokenProcessPool

    import pickle

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
        return pool.submit(_execute, fn, t.id, t.params, t.seed.entropy,
                           attempts.get(t.id, 0) + 1)

    while pending:
        pool = cf.ProcessPoolExecutor(max_workers=n, mp_context=context)
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
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True, cancel_futures=True)
        if broken:
            restarts += 1
            if restarts > max_restarts:
                for tid in list(pending):
                    give_up(tid, f"a worker process died {restarts} times while this task was "
                                 "pending (a task may crash its process; --workers 1 shows which)")
                    del pending[tid]
    return restarts


def _run_dask(todo, fn, client, handle, attempts):
    from distributed import as_completed

    live = set()
    try:
        key_to_id = {}

        def submit(t):
            attempt = attempts.get(t.id, 0) + 1
            key = f"xbarref-{t.id}-a{attempt}-{os.getpid()}-{time.time_ns()}"
            key_to_id[key] = t.id
            fut = client.submit(_execute, fn, t.id, t.params, t.seed.entropy, attempt,
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

