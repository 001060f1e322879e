"""``xbarref compare SUITE.h5 CANDIDATE.h5 [--tol T] [--report DIR]``.

Prints a per-case table (max relative error, normalized RMSE, non-ideality-factor
error, slope and correlation of predicted vs true deviation from ideal) and an overall
summary; with ``--report DIR`` also writes ``DIR/report.md`` and PNG plots (matplotlib,
imported only then). Metric definitions: :mod:`xbarref.validate.compare`.

Exit codes: 0 every case within the tolerance, 1 some case above it, 2 bad input.
"""

from __future__ import annotations

import math
import os
import time

from xbarref.errors import XbarrefError


def register(subparsers):
    """Add ``compare`` to the ``xbarref`` parser."""
    p = subparsers.add_parser(
        "compare", help="compare a candidate simulator's outputs with a golden suite",
        description="Compare the outputs of CANDIDATE (a candidate or suite file with "
                    "/cases/<name>/outputs/I for every case of SUITE) with the exact outputs "
                    "of SUITE. Exit status 1 if any case's max relative error is above --tol.")
    p.add_argument("suite", metavar="SUITE.h5", help="golden suite (docs/suite-format.md)")
    p.add_argument("candidate", metavar="CANDIDATE.h5",
                   help="candidate file with the outputs of the simulator under test")
    p.add_argument("--tol", type=float, default=None, metavar="REL",
                   help="tolerance on max|I_cand - I|/max|I| per case, dimensionless "
                        "(default: 1e-3)")
    p.add_argument("--report", metavar="DIR", default=None,
                   help="write DIR/report.md and PNG plots (DIR is created)")
    p.add_argument("--quiet", action="store_true", help="summary only, no per-case table")
    p.set_defaults(func=cmd_compare)


def _fmt(x):
    if isinstance(x, float) and math.isnan(x):
        return "-"
    return f"{x:.2e}" if abs(x) < 1e-2 or abs(x) >= 1e3 else f"{x:.4f}"


def format_table(result):
    """The per-case table as text lines."""
    head = f"{'case':<70} {'M x N':>10} {'max rel':>9} {'nRMSE':>9} {'NF err':>9} {'slope':>8} {'corr':>8}  ok"
    lines = [head, "-" * len(head)]
    for c in result.cases:
        lines.append(f"{c.name[:70]:<70} {f'{c.shape[0]}x{c.shape[1]}':>10} {_fmt(c.max_rel_error):>9} "
                     f"{_fmt(c.nrmse):>9} {_fmt(c.nf_error):>9} {_fmt(c.slope):>8} {_fmt(c.correlation):>8}  "
                     f"{'yes' if c.passed else 'NO'}")
    return lines


def format_summary(result):
    s = result.summary()
    return [
        f"candidate: {result.candidate}",
        f"cases: {s['cases']}, above tolerance {s['tol']:g}: {s['failed']}",
        f"max relative error: {_fmt(s['max_rel_error'])} (worst case {s['max_rel_error_case']}); "
        f"median over cases {_fmt(s['median_max_rel_error'])}",
        f"normalized RMSE: worst {_fmt(s['nrmse'])} ({s['nrmse_case']})",
        f"non-ideality factor error: worst {_fmt(s['nf_error'])} ({s['nf_error_case']})",
        f"predicted vs true deviation from ideal (pooled, per-case full scale): "
        f"slope {_fmt(s['slope'])}, correlation {_fmt(s['correlation'])}; "
        f"median over cases: slope {_fmt(s['median_slope'])}, correlation {_fmt(s['median_correlation'])}",
    ]


def cmd_compare(args):
    from xbarref.validate.compare import DEFAULT_TOL, compare_files

    tol = DEFAULT_TOL if args.tol is None else args.tol
    if not tol >= 0:
        raise XbarrefError(f"--tol: must be a number >= 0, got {args.tol}")
    t0 = time.perf_counter()
    result = compare_files(args.suite, args.candidate, tol=tol)
    seconds = time.perf_counter() - t0
    if not args.quiet:
        print("\n".join(format_table(result)))
        print()
    print("\n".join(format_summary(result)))
    print(f"compared in {seconds:.2f} s")
    if args.report is not None:
        path = write_report(result, args.report, suite=args.suite, candidate=args.candidate)
        print(f"report: {path}")
    return 0 if result.passed else 1


def write_report(result, folder, suite="", candidate=""):
    """Write ``report.md`` and PNG plots into ``folder`` (created); returns the report path."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise XbarrefError(f"--report: {folder!r} exists and is not a folder")
    os.makedirs(folder, exist_ok=True)
    plots = write_plots(result, folder)
    lines = [f"# Comparison report", "", f"- suite: `{suite}`", f"- candidate: `{candidate}`", ""]
    lines += ["## Summary", ""] + [f"- {s}" for s in format_summary(result)] + [""]
    lines += ["## Plots", ""] + [f"![{name}]({name})" for name in plots] + [""]
    lines += ["## Cases", "", "| case | M x N | max rel | nRMSE | NF err | slope | corr | ok |",
              "|---|---|---|---|---|---|---|---|"]
    for c in result.cases:
        lines.append(f"| {c.name} | {c.shape[0]}x{c.shape[1]} | {_fmt(c.max_rel_error)} | {_fmt(c.nrmse)} | "
                     f"{_fmt(c.nf_error)} | {_fmt(c.slope)} | {_fmt(c.correlation)} | "
                     f"{'yes' if c.passed else 'NO'} |")
    path = os.path.join(folder, "report.md")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    os.replace(tmp, path)
    return path


def write_plots(result, folder):
    """Predicted vs true deviation; error vs size; error vs wire resistance. Returns file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = []
    fig, ax = plt.subplots(figsize=(5, 5))
    d_all = np.concatenate([v[0] for v in result.deviations.values()]) if result.deviations else np.zeros(1)
    q_all = np.concatenate([v[1] for v in result.deviations.values()]) if result.deviations else np.zeros(1)
    ax.plot(d_all, q_all, ".", ms=2, alpha=0.4, rasterized=True, label="outputs (all cases)")
    lim = float(max(np.max(np.abs(d_all)), np.max(np.abs(q_all)))) or 1.0
    ax.plot([-lim, lim], [-lim, lim], "k--", lw=0.8, label="perfect prediction")
    ax.set_xlabel("true deviation (I - I_ideal) / max|I_ideal|")
    ax.set_ylabel("predicted deviation (I_cand - I_ideal) / max|I_ideal|")
    ax.set_title(f"{result.candidate}: deviation from ideal")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(os.path.join(folder, "deviation.png"), dpi=110)
    plt.close(fig)
    names.append("deviation.png")

    floor = 1e-17
    err = np.array([max(c.max_rel_error, floor) for c in result.cases])
    size = np.array([c.shape[0] * c.shape[1] for c in result.cases])
    groups = sorted({c.group for c in result.cases})
    r = np.array([c.r_wire for c in result.cases])

    def error_plot(x, use, xlabel, name):
        """max relative error of every case against ``x``, one marker per case group."""
        fig, ax = plt.subplots(figsize=(6, 4))
        for g in groups:
            idx = [k for k, c in enumerate(result.cases) if c.group == g and use[k]]
            if idx:
                ax.loglog(x[idx], err[idx], "o", label=g or "cases")
        ax.axhline(result.tol, color="k", ls="--", lw=0.8, label=f"tol {result.tol:g}")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("max relative error")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(os.path.join(folder, name), dpi=110)
        plt.close(fig)
        names.append(name)

    error_plot(np.sqrt(size), np.ones(len(size), bool), "sqrt(M N)", "error_vs_size.png")
    error_plot(r, np.isfinite(r) & (r > 0), "wire resistance per segment (ohm, nominal)",
               "error_vs_wire_resistance.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    dev = np.array([c.true_deviation for c in result.cases])
    for g in groups:
        idx = [k for k, c in enumerate(result.cases) if c.group == g and dev[k] > 0]
        if idx:
            ax.loglog(dev[idx], err[idx], "o", label=g or "cases")
    ax.axhline(result.tol, color="k", ls="--", lw=0.8, label=f"tol {result.tol:g}")
    ax.set_xlabel("true IR drop: max|I - I_ideal| / max|I|")
    ax.set_ylabel("max relative error")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(folder, "error_vs_true_deviation.png"), dpi=110)
    plt.close(fig)
    names.append("error_vs_true_deviation.png")
    return names
