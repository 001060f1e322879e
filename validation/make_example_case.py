"""Write the bundled example case ``xbarref/data/example_case.h5`` (run once; the file is committed).

The case (``docs/case-format.md``): a 64 x 64 linear crossbar with conductances
drawn uniformly in 1..100 uS, source resistance 100 ohm per row, sink resistance 50 ohm
per column, row and column wire segments of 2 ohm, and 4 input vectors drawn uniformly
in -0.3..0.3 V; all draws from ``numpy.random.default_rng(SEED)``.

Its ``/outputs`` (I, V_row, V_col) are ngspice's operating point of each input, from the
netlist :mod:`xbarref.io.netlist` writes (``.op``, reltol 1e-12), read back from
ngspice's binary raw file, so ``xbarref demo`` can show xbarref against a SPICE solution
nobody here wrote. With ``--no-spice`` the outputs are left out.

Usage::

    python validation/make_example_case.py [OUTPUT] [--no-spice]
    # default OUTPUT: xbarref/data/example_case.h5 ; ngspice needs ~3 s per input
"""

from __future__ import annotations

import argparse
import pathlib
import time

import numpy as np

from xbarref import __version__
from xbarref.circuit import Crossbar
from xbarref.io.case import Case, read_case, write_case
from xbarref.io.netlist import SPICE_OPTIONS

SEED = 20261126
M = N = 64
G_MIN, G_MAX = 1e-6, 100e-6      # S
R_SOURCE, R_SINK, R_WIRE = 100.0, 50.0, 2.0   # ohm
N_INPUTS, V_MAX = 4, 0.3         # V

DEFAULT_OUTPUT = pathlib.Path(__file__).resolve().parents[1] / "xbarref" / "data" / "example_case.h5"


def example_case():
    """The example crossbar and inputs (no outputs)."""
    rng = np.random.default_rng(SEED)
    G = rng.uniform(G_MIN, G_MAX, (M, N))
    V = rng.uniform(-V_MAX, V_MAX, (N_INPUTS, M))
    xb = Crossbar(G, r_source=R_SOURCE, r_sink=R_SINK, r_wire_row=R_WIRE, r_wire_col=R_WIRE)
    return Case(xb, V)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", default=str(DEFAULT_OUTPUT))
    parser.add_argument("--no-spice", action="store_true", help="do not store ngspice outputs")
    args = parser.parse_args(argv)
    case = example_case()
    if not args.no_spice:
        from xbarref.validate.spice import ngspice_version, spice_operating_point

        results = []
        for k in range(case.batch_size):
            res = spice_operating_point(case.crossbar, case.V[k])
            print(f"input {k}: ngspice {res.seconds:.2f} s")
            results.append(res)
        solver = (f"{ngspice_version()} .op ({SPICE_OPTIONS[len('.options '):]}), "
                  f"netlist by xbarref {__version__}")
        case = case.with_outputs(
            I=np.stack([r.I for r in results]),
            V_row=np.stack([r.V_row for r in results]),
            V_col=np.stack([r.V_col for r in results]),
            solver=solver,
        )
    start = time.perf_counter()
    write_case(case, args.output)
    back = read_case(args.output)
    np.testing.assert_array_equal(back.V, case.V)
    print(f"wrote {args.output} in {time.perf_counter() - start:.2f} s "
          f"({pathlib.Path(args.output).stat().st_size} bytes)")


if __name__ == "__main__":
    main()
