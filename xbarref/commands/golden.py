"""``xbarref golden``: make golden suites and run the built-in approximate models on them.

``xbarref golden make [--preset quick|standard|large] [--seed S] [--jobs N] [--no-ngspice]
[--scheduler tcp://HOST:PORT] [--resume] -o SUITE.h5``
    Generate the preset's cases, solve each exactly (cases with max(M, N) <= 32 also
    with ngspice, flagged ``ngspice_verified``) as tasks of the common run engine
    (:func:`xbarref.sweep.run`: N local worker processes, N = 1 in this process, or
    a Dask cluster), write the suite. Each case's result is kept in ``SUITE.h5.parts/``
    until the suite is written, so an interrupted run continues with ``--resume``.
``xbarref golden run-approx SUITE.h5 --model ideal|first-order|aihwkit -o CANDIDATE.h5``
    Run a built-in approximate model on every case and write a candidate file.
``xbarref golden info SUITE.h5``
    One line per case: shape, resistances (scalar or range), conductance range, device,
    input kind, ngspice flag.
``xbarref golden select SUITE.h5 [--device linear|sinh] [--max-size CELLS] [--scalar-only]
[--group G ...] [--probes-only] -o SUB.h5``
    Write the sub-suite of the cases that pass every filter (same names and contents).

Exit codes: 0 success, 2 bad input.
"""

from __future__ import annotations

import os
import shutil
import time

from xbarref.errors import XbarrefError
from xbarref.io.atomic import check_output


def register(subparsers):
    """Add ``golden`` with its sub-commands to the ``xbarref`` parser."""
    from xbarref.commands.options import add_jobs, add_no_progress

    p = subparsers.add_parser(
        "golden", help="golden suites: make one, run an approximate model on one",
        description="Golden-reference suites (docs/suite-format.md, docs/validation.md).")
    sub = p.add_subparsers(dest="golden_command", metavar="ACTION")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    m = sub.add_parser("make", help="generate and solve a golden suite",
                       description="Generate the cases of a preset, solve each exactly with "
                                   "xbarref, check the small ones (max(M, N) <= 32) with ngspice, "
                                   "and write the suite file.")
    m.add_argument("--preset", choices=("quick", "standard", "large", "diagnostic"), default="standard",
                   help="which cases: quick (16 cases up to 32 x 32, about a minute), "
                        "standard (84 cases up to 256 x 256, with the diagnostic probes), "
                        "large (90 cases, up to 1024 x 1024), diagnostic (the 16 diagnostic "
                        "probes only, up to 24 x 24); docs/validation.md")
    m.add_argument("--seed", type=int, default=0, metavar="S", help="master seed")
    add_jobs(m, "cases")
    m.add_argument("--scheduler", metavar="tcp://HOST:PORT", default=None,
                   help="run the cases on this Dask scheduler (default: $XBARREF_SCHEDULER, "
                        "else local processes)")
    m.add_argument("--resume", action="store_true",
                   help="reuse the case results in SUITE.h5.parts/ from an interrupted run")
    m.add_argument("--no-ngspice", action="store_true", help="skip the ngspice checks")
    add_no_progress(m)
    m.add_argument("-o", "--output", metavar="SUITE.h5", required=True, help="suite file to write")
    m.add_argument("--overwrite", action="store_true",
                   help="replace an existing SUITE.h5 (only a regular file)")
    m.set_defaults(func=cmd_make)

    r = sub.add_parser("run-approx", help="run a built-in approximate model on a suite",
                       description="Run an approximate crossbar model (xbarref.validate.approx) "
                                   "on every case of SUITE and write a candidate file for "
                                   "`xbarref compare`.")
    r.add_argument("suite", metavar="SUITE.h5", help="golden suite (docs/suite-format.md)")
    r.add_argument("--model", required=True, metavar="MODEL",
                   help="the approximate model: ideal, first-order or aihwkit (docs/validation.md)")
    r.add_argument("-o", "--output", metavar="CANDIDATE.h5", required=True,
                   help="candidate file to write")
    r.add_argument("--overwrite", action="store_true",
                   help="replace an existing CANDIDATE.h5 (never the suite, only a regular file)")
    add_no_progress(r)
    r.set_defaults(func=cmd_run_approx)

    i = sub.add_parser("info", help="list the cases of a suite (the same as `xbarref info`)",
                       description="One line per case of SUITE: shape, batch, residual, "
                                   "ngspice flag. `xbarref info SUITE.h5` prints the same.")
    i.add_argument("suite", metavar="SUITE.h5", help="golden suite (docs/suite-format.md)")
    i.set_defaults(func=cmd_info)

    _register_select(sub)


def _register_select(sub):
    s = sub.add_parser("select", help="write a sub-suite of the cases a candidate can express",
                       description="Write the cases of SUITE that pass every filter to SUB.h5, "
                                   "unchanged (same names, circuits, inputs and exact outputs).")
    s.add_argument("suite", metavar="SUITE.h5", help="golden suite (docs/suite-format.md)")
    s.add_argument("--device", choices=("linear", "sinh"), default=None, help="keep this device law only")
    s.add_argument("--max-size", type=int, default=None, metavar="CELLS",
                   help="keep cases with max(M, N) <= CELLS (rows or columns)")
    s.add_argument("--scalar-only", action="store_true",
                   help="keep cases whose every resistance is a single value (no per-row, per-column "
                        "or per-segment arrays)")
    s.add_argument("--group", action="append", default=None, metavar="G",
                   help="keep cases of this generator group (repeatable)")
    s.add_argument("--probes-only", action="store_true", help="keep the diagnostic probes only")
    s.add_argument("-o", "--output", metavar="SUB.h5", required=True, help="sub-suite file to write")
    s.add_argument("--overwrite", action="store_true",
                   help="replace an existing SUB.h5 (only a regular file)")
    s.set_defaults(func=cmd_select)


def cmd_select(args):
    """``golden select``: write a sub-suite."""
    from xbarref.validate.select import select_cases
    from xbarref.validate.suite import read_suite, write_suite

    if args.max_size is not None and args.max_size < 1:
        raise XbarrefError(f"--max-size: must be >= 1, got {args.max_size}")
    check_output(args.output, overwrite=args.overwrite, inputs=(args.suite,), name="--output")
    suite = read_suite(args.suite)
    sub = select_cases(suite, device=args.device, max_size=args.max_size, scalar_only=args.scalar_only,
                       groups=args.group, probes_only=args.probes_only)
    write_suite(sub, args.output, inputs=(args.suite,), overwrite=args.overwrite)
    print(f"wrote {args.output}: {len(sub)} of {len(suite)} cases")
    return 0


def cmd_make(args):
    from xbarref.validate.generate import make_suite
    from xbarref.validate.suite import write_suite

    from xbarref.commands.options import check_jobs

    jobs = check_jobs(args)
    if not 0 <= args.seed < 2**63:
        raise XbarrefError(f"--seed: must be an integer in [0, 2**63), got {args.seed}")
    check_output(args.output, overwrite=args.overwrite, name="--output")
    parts = os.path.abspath(args.output) + ".parts"
    t0 = time.perf_counter()
    from xbarref.commands.progress import compile_notice

    with compile_notice(enabled=not args.no_progress):  # make_suite warms up before its workers
        suite, report = make_suite(args.preset, seed=args.seed, jobs=jobs,
                                   ngspice=not args.no_ngspice, progress=not args.no_progress,
                                   scheduler=args.scheduler, resume=args.resume, parts_dir=parts,
                                   return_report=True)
    write_suite(suite, args.output, overwrite=args.overwrite)
    shutil.rmtree(parts, ignore_errors=True)
    seconds = time.perf_counter() - t0
    checked = [c for c in suite.cases if c.ngspice_inputs]
    verified = [c for c in checked if c.ngspice_verified]
    worst = max((c.ngspice_max_rel_error for c in checked), default=float("nan"))
    print(f"wrote {args.output}: {len(suite)} cases (preset {args.preset}, seed {args.seed}) "
          f"in {seconds:.1f} s ({report.executor}; {len(report.computed)} computed, "
          f"{len(report.skipped)} resumed)")
    print(f"ngspice: {len(verified)}/{len(checked)} checked cases verified "
          f"(worst max|I - I_spice|/max|I_spice| = {worst:.2e})")
    for c in suite.cases:
        if c.note:
            print(f"  {c.name}: {c.note}")
    return 0


def cmd_run_approx(args):
    from xbarref.validate.approx import get_model
    from xbarref.validate.suite import read_suite, write_candidate

    fn = get_model(args.model)
    check_output(args.output, overwrite=args.overwrite, inputs=(args.suite,), name="--output")
    suite = read_suite(args.suite)
    from xbarref.commands.progress import progress_bar

    t0 = time.perf_counter()
    outputs = {}
    with progress_bar(len(suite.cases), "run-approx", not args.no_progress, unit="case") as bar:
        for sc in suite.cases:
            outputs[sc.name] = fn(sc.case.crossbar, sc.case.V)
            bar.update(1)
    seconds = time.perf_counter() - t0
    write_candidate(outputs, args.output, solver=f"xbarref.validate.approx {args.model}",
                    inputs=(args.suite,), overwrite=args.overwrite)
    print(f"wrote {args.output}: model {args.model} on {len(outputs)} cases in {seconds:.2f} s")
    return 0


def cmd_info(args):
    from xbarref.validate.compare import describe_values
    from xbarref.validate.suite import read_suite

    suite = read_suite(args.suite)
    print(f"{args.suite}: {len(suite)} cases, preset {suite.preset!r}, seed {suite.seed}, {suite.generator}")
    for c in suite.cases:
        xb = c.case.crossbar
        M, N = c.case.shape
        flag = "ngspice-verified" if c.ngspice_verified else ("ngspice-FAILED" if c.ngspice_inputs else "")
        g = xb.G[xb.G > 0]
        dev = "linear" if xb.is_linear else (f"sinh k={xb.sinh_k:g}" if xb.device == "sinh" else "user")
        res = "  ".join(f"{k}={describe_values(getattr(xb, k))}"
                        for k in ("r_source", "r_sink", "r_wire_row", "r_wire_col"))
        print(f"  {c.name}  {M}x{N}  B={c.case.batch_size}  {res}  "
              f"G={describe_values(g, 'S') if g.size else '0'}  {dev}  inputs={c.params.get('inputs', '-')}  "
              f"residual={c.residual:.1e}  solve={c.solve_seconds:.3g} s  {flag}")
    return 0
