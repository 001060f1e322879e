"""xbarref.sweep: run many independent tasks anywhere, with resume and nothing lost.

The one call (:mod:`xbarref.sweep.executor`)
    run(tasks, fn, parts_dir=None, *, scheduler=None, workers=None, resume=False,
        retries=1, progress=True, on_result=None, check=True) -> RunResult
                                 run ``fn(params, seed) -> dict`` once per task into a
                                 parts folder (temporary when none is given), raise one
                                 error listing the failed tasks, return the results;
                                 what ``sweep``, ``study`` and ``golden make`` use
    run_tasks(tasks, fn, out_dir, ...) -> RunReport
                                 the loop under it: local processes, this process
                                 (workers=1) or a Dask cluster (``scheduler="tcp://HOST:PORT"``
                                 or ``$XBARREF_SCHEDULER``); one atomic HDF5 file per task
                                 under ``out_dir/tasks/``
    RunResult, RunReport, TaskFailure
                                 results; what ran, was skipped, failed (with params)

Task identity and seeds (:mod:`xbarref.sweep.tasks`)
    Task, make_tasks             tasks with stable ids and individual seeds
    task_seed, task_id           SeedSequence and id from the run seed and a task's key
    named_streams(seed, *names)  independent Generators by name from a task's seed
    streams(run_seed, key, *names)
                                 the same from the run seed and the task's key

The task file (:mod:`xbarref.sweep.taskfile`)
    read_task_file, task_path    one task's stored result
    load_results(out_dir, tasks) ``{task id: result dict}`` of a finished run

Back ends (:mod:`xbarref.sweep.backends`)
    resolve_scheduler, SCHEDULER_ENV
                                 the Dask scheduler address, if any, to run on

Sweep specifications (:mod:`xbarref.sweep.spec`)
    load_spec, loads_spec, SweepSpec, Setting, ModelEntry
                                 TOML: models x hardware settings (grid and/or list) x seeds
    spec_tasks(spec)             the tasks of a spec (one per model x setting x seed)
    check_models(spec)           load every model and data set once, before any task
    infer_task(params, seed)     one task: map the model, run inference, return accuracy

Results (:mod:`xbarref.sweep.collect`)
    collect(out_dir, tasks=None) -> ResultsTable
    write_results(table, out_dir)  results.csv and results.h5
    group_summary(table)         mean / std / min / max accuracy per model x setting

Dask (optional extra ``dask``) is imported only when a scheduler is used.
"""

from xbarref.sweep.backends import SCHEDULER_ENV, resolve_scheduler
from xbarref.sweep.collect import ResultsTable, collect, group_summary, write_results
from xbarref.sweep.executor import RunReport, RunResult, TaskFailure, run, run_tasks
from xbarref.sweep.spec import (ModelEntry, Setting, SweepSpec, check_models, infer_task,
                                load_spec, loads_spec, spec_tasks)
from xbarref.sweep.taskfile import load_results, read_task_file, task_path
from xbarref.sweep.tasks import Task, make_tasks, named_streams, streams, task_id, task_seed

__all__ = [
    "run", "RunResult", "run_tasks", "Task", "make_tasks", "task_seed", "task_id", "streams",
    "named_streams", "RunReport", "TaskFailure", "read_task_file", "load_results", "task_path",
    "resolve_scheduler", "SCHEDULER_ENV", "load_spec", "loads_spec", "SweepSpec", "Setting",
    "ModelEntry", "spec_tasks", "check_models", "infer_task", "ResultsTable", "collect",
    "write_results", "group_summary",
]
