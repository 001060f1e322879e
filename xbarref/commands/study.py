"""``xbarref study``: accuracy per non-ideality and mitigation, written as a report folder."""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
import time


def register(subparsers):
    """Add ``study`` to the ``xbarref`` parser."""
    from xbarref.commands.options import add_jobs, add_no_progress

    p = subparsers.add_parser(
        "study",
        help="measure accuracy lost to each non-ideality and recovered by BN tuning",
        description="Program a trained model onto simulated crossbars for every scenario of the "
                    "study (quantization, wire resistance and tile size, programming noise, read "
                    "noise, drift, stuck-at faults, combined), for several seeds; apply the "
                    "mitigations (global drift compensation, BN recalibration, BN tuning, "
                    "noise-aware retraining); write DIR/report.md, PNG figures and the raw "
                    "results (CSV, HDF5). Default: the bundled digits CNN on the bundled digits. "
                    "See docs/study.md.",
    )
    p.add_argument("--config", metavar="HW.toml", default=None,
                   help="base hardware configuration the scenarios are derived from "
                        "(default: the 'default' preset)")
    p.add_argument("--model", metavar="MODEL.h5", default=None,
                   help="trained model with batchnorm (default: the bundled digits CNN)")
    p.add_argument("--data", metavar="DATA.h5", default=None,
                   help="dataset with train and test splits (default: the bundled digits)")
    p.add_argument("--seeds", type=int, default=None, metavar="N",
                   help="chips (hardware samples) per scenario (default 10; 2 with --quick)")
    p.add_argument("--preset", default="digits", metavar="NAME",
                   help="study preset: the scenario families to run (default: digits; 'fashion': "
                        "the bundled Fashion-MNIST CNN by default, with --data from `xbarref data "
                        "fashion-mnist`; see xbarref.tune.scenarios.PRESETS and docs/study.md)")
    p.add_argument("--quick", action="store_true",
                   help="one level per scenario family and small budgets (a smoke run)")
    p.add_argument("--only", default=None, metavar="FAMILY[,FAMILY...]",
                   help="run only these scenario families (digits preset: quantization, wires, "
                        "programming, read_noise, drift, faults, combined; also combined_read_noise; "
                        "default: the preset's families); a scenario's numbers do not depend on "
                        "which others run")
    add_jobs(p, "(scenario, seed) tasks")
    p.add_argument("--resume", action="store_true",
                   help="finish an interrupted study: reuse the task results kept in DIR.parts "
                        "and compute only the missing ones")
    p.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                   help="run the (scenario, seed) tasks on this Dask scheduler (default: the "
                        "environment variable XBARREF_SCHEDULER, else --jobs local processes); "
                        "the workers need xbarref and the model, data and config files at the "
                        "same paths")
    p.add_argument("--test-samples", type=int, default=None, metavar="N",
                   help="evaluate on the first N test samples (default: all)")
    p.add_argument("--calibration-samples", type=int, default=None, metavar="N",
                   help="training samples for recalibration and tuning, fixed (default: chosen "
                        "per scenario on the validation split from 64 and 256; 64 with --quick)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="base seed (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing non-empty DIR")
    p.add_argument("--report-from", default=None, nargs="+", metavar="RESULTS.json",
                   help="run nothing: write the report of the results.json of an earlier study "
                        "folder again into DIR (with this version's tables and figures); "
                        "several files of runs of the same study on other scenarios "
                        "(separate --only runs) make one report")
    add_no_progress(p)
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    p.set_defaults(func=cmd_study)


def _report_jobs(args):
    """Local processes for the report's bootstrap intervals: ``--jobs`` (also when the
    tasks ran on a Dask scheduler: the report is written here)."""
    from xbarref.commands.options import check_jobs

    return check_jobs(args)


def _cpu_seconds():
    """CPU seconds of this process and of its finished children (the worker processes)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _positive(name, value):
    from xbarref.errors import XbarrefError

    if value is not None and value < 1:
        raise XbarrefError(f"{name}: must be >= 1, got {value}")


def load_study_inputs(model_path, data_path, config_path):
    """Load and cross-check the model, data set and base hardware; raise before any long work.

    Returns
    -------
    model, dataset, hardware
    """
    import numpy as np

    from xbarref.config import load_hardware, preset
    from xbarref.io.inputs import bundled_model_path
    from xbarref.errors import XbarrefError
    from xbarref.io.data import load_dataset
    from xbarref.io.model import load_model
    from xbarref.tune.batchnorm import BN_KINDS

    hardware = preset("default") if config_path is None else load_hardware(config_path)
    model_name = "bundled digits_cnn.h5" if model_path is None else model_path
    model = load_model(bundled_model_path() if model_path is None else model_path)
    if not model.layers_of_kind(*BN_KINDS):
        raise XbarrefError(f"--model: {model_name} has no batchnorm layer; the study tunes batchnorm")
    if not model.layers_of_kind("conv2d", "linear"):
        raise XbarrefError(f"--model: {model_name} has no Conv2d or Linear layer to put on crossbars")
    dataset = load_dataset(data_path)
    data_name = "bundled digits" if data_path is None else data_path
    if tuple(dataset.x_test.shape[1:]) != tuple(model.input_shape):
        raise XbarrefError(f"--data: samples of {data_name} have shape {tuple(dataset.x_test.shape[1:])}, "
                           f"the model expects {tuple(model.input_shape)}")
    if len(dataset.y_train) == 0:
        raise XbarrefError(f"--data: {data_name} has no training split (needed for calibration)")
    logits = model(dataset.x_test[:1])
    if logits.ndim != 2 or logits.shape[1] != len(dataset.classes):
        raise XbarrefError(f"--data: {data_name} has {len(dataset.classes)} classes, the model "
                           f"outputs {logits.shape[-1]} logits")
    if int(np.max(dataset.y_test)) >= logits.shape[1]:
        raise XbarrefError(f"--data: labels of {data_name} exceed the model's {logits.shape[1]} classes")
    return model, dataset, hardware


def _check_tasks(count, what):
    """Refuse more chips (tasks) than a sweep may declare (``XBARREF_MAX_TASKS``)."""
    from xbarref.errors import SizeLimitError
    from xbarref.sweep.spec import max_tasks

    if count is not None and count > max_tasks():
        raise SizeLimitError(f"{what}: {count:,} chips to simulate, above the limit of "
                             f"{max_tasks():,} (XBARREF_MAX_TASKS)")


def _report_again(args):
    """``xbarref study --report-from RESULTS.json -o DIR``: the report of earlier results."""
    import json

    from xbarref.errors import XbarrefError
    from xbarref.tune.report import prepare_output, write_study
    from xbarref.tune.study import merge_results, results_from_dict

    paths = list(args.report_from)
    for path in paths:
        if not os.path.isfile(path):
            raise XbarrefError(f"--report-from: {path}: no such file")
    out_dir = prepare_output(args.output, args.overwrite, name="--output")
    for path in paths:
        if os.path.abspath(out_dir) == os.path.abspath(os.path.dirname(path)):
            raise XbarrefError("--output: must not be the folder of --report-from (never overwrite an input)")
    parts = []
    header = ["# xbarref study report", ""]
    for path in paths:
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise XbarrefError(f"--report-from: {path}: not readable as JSON ({exc})") from None
        parts.append(results_from_dict(data, source=f"--report-from {path}"))
        old = os.path.join(os.path.dirname(path), "report.md")
        if os.path.isfile(old):
            with open(old, encoding="utf-8") as fh:
                lines = fh.read().splitlines()
            # the run's own header (command, files, times) up to the first blank line after it
            for line in lines[2:]:
                if not line.strip():
                    break
                header.append(line)
    results = parts[0] if len(parts) == 1 else merge_results(parts, [f"--report-from {p}" for p in paths])
    header.append("- report written again from " + ", ".join(f"`{p}`" for p in paths))
    write_study(results, out_dir, header=header, overwrite=args.overwrite, jobs=_report_jobs(args))
    print(f"wrote {out_dir}/report.md")
    return 0


def cmd_study(args):
    """``xbarref study``: run the study and write its report folder."""
    from xbarref.errors import XbarrefError
    from xbarref.sweep import resolve_scheduler
    from xbarref.tune.report import prepare_output, write_study
    from xbarref.tune.scenarios import PRESETS, default_scenarios, families_of
    from xbarref.tune.study import StudySettings, count_units, run_study

    for name in ("seeds", "jobs", "test_samples", "calibration_samples"):
        _positive(f"--{name.replace('_', '-')}", getattr(args, name))
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise XbarrefError("matplotlib is needed for the figures of the study: "
                           "pip install 'xbarref[plot]' (or matplotlib)") from None
    if args.report_from is not None:
        return _report_again(args)
    if args.preset not in PRESETS:
        raise XbarrefError(f"--preset: unknown study preset {args.preset!r}; expected one of "
                           f"{', '.join(PRESETS)}")
    if args.preset == "fashion":
        # the bundled Fashion-MNIST CNN; the data set comes from the Debian package
        if args.model is None:
            import importlib.resources

            args.model = os.fspath(importlib.resources.files("xbarref") / "data" / "fashion_cnn.h5")
        if args.data is None:
            raise XbarrefError("--data: the fashion preset needs the Fashion-MNIST dataset file: "
                               "apt-get install -y dataset-fashion-mnist && "
                               "xbarref data fashion-mnist -o fm.h5, then --data fm.h5")
    known = families_of(args.preset)
    families = None
    if args.only is not None:
        families = [f.strip() for f in args.only.split(",") if f.strip()]
        unknown = [f for f in families if f not in known]
        if unknown or not families:
            names = ", ".join(map(repr, unknown)) or "(none given)"
            raise XbarrefError(f"--only: unknown scenario family {names}; "
                               f"expected some of {', '.join(known)}")
    if not 0 <= args.seed < 2**63:
        raise XbarrefError(f"--seed: must be an integer in [0, 2**63), got {args.seed}")
    if args.seeds is not None:
        _check_tasks(args.seeds, f"--seeds {args.seeds}")  # before anything is loaded
    out_dir = prepare_output(args.output, args.overwrite, name="--output")
    model, dataset, hardware = load_study_inputs(args.model, args.data, args.config)
    quick = args.quick
    settings = StudySettings(
        seeds=args.seeds or (2 if quick else 10),
        calibration_sizes=(args.calibration_samples,) if args.calibration_samples else
        ((64,) if quick else (64, 256)),
        validation_samples=100 if quick else 1000,
        tune_lrs=(0.01,) if quick else (0.003, 0.01, 0.03),
        tune_max_steps=4 if quick else 40,
        tune_eval_every=2 if quick else 10,
        tune_patience=1 if quick else 2,
        tune_batch=16 if quick else 32,
        retrain_lrs=(1e-3,) if quick else (1e-3, 3e-3),
        retrain_batch=16 if quick else 32,
        retrain_max_steps=4 if quick else 150,
        retrain_eval_every=2 if quick else 25,
        retrain_patience=1 if quick else 2,
        reprogram_every=2 if quick else 25,
        test_samples=args.test_samples,
        distortion_images=8 if quick else 32,
        distortion_rows=256 if quick else 1024,
        scatter_points=400 if quick else 1500,
        bootstrap_resamples=200 if quick else 2000,
    )
    if len(dataset.y_train) < settings.calibration_samples:
        raise XbarrefError(f"--data: the training split has {len(dataset.y_train)} samples; "
                           f"--calibration-samples is {settings.calibration_samples}")
    scenarios = default_scenarios(hardware, quick=quick, families=families, preset=args.preset)
    _check_tasks(len(scenarios) * settings.seeds, f"{len(scenarios)} scenarios x --seeds {settings.seeds}")
    from xbarref.commands.options import check_jobs

    jobs = check_jobs(args)
    scheduler = resolve_scheduler(args.scheduler)
    where = f"Dask scheduler {scheduler}" if scheduler else f"{jobs} process(es)"
    total = count_units(scenarios, settings)
    print(f"xbarref study: {len(scenarios)} scenarios x {settings.seeds} chips on {where} "
          f"-> {out_dir}", file=sys.stderr)
    from xbarref.commands.progress import compile_notice, ticking, warm_up_for_workers

    start = time.perf_counter()
    cpu = _cpu_seconds()
    load0 = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    with compile_notice(enabled=not args.no_progress):
        # compile here once, before the worker processes start (they load from the cache)
        warm_up_for_workers(jobs, scheduler)
        bar = None
        if not args.no_progress:
            try:
                from tqdm import tqdm

                # units: estimated task costs (xbarref.tune.study.task_cost), so the ETA is
                # cost-weighted, not a task count
                # smoothing 0: time left = elapsed x (cost left / cost done), the estimate
                # the cost weights make honest (tqdm's default follows the last few tasks)
                bar = tqdm(total=total, unit="cost", file=sys.stderr, dynamic_ncols=True,
                           smoothing=0,
                           bar_format="{l_bar}{bar}| {percentage:3.0f}% [{elapsed}<{remaining}] "
                                      "{postfix}")
            except ImportError:  # tqdm is a run-time dependency; this is only a fallback
                bar = None

        def progress(n, desc):
            if bar is not None:
                bar.set_postfix_str(desc[:60], refresh=False)
                # the costs add up to the total; never past it (rounding), so no clamping
                bar.update(max(0.0, min(n, bar.total - bar.n)))

        try:
            with ticking(bar) if bar is not None else contextlib.nullcontext():
                results = run_study(model, dataset, scenarios, settings, progress=progress,
                                    base_seed=args.seed, jobs=jobs, scheduler=scheduler,
                                    source=dict(model=args.model, data=args.data),
                                    work_dir=os.path.dirname(out_dir),
                                    parts_dir=out_dir.rstrip(os.sep) + ".parts",
                                    resume=args.resume)
        finally:
            if bar is not None:
                bar.close()
    from xbarref import __version__

    command = "xbarref " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["study"] \
        else "xbarref study " + f"-o {shlex.quote(args.output)}"
    header = [
        "# xbarref study report",
        "",
        f"- command: `{command}`",
        f"- xbarref {__version__}; model: {args.model or 'bundled digits_cnn.h5'} "
        f"({model.name or 'unnamed'}, {model.num_parameters()} parameters); data: "
        f"{args.data or 'bundled UCI digits'} ({len(dataset.y_train)} train / "
        f"{len(dataset.y_test)} test)",
        f"- base hardware: {args.config or 'default preset'} (`{hardware.name}`); "
        f"study preset `{args.preset}`; {len(scenarios)} scenarios, {settings.seeds} chips each, base "
        f"seed {args.seed}, {where}",
        f"- wall time {time.perf_counter() - start:.0f} s; CPU time of all processes "
        f"{_cpu_seconds() - cpu:.0f} s; {os.cpu_count()} CPUs, 1-minute load average "
        f"{load0:.1f} at the start and "
        f"{os.getloadavg()[0] if hasattr(os, 'getloadavg') else float('nan'):.1f} at the end "
        "(a load above the CPU count means other jobs shared the machine)",
    ]
    write_study(results, out_dir, header=header, overwrite=args.overwrite, jobs=_report_jobs(args))
    print(f"wrote {out_dir}/report.md ({time.perf_counter() - start:.0f} s)")
    return 0
