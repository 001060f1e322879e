"""Golden-suite generator: presets of crossbar cases, solved exactly, a subset by ngspice.

Each preset is a list of *case specifications* (plain dicts, stored in the suite as
``generator_params``) spanning size, resistance regime, device law, conductance
pattern and input kind. :func:`build_case` draws one case from its specification with
its own seeded ``numpy.random.Generator``; :func:`solve_case` solves it with
:func:`xbarref.circuit.solve` and, for small cases, checks it with ngspice;
:func:`make_suite` runs them as tasks of the common executor
(:mod:`xbarref.sweep.executor`: local worker processes, or a Dask cluster) and returns a
:class:`~xbarref.validate.suite.Suite`.

Units: conductances in S, resistances in ohm, voltages in V, currents in A.

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
    return specs


#: Preset name -> function returning its case specifications.
PRESETS = {
    "quick": _quick,
    "standard": lambda: _standard((8, 16, 32, 64, 128, 256)),
    "large": _large,
}


def _case_name(index, spec):
    dev = "lin" if spec["device"] == "linear" else f"sinh{spec['sinh_k']:g}"
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
    raise XbarrefError(f"inputs: unknown {kind!r}; expected one of {INPUTS}")


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


def solve_case(name, spec, seed, ngspice=True):
    """Build, solve exactly and (small cases) check with ngspice; returns a SuiteCase."""
    from xbarref import __version__
    from xbarref.circuit import solve

    case = build_case(spec, seed)
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
    """Executor task (:func:`xbarref.sweep.executor.run_tasks`): solve one suite case.

    Parameters
    ----------
    p : dict
        ``name``, ``spec`` (a :func:`preset_specs` specification), ``seed`` (the case's
        own entropy ``[master seed, index]``) and ``ngspice`` (bool).
    seed : numpy.random.SeedSequence
        The executor's per-task seed; ignored: the case draws from its own ``p["seed"]``
        so that suites are bit-identical to those made before the executor existed.

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
    """Generate and solve a golden suite through :func:`xbarref.sweep.executor.run_tasks`.

    Parameters
    ----------
    preset : {"quick", "standard", "large"}
    seed : int
        Master seed; case ``i`` draws from ``numpy.random.default_rng([seed, i])``, so the
        suite does not depend on ``jobs``, the executor or the order in which tasks finish.
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
        Also return the executor's :class:`~xbarref.sweep.executor.RunReport`.

    Returns
    -------
    Suite, or (Suite, RunReport) with ``return_report``

    Raises
    ------
    XbarrefError
        Bad arguments; or, after the other cases were computed and stored, one line per
        case that failed on every attempt (name and error).
    """
    import shutil
    import tempfile

    from xbarref import __version__
    from xbarref.sweep.executor import load_results, make_tasks, run_tasks

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
    own_dir = parts_dir is None
    folder = tempfile.mkdtemp(prefix="xbarref-golden-") if own_dir else parts_dir
    try:
        if scheduler is None and int(jobs) > 1:
            warm_up()  # compile the solver kernels once here; the local workers load them from the cache
        report = run_tasks(tasks, _golden_task, folder, scheduler=scheduler, workers=int(jobs),
                           resume=resume, progress=progress, desc=f"golden {preset}")
        if report.failed:
            lines = [f"  {f.params['name']}: {f.error}" for f in report.failed]
            keep = "" if own_dir else (f"; the {len(tasks) - len(report.failed)} other case(s) are "
                                       f"stored in {folder}, rerun with resume to compute only "
                                       "the failed ones")
            raise XbarrefError(f"golden make: {len(report.failed)} case(s) failed{keep}:\n"
                               + "\n".join(lines))
        results = load_results(folder, tasks)
    finally:
        if own_dir:
            shutil.rmtree(folder, ignore_errors=True)
    by_name = {t.params["name"]: results[t.id] for t in tasks}
    cases = [_suite_case(p, by_name[p["name"]]) for p in params]
    suite = Suite(cases=cases, preset=preset, seed=int(seed),
                  generator=f"xbarref {__version__} golden make --preset {preset} --seed {seed}")
    return (suite, report) if return_report else suite
