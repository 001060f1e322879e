"""Sub-commands on crossbar case files: ``solve``, ``info``, ``netlist``, ``spice-check``, ``demo``.

``xbarref solve CASE.h5 -o OUT.h5 [--nodes] [--no-progress]``
    Solve every input of the case; write a copy with ``/outputs`` (never over CASE.h5).
``xbarref info FILE.h5``
    Print a summary of a case file (or of a golden suite or candidate file).
``xbarref netlist CASE.h5 -o CASE.cir [--input K]``
    Write the ngspice netlist of one input of the case.
``xbarref spice-check CASE.h5 [--tol 1e-9] [--inputs K ...] [--no-progress]``
    Solve inputs with ngspice and with xbarref; print the worst relative difference
    per input; exit 1 when one is above the tolerance.
``xbarref demo [--input K] [--columns C] [--no-progress]``
    Solve the bundled example case and compare it with the ideal ``V @ G``.

Exit codes: 0 success, 1 spice-check above tolerance, 2 bad input or a failed run.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from xbarref.errors import XbarrefError

EXAMPLE_CASE = "example_case.h5"


def register(subparsers):
    """Add the case sub-commands to the ``xbarref`` parser."""
    from xbarref.commands.options import add_no_progress

    p = subparsers.add_parser(
        "solve", help="solve a case file and write a copy with /outputs",
        description="Solve every input vector of CASE and write a copy of the case with "
                    "/outputs/I (and the node voltages with --nodes) to OUT. CASE is never "
                    "modified; OUT may not be CASE.")
    p.add_argument("case", metavar="CASE.h5", help="case file (docs/case-format.md)")
    p.add_argument("-o", "--output", metavar="OUT.h5", required=True, help="file to write")
    p.add_argument("--nodes", action="store_true",
                   help="also write the row and column node voltages V_row, V_col (V)")
    add_no_progress(p)
    _add_overwrite(p)
    p.set_defaults(func=cmd_solve)

    p = subparsers.add_parser(
        "info", help="print a summary of a case, suite or candidate file",
        description="Print a summary of FILE: for a case file the shape, device, parameter "
                    "ranges, batch size and outputs; for a golden suite one line per case "
                    "(the same as `xbarref golden info`); for a candidate file its cases.")
    p.add_argument("case", metavar="FILE.h5",
                   help="case file (docs/case-format.md), golden suite or candidate file "
                        "(docs/suite-format.md)")
    p.set_defaults(func=cmd_info)

    p = subparsers.add_parser(
        "netlist", help="write the ngspice netlist of one input of a case",
        description="Write an ngspice netlist (.op analysis) of the crossbar of CASE driven "
                    "by input K. Nodes r_i_j / c_i_j are row / column node (i, j); "
                    "i(vsense_j) is output current j. See docs/formats.md.")
    p.add_argument("case", metavar="CASE.h5", help="case file (format: docs/case-format.md)")
    p.add_argument("-o", "--output", metavar="CASE.cir", required=True, help="netlist file to write")
    p.add_argument("--input", type=int, default=0, metavar="K",
                   help="which input vector (row K of /inputs/V, from 0)")
    _add_overwrite(p)
    p.set_defaults(func=cmd_netlist)

    p = subparsers.add_parser(
        "spice-check", help="check xbarref against ngspice on a case",
        description="Run ngspice in batch mode on each chosen input of CASE, compare the "
                    "output currents with xbarref's and print max|I - I_spice| / max|I_spice| "
                    "per input. Exit status 1 if any is above --tol.")
    p.add_argument("case", metavar="CASE.h5", help="case file (format: docs/case-format.md)")
    p.add_argument("--tol", type=float, default=1e-9, metavar="REL",
                   help="largest accepted relative difference of the currents (dimensionless)")
    p.add_argument("--inputs", type=int, nargs="+", metavar="K",
                   help="input vectors to check, from 0 (default: all)")
    p.add_argument("--ngspice", metavar="PATH", default=None,
                   help="ngspice executable (default: $XBARREF_NGSPICE, else ngspice on PATH)")
    p.add_argument("--timeout", type=float, default=None, metavar="S",
                   help="seconds allowed per ngspice run (default: no limit)")
    add_no_progress(p)
    p.set_defaults(func=cmd_spice_check)

    p = subparsers.add_parser(
        "demo", help="solve the bundled example case against the ideal V @ G",
        description="Solve the bundled 64 x 64 example case (xbarref.data.path("
                    "\"example_case.h5\")) and print, per output column, the circuit current, "
                    "the ideal V @ G and their relative deviation.")
    p.add_argument("--input", type=int, default=0, metavar="K",
                   help="input vector shown column by column, from 0")
    p.add_argument("--columns", type=int, default=8, metavar="C",
                   help="number of output columns shown")
    add_no_progress(p)
    p.set_defaults(func=cmd_demo)


def _add_overwrite(parser):
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing output file (never the input, never "
                             "anything but a regular file)")


def _check_output(args, *inputs):
    """The output rules of :mod:`xbarref.io.atomic`, checked before any work."""
    from xbarref.io.atomic import check_output

    check_output(args.output, overwrite=args.overwrite, inputs=inputs, name="--output")


def _method(crossbar, solution):
    method = getattr(solution, "method", None)
    if isinstance(method, str) and method:
        return method
    return "direct" if crossbar.is_linear else "newton"


def _check_index(k, B, option):
    if not 0 <= k < B:
        raise XbarrefError(f"{option}: input {k} out of range; the case has {B} input(s), 0..{B - 1}")


def _solve_with_progress(crossbar, V, nodes, enabled):
    """``solve(crossbar, V, nodes)`` with a progress bar when it takes more than a second.

    The solve is one call (one factorization, one batched iterative solve, or one batched
    Newton solve, whose inner iterations depend on the whole batch, so that splitting the
    inputs would change the last bits), and the bar shows its elapsed time.
    """
    from xbarref.circuit import solve
    from xbarref.commands.progress import progress_bar

    with progress_bar(1, "solving", enabled, unit="solve") as bar:
        sol = solve(crossbar, V, nodes=nodes)
        bar.update(1)
    return sol


def cmd_solve(args):
    """``xbarref solve``: solve a case and write a copy with its outputs."""
    from xbarref import __version__
    from xbarref.commands.progress import compile_notice
    from xbarref.io.case import read_case, write_case

    from xbarref.errors import ConvergenceError

    _check_output(args, args.case)
    case = read_case(args.case)
    start = time.perf_counter()
    try:
        with compile_notice(enabled=not args.no_progress):
            sol = _solve_with_progress(case.crossbar, case.V, args.nodes, not args.no_progress)
    except ConvergenceError as exc:
        raise ConvergenceError(f"{args.case}: {exc}") from None
    seconds = time.perf_counter() - start
    solver = f"xbarref {__version__} {_method(case.crossbar, sol)}"
    out = case.with_outputs(I=sol.I, V_row=sol.V_row if args.nodes else None,
                            V_col=sol.V_col if args.nodes else None, solver=solver)
    write_case(out, args.output, inputs=(args.case,), overwrite=args.overwrite)
    M, N = case.shape
    print(f"solved {case.batch_size} input(s) of a {M} x {N} {case.crossbar.device} crossbar "
          f"in {seconds:.4g} s ({solver}); residual {sol.residual:.3g}")
    iterations = getattr(sol, "iterations", None)
    if iterations is not None and len(iterations):
        print(f"iterations per input: {int(np.min(iterations))}..{int(np.max(iterations))}")
    print(f"wrote {args.output}: /outputs/I" + (", V_row, V_col" if args.nodes else ""))
    return 0


def _range_text(arr, unit):
    arr = np.asarray(arr)
    if arr.size == 0:
        return "none (no segments)"
    lo, hi = float(arr.min()), float(arr.max())
    zeros = int(np.count_nonzero(arr == 0))
    text = f"{lo:.6g} {unit}" if lo == hi else f"{lo:.6g} .. {hi:.6g} {unit}"
    if lo == hi:
        text += " (all equal)"
    if zeros and lo != hi:
        text += f", {zeros} of {arr.size} are 0 (ideal shorts)"
    elif zeros:
        text += ", ideal shorts"
    return text


def case_summary(case):
    """Lines describing a :class:`~xbarref.io.case.Case` (used by ``xbarref info``)."""
    xb = case.crossbar
    M, N = xb.shape
    dev = xb.device + (f", sinh_k = {xb.sinh_k:.6g} 1/V" if xb.device == "sinh" else "")
    G = xb.G
    open_cells = int(np.count_nonzero(G == 0))
    lines = [
        f"file:        {case.path}" if case.path else "case (not from a file)",
        f"crossbar:    M = {M} rows (inputs) x N = {N} columns (outputs)",
        f"device:      {dev}",
        f"G:           {float(G.min()):.6g} .. {float(G.max()):.6g} S"
        + (f", {open_cells} open cell(s) (G = 0)" if open_cells else ""),
        f"r_source:    {_range_text(xb.r_source, 'ohm')}",
        f"r_sink:      {_range_text(xb.r_sink, 'ohm')}",
        f"r_wire_row:  {_range_text(xb.r_wire_row, 'ohm')}",
        f"r_wire_col:  {_range_text(xb.r_wire_col, 'ohm')}",
        f"inputs:      B = {case.batch_size} vector(s), V in "
        f"{float(case.V.min()):.6g} .. {float(case.V.max()):.6g} V",
    ]
    present = [name for name in ("I", "V_row", "V_col") if getattr(case, name) is not None]
    if present:
        lines.append(f"outputs:     {', '.join(present)}; solver: "
                     f"{case.solver if case.solver is not None else '(not stated)'}")
        if case.I is not None:
            lines.append(f"             I in {float(case.I.min()):.6g} .. {float(case.I.max()):.6g} A")
    else:
        lines.append("outputs:     none (run `xbarref solve`)")
    return lines


def _file_format(path):
    """The root attribute ``format`` of an HDF5 file ('' if absent).

    Only a peek to pick the reader: the checksum is checked by that reader, which reports
    a damaged part by name.
    """
    from xbarref.io.h5 import open_h5, read_attr

    with open_h5(path, verify=False) as handle:
        return read_attr(handle, "format", path, "str", required=False, default="")


def cmd_info(args):
    """``xbarref info``: print a summary of a case, suite or candidate file."""
    from xbarref.io.case import read_case
    from xbarref.validate.suite import CANDIDATE_FORMAT, SUITE_FORMAT

    fmt = _file_format(args.case)
    if fmt == SUITE_FORMAT:
        from xbarref.commands.golden import cmd_info as suite_info

        args.suite = args.case
        return suite_info(args)
    if fmt == CANDIDATE_FORMAT:
        from xbarref.validate.suite import read_candidate

        outputs, solver = read_candidate(args.case)
        print(f"{args.case}: candidate outputs of {len(outputs)} case(s); solver: "
              f"{solver or '(not stated)'}")
        for name, I in outputs.items():
            print(f"  {name}  I {I.shape[0]} x {I.shape[1]}")
        return 0
    case = read_case(args.case)
    print("\n".join(case_summary(case)))
    return 0


def cmd_netlist(args):
    """``xbarref netlist``: write the ngspice netlist of one input."""
    from xbarref.io.case import read_case
    from xbarref.io.netlist import write_netlist

    _check_output(args, args.case)
    case = read_case(args.case)
    _check_index(args.input, case.batch_size, "--input")
    title = f"xbarref netlist of {os.path.basename(args.case)}, input {args.input}"
    write_netlist(case.crossbar, case.V[args.input], args.output, title=title,
                  overwrite=args.overwrite, inputs=(args.case,))
    M, N = case.shape
    print(f"wrote {args.output}: {M} x {N} {case.crossbar.device} crossbar, input {args.input}; "
          f"run: ngspice -b {args.output} (add -r OUT.raw for full-precision results)")
    return 0


def cmd_spice_check(args):
    """``xbarref spice-check``: compare xbarref with ngspice input by input."""
    from xbarref.io.case import read_case
    from xbarref.validate.spice import SpiceError, find_ngspice, spice_check

    if not (np.isfinite(args.tol) and args.tol >= 0):
        raise XbarrefError(f"--tol: must be a finite number >= 0, got {args.tol}")
    if args.timeout is not None and not (np.isfinite(args.timeout) and 0 < args.timeout <= 1e6):
        raise XbarrefError(f"--timeout: must be a number of seconds in (0, 1e6], got {args.timeout}")
    case = read_case(args.case)
    inputs = list(range(case.batch_size)) if args.inputs is None else args.inputs
    for k in inputs:
        _check_index(k, case.batch_size, "--inputs")
    from xbarref.circuit import solve

    try:
        exe = find_ngspice(args.ngspice)
        M, N = case.shape
        print(f"{args.case}: {M} x {N} {case.crossbar.device} crossbar, {len(inputs)} input(s); "
              f"ngspice: {exe}")
        print(f"{'input':>5}  {'max|dI|/max|I|':>15}  {'max|dV|/max|V|':>15}  {'ngspice s':>9}  ok")
        if M * N > 96 * 96:
            print("note: ngspice needs minutes per input at this size (~100 s at 128 x 128)",
                  flush=True)
        from xbarref.errors import ConvergenceError

        from xbarref.commands.progress import compile_notice

        try:
            with compile_notice(enabled=not args.no_progress):
                solution = solve(case.crossbar, case.V, nodes=True)
        except ConvergenceError as exc:
            raise ConvergenceError(f"{args.case}: {exc}") from None
        from xbarref.validate.spice import spice_circuit

        shorted = spice_circuit(case.crossbar, case.V)[1]
        if shorted:
            print(f"note: {shorted} resistance(s) small enough to be exact shorts (docs/formats.md) "
                  "are given to ngspice as ideal shorts, as xbarref solves them", flush=True)
        worst = 0.0
        failed = 0
        for k in inputs:
            row = spice_check(case.crossbar, case.V, inputs=[k], ngspice=exe, timeout=args.timeout,
                              solution=solution)[0]
            ok = row.rel_I <= args.tol
            failed += not ok
            worst = max(worst, row.rel_I)
            print(f"{k:>5}  {row.rel_I:>15.3e}  {row.rel_nodes:>15.3e}  {row.seconds_spice:>9.3f}  "
                  f"{'yes' if ok else 'NO'}", flush=True)
    except SpiceError as exc:
        print(f"xbarref spice-check: error: {exc}", file=sys.stderr)
        return 2
    verdict = "agree" if not failed else "DISAGREE"
    print(f"worst relative difference {worst:.3e} (tolerance {args.tol:.1e}): xbarref and ngspice "
          f"{verdict}" + (f" on {failed} input(s)" if failed else ""))
    return 1 if failed else 0


def example_case_path():
    """Path of the bundled example case (``xbarref.data.path("example_case.h5")``)."""
    from xbarref.data import path

    return path(EXAMPLE_CASE)


def cmd_demo(args):
    """``xbarref demo [--input K] [--columns C] [--no-progress]``: solve the bundled example case against the ideal ``V @ G``."""
    from xbarref.circuit import solve
    from xbarref.io.case import read_case

    case = read_case(example_case_path())
    xb = case.crossbar
    M, N = xb.shape
    _check_index(args.input, case.batch_size, "--input")
    if args.columns < 1:
        raise XbarrefError(f"--columns: must be >= 1, got {args.columns}")
    from xbarref.commands.progress import compile_notice

    start = time.perf_counter()
    with compile_notice(enabled=not args.no_progress):
        solve(xb, case.V)  # first call: may compile the Numba kernels (cached on disk afterwards)
    first = time.perf_counter() - start
    start = time.perf_counter()
    sol = solve(xb, case.V)
    seconds = time.perf_counter() - start
    ideal = case.V @ xb.G
    print(f"example case: {M} x {N} {xb.device} crossbar, G {xb.G.min() * 1e6:.3g}..{xb.G.max() * 1e6:.3g} uS, "
          f"r_source {_range_text(xb.r_source, 'ohm')}, r_sink {_range_text(xb.r_sink, 'ohm')},")
    print(f"  row wires {_range_text(xb.r_wire_row, 'ohm')}, column wires "
          f"{_range_text(xb.r_wire_col, 'ohm')}; {case.batch_size} input vectors")
    print(f"solved all {case.batch_size} inputs in {seconds * 1e3:.3g} ms "
          f"(first call, with any compilation: {first * 1e3:.3g} ms); "
          f"relative Kirchhoff residual {sol.residual:.2g}")
    k = args.input
    print(f"\ninput {k}: output currents, circuit-exact vs ideal V @ G")
    print(f"{'column':>6}  {'I circuit (uA)':>15}  {'V @ G (uA)':>15}  {'(I - V@G)/|V@G|':>16}")
    for j in range(min(args.columns, N)):
        rel = (sol.I[k, j] - ideal[k, j]) / abs(ideal[k, j]) if ideal[k, j] != 0 else float("nan")
        print(f"{j:>6}  {sol.I[k, j] * 1e6:>15.6f}  {ideal[k, j] * 1e6:>15.6f}  {rel * 100:>15.3f}%")
    print("\nper input: max |I - V@G| / max |V@G| (IR drop error relative to full scale)")
    for b in range(case.batch_size):
        dev = np.max(np.abs(sol.I[b] - ideal[b])) / np.max(np.abs(ideal[b]))
        print(f"  input {b}: {dev * 100:.3f}%")
    if case.I is not None:
        diff = np.max(np.abs(sol.I - case.I)) / np.max(np.abs(case.I))
        print(f"\nstored outputs ({case.solver or 'solver not stated'}): "
              f"max |I - I_stored| / max |I_stored| = {diff:.2e}")
    return 0
