"""The loop of a run: tasks in, one result file per task out, a report; and :func:`run`.

A run is a list of :class:`~xbarref.sweep.tasks.Task` (a stable id, a dict of
parameters and an individual seed) and a task function ``fn(params, seed) -> dict``.
:func:`run_tasks` runs the function once per task on a back end
(:mod:`xbarref.sweep.backends`: in this process, local worker processes, or a
``dask.distributed`` cluster) and writes each result, as soon as it arrives, to its own
small HDF5 file ``out_dir/tasks/<task id>.h5`` (:mod:`xbarref.sweep.taskfile`; atomic:
temporary file, then rename). Results are written by the process that called
:func:`run_tasks`, so cluster workers need no shared file system for the results.

:func:`run` is the one call every long command uses (``xbarref sweep``, ``xbarref
study``, ``xbarref golden make``): it runs the tasks into a parts folder (a temporary
one, removed before returning, when none is given), optionally resuming, raises one
error listing every failed task, and returns the results.

Determinism
    A task's seed is a :class:`numpy.random.SeedSequence` built from the run seed and a
    SHA-256 digest of the task's identifying key (:func:`~xbarref.sweep.tasks.task_seed`):
    it does not depend on the order of the tasks, the back end or the number of workers,
    so a task function that draws only from the task's named streams
    (:func:`~xbarref.sweep.tasks.named_streams`) gives bit-identical results everywhere.

Resume, retries, failures
    With ``resume=True`` every task whose file exists (and holds the same key and run
    seed) is skipped. A task that raises is retried ``retries`` more times, then
    reported with its parameters in :attr:`RunReport.failed` (and in
    ``out_dir/failed.json``); the other tasks go on. A worker process that dies is
    replaced and its task runs again (Dask reschedules it; the local pool is rebuilt,
    at most ``max(3, retries + 2)`` times per run).

Interrupts
    Ctrl-C and SIGTERM are never task failures: they stop the run (``KeyboardInterrupt``
    propagates, also when Numba wrapped it in a ``SystemError``), local workers are
    terminated, and the task files written so far stay for ``resume=True``. Local
    workers ignore Ctrl-C (the parent decides) and die with their parent, also when it
    is killed with SIGKILL (``PR_SET_PDEATHSIG`` on Linux, and a thread watching the
    parent's pid; :mod:`xbarref.sweep.backends`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import threading
import time

import numpy as np

from xbarref.errors import XbarrefError
from xbarref.io.atomic import make_temp_dir
from xbarref.sweep.backends import (SCHEDULER_ENV, dask_client, resolve_scheduler, run_dask,
                                    run_in_process, run_local)
from xbarref.sweep.taskfile import (is_complete, load_results, read_task_file, task_path,
                                    write_task_file)
from xbarref.sweep.tasks import Task, canonical, make_tasks, task_id, task_seed

__all__ = ["run", "RunResult", "run_tasks", "RunReport", "TaskFailure",
           # defined in the modules this one was split into; importable from here too
           "Task", "make_tasks", "task_seed", "task_id", "read_task_file", "load_results",
           "task_path", "resolve_scheduler", "SCHEDULER_ENV"]


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
            lines.append(f"       params {canonical(f.params)}")
        return lines


class _Progress:
    def __init__(self, total, done, enabled, desc):
        self.bar = None
        self.total, self.done, self.failed = total, done, 0
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=done, desc=desc, unit="task", dynamic_ncols=True)
            self._postfix()
            self._stop = threading.Event()
            self._ticker = threading.Thread(target=self._tick, daemon=True)
            self._ticker.start()

    def _tick(self):
        """Redraw every second, so the elapsed time counts while the first tasks run."""
        while not self._stop.wait(1.0):
            with contextlib.suppress(Exception):
                self.bar.refresh()

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
            self._stop.set()
            self._ticker.join(timeout=2.0)
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
        ``{name: number, array or str}``; it should draw randomness only from the
        task's named streams (``named_streams(seed, "name", ...)``,
        :func:`~xbarref.sweep.tasks.named_streams`). It is called once per task and attempt:
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
        client, owned = dask_client(scheduler)  # connect before writing anything
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
    skipped = [t.id for t in tasks if resume and is_complete(task_path(out_dir, t.id), t)]
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
                write_task_file(task_path(out_dir, task.id), task, outcome)
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
            run_dask(todo, fn, client, handle, attempts)
        elif label == "in-process":
            run_in_process(todo, fn, handle, attempts)
        else:
            report.restarts = run_local(todo, fn, n, handle, give_up, attempts, retries)
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
    from xbarref.io.atomic import write_bytes

    text = json.dumps([f.to_dict() for f in report.failed], indent=1)
    write_bytes(path, text.encode("utf-8"), overwrite=True)


@dataclasses.dataclass
class RunResult:
    """What :func:`run` returns.

    Attributes
    ----------
    results : dict
        ``{task id: {name: numpy array or str}}`` of every task that has a result file
        (all of them unless some failed and ``check=False``).
    report : RunReport
    parts_dir : str or None
        The parts folder, when the caller gave one (it is kept).
    """

    results: dict
    report: RunReport
    parts_dir: str | None = None


def run(tasks, fn, parts_dir=None, *, scheduler=None, workers=None, resume=False, retries=1,
        progress=True, on_result=None, desc="run", label=None, noun="task", temp_parent=None,
        check=True):
    """Run tasks to results: parts folder, back end, resume, failures, loading - in one call.

    Parameters
    ----------
    tasks : sequence of Task
    fn : callable(params: dict, seed: numpy.random.SeedSequence) -> dict
        As for :func:`run_tasks`.
    parts_dir : str or os.PathLike, optional
        Folder of the task files (``parts_dir/tasks/<id>.h5``), created if missing and
        kept (the caller removes it once it has written what it makes of the results),
        so that an interrupted or failed run can resume. Default: a temporary folder
        (in ``temp_parent``), removed before returning, also on failure.
    scheduler, workers, retries, progress, on_result, desc
        As for :func:`run_tasks`.
    resume : bool
        Keep the task files already in ``parts_dir``; compute only the others.
    label : callable(Task) -> str, optional
        How a task is named in the failure message (default: its id).
    noun : str
        What a task is called in the failure message (``"case"`` for golden suites).
    temp_parent : str, optional
        Where the temporary parts folder is made (default: the system's).
    check : bool
        Raise when a task failed (default). With ``check=False`` the failures are only
        in :attr:`RunResult.report` and the results hold the tasks that succeeded.

    Returns
    -------
    RunResult

    Raises
    ------
    XbarrefError
        Bad arguments (``resume`` without ``parts_dir``, see :func:`run_tasks`); with
        ``check``, after every other task was computed and stored, one line per task that
        failed on every attempt (its label and error).
    """
    tasks = list(tasks)
    if resume and parts_dir is None:
        raise XbarrefError("resume: needs parts_dir (the folder of an earlier run's task files)")
    own = parts_dir is None
    folder = make_temp_dir(temp_parent, "xbarref-parts") if own else os.fspath(parts_dir)
    try:
        report = run_tasks(tasks, fn, folder, scheduler=scheduler, workers=workers,
                           resume=resume, retries=retries, progress=progress,
                           on_result=on_result, desc=desc)
        failed = {f.task_id for f in report.failed}
        if failed and check:
            name = label or (lambda t: t.id)
            by_id = {t.id: t for t in tasks}
            lines = [f"  {name(by_id[f.task_id])}: {f.error}" for f in report.failed]
            keep = "" if own else (f"; the {len(tasks) - len(failed)} other {noun}(s) are stored "
                                   f"in {folder}, rerun with resume to compute only the failed "
                                   "ones")
            raise XbarrefError(f"{desc}: {len(failed)} {noun}(s) failed{keep}:\n"
                               + "\n".join(lines))
        results = load_results(folder, [t for t in tasks if t.id not in failed])
    finally:
        if own:
            shutil.rmtree(folder, ignore_errors=True)
    return RunResult(results=results, report=report, parts_dir=None if own else folder)
