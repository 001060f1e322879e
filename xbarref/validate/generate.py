"""Golden-suite generator: presets of crossbar cases, solved exactly, a subset by ngspice.

Each preset is a list of *case specifications* (plain dicts, stored in the suite as
``generator_params``) spanning size, resistance regime, device law, conductance
pattern and input kind. :func:`build_case` draws one case from its specification with
its own seeded ``numpy.random.Generator``; :func:`solve_case` solves it with
:func:`xbarref.circuit.solve` and, for small cases, checks it with ngspice;
:func:`make_suite` runs them as tasks of the common run engine
(:func:`xbarref.sweep.run`: local worker processes, or a Dask cluster) and returns a
:class:`~xbarref.validate.suite.Suite`.

Units: conductances in S, resistances in ohm, voltages in V, currents in A.

Diagnostic probes (group ``diagnostic``; the ``diagnostic`` preset, also appended to
``standard`` and ``large``) are small cases in which one part of the circuit model acts
alone (device law, source, sink, row wires, column wires, one line different, both
orientations); :mod:`xbarref.validate.diagnose` fits them to say which part of a
candidate's circuit model is wrong.

Public API: :data:`PRESETS`, :func:`preset_specs`, :func:`build_case`,
:func:`solve_case`, :func:`make_suite`.
"""

from __future__ import annotations

import time

import numpy as np

from xbarref.circuit import warm_up
from xbarref.circuit.crossbar import Crossbar
from xbarref.errors import XbarrefError
from xbarref.io.case import Case
from xbarref.sweep import make_tasks, run
from xbarref.validate.suite import Suite, SuiteCase

__all__ = ["PRESETS", "preset_specs", "build_case", "solve_case", "make_suite",
           "NGSPICE_MAX_SIZE", "V_READ", "G_MIN", "G_MAX"]

#: Largest max(M, N) whose cases ngspice checks (ngspice needs ~0.5 s at 32 x 32).
NGSPICE_MAX_SIZE = 32
#: Inputs per case that ngspice solves.
NGSPICE_INPUTS = 4
#: Tolerance of the ngspice flag: max|I - I_spice| / max|I_spice|.
NGSPICE_TOL = {"linear": 1e-9, "sinh": 1e-7}
#: Default read voltage (V), device conductance range (S).
V_READ = 0.2
G_MIN = 1e-6
G_MAX = 1e-4

#: Resistance regimes: (r_wire per segment, r_source, r_sink) in ohm.
REGIMES = {
    "ideal": (0.0, 0.0, 0.0),          # every resistance an ideal short: I = V @ G exactly
    "weak": (0.05, 1.0, 1.0),
    "moderate": (0.5, 10.0, 10.0),
    "strong": (2.5, 50.0, 50.0),
    "wires-only": (1.0, 0.0, 0.0),     # zero source and sink resistance
    "terminals-only": (0.0, 100.0, 100.0),  # zero wire resistance
    "nonuniform": (1.0, 10.0, 10.0),   # per-segment wires, log-uniform in [0.2, 5] x nominal
    "columns-only": (0.5, 0.0, 0.0),   # column (output) wires only: rows, source, sink ideal
}
PATTERNS = ("uniform", "quantized", "sparse", "differential", "extreme")
INPUTS = ("unipolar", "bipolar", "sparse", "binary")
#: Input kinds of the diagnostic probes only (kept out of INPUTS, which the presets iterate).
PROBE_INPUTS = ("one-hot",)
#: Extra all-rows inputs after the M one-hot inputs of the ``one-hot`` input kind.
ONE_HOT_EXTRA = 4

#: Diagnostic probe shape (M rows, N columns): small, non-square, quick to fit.
PROBE_SHAPE = (16, 12)


def _spec(M, N, regime="moderate", device="linear", k=None, pattern="uniform", inputs="unipolar",
          g_max=G_MAX, r_wire=None, group="", B=None):
    if B is None:
        B = 16 if max(M, N) <= 64 else (8 if max(M, N) <= 256 else 2)
    r_w, r_s, r_k = REGIMES[regime]
    if r_wire is not None:
        r_w = float(r_wire)
    return dict(M=int(M), N=int(N), B=int(B), regime=regime, r_wire=r_w, r_source=r_s, r_sink=r_k,
                device=device, sinh_k=k, pattern=pattern, inputs=inputs, g_min=G_MIN * g_max / G_MAX,
                g_max=float(g_max), v_read=V_READ, group=group)


def _standard(sizes):
    specs = []
    # size x regime sweep (error vs size and wire resistance)
    for n in sizes:
        for regime in ("ideal", "weak", "moderate", "strong"):
            specs.append(_spec(n, n, regime, group="size-sweep"))
    # wire-resistance sweep at 64 x 64
    for r in (0.01, 0.1, 0.3, 1.0, 3.0, 10.0):
        specs.append(_spec(64, 64, "wires-only", r_wire=r, group="wire-sweep"))
    # conductance-level sweep at 64 x 64, 1 ohm wires
    for g in (1e-6, 1e-5, 1e-4, 1e-3):
        specs.append(_spec(64, 64, "wires-only", r_wire=1.0, g_max=g, group="g-sweep"))
    # conductance patterns
    for n in (32, 128):
        for p in PATTERNS[1:]:
            specs.append(_spec(n, n, "moderate", pattern=p, group="patterns"))
    # input kinds
    for n in (32, 128):
        for kind in INPUTS[1:]:
            specs.append(_spec(n, n, "moderate", inputs=kind, group="inputs"))
    # zero-resistance limits and non-uniform wires
    for n in (16, 64):
        for regime in ("wires-only", "terminals-only"):
            specs.append(_spec(n, n, regime, group="limits"))
    for n in (32, 128):
        specs.append(_spec(n, n, "nonuniform", group="nonuniform"))
    # column (output) wires only: the case aihwkit's model is made for
    for n in sizes[2:]:
        specs.append(_spec(n, n, "columns-only", group="columns-only"))
    # sinh devices at several k (1/V)
    for n in (16, 64):
        for k in (1.0, 4.0, 10.0):
            specs.append(_spec(n, n, "moderate", device="sinh", k=k, group="sinh"))
    # non-square and degenerate shapes
    for M, N in ((1, 16), (16, 1), (8, 64), (128, 32)):
        specs.append(_spec(M, N, "moderate", pattern="differential" if N % 2 == 0 else "uniform",
                           inputs="bipolar", group="shapes"))
    return specs


def _probe(name, M=None, N=None, r_source=0.0, r_sink=0.0, r_wire_row=0.0, r_wire_col=0.0,
           line=None, device="linear", k=None, inputs="one-hot", isolates=""):
    """A diagnostic probe specification (see :func:`_diagnostic`).

    ``line`` is ``None`` or ``(parameter, index, value)``: that one row (``r_source``,
    ``r_wire_row``) or column (``r_sink``, ``r_wire_col``) gets ``value`` ohm instead
    of the nominal one.
    """
    M = PROBE_SHAPE[0] if M is None else M
    N = PROBE_SHAPE[1] if N is None else N
    B = M + ONE_HOT_EXTRA if inputs == "one-hot" else 16
    return dict(M=int(M), N=int(N), B=int(B), regime=name, probe=name, isolates=isolates,
                r_wire=float(max(r_wire_row, r_wire_col)), r_source=float(r_source), r_sink=float(r_sink),
                r_wire_row=float(r_wire_row), r_wire_col=float(r_wire_col),
                line=None if line is None else [line[0], int(line[1]), float(line[2])],
                device=device, sinh_k=k, pattern="uniform", inputs=inputs, g_min=G_MIN, g_max=G_MAX,
                v_read=V_READ, group="diagnostic")


def _diagnostic():
    """Probe cases that localise a modelling error (what each isolates: ``isolates``)."""
    M, N = PROBE_SHAPE
    specs = [
        _probe("device-only", isolates="device law and current summation: every resistance 0, "
               "so I = V @ G exactly"),
        _probe("device-only", device="sinh", k=4.0, inputs="unipolar",
               isolates="the non-linear device law alone (every resistance 0): I = sum_i G sinh(k V_i) / k"),
    ]
    for r in (30.0, 300.0):
        specs.append(_probe("source-only", r_source=r,
                            isolates="the driver (source) resistance alone: each row is one node"))
    for r in (30.0, 300.0):
        specs.append(_probe("sink-only", r_sink=r,
                            isolates="the sink (sense-amplifier) resistance alone: each column is one node"))
    for r in (1.0, 5.0):
        specs.append(_probe("row-wires-only", r_wire_row=r,
                            isolates="row wire segments alone: their number, placement and value"))
    for r in (1.0, 5.0):
        specs.append(_probe("col-wires-only", r_wire_col=r,
                            isolates="column wire segments alone: their number, placement and value"))
    specs += [
        _probe("one-row-source", r_source=30.0, line=("r_source", M // 3, 300.0),
               isolates="per-row source resistances: one row has 10 x the others"),
        _probe("one-col-sink", r_sink=30.0, line=("r_sink", N // 3, 300.0),
               isolates="per-column sink resistances: one column has 10 x the others"),
        _probe("one-row-wire", r_wire_row=1.0, line=("r_wire_row", M // 3, 5.0),
               isolates="per-row wire resistances: one row's segments are 5 x the others"),
        _probe("one-col-wire", r_wire_col=1.0, line=("r_wire_col", N // 3, 5.0),
               isolates="per-column wire resistances: one column's segments are 5 x the others"),
        _probe("all", M=8, N=24, r_source=10.0, r_sink=10.0, r_wire_row=1.0, r_wire_col=1.0,
               isolates="orientation: wide array (M < N), every resistance non-zero"),
        _probe("all", M=24, N=8, r_source=10.0, r_sink=10.0, r_wire_row=1.0, r_wire_col=1.0,
               isolates="orientation: tall array (M > N), every resistance non-zero"),
    ]
    return specs


def _quick():
    specs = []
    for n in (8, 16, 32):
        for regime in ("ideal", "weak", "strong"):
            specs.append(_spec(n, n, regime, group="size-sweep", B=8))
    specs.append(_spec(16, 16, "wires-only", pattern="quantized", inputs="binary", group="mixed", B=8))
    specs.append(_spec(16, 16, "terminals-only", pattern="sparse", inputs="sparse", group="mixed", B=8))
    specs.append(_spec(16, 24, "nonuniform", pattern="differential", inputs="bipolar", group="mixed", B=8))
    specs.append(_spec(12, 12, "strong", pattern="extreme", group="mixed", B=8))
    specs.append(_spec(8, 8, "moderate", device="sinh", k=4.0, group="sinh", B=4))
    specs.append(_spec(1, 8, "moderate", inputs="bipolar", group="shapes", B=4))
    specs.append(_spec(8, 1, "moderate", group="shapes", B=4))
    return specs


def _large():
    specs = _standard((8, 16, 32, 64, 128, 256))
    for n in (512, 1024):
        for regime in ("weak", "moderate", "strong"):
            specs.append(_spec(n, n, regime, group="size-sweep"))
    return specs + _diagnostic()


#: Preset name -> function returning its case specifications. The diagnostic probes are
#: appended after the earlier cases, so case ``i`` of ``standard`` and ``large`` is drawn
#: from the same seed ``[seed, i]`` and stays bit-identical to the suites made before
#: the probes existed.
PRESETS = {
    "quick": _quick,
    "standard": lambda: _standard((8, 16, 32, 64, 128, 256)) + _diagnostic(),
    "large": _large,
    "diagnostic": _diagnostic,
}


def _case_name(index, spec):
    dev = "lin" if spec["device"] == "linear" else f"sinh{spec['sinh_k']:g}"
    if spec.get("probe"):
        parts = [f"{short}{spec[key]:g}" for key, short in
                 (("r_source", "rs"), ("r_sink", "rk"), ("r_wire_row", "rr"), ("r_wire_col", "rc"))
                 if spec[key] > 0]
        if spec.get("line"):
            param, k, value = spec["line"]
            parts.append(f"{'row' if param in ('r_source', 'r_wire_row') else 'col'}{k}at{value:g}")
        return (f"{index:03d}_{spec['group']}_{spec['M']}x{spec['N']}_{spec['probe']}_"
                f"{'_'.join(parts) or 'r0'}_{dev}_{spec['inputs']}")
    return (f"{index:03d}_{spec['group']}_{spec['M']}x{spec['N']}_{spec['regime']}_"
            f"r{spec['r_wire']:g}_g{spec['g_max']:g}_{dev}_{spec['pattern']}_{spec['inputs']}")


def preset_specs(preset):
    """The named case specifications of a preset.

    Returns
    -------
    list of (str, dict)
        Case name and its specification.
    """
    if preset not in PRESETS:
        raise XbarrefError(f"preset: expected one of {sorted(PRESETS)}, got {preset!r}")
    return [(_case_name(i, s), s) for i, s in enumerate(PRESETS[preset]())]


def _conductances(spec, rng):
    M, N = spec["M"], spec["N"]
    gmin, gmax = spec["g_min"], spec["g_max"]
    p = spec["pattern"]
    if p == "uniform":
        return rng.uniform(gmin, gmax, (M, N))
    if p == "quantized":  # 16 programmable levels
        return gmin + (gmax - gmin) * rng.integers(0, 16, (M, N)) / 15.0
    if p == "sparse":  # 80 % pruned cells are open (G = 0)
        G = rng.uniform(gmin, gmax, (M, N))
        G[rng.random((M, N)) < 0.8] = 0.0
        return G
    if p == "differential":  # columns (2j, 2j+1) hold the pair (G+, G-) of weight w in [-1, 1]
        w = rng.uniform(-1.0, 1.0, (M, (N + 1) // 2))
        G = np.empty((M, 2 * w.shape[1]))
        G[:, 0::2] = gmin + (gmax - gmin) * np.maximum(w, 0.0)
        G[:, 1::2] = gmin + (gmax - gmin) * np.maximum(-w, 0.0)
        return G[:, :N]
    if p == "extreme":  # on/off contrast 1e4: each cell gmax or gmax * 1e-4
        return np.where(rng.random((M, N)) < 0.5, gmax, gmax * 1e-4)
    raise XbarrefError(f"pattern: unknown {p!r}; expected one of {PATTERNS}")


def _inputs(spec, rng):
    B, M, v = spec["B"], spec["M"], spec["v_read"]
    kind = spec["inputs"]
    if kind == "unipolar":
        return rng.uniform(0.0, v, (B, M))
    if kind == "bipolar":
        return rng.uniform(-v, v, (B, M))
    if kind == "sparse":  # 80 % of the inputs are 0 V
        V = rng.uniform(0.0, v, (B, M))
        V[rng.random((B, M)) < 0.8] = 0.0
        return V
    if kind == "binary":  # one bit plane of a bit-serial input: 0 or v_read
        return v * rng.integers(0, 2, (B, M)).astype(np.float64)
    if kind == "one-hot":  # row b alone at v_read (b < M), then all rows in 0..v_read
        V = np.zeros((B, M))
        k = min(B, M)
        V[np.arange(k), np.arange(k)] = v
        V[k:] = rng.uniform(0.0, v, (B - k, M))
        return V
    raise XbarrefError(f"inputs: unknown {kind!r}; expected one of {INPUTS + PROBE_INPUTS}")


_SPEC_KEYS = ("M", "N", "B", "regime", "r_wire", "r_source", "r_sink", "device", "sinh_k", "pattern",
              "inputs", "g_min", "g_max", "v_read")


def build_case(spec, seed):
    """Draw the crossbar and inputs of one case specification.

    Parameters
    ----------
    spec : dict
        A specification from :func:`preset_specs`.
    seed : int or sequence of int
        Entropy of this case's ``numpy.random.Generator``.

    Returns
    -------
    Case
        Without outputs.
    """
    missing = [k for k in _SPEC_KEYS if k not in spec]
    if missing:
        raise XbarrefError(f"spec: missing key(s) {missing}; expected the keys of preset_specs() entries")
    rng = np.random.default_rng(seed)
    M, N = spec["M"], spec["N"]
    G = _conductances(spec, rng)
    if spec.get("probe"):
        return Case(_probe_crossbar(spec, G), _inputs(spec, rng))
    r_w = spec["r_wire"]
    if spec["regime"] == "nonuniform":
        r_row = r_w * np.exp(rng.uniform(np.log(0.2), np.log(5.0), (M, max(N - 1, 0))))
        r_col = r_w * np.exp(rng.uniform(np.log(0.2), np.log(5.0), (max(M - 1, 0), N)))
    elif spec["regime"] == "columns-only":
        r_row, r_col = 0.0, r_w
    else:
        r_row = r_col = r_w
    xb = Crossbar(G, r_source=spec["r_source"], r_sink=spec["r_sink"], r_wire_row=r_row,
                  r_wire_col=r_col, device=spec["device"], sinh_k=spec["sinh_k"])
    return Case(xb, _inputs(spec, rng))


#: Timed solves shorter than this (s) are timed a second time (see :func:`solve_case`).
RETIME_SECONDS = 1.0


def _probe_crossbar(spec, G):
    M, N = G.shape
    r = dict(r_source=np.full(M, spec["r_source"]), r_sink=np.full(N, spec["r_sink"]),
             r_wire_row=np.full((M, max(N - 1, 0)), spec["r_wire_row"]),
             r_wire_col=np.full((max(M - 1, 0), N), spec["r_wire_col"]))
    if spec.get("line"):
        param, index, value = spec["line"]
        if param not in r:
            raise XbarrefError(f"spec line: unknown parameter {param!r}; expected one of {sorted(r)}")
        if param in ("r_source", "r_sink"):
            r[param][index] = value
        elif param == "r_wire_row":
            r[param][index, :] = value
        else:
            r[param][:, index] = value
    return Crossbar(G, device=spec["device"], sinh_k=spec["sinh_k"], **r)


def solve_case(name, spec, seed, ngspice=True):
    """Build, solve exactly and (small cases) check with ngspice; returns a SuiteCase."""
    from xbarref import __version__
    from xbarref.circuit import solve

    case = build_case(spec, seed)
    # Solve time is solve time, never kernel compilation: solve the first input alone
    # first (same circuit, so the same solver path and Numba kernels, which this
    # compiles or loads), then time the whole batch; a timed solve under
    # RETIME_SECONDS (where a leftover first-call cost would matter most) is timed
    # once more and the second time is recorded. The outputs are the same each time.
    solve(case.crossbar, case.V[:1])
    t0 = time.perf_counter()
    sol = solve(case.crossbar, case.V)
    seconds = time.perf_counter() - t0
    if seconds < RETIME_SECONDS:
        t0 = time.perf_counter()
        sol = solve(case.crossbar, case.V)
        seconds = time.perf_counter() - t0
    solved = case.with_outputs(I=sol.I, solver=f"xbarref {__version__} {sol.method}")
    sc = SuiteCase(name=name, case=solved, params=spec, seed=int(seed[-1]) if np.ndim(seed) else int(seed),
                   residual=float(sol.residual), solve_seconds=seconds)
    if ngspice and max(spec["M"], spec["N"]) <= NGSPICE_MAX_SIZE:
        _ngspice_check(sc, spec)
    return sc


def _ngspice_check(sc, spec):
    from xbarref.validate.spice import SpiceError, relative_difference, spice_operating_point

    case = sc.case
    inputs = list(range(min(NGSPICE_INPUTS, case.batch_size)))
    tol = NGSPICE_TOL[spec["device"]]
    worst = 0.0
    try:
        for k in inputs:
            ref = spice_operating_point(case.crossbar, case.V[k], timeout=120)
            worst = max(worst, relative_difference(case.I[k], ref.I))
    except (SpiceError, OSError, XbarrefError) as exc:
        sc.note = f"ngspice failed: {exc}"[:500]
        return
    sc.ngspice_inputs = inputs
    sc.ngspice_max_rel_error = float(worst)
    sc.ngspice_tol = tol
    sc.ngspice_verified = bool(worst <= tol)
    if not sc.ngspice_verified:
        sc.note = f"ngspice differs: {worst:.3g} > {tol:g}"


def _golden_task(p, seed):
    """Task function of the run engine (:func:`xbarref.sweep.run`): solve one suite case.

    Parameters
    ----------
    p : dict
        ``name``, ``spec`` (a :func:`preset_specs` specification), ``seed`` (the case's
        own entropy ``[master seed, index]``) and ``ngspice`` (bool).
    seed : numpy.random.SeedSequence
        The run's per-task seed; ignored: the case draws from its own ``p["seed"]``
        (keyed by the case's place in its preset, which its name carries), so that
        suites stay bit-identical to those made before the run engine existed.

    Returns
    -------
    dict
        ``I`` (A), ``residual``, ``solve_seconds`` (s), ``solver`` (str),
        ``ngspice_inputs`` (int64 array, empty if ngspice did not run),
        ``ngspice_max_rel_error`` and ``ngspice_tol`` (NaN if it did not run),
        ``ngspice_verified`` (0 or 1) and ``note`` (str, may be empty).
    """
    del seed
    sc = solve_case(p["name"], p["spec"], p["seed"], ngspice=bool(p["ngspice"]))
    return {
        "I": np.asarray(sc.case.I, dtype=np.float64),
        "residual": float(sc.residual),
        "solve_seconds": float(sc.solve_seconds),
        "solver": sc.case.solver or "",
        "ngspice_inputs": np.asarray(sc.ngspice_inputs, dtype=np.int64).reshape(-1),
        "ngspice_max_rel_error": float(sc.ngspice_max_rel_error),
        "ngspice_tol": float(sc.ngspice_tol),
        "ngspice_verified": int(bool(sc.ngspice_verified)),
        "note": sc.note or "",
    }


def _suite_case(p, r):
    """Rebuild the SuiteCase of task parameters ``p`` from its stored result ``r`` (the
    circuit and inputs are drawn again from the case's seed: cheap and bit-identical)."""
    case = build_case(p["spec"], p["seed"]).with_outputs(I=np.asarray(r["I"], dtype=np.float64),
                                                          solver=str(r["solver"]) or None)
    return SuiteCase(name=p["name"], case=case, params=p["spec"], seed=int(p["seed"][1]),
                     ngspice_verified=bool(int(r["ngspice_verified"])),
                     ngspice_inputs=[int(k) for k in np.asarray(r["ngspice_inputs"]).reshape(-1)],
                     ngspice_max_rel_error=float(r["ngspice_max_rel_error"]),
                     ngspice_tol=float(r["ngspice_tol"]), residual=float(r["residual"]),
                     solve_seconds=float(r["solve_seconds"]), note=str(r["note"]))


def _cost(spec):
    """Relative cost of a case, to submit the largest first (the pool stays busy to the end)."""
    return spec["M"] * spec["N"] * spec["B"] * (8 if spec["device"] != "linear" else 1)


def make_suite(preset="standard", seed=0, jobs=2, ngspice=True, progress=True, *, scheduler=None,
               resume=False, parts_dir=None, only=None, return_report=False):
    """Generate and solve a golden suite through the run engine :func:`xbarref.sweep.run`.

    Parameters
    ----------
    preset : {"quick", "standard", "large", "diagnostic"}
    seed : int
        Master seed; case ``i`` draws from ``numpy.random.default_rng([seed, i])``, so the
        suite does not depend on ``jobs``, the back end or the order in which tasks finish.
    jobs : int
        Local worker processes (started with ``spawn``); 1 solves in this process.
        Ignored with a scheduler.
    ngspice : bool
        Check the cases with max(M, N) <= :data:`NGSPICE_MAX_SIZE` with ngspice.
    progress : bool
        Show a tqdm progress bar (on standard error).
    scheduler : str, optional
        ``tcp://HOST:PORT`` of a Dask scheduler; default ``$XBARREF_SCHEDULER``, else
        local processes.
    resume : bool
        Reuse the per-case result files already in ``parts_dir``; compute only the others.
    parts_dir : str or os.PathLike, optional
        Folder of the per-case result files (``parts_dir/tasks/<id>.h5``), kept so that an
        interrupted run can resume; the caller removes it once the suite is written.
        Default: a temporary folder, removed before returning.
    only : iterable of str, optional
        Make only these cases of the preset (names from :func:`preset_specs`).
    return_report : bool
        Also return the run's :class:`~xbarref.sweep.RunReport`.

    Returns
    -------
    Suite, or (Suite, RunReport) with ``return_report``

    Raises
    ------
    XbarrefError
        Bad arguments; or, after the other cases were computed and stored, one line per
        case that failed on every attempt (name and error).
    """
    from xbarref import __version__

    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise XbarrefError(f"seed: expected an integer >= 0, got {seed!r}")
    if isinstance(jobs, bool) or not isinstance(jobs, (int, np.integer)) or jobs < 1:
        raise XbarrefError(f"jobs: expected an integer >= 1, got {jobs!r}")
    if resume and parts_dir is None:
        raise XbarrefError("resume: needs parts_dir (the folder of an earlier run's case files)")
    named = preset_specs(preset)
    params = [dict(name=name, spec=spec, seed=[int(seed), i], ngspice=bool(ngspice))
              for i, (name, spec) in enumerate(named)]
    if only is not None:
        wanted = [only] if isinstance(only, str) else list(only)
        unknown = sorted(set(wanted) - {p["name"] for p in params})
        if unknown:
            raise XbarrefError(f"only: no case(s) {unknown} in preset {preset!r}")
        params = [p for p in params if p["name"] in set(wanted)]
    tasks = make_tasks(sorted(params, key=lambda p: -_cost(p["spec"])), int(seed),
                       prefix=lambda p: p["name"])
    if scheduler is None and int(jobs) > 1:
        warm_up()  # compile the solver kernels once here; the local workers load them from the cache
    done = run(tasks, _golden_task, parts_dir, scheduler=scheduler, workers=int(jobs),
               resume=resume, progress=progress, desc=f"golden {preset}", noun="case",
               label=lambda t: t.params["name"])
    results, report = done.results, done.report
    by_name = {t.params["name"]: results[t.id] for t in tasks}
    cases = [_suite_case(p, by_name[p["name"]]) for p in params]
    suite = Suite(cases=cases, preset=preset, seed=int(seed),
                  generator=f"xbarref {__version__} golden make --preset {preset} --seed {seed}")
    return (suite, report) if return_report else suite
