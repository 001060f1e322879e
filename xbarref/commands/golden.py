"""``xbarref golden``: make golden suites and run the built-in approximate models on them.

``xbarref golden make [--preset quick|standard|large] [--seed S] [--jobs N] [--no-ngspice]
[--scheduler tcp://HOST:PORT] [--resume] -o SUITE.h5``
    Generate the preset's cases, solve each exactly (cases with max(M, N) <= 32 also
    with ngspice, flagged ``ngspice_verified``) as tasks of the common executor
    (:mod:`xbarref.sweep.executor`: N local worker processes, N = 1 in this process, or
    a Dask cluster), write the suite. Each case's result is kept in ``SUITE.h5.parts/``
    until the suite is written, so an interrupted run continues with ``--resume``.
``xbarref golden run-approx SUITE.h5 --model ideal|first-order|aihwkit -o CANDIDATE.h5``
    Run a built-in approximate model on every case and write a candidate file.
``xbarref golden info SUITE.h5``
    One line per case: shape, device, regime, ngspice flag.

Exit codes: 0 success, 2 bad input.
"""

from __future__ import annotations

import os
import shutil
import time

from xbarref.errors import XbarrefError


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
    m.add_argument("--preset", choices=("quick", "standard", "large"), default="standard",
                   help="which cases: quick (16 cases up to 32 x 32, about a minute), "
                        "standard (68 cases up to 256 x 256), large (74 cases, up to "
                        "1024 x 1024); docs/validation.md")
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
    r.set_defaults(func=cmd_run_approx)

    i = sub.add_parser("info", help="list the cases of a suite (the same as `xbarref info`)",
                       description="One line per case of SUITE: shape, batch, residual, "
                                   "ngspice flag. `xbarref info SUITE.h5` prints the same.")
    i.add_argument("suite", metavar="SUITE.h5", help="golden suite (docs/suite-format.md)")
    i.set_defaults(func=cmd_info)


def cmd_make(args):
    from xbarref.validate.generate import make_suite
    from xbarref.validate.suite import write_suite

    from xbarref.commands.options import check_jobs

    jobs = check_jobs(args)
    if args.seed < 0:
        raise XbarrefError(f"--seed: must be >= 0, got {args.seed}")
    folder = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(folder):
        raise XbarrefError(f"-o: folder {folder!r} does not exist")
    parts = os.path.abspath(args.output) + ".parts"
    t0 = time.perf_counter()
    suite, report = make_suite(args.preset, seed=args.seed, jobs=jobs,
                               ngspice=not args.no_ngspice, progress=not args.no_progress,
                               scheduler=args.scheduler, resume=args.resume, parts_dir=parts,
                               return_report=True)
    write_suite(suite, args.output)
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
    suite = read_suite(args.suite)
    t0 = time.perf_counter()
    outputs = {sc.name: fn(sc.case.crossbar, sc.case.V) for sc in suite.cases}
    seconds = time.perf_counter() - t0
    write_candidate(outputs, args.output, solver=f"xbarref.validate.approx {args.model}",
                    inputs=(args.suite,))
    print(f"wrote {args.output}: model {args.model} on {len(outputs)} cases in {seconds:.2f} s")
    return 0


def cmd_info(args):
    from xbarref.validate.suite import read_suite

    suite = read_suite(args.suite)
    print(f"{args.suite}: {len(suite)} cases, preset {suite.preset!r}, seed {suite.seed}, {suite.generator}")
    for c in suite.cases:
        M, N = c.case.shape
        flag = "ngspice-verified" if c.ngspice_verified else ("ngspice-FAILED" if c.ngspice_inputs else "")
        print(f"  {c.name}  {M}x{N}  B={c.case.batch_size}  residual={c.residual:.1e}  {flag}")
    return 0
