"""``xbarref sweep SPEC.toml -o DIR``: models x hardware settings x seeds, anywhere.

Reads the sweep specification (:mod:`xbarref.sweep.spec`), checks it and every model
and data set before any work, runs one task per (model, setting, seed) with
:func:`xbarref.sweep.run` (local processes, or a Dask cluster with
``--scheduler tcp://HOST:PORT`` / ``$XBARREF_SCHEDULER``), writes each task's result
to ``DIR/tasks/<id>.h5`` as it finishes, then ``DIR/results.csv`` and
``DIR/results.h5``, and prints the run summary and the accuracy per model and setting.

Exit codes: 0 every task done, 1 some task failed (listed, with its parameters, in the
summary and in ``DIR/failed.json``; run again with ``--resume``), 2 bad input.
"""

from __future__ import annotations

import os

from xbarref.errors import XbarrefError


def register(subparsers):
    """Add ``sweep`` to the ``xbarref`` parser."""
    from xbarref.commands.options import add_jobs, add_no_progress

    p = subparsers.add_parser(
        "sweep", help="run models x hardware settings x seeds (locally or on a Dask cluster)",
        description="Run every model of SPEC on every hardware setting for every noise seed "
                    "(one task per model x setting x seed), writing each task's result to "
                    "DIR/tasks/ as it finishes and the table to DIR/results.csv and "
                    "DIR/results.h5. The SPEC format and the Dask set-up are in "
                    "docs/scaling.md (and in the docstring of xbarref.sweep.spec).")
    p.add_argument("spec", metavar="SPEC.toml",
                   help="sweep specification (TOML, docs/scaling.md; an example: "
                        "xbarref.data.path(\"example_sweep.toml\"))")
    p.add_argument("-o", "--output", metavar="DIR", required=True,
                   help="output folder (created if missing)")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT", default=None,
                   help="run on this Dask scheduler (default: $XBARREF_SCHEDULER, else local "
                        "processes); needs the extra 'dask'")
    add_jobs(p)
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="deprecated alias of --jobs")
    p.add_argument("--resume", action="store_true",
                   help="keep the tasks already done in DIR and compute only the missing ones")
    p.add_argument("--retries", type=int, default=1, metavar="R",
                   help="extra attempts for a failing task")
    add_no_progress(p)
    p.add_argument("--overwrite", action="store_true",
                   help="recompute every task into an existing non-empty DIR (replacing its "
                        "results); without it an existing non-empty DIR needs --resume")
    p.set_defaults(func=cmd_sweep)


def summary_lines(rows):
    """Accuracy table lines for :func:`xbarref.sweep.group_summary` rows."""
    if not rows:
        return []
    wm = max(5, *(len(str(r["model"])) for r in rows))
    ws = max(7, *(len(str(r["setting"])) for r in rows))
    lines = [f"{'model':<{wm}}  {'setting':<{ws}}  seeds  accuracy mean +- std   (min .. max)"]
    for r in rows:
        lines.append(f"{r['model']:<{wm}}  {r['setting']:<{ws}}  {r['n']:>5}  "
                     f"{r['mean']:.4f} +- {r['std']:.4f}   ({r['min']:.4f} .. {r['max']:.4f})")
    return lines


def cmd_sweep(args):
    """``xbarref sweep``: run a sweep specification."""
    import sys

    from xbarref.commands.options import check_jobs
    from xbarref.sweep import (check_models, collect, group_summary, infer_task, load_spec,
                               spec_tasks, write_results)
    from xbarref.sweep import run as run_to_results

    if args.workers is not None:
        if args.jobs is not None:
            raise XbarrefError("--workers: a deprecated alias of --jobs; give only --jobs")
        print("xbarref sweep: --workers is deprecated, use --jobs", file=sys.stderr)
        if args.workers < 1:
            raise XbarrefError(f"--workers: must be >= 1, got {args.workers}")
        args.jobs = args.workers
    jobs = check_jobs(args)
    if args.retries < 0:
        raise XbarrefError(f"--retries: must be >= 0, got {args.retries}")
    spec = load_spec(args.spec)
    check_models(spec)
    tasks = spec_tasks(spec)
    out = args.output
    if os.path.exists(out) and not os.path.isdir(out):
        raise XbarrefError(f"-o: {out!r} exists and is not a folder")
    if os.path.isdir(out) and os.listdir(out) and not (args.resume or args.overwrite):
        raise XbarrefError(f"-o: {out!r} exists and is not empty; pass --resume to continue "
                           "the sweep in it or --overwrite to recompute every task")
    print(f"sweep {spec.name!r}: {len(spec.models)} model(s) x {len(spec.settings)} setting(s) "
          f"x {len(spec.seeds)} seed(s) = {len(tasks)} tasks -> {out}")
    from xbarref.commands.progress import compile_notice, warm_up_for_workers
    from xbarref.sweep import resolve_scheduler

    with compile_notice(enabled=not args.no_progress):
        # compile here once, before the worker processes start (they load from the cache)
        warm_up_for_workers(jobs, resolve_scheduler(args.scheduler))
        report = run_to_results(tasks, infer_task, out, scheduler=args.scheduler, workers=jobs,
                                resume=args.resume, retries=args.retries,
                                progress=not args.no_progress, desc=f"sweep {spec.name}",
                                check=False).report
    table = collect(out, tasks)
    csv_path, h5_path = write_results(table, out)
    for line in report.summary_lines():
        print(line)
    print()
    for line in summary_lines(group_summary(table)):
        print(line)
    print(f"\nwrote {csv_path} and {h5_path} ({len(table.rows)} of {len(tasks)} tasks)")
    if report.failed:
        print(f"{len(report.failed)} task(s) failed (see {os.path.join(out, 'failed.json')}); "
              "run again with --resume to retry only those")
        return 1
    return 0
