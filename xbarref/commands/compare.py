"""``xbarref compare SUITE.h5 CANDIDATE.h5 [--tol T] [--report DIR] [--no-progress]``.

Prints a per-case table (resistances, conductance range, device, input kind, max
relative error, the ideal model's error, slope and correlation of predicted vs true
deviation from ideal, status and the "worse than ideal" flag), the summary, the worst
cases with a one-line reason and the diagnosis (which part of the candidate's circuit
model is wrong, from the diagnostic probes: :mod:`xbarref.validate.diagnose`); with
``--report DIR`` also writes ``DIR/report.md`` and PNG plots
(:mod:`xbarref.validate.report`). Metric definitions: :mod:`xbarref.validate.compare`.

Exit codes: 0 every case answered and within the tolerance, 1 some answered case above
it, 2 bad input, 3 no case above it but some inputs or cases without an answer (NaN
rows in the candidate; 0 instead with ``--allow-missing``).
"""

from __future__ import annotations

import time

from xbarref.errors import XbarrefError


def register(subparsers):
    """Add ``compare`` to the ``xbarref`` parser."""
    from xbarref.commands.options import add_no_progress

    p = subparsers.add_parser(
        "compare", help="compare a candidate simulator's outputs with a golden suite",
        description="Compare the outputs of CANDIDATE (a candidate or suite file with "
                    "/cases/<name>/outputs/I for every case of SUITE) with the exact outputs "
                    "of SUITE. Exit status 1 if any case's max relative error is above --tol, 3 if "
                    "some inputs have no answer (NaN rows) and none is above --tol.")
    p.add_argument("suite", metavar="SUITE.h5", help="golden suite (docs/suite-format.md)")
    p.add_argument("candidate", metavar="CANDIDATE.h5",
                   help="candidate file with the outputs of the simulator under test")
    p.add_argument("--tol", type=float, default=None, metavar="REL",
                   help="tolerance on max|I_cand - I|/max|I| per case, dimensionless "
                        "(default: 1e-3)")
    p.add_argument("--report", metavar="DIR", default=None,
                   help="write DIR/report.md and PNG plots (DIR is created; an existing "
                        "non-empty DIR needs --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --report DIR")
    p.add_argument("--quiet", action="store_true", help="summary only, no per-case table")
    p.add_argument("--allow-missing", action="store_true",
                   help="exit 0 (not 3) when the candidate has no answer (NaN rows) for some "
                        "inputs or cases and every answered case is within --tol")
    add_no_progress(p)
    p.set_defaults(func=cmd_compare)


def _fmt(x):
    from xbarref.validate.report import fmt

    return fmt(x)


def format_table(result):
    """The per-case table as text lines (suite order)."""
    head = (f"{'case':<60} {'M x N':>8} {'r_source':>10} {'r_sink':>10} {'r_row':>10} {'r_col':>10} "
            f"{'G':>15} {'device':>11} {'inputs':>9} {'max rel':>9} {'ideal':>9} {'slope':>8} "
            f"{'corr':>8}  ok")
    lines = [head, "-" * len(head)]
    for c in result.cases:
        r = c.resistances
        lo, hi = c.g_range
        g = f"{lo:.2g}-{hi:.2g}" if lo != hi else f"{hi:.2g}"
        ok = {"passed": "yes", "failed": "NO", "partial": "partial", "not run": "not run"}.get(c.status, c.status)
        if c.worse_than_ideal:
            ok += " WORSE-THAN-IDEAL"
        lines.append(f"{c.name[:60]:<60} {f'{c.shape[0]}x{c.shape[1]}':>8} {r.get('r_source', '-'):>10} "
                     f"{r.get('r_sink', '-'):>10} {r.get('r_wire_row', '-'):>10} {r.get('r_wire_col', '-'):>10} "
                     f"{g:>15} {c.device:>11} {c.input_kind[:9]:>9} {_fmt(c.max_rel_error):>9} "
                     f"{_fmt(c.ideal_error):>9} {_fmt(c.slope):>8} {_fmt(c.correlation):>8}  {ok}")
    return lines


def format_summary(result):
    from xbarref.validate.report import format_summary as summary

    return summary(result)


def format_worst(result, count=10):
    """The worst cases, worst first, each with a one-line reason."""
    worst = [c for c in result.worst() if c.status in ("failed", "partial", "not run")][:count]
    if not worst:
        return []
    return ["worst cases:"] + [f"  {c.name}: {_fmt(c.max_rel_error)} - {c.reason}" for c in worst]


def cmd_compare(args):
    from xbarref.validate.compare import DEFAULT_TOL, compare_files

    tol = DEFAULT_TOL if args.tol is None else args.tol
    if not tol >= 0:
        raise XbarrefError(f"--tol: must be a number >= 0, got {args.tol}")
    if args.report is not None:  # before the comparison: the output rules
        from xbarref.io.atomic import check_output_dir

        check_output_dir(args.report, overwrite=args.overwrite, name="--report")
    t0 = time.perf_counter()
    with _Bar("comparing", "case", not args.no_progress) as bar:
        result = compare_files(args.suite, args.candidate, tol=tol, progress=bar)
    seconds = time.perf_counter() - t0
    if not args.quiet:
        print("\n".join(format_table(result)))
        print()
    print("\n".join(format_summary(result)))
    worst = format_worst(result)
    if worst:
        print("\n".join(worst))
    t1 = time.perf_counter()
    print("diagnosis:")
    print("\n".join(f"  {line}" for line in result.diagnosis.lines()))
    print(f"compared in {seconds:.2f} s, diagnosis in {time.perf_counter() - t1:.2f} s")
    if args.report is not None:
        with _Bar("report plots", "plot", not args.no_progress) as bar:
            path = write_report(result, args.report, suite=args.suite, candidate=args.candidate,
                                overwrite=args.overwrite, progress=bar)
        print(f"report: {path}")
    if result.failed:
        return 1
    if not result.complete:
        missing = len(result.not_run) + len(result.partial)
        if args.allow_missing:
            print(f"note: {missing} case(s) not run or partly answered (allowed by --allow-missing)")
            return 0
        print(f"incomplete: {missing} case(s) not run or partly answered; exit status 3 "
              "(--allow-missing accepts this)")
        return 3
    return 0


class _Bar:
    """A ``progress(done, total)`` callback drawing a progress bar (made at the first call,
    when the total is known; shown once a second has passed)."""

    def __init__(self, desc, unit, enabled):
        self.desc, self.unit, self.enabled, self.bar, self.done = desc, unit, enabled, None, 0

    def __call__(self, done, total):
        from xbarref.commands.progress import progress_bar

        if self.bar is None:
            self.bar = progress_bar(total, self.desc, self.enabled, unit=self.unit)
        self.bar.update(done - self.done)
        self.done = done

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()
        return False


def write_report(result, folder, suite="", candidate="", overwrite=False, progress=None):
    """Write ``report.md`` and PNG plots into ``folder`` (:func:`xbarref.validate.report.write_report`)."""
    from xbarref.validate.report import write_report as write

    return write(result, folder, suite=suite, candidate=candidate, overwrite=overwrite,
                 name="--report", progress=progress)


def write_plots(result, folder):
    """The report's PNG plots (:func:`xbarref.validate.report.write_plots`); returns file names."""
    from xbarref.validate.report import write_plots as plots

    return plots(result, folder)
