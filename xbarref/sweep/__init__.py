"""xbarref.sweep: run many independent tasks anywhere, with resume and nothing lost.

Executor (:mod:`xbarref.sweep.executor`)
    run_tasks(tasks, fn, out_dir, *, scheduler=None, workers=None, resume=False,
              retries=1, progress=True, on_result=None)
                                 run ``fn(params, seed) -> dict`` once per task in local
                                 processes, in this process (workers=1) or on a Dask
                                 cluster (``scheduler="tcp://HOST:PORT"`` or
                                 ``$XBARREF_SCHEDULER``); one atomic HDF5 file per task
                                 under ``out_dir/tasks/``; returns a RunReport
    Task, make_tasks             tasks with stable ids and individual seeds
    task_seed, task_id           SeedSequence and id from the sweep seed and a task's key
    RunReport, TaskFailure       what ran, what was skipped, what failed (with params)
    read_task_file, task_path    one task's stored result
    load_results(out_dir, tasks) ``{task id: result dict}`` of a finished run
    resolve_scheduler, SCHEDULER_ENV

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

from xbarref.sweep.collect import ResultsTable, collect, group_summary, write_results
from xbarref.sweep.executor import (SCHEDULER_ENV, RunReport, Task, TaskFailure, load_results,
                                    make_tasks, read_task_file, resolve_scheduler, run_tasks,
                                    task_id, task_path, task_seed)
from xbarref.sweep.spec import (ModelEntry, Setting, SweepSpec, check_models, infer_task,
                                load_spec, loads_spec, spec_tasks)

__all__ = [
    "run_tasks", "Task", "make_tasks", "task_seed", "task_id", "RunReport", "TaskFailure",
    "read_task_file", "load_results", "task_path", "resolve_scheduler", "SCHEDULER_ENV",
    "load_spec", "loads_spec", "SweepSpec", "Setting", "ModelEntry", "spec_tasks",
    "check_models", "infer_task", "ResultsTable", "collect", "write_results", "group_summary",
]
