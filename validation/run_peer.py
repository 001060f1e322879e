"""Run a peer crossbar simulator on a golden suite and write a candidate file.

Usage::

    python validation/run_peer.py SUITE.h5 -o CANDIDATE.h5 [--simulator aihwkit]
    xbarref compare SUITE.h5 CANDIDATE.h5 --report report/

Supported peer: IBM's aihwkit (``pip install aihwkit``; not a dependency of xbarref and
not installed by this script) with its built-in IR-drop option
(``IOParameters.ir_drop = 1``, ``ir_drop_g_ratio``). Each case is mapped onto one
analog tile: weights ``W = G^T / g_max`` (``g_max`` the largest conductance of the
case), inputs ``x = V / max|V|`` per input vector, and the tile output is scaled back
by ``g_max * max|V|`` to amperes. Every other non-ideality of the tile is switched off
(no noise, no DAC/ADC quantization or bounds, no noise or bound management), so the
difference from the suite is aihwkit's IR-drop model alone. ``ir_drop_g_ratio`` is
``1 / (r_col * g_max)`` with ``r_col`` the mean column-wire segment resistance of the
case; aihwkit models no row wire, source or sink resistance and no device
non-linearity. Inputs are passed in reverse row order so that aihwkit's most-affected
input is the row farthest from the sense amplifier (row 0 of the case format).

Sandia's CrossSim is detected (``import simulator``) but has no adapter here yet: its
conductance mapping (core styles, normalized ``Rp_row`` / ``Rp_col``) needs to be
matched to arbitrary per-cell conductances first. The script says so.

Exit status: 0 written, 2 no supported simulator installed or bad input.

This script was written against aihwkit's documented API; aihwkit is not installed on
the machines this project is developed on, so it has not been run there.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys


def available():
    """Names of the peer simulators importable here."""
    found = []
    if importlib.util.find_spec("aihwkit") is not None:
        found.append("aihwkit")
    if importlib.util.find_spec("simulator") is not None:
        found.append("crosssim")
    return found


def aihwkit_model():
    """A function ``fn(crossbar, V) -> I`` running aihwkit's IR-drop model."""
    import numpy as np
    import torch
    from aihwkit.simulator.configs import SingleRPUConfig
    from aihwkit.simulator.configs.devices import IdealDevice
    from aihwkit.simulator.parameters.enums import BoundManagementType, NoiseManagementType
    from aihwkit.simulator.tiles import AnalogTile

    def run(crossbar, V):
        M, N = crossbar.shape
        G = np.asarray(crossbar.G)
        g_max = float(G.max())
        if g_max == 0.0:
            return np.zeros((V.shape[0], N))
        r_col = float(crossbar.r_wire_col.mean()) if M > 1 else 0.0
        cfg = SingleRPUConfig(device=IdealDevice())
        fwd = cfg.forward
        fwd.is_perfect = False
        fwd.inp_res = -1.0
        fwd.out_res = -1.0
        fwd.inp_noise = 0.0
        fwd.out_noise = 0.0
        fwd.w_noise = 0.0
        fwd.inp_bound = 1.0
        fwd.out_bound = -1.0
        fwd.bound_management = BoundManagementType.NONE
        fwd.noise_management = NoiseManagementType.NONE
        fwd.ir_drop = 1.0 if r_col > 0 else 0.0
        fwd.ir_drop_g_ratio = 1.0 / (r_col * g_max) if r_col > 0 else 1.0
        tile = AnalogTile(N, M, cfg, bias=False)
        W = (G / g_max).T[:, ::-1].copy()          # (out, in), inputs reversed
        tile.set_weights(torch.tensor(W, dtype=torch.float32))
        vmax = np.max(np.abs(V), axis=1, keepdims=True)
        safe = np.where(vmax > 0, vmax, 1.0)
        x = torch.tensor((V / safe)[:, ::-1].copy(), dtype=torch.float32)
        y = tile.forward(x, is_test=True).detach().cpu().numpy().astype(np.float64)
        return y * g_max * safe

    return run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("suite", metavar="SUITE.h5")
    parser.add_argument("-o", "--output", metavar="CANDIDATE.h5", required=True)
    parser.add_argument("--simulator", choices=("aihwkit", "crosssim"), default=None,
                        help="which peer (default: the first one installed)")
    args = parser.parse_args(argv)
    found = available()
    if not found:
        print("run_peer: no peer simulator installed: neither aihwkit (pip install aihwkit) nor "
              "CrossSim (clone sandialabs/cross-sim and put it on PYTHONPATH) can be imported",
              file=sys.stderr)
        return 2
    which = args.simulator or found[0]
    if which not in found:
        print(f"run_peer: {which} is not installed (found: {', '.join(found)})", file=sys.stderr)
        return 2
    if which == "crosssim":
        print("run_peer: CrossSim is installed but this script has no CrossSim adapter yet "
              "(see the module docstring); use --simulator aihwkit or write fn(crossbar, V) and "
              "call xbarref.validate.run_candidate", file=sys.stderr)
        return 2
    from xbarref.errors import XbarrefError
    from xbarref.validate.suite import read_suite, write_candidate

    try:
        suite = read_suite(args.suite)
        fn = aihwkit_model()
        outputs = {sc.name: fn(sc.case.crossbar, sc.case.V) for sc in suite.cases}
        import aihwkit

        write_candidate(outputs, args.output, solver=f"aihwkit {aihwkit.__version__} ir_drop=1",
                        inputs=(args.suite,))
    except (XbarrefError, FileNotFoundError) as exc:
        print(f"run_peer: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}: aihwkit on {len(outputs)} cases")
    return 0


if __name__ == "__main__":
    sys.exit(main())
