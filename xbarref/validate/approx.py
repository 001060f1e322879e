"""Fast approximate crossbar models, to be judged against the golden suites.

Each model is a function ``model(crossbar, V) -> I`` with ``V`` of shape (B, M) in
volts and ``I`` of shape (B, N) in amperes, the signature that
:func:`xbarref.validate.compare.run_candidate` takes. None of them is exact; the
comparison (``docs/validation.md``) shows where each one breaks down.

``ideal``
    ``I = V @ G``: no parasitic resistance, linear device.

``first-order``
    The line-drop equations of the crossbar evaluated once from the ideal device
    currents. Every device current ``G[i,j] * V[i]`` flows along its row wire from the
    driver and down its column wire to the sense amplifier; the current in a row
    segment is the sum of the device currents beyond it, the current in a column
    segment the sum of the device currents above it, and the node voltages follow
    from cumulative sums of (segment resistance x segment current), including the
    source and sink resistances. The device currents are then recomputed from the
    resulting row and column node voltages (with the device law, so ``sinh`` devices
    are handled) and summed per column. These are the equations of the iterative
    parasitic solver of Sandia's CrossSim (T. P. Xiao, B. Feinberg, C. H. Bennett,
    V. Agarwal, M. J. Marinella, "Analysis and mitigation of parasitic resistance
    effects for analog in-memory neural network acceleration", Semicond. Sci. Technol.
    36, 114004 (2021)), which repeats this step with under-relaxation until the node
    voltages stop changing; a single step is the first-order (one-pass) IR-drop
    correction used by fast simulators. ``iterations > 1`` repeats the step (plain
    fixed-point iteration, no relaxation; it diverges when ``r G (M + N)^2`` is of
    order 1 or larger).

``aihwkit``
    The analytic IR-drop model of IBM's aihwkit (``IOParameters.ir_drop``,
    ``ir_drop_g_ratio``; M. J. Rasch et al., "Using the IBM analog in-memory hardware
    acceleration kit for neural network training and inference", APL Machine Learning
    1, 026115 (2023); formula as in aihwkit's forward pass,
    ``ForwardBackwardPassIOManaged::applyIrDrop``). Only the output (column) wires
    are modelled; source, sink and row wire resistances are ignored, and the device is
    taken as linear. With normalized inputs ``x_i = V_i / max|V|`` and per column ``j``

        a_j = M * r_col_j * sum_i G_ij |V_i| / max|V|        (dimensionless load)
        c_j = a_j (a_j (0.05 a_j - 0.2) + 0.5)               (fitted polynomial)
        I_j = sum_i G_ij V_i - c_j * sum_i G_ij V_i (1 - p_i^2)

    where ``p_i`` is the position of row ``i`` counted from the row farthest from the
    sense amplifier: aihwkit uses ``p = 1 - j'/M`` for its input ``j'``; in the
    topology of ``docs/case-format.md`` the sink is below row ``M - 1`` and row
    0 is farthest, so we take ``j' = M - 1 - i``, ``p_i = (i + 1) / M``, which gives
    the largest drop to row 0. ``r_col_j`` is the mean column-wire segment resistance
    of column ``j`` (aihwkit's ``1 / ir_drop_g_ratio`` times its ``g_max``). For small
    loads ``c ~ a / 2`` reproduces the first-order drop of a uniform column.

Public API: :data:`MODELS`, :func:`ideal`, :func:`first_order`, :func:`aihwkit_ir_drop`.
"""

from __future__ import annotations

import numpy as np

from xbarref.circuit.crossbar import Crossbar, check_inputs
from xbarref.circuit.laws import device_law
from xbarref.errors import XbarrefError

__all__ = ["MODELS", "ideal", "first_order", "aihwkit_ir_drop", "get_model"]


def _check(crossbar, V):
    if not isinstance(crossbar, Crossbar):
        raise XbarrefError(f"crossbar: expected a Crossbar, got {type(crossbar).__name__}")
    return check_inputs(V, crossbar.shape[0])


def ideal(crossbar, V):
    """Ideal output currents ``V @ G`` in A (no wires, linear device)."""
    V = _check(crossbar, V)
    return V @ crossbar.G


def _device_current(crossbar, v):
    """Device currents (A) at device voltages ``v`` (V), element-wise with ``G``."""
    if not (crossbar.is_linear or crossbar.device == "sinh"):
        raise XbarrefError("crossbar.device: the approximate models handle 'linear' and 'sinh' only")
    return device_law(crossbar).currents(v, crossbar.G)


def first_order(crossbar, V, iterations=1):
    """First-order line-drop correction (one or more fixed-point steps).

    Parameters
    ----------
    crossbar : Crossbar
    V : array_like, shape (B, M)
        Input voltages in V.
    iterations : int
        Number of steps from the ideal device currents (1: the one-pass model).

    Returns
    -------
    ndarray, shape (B, N)
        Output currents in A.
    """
    V = _check(crossbar, V)
    if int(iterations) < 1:
        raise XbarrefError(f"iterations: must be >= 1, got {iterations}")
    M, N = crossbar.shape
    rs = crossbar.r_source[None, :]                # (1, M)
    rk = crossbar.r_sink[None, :]                  # (1, N)
    rr = crossbar.r_wire_row[None]                 # (1, M, N-1)
    rc = crossbar.r_wire_col[None]                 # (1, M-1, N)
    Idev = crossbar.G[None] * V[:, :, None]        # ideal device currents (B, M, N)
    for _ in range(int(iterations)):
        row_total = Idev.sum(axis=2)               # (B, M) current leaving each driver
        col_total = Idev.sum(axis=1)               # (B, N) current into each sink
        Vr = np.empty_like(Idev)
        Vr[:, :, 0] = V - rs * row_total
        if N > 1:
            # row segment k (between columns k, k+1) carries the currents of columns > k
            beyond = row_total[:, :, None] - np.cumsum(Idev, axis=2)[:, :, :-1]
            Vr[:, :, 1:] = Vr[:, :, :1] - np.cumsum(rr * beyond, axis=2)
        Vc = np.empty_like(Idev)
        Vc[:, -1, :] = rk * col_total
        if M > 1:
            # column segment k (between rows k, k+1) carries the currents of rows <= k
            above = np.cumsum(Idev, axis=1)[:, :-1, :]
            drop = rc * above
            Vc[:, :-1, :] = Vc[:, -1:, :] + np.cumsum(drop[:, ::-1, :], axis=1)[:, ::-1, :]
        Idev = _device_current(crossbar, Vr - Vc)
    return Idev.sum(axis=1)


def aihwkit_ir_drop(crossbar, V):
    """aihwkit's analytic column-wire IR-drop model (see the module docstring).

    Returns
    -------
    ndarray, shape (B, N)
        Output currents in A.
    """
    V = _check(crossbar, V)
    M, N = crossbar.shape
    G = crossbar.G
    I0 = V @ G
    if M < 2:
        return I0
    r_col = crossbar.r_wire_col.mean(axis=0)          # (N,) mean segment resistance per column
    vmax = np.max(np.abs(V), axis=1, keepdims=True)   # (B, 1)
    safe = np.where(vmax > 0, vmax, 1.0)
    a = M * r_col[None, :] * (np.abs(V) @ G) / safe   # (B, N)
    c = a * (a * (0.05 * a - 0.2) + 0.5)
    p = (np.arange(M) + 1.0) / M
    weighted = (V * (1.0 - p * p)[None, :]) @ G
    return I0 - c * weighted


#: Model name -> function(crossbar, V) -> I.
MODELS = {
    "ideal": ideal,
    "first-order": first_order,
    "aihwkit": aihwkit_ir_drop,
}


def get_model(name):
    """The model function called ``name`` (one of :data:`MODELS`)."""
    if name not in MODELS:
        raise XbarrefError(f"model: expected one of {sorted(MODELS)}, got {name!r}")
    return MODELS[name]
