"""Benchmark of the exact crossbar solvers.

For M = N in {64, 128, 256, 512, 1024} (``--sizes``), on the
benchmark crossbar (r_source 500 ohm, r_sink 100 ohm, every wire segment
1 ohm, G uniform in [5, 50] uS from a seeded Generator, inputs uniform in [-0.3, 0.3] V):

xbarref
    assembly (``NodalSystem.from_crossbar``); factorization (``DirectSolver``: SuperLU
    with the nested-dissection order); one input through ``solve(xb, V1)`` (the default
    ``auto`` path: the grid PCG solver), with its iterations and residual; one direct
    solve with the factored solver; a batch of M inputs through ``solve(xb, VB)``
    (batched PCG; the direct batch too for M <= 256); the effective matrix
    ``DirectSolver(xb).effective_matrix()`` (assembly and factorization included); peak
    memory (``ru_maxrss``) after the one-input solve and at the end.
naive baseline
    the same nodal matrix assembled in plain NumPy as a SciPy COO matrix
    (``_bench_util.NaiveSystem``), ``scipy.sparse.linalg.splu`` with default options,
    one ``solve`` call on all right-hand sides (the batch; for the effective matrix the
    N sink-coupling right-hand sides). Where the full call would take minutes, it is
    timed on a 64-column subset and scaled linearly (marked ``~``).

Every size runs in a fresh subprocess (this script re-invoked with a hidden flag), one
for xbarref and one for the baseline, so that peak memory belongs to one method and one
size. Numba kernels are compiled and warmed up on a small crossbar before anything is
timed; anything under 1 s is the best of 3 runs.

Also: Newton on a 128 x 128 sinh crossbar (k = 3 /V, inputs uniform in
[0, 0.5] V, one input) and 1024 reads of a 64 x 64 crossbar with per-read conductances
``G * (1 + 0.05 N(0, 1))`` clipped at 0 (``solve_per_read``), checked against the direct
solver on 32 sampled reads. With ``--ngspice``: ngspice end to end (netlist written by
``xbarref.io.netlist.write_netlist``, run and read back by ``xbarref.validate.spice``)
for sizes <= 128.

Also, per size, one input in two regimes (the benchmark one above and the strong-coupling
one: 30 ohm segments, 0.1-1 mS devices, 10 ohm drivers and sinks) through the line
preconditioner alone and through the default solver (two-level where it applies), with
iterations, error estimates and errors against the direct solver; a peer simulator's
column when ``--peer MODULE:FUNCTION`` names an adapter; and Newton on a batch of 1024
inputs on one 128 x 128 sinh crossbar against the one-input-at-a-time path (and, with
``--baseline-tree DIR``, an older tree's code) in the same run.

``--quick`` runs in one process on sizes 16-64 (seconds once the kernels are compiled)
and exits 1 if any error is above its tolerance (CI runs it).

Run: ``python validation/bench_solver.py [--quick | --sizes 64,128] [--ngspice]
[--peer MODULE:FUNCTION] [--baseline-tree DIR] [--markdown FILE]``. The machine is shared: the load average is printed at the start and
the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import _bench_util as bu  # noqa: E402

ALL_SIZES = (64, 128, 256, 512, 1024)
#: Sizes up to which the direct batch of M inputs is timed.
DIRECT_BATCH_MAX = 256
#: Columns (right-hand sides) of the naive subset used for extrapolation.
SUBSET = 64
#: A naive solve estimated above this many seconds is extrapolated from the subset.
NAIVE_FULL_LIMIT = 180.0
#: A PCG batch estimated above this many seconds is timed on a subset and extrapolated.
PCG_BATCH_LIMIT = 60.0
#: Inputs of the PCG batch subset.
PCG_SUBSET = 16
#: Columns of the effective matrix returned by the workers for the cross-check.
CHECK_COLS = 8
#: Largest size of the naive baseline by default (1024: minutes of factorization and
#: > 10 GB; see --naive-max).
NAIVE_MAX = 512
#: BLAS threads of the worker processes (set by --blas-threads).
BLAS_THREADS = 1
#: Numba threads of the worker processes (set by --numba-threads).
NUMBA_THREADS = 1


# -- workers (each in its own process) ------------------------------------------------------

def _circuit(n, seed):
    """The benchmark crossbar of size n and its inputs: one vector and a batch of n."""
    rng = np.random.default_rng([seed, n])
    xb = bu.make_crossbar(n, n, rng)
    V1 = bu.inputs(1, n, rng)
    VB = bu.inputs(n, n, rng)
    return xb, V1, VB


def _warm_up():
    """Compile and run every kernel once on small crossbars (numba caches to disk)."""
    from xbarref.circuit import DirectSolver, NodalSystem, solve

    rng = np.random.default_rng(12345)
    for n in (8, 9):
        xb = bu.make_crossbar(n, n, rng)
        solve(xb, bu.inputs(1, n, rng))
        solve(xb, bu.inputs(3, n, rng))
        NodalSystem.from_crossbar(xb)
        d = DirectSolver(xb)
        d.solve(bu.inputs(2, n, rng))
        DirectSolver(xb).effective_matrix()


def worker_ours(n, seed):
    from xbarref.circuit import DirectSolver, NodalSystem, solve

    _warm_up()
    xb, V1, VB = _circuit(n, seed)
    out = {"size": n, "rss_start": bu.peak_rss_mb()}
    t, sol = bu.timed(lambda: solve(xb, V1))
    out.update(pcg1=t, pcg1_iter=int(sol.iterations[0]), pcg1_res=sol.residual, pcg1_method=sol.method,
               pcg1_fallback=len(sol.info.get("direct_fallback", ())))
    out["I1"] = sol.I[0].tolist()
    out["rss_one"] = bu.peak_rss_mb()

    out["assemble"], _ = bu.timed(lambda: NodalSystem.from_crossbar(xb))
    # factorization: the DirectSolver's own timing of splu (assembly excluded)
    t_ctor, solver = bu.timed(lambda: DirectSolver(xb))
    factors = [solver.timings["factor"]]
    if t_ctor < 1.0:
        factors += [DirectSolver(xb).timings["factor"] for _ in range(2)]
    out["factor"] = min(factors)
    t, dsol = bu.timed(lambda: solver.solve(V1))
    out.update(direct1=t, direct1_res=dsol.residual)
    out["direct_vs_pcg"] = float(np.abs(dsol.I - sol.I).max() / np.abs(dsol.I).max())
    if n <= DIRECT_BATCH_MAX:
        t, bsol = bu.timed(lambda: solver.solve(VB))
        out.update(direct_batch=t, direct_batch_res=bsol.residual)
    del solver

    # batched PCG: the whole batch, or a subset scaled up when that would take too long
    est = out["pcg1"] * n
    if est <= PCG_BATCH_LIMIT:
        t, bsol = bu.timed(lambda: solve(xb, VB, method="pcg"))
        out.update(pcg_batch=t, pcg_batch_est=False, pcg_batch_n=n)
    else:
        sub = VB[:PCG_SUBSET]
        t, bsol = bu.timed(lambda: solve(xb, sub, method="pcg"))
        out.update(pcg_batch=t * n / PCG_SUBSET, pcg_batch_est=True, pcg_batch_n=PCG_SUBSET)
    out.update(pcg_batch_maxiter=int(bsol.iterations.max()), pcg_batch_res=bsol.residual,
               pcg_batch_method=bsol.method, pcg_batch_fallback=len(bsol.info.get("direct_fallback", ())))
    if n == 256:
        # target: a batch of 64 inputs at 256 x 256, through the default path
        # (currents only: the Schur-complement effective matrix, then V @ A)
        t, b64 = bu.timed(lambda: solve(xb, VB[:64]))
        out.update(pcg_batch64=t, pcg_batch64_res=b64.residual, pcg_batch64_method=b64.method)

    t, A = bu.timed(lambda: DirectSolver(xb).effective_matrix())
    out["effective"] = t
    out["A_cols"] = A[:, :CHECK_COLS].tolist()
    out["rss_end"] = bu.peak_rss_mb()
    return out


def worker_naive(n, seed):
    import scipy.sparse.linalg as spla

    xb, V1, VB = _circuit(n, seed)
    G = np.array(xb.G)
    out = {"size": n, "rss_start": bu.peak_rss_mb()}
    out["assemble"], system = bu.timed(
        lambda: bu.NaiveSystem(G, bu.R_SOURCE, bu.R_SINK, bu.R_WIRE, bu.R_WIRE))
    out["factor"], lu = bu.timed(lambda: spla.splu(system.K))
    out["fill"] = int(lu.L.nnz + lu.U.nnz)
    t, x = bu.timed(lambda: lu.solve(system.rhs(V1)))
    out["solve1"] = t
    out["I1"] = system.currents(x)[0].tolist()

    def rhs_solve(name, make_rhs, cols, mode):
        """Seconds of one solve call on all right-hand sides ``cols``: ``mode`` "full"
        times it; "subset" times the first SUBSET and scales linearly; "auto" times the
        subset and then the full call if the estimate is within NAIVE_FULL_LIMIT."""
        if mode == "full" or len(cols) <= SUBSET:
            t, Y = bu.timed(lambda: lu.solve(make_rhs(cols)))
            return t, False, Y
        sub = cols[:SUBSET]
        t_sub, Y = bu.timed(lambda: lu.solve(make_rhs(sub)))
        est = t_sub * len(cols) / SUBSET
        out[name + "_subset_estimate"] = est
        if mode == "auto" and est <= NAIVE_FULL_LIMIT:
            t, Y = bu.timed(lambda: lu.solve(make_rhs(cols)))
            return t, False, Y
        return est, True, Y

    cols = np.arange(n)
    t, est, _ = rhs_solve("batch", lambda c: system.rhs(VB[c]), cols, "full" if n < 512 else "subset")
    out.update(batch=t, batch_est=est)
    # the effective matrix: N sink-coupling right-hand sides; at 512 measured in full if
    # the subset says it finishes within NAIVE_FULL_LIMIT
    t_rhs, est, Y = rhs_solve("effective", system.sink_rhs, cols, "full" if n < 512 else ("auto" if n == 512 else "subset"))
    t0 = time.perf_counter()
    A_part = system.effective_columns(Y, cols[:Y.shape[1]])
    t_proj = (time.perf_counter() - t0) * (n / Y.shape[1] if est else 1.0)
    out.update(effective_solve=t_rhs + t_proj, effective_est=est)
    out["A_cols"] = A_part[:, :CHECK_COLS].tolist()
    out["rss_end"] = bu.peak_rss_mb()
    return out


def worker_issue3(seed):
    from xbarref.circuit import DirectSolver, solve, solve_per_read

    out = {"rss_start": bu.peak_rss_mb()}
    rng = np.random.default_rng([seed, 3])
    # warm-up: Newton (sinh) and the per-read solver on small crossbars
    small = bu.make_crossbar(8, 8, rng, device="sinh", sinh_k=3.0)
    solve(small, bu.inputs(1, 8, rng, 0.0, 0.5))
    lin = bu.make_crossbar(8, 8, rng)
    solve_per_read(lin, np.stack([lin.G] * 4), bu.inputs(4, 8, rng))
    DirectSolver(lin).solve(bu.inputs(1, 8, rng))

    xb = bu.make_crossbar(128, 128, rng, device="sinh", sinh_k=3.0)
    V = bu.inputs(1, 128, rng, 0.0, 0.5)
    t, sol = bu.timed(lambda: solve(xb, V))
    out.update(newton=t, newton_iter=int(sol.iterations[0]), newton_res=sol.residual,
               newton_method=sol.method)

    xb = bu.make_crossbar(64, 64, rng)
    B = 1024
    G_batch = np.clip(xb.G[None] * (1.0 + 0.05 * rng.standard_normal((B, 64, 64))), 0.0, None)
    V = bu.inputs(B, 64, rng)
    t, sol = bu.timed(lambda: solve_per_read(xb, G_batch, V))
    out.update(per_read=t, per_read_maxiter=int(sol.iterations.max()), per_read_res=sol.residual,
               per_read_method=sol.method, per_read_fallback=len(sol.info.get("direct_fallback", ())))
    sample = rng.choice(B, size=32, replace=False)
    worst = 0.0
    for k in sample:
        ref = DirectSolver(xb.replace(G=G_batch[k])).solve(V[k]).I[0]
        worst = max(worst, float(np.abs(sol.I[k] - ref).max() / np.abs(ref).max()))
    out["per_read_vs_direct"] = worst
    out["rss_end"] = bu.peak_rss_mb()
    return out


# -- regimes, iteration counts, batched Newton, the peer column ----------------------------------

#: The two regimes of the targets: (name, r_source, r_sink, r_wire, G_min, G_max).
REGIMES = (("benchmark", 500.0, 100.0, 1.0, 5e-6, 50e-6),
           ("strong coupling", 10.0, 10.0, 30.0, 1e-4, 1e-3))


def regime_crossbar(regime, n, rng):
    from xbarref.circuit import Crossbar

    _, rs, rk, rw, g0, g1 = regime
    return Crossbar(rng.uniform(g0, g1, size=(n, n)), r_source=rs, r_sink=rk, r_wire_row=rw, r_wire_col=rw)


def load_peer(spec):
    """The peer adapter ``module:function`` (``f(G, r_source, r_sink, r_wire_row, r_wire_col,
    V) -> I`` in SI units), or None. Returns ``(callable or None, note)``."""
    import importlib

    if spec:
        mod, _, fn = spec.partition(":")
        try:
            return getattr(importlib.import_module(mod), fn), f"peer: {spec}"
        except (ImportError, AttributeError) as exc:
            return None, f"peer {spec!r} not loaded ({exc})"
    try:
        importlib.import_module("simulator")
    except ImportError:
        return None, ("no peer simulator installed (CrossSim's 'simulator' package not importable); "
                      "pass --peer MODULE:FUNCTION to add one")
    return None, ("CrossSim ('simulator') is installed: pass --peer MODULE:FUNCTION with an adapter "
                  "f(G, r_source, r_sink, r_wire_row, r_wire_col, V) -> I to time it side by side")


def worker_regimes(n, seed, peer_spec=None):
    """One input in both regimes: line preconditioner alone and the default (two-level where
    it applies), iterations, error estimate and the error against the direct solver."""
    from xbarref.circuit import DirectSolver, grid, solve

    _warm_up()
    peer, _ = load_peer(peer_spec)
    out = {"size": n, "rows": []}
    for k, regime in enumerate(REGIMES):
        rng = np.random.default_rng([seed, n, k])
        xb = regime_crossbar(regime, n, rng)
        V = bu.inputs(1, n, rng)
        ref = DirectSolver(xb).solve(V).I
        p = grid.grid_parameters(xb)
        row = {"regime": regime[0], "block": grid.coarse_block(xb.G, p)}
        t, (I, _, it, est) = bu.timed(lambda: grid.solve_batch(xb.G[None], p, V, 1e-13, 10 * n + 400, False, None))
        row.update(line=t, line_it=int(it[0]), line_est=float(est[0]), line_err=_rel(I, ref))
        t, sol = bu.timed(lambda: solve(xb, V))
        row.update(auto=t, auto_it=int(sol.iterations[0]), auto_est=sol.residual, auto_err=_rel(sol.I, ref),
                   auto_method=sol.method)
        if peer is not None:
            try:
                t, Ip = bu.timed(lambda: np.asarray(peer(np.array(xb.G), xb.r_source, xb.r_sink, xb.r_wire_row,
                                                          xb.r_wire_col, V)).reshape(1, -1))
                row.update(peer=t, peer_err=_rel(Ip, ref))
            except Exception as exc:  # the peer's failure is reported, not ours
                row.update(peer_error=f"{type(exc).__name__}: {exc}".splitlines()[0])
        out["rows"].append(row)
    return out


def newton_crossbar(n, rng):
    """The batched-Newton case: sinh (k = 3 /V), 1 ohm wires, 100 ohm drivers and sinks."""
    from xbarref.circuit import Crossbar

    return Crossbar(rng.uniform(bu.G_MIN, bu.G_MAX, size=(n, n)), r_source=100.0, r_sink=100.0,
                    r_wire_row=1.0, r_wire_col=1.0, device="sinh", sinh_k=3.0)


def worker_newton(seed, n=128, batch=1024, subset=64):
    """Newton on one sinh crossbar: one input, a batch through ``solve`` (batched), and the
    one-input-at-a-time path (the previous code's algorithm) on ``subset`` inputs, scaled."""
    from xbarref.circuit import solve
    from xbarref.circuit.newton import NewtonSolver

    rng = np.random.default_rng([seed, 14])
    small = newton_crossbar(8, rng)
    solve(small, bu.inputs(3, 8, rng, 0.0, 0.5))
    NewtonSolver(small).solve_one(bu.inputs(1, 8, rng, 0.0, 0.5)[0])
    xb = newton_crossbar(n, rng)
    V = bu.inputs(batch, n, rng, 0.0, 0.5)
    out = {"n": n, "batch": batch, "subset": subset}
    t, one = bu.timed(lambda: solve(xb, V[:1]))
    out.update(one=t, one_it=int(one.iterations[0]), one_res=one.residual)
    t0 = time.perf_counter()
    sol = solve(xb, V)
    out.update(batched=time.perf_counter() - t0, batched_it=int(sol.iterations.max()), batched_res=sol.residual,
               batched_single_path=len(sol.info.get("one_input_path", ())))
    solver = NewtonSolver(xb)
    t0 = time.perf_counter()
    I_old = np.array([solver.solve_one(V[k])[1] for k in range(subset)])
    out["per_input"] = (time.perf_counter() - t0) * batch / subset
    out["agree"] = _rel(sol.I[:subset], I_old)
    return out


def worker_newton_baseline(seed, n=128, batch=1024, subset=64):
    """The same batch through another tree's code (``--baseline-tree``), on ``subset``
    inputs scaled to the batch (that code solves input by input)."""
    from xbarref.circuit import solve

    rng = np.random.default_rng([seed, 14])
    small = newton_crossbar(8, rng)
    solve(small, bu.inputs(3, 8, rng, 0.0, 0.5))
    _ = bu.inputs(1, 8, rng, 0.0, 0.5)
    xb = newton_crossbar(n, rng)
    V = bu.inputs(batch, n, rng, 0.0, 0.5)
    t0 = time.perf_counter()
    sol = solve(xb, V[:subset])
    return {"baseline": (time.perf_counter() - t0) * batch / subset, "I": sol.I.tolist()}


# -- this tree against another (--compare-tree) -------------------------------------------------

#: Sizes of the one-input rows of the comparison.
COMPARE_SIZES = (64, 128, 256)


def worker_targets(seed, newton_batch):
    """The rows of the targets, through the public API only (so that any tree runs them):
    one input per size and regime (``solve``), 1024 per-read solves of 64 x 64
    (``solve_per_read``), Newton on a 128 x 128 sinh crossbar for one input and for a
    batch. Each time is the best of several runs; errors are against the direct solver."""
    from xbarref.circuit import DirectSolver, solve, solve_per_read

    _warm_up()
    rng = np.random.default_rng([seed, 77])
    small = newton_crossbar(8, rng)
    solve(small, bu.inputs(3, 8, rng, 0.0, 0.5))
    lin = bu.make_crossbar(8, 8, rng)
    solve_per_read(lin, np.stack([lin.G] * 4), bu.inputs(4, 8, rng))
    out = {"one": []}
    for n in COMPARE_SIZES:
        for k, regime in enumerate(REGIMES):
            rng = np.random.default_rng([seed, n, k])
            xb = regime_crossbar(regime, n, rng)
            V = bu.inputs(1, n, rng)
            ref = DirectSolver(xb).solve(V).I
            fresh = xb.replace()  # the same circuit as a new object: nothing kept from earlier solves
            t0 = time.perf_counter()
            solve(fresh, V)
            t_first = time.perf_counter() - t0
            t, sol = bu.timed(lambda: solve(xb, V), repeat_below=2.0, repeat=15 if n <= 128 else 5)
            out["one"].append({"n": n, "regime": regime[0], "t": t, "first": t_first, "it": int(sol.iterations[0]),
                               "est": float(sol.residual), "err": _rel(sol.I, ref), "method": sol.method})
    rng = np.random.default_rng([seed, 256, 64])
    xb = regime_crossbar(REGIMES[0], 256, rng)
    V = bu.inputs(64, 256, rng)
    solve(xb, V[:2])  # the crossbar's set-up is kept, as for the one-input rows
    t, sol = bu.timed(lambda: solve(xb, V), repeat_below=1.0, repeat=2)
    ref = DirectSolver(xb).solve(V[::16]).I
    out["batch"] = {"t": t, "it": int(sol.iterations.max()) if sol.iterations is not None else 0,
                    "est": float(sol.residual), "err": _rel(sol.I[::16], ref), "method": sol.method}
    rng = np.random.default_rng([seed, 3])
    xb = bu.make_crossbar(64, 64, rng)
    B = 1024
    G_batch = np.clip(xb.G[None] * (1.0 + 0.05 * rng.standard_normal((B, 64, 64))), 0.0, None)
    V = bu.inputs(B, 64, rng)
    t, sol = bu.timed(lambda: solve_per_read(xb, G_batch, V), repeat_below=5.0, repeat=3)
    worst = max(_rel(sol.I[k], DirectSolver(xb.replace(G=G_batch[k])).solve(V[k]).I[0]) for k in range(0, B, 64))
    out["per_read"] = {"t": t, "it": int(sol.iterations.max()), "est": float(sol.residual), "err": worst,
                       "method": sol.method}
    rng = np.random.default_rng([seed, 14])
    xn = newton_crossbar(128, rng)
    Vn = bu.inputs(max(1, newton_batch), 128, rng, 0.0, 0.5)
    t, sol = bu.timed(lambda: solve(xn, Vn[:1]), repeat_below=2.0, repeat=5)
    out["newton_one"] = {"t": t, "it": int(sol.iterations[0]), "est": float(sol.residual), "I": sol.I[0].tolist()}
    if newton_batch:
        t0 = time.perf_counter()
        sol = solve(xn, Vn)
        out["newton_batch"] = {"t": time.perf_counter() - t0, "B": newton_batch, "it": int(sol.iterations.max()),
                               "est": float(sol.residual), "I": sol.I[:8].tolist()}
    return out


def worker_big(seed, effective):
    """One input at 1024 x 1024 in both regimes, and (if ``effective``) the effective matrix."""
    from xbarref.circuit import DirectSolver, solve

    _warm_up()
    out = {"one": []}
    n = 1024
    for k, regime in enumerate(REGIMES):
        rng = np.random.default_rng([seed, n, k])
        xb = regime_crossbar(regime, n, rng)
        V = bu.inputs(1, n, rng)
        t0 = time.perf_counter()
        sol = solve(xb, V)
        t_first = time.perf_counter() - t0
        t0 = time.perf_counter()
        sol = solve(xb, V)
        out["one"].append({"regime": regime[0], "t_first": t_first, "t": time.perf_counter() - t0,
                           "it": int(sol.iterations[0]), "est": float(sol.residual), "method": sol.method,
                           "I": sol.I[0].tolist()})
    if effective:
        rng = np.random.default_rng([seed, n, 0])
        xb = regime_crossbar(REGIMES[0], n, rng)
        t0 = time.perf_counter()
        A = DirectSolver(xb).effective_matrix()
        out["effective"] = time.perf_counter() - t0
        V = bu.inputs(1, n, rng)
        out["effective_vs_pcg"] = _rel(V @ A, np.asarray(out["one"][0]["I"])[None])
        out["rss"] = bu.peak_rss_mb()
    return out


def compare_run(tree, rounds, newton_batch, big, seed):
    """Alternate the targets worker between this tree and ``tree`` ``rounds`` times (so that
    both see the same load); keep each row's best time. Returns the printed tables."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    runs = {"this": [], "base": []}
    extra = ["--compare-newton-batch", str(newton_batch)]
    for r in range(rounds):
        for name, path in (("this", here), ("base", tree)):
            res = _run_worker("targets", 0, seed, timeout=3600, extra_args=extra, pythonpath=path)
            print(f"  round {r + 1}, {name} tree: " + (res.get("error") or f"done in {res['wall']:.1f} s")
                  + f"; load {bu.load_average()}", flush=True)
            if "error" in res:
                raise SystemExit(f"bench_solver: {res['error']}")
            runs[name].append(res)

    def best(name, pick):
        return min(pick(res) for res in runs[name])

    rows = []
    goals = {64: 0.3e-3, 128: 1.2e-3, 256: 8e-3}
    for t, row in enumerate(runs["this"][0]["one"]):
        base_row = runs["base"][0]["one"][t]
        a = best("this", lambda res: res["one"][t]["t"])
        b = best("base", lambda res: res["one"][t]["t"])
        goal = goals[row["n"]]
        fa = best("this", lambda res: res["one"][t]["first"])
        fb = best("base", lambda res: res["one"][t]["first"])
        rows.append([f"one input {row['n']}x{row['n']}, {row['regime']}", fmt_t(b), f"{base_row['it']}",
                     fmt_e(base_row["err"]), fmt_t(a), f"{row['it']}", fmt_e(row["est"]), fmt_e(row["err"]),
                     f"{b / a:.2f}x", f"{fmt_t(fb)} / {fmt_t(fa)}", f"<= {fmt_t(goal)}",
                     "yes" if a <= goal and row["err"] <= 1e-12 else "no"])
    ba_ = best("this", lambda res: res["batch"]["t"])
    bb_ = best("base", lambda res: res["batch"]["t"])
    qa, qb = runs["this"][0]["batch"], runs["base"][0]["batch"]
    rows.append([f"batch of 64, 256x256, benchmark ({qa['method']})", fmt_t(bb_), f"max {qb['it']}",
                 fmt_e(qb["err"]), fmt_t(ba_), f"max {qa['it']}", fmt_e(qa["est"]), fmt_e(qa["err"]),
                 f"{bb_ / ba_:.2f}x", "-", "<= 0.25 s", "yes" if ba_ <= 0.25 and qa["err"] <= 1e-12 else "no"])
    pr_a = best("this", lambda res: res["per_read"]["t"])
    pr_b = best("base", lambda res: res["per_read"]["t"])
    pa, pb = runs["this"][0]["per_read"], runs["base"][0]["per_read"]
    rows.append(["1024 per-read solves 64x64", fmt_t(pr_b), f"max {pb['it']}", fmt_e(pb["err"]), fmt_t(pr_a),
                 f"max {pa['it']}", fmt_e(pa["est"]), fmt_e(pa["err"]), f"{pr_b / pr_a:.2f}x", "-", "<= 0.4 s",
                 "yes" if pr_a <= 0.4 and pa["err"] <= 1e-12 else "no"])
    na = best("this", lambda res: res["newton_one"]["t"])
    nb = best("base", lambda res: res["newton_one"]["t"])
    oa, ob = runs["this"][0]["newton_one"], runs["base"][0]["newton_one"]
    agree = _rel(np.asarray(oa["I"]), np.asarray(ob["I"]))
    rows.append(["Newton 128x128 sinh, one input", fmt_t(nb), str(ob["it"]), "-", fmt_t(na), str(oa["it"]),
                 fmt_e(oa["est"]), f"{agree:.1e} to base", f"{nb / na:.2f}x", "-", "<= 20 ms", "yes" if na <= 0.02 else "no"])
    if newton_batch:
        ba = best("this", lambda res: res["newton_batch"]["t"])
        bb = best("base", lambda res: res["newton_batch"]["t"])
        ra, rb = runs["this"][0]["newton_batch"], runs["base"][0]["newton_batch"]
        agree = _rel(np.asarray(ra["I"]), np.asarray(rb["I"]))
        rows.append([f"Newton 128x128 sinh, batch of {newton_batch}", fmt_t(bb), f"max {rb['it']}", "-", fmt_t(ba),
                     f"max {ra['it']}", fmt_e(ra["est"]), f"{agree:.1e} to base", f"{bb / ba:.2f}x", "-",
                     ">= 5x the one-input-at-a-time code", "see text"])
    out = [(f"this tree against {tree} (best of {rounds} alternating runs each; error = max |I - I_direct| / "
            "max |I_direct|, estimate = the solver's own)", *table(
                ["case", "base", "it", "base error", "this", "it", "estimate", "error", "speed-up",
                 "first call (base / this)", "target", "met"], rows))]
    if big:
        rows = []
        for name, path in (("this", here), ("base", tree)):
            res = _run_worker("big", 0, seed, timeout=3600, extra_args=(["--compare-effective"] if name == "this" else []),
                              pythonpath=path)
            print(f"  1024x1024, {name} tree: " + (res.get("error") or f"done in {res['wall']:.1f} s")
                  + f"; load {bu.load_average()}", flush=True)
            if "error" in res:
                rows.append([name, res["error"], "-", "-", "-", "-"])
                continue
            for r in res["one"]:
                rows.append([name, f"one input, {r['regime']}", fmt_t(r["t"]), f"{r['it']} ({r['method']})",
                             fmt_e(r["est"]), f"first call {fmt_t(r['t_first'])}"])
            if "effective" in res:
                rows.append([name, "effective matrix (assembly + factorization + Schur complement)",
                             fmt_t(res["effective"]), "-", f"{res['effective_vs_pcg']:.1e} vs PCG",
                             f"peak {res['rss']:.0f} MB"])
        out.append(("1024 x 1024 (second call timed; the first includes the coarse set-up)",
                    *table(["tree", "case", "time", "iterations", "estimate", "note"], rows)))
    return out


def quick_run(seed, peer_spec):
    """``--quick``: everything in this process on small sizes, in seconds once compiled.

    Returns ``(text, ok)``; ``ok`` is False when an error goes above its tolerance.
    """
    from xbarref.circuit import DirectSolver, solve, solve_per_read

    lines = []
    ok = True
    peer, peer_note = load_peer(peer_spec)
    lines.append(peer_note)
    rows = []
    for n in (16, 32, 64):
        res = worker_regimes(n, seed, peer_spec)
        for r in res["rows"]:
            ok &= r["line_err"] <= 1e-12 and r["auto_err"] <= 1e-12 and r["auto_est"] <= 1e-12
            rows.append([f"{n}x{n}", r["regime"], fmt_t(r["line"]), str(r["line_it"]), fmt_e(r["line_err"]),
                         fmt_t(r["auto"]), str(r["auto_it"]) + (f" (block {r['block']})" if r["block"] else ""),
                         fmt_e(r["auto_est"]), fmt_e(r["auto_err"]),
                         fmt_t(r.get("peer")) if peer else "-", fmt_e(r.get("peer_err")) if peer else "-"])
    text, _ = table(["M=N", "regime", "line PCG", "it", "error", "default", "it", "estimate", "error",
                     "peer", "peer error"], rows)
    lines += ["one input (error: max |I - I_direct| / max |I_direct|)", text, ""]
    rng = np.random.default_rng([seed, 99])
    xb = newton_crossbar(32, rng)
    V = bu.inputs(32, 32, rng, 0.0, 0.5)
    t, sol = bu.timed(lambda: solve(xb, V))
    lines.append(f"Newton, 32 inputs on one 32x32 sinh crossbar: {fmt_t(t)}, max {int(sol.iterations.max())} "
                 f"iterations, residual {sol.residual:.1e}")
    ok &= sol.residual <= 1e-11
    lin = bu.make_crossbar(32, 32, rng)
    G_batch = np.clip(lin.G[None] * (1.0 + 0.05 * rng.standard_normal((64, 32, 32))), 0.0, None)
    Vr = bu.inputs(64, 32, rng)
    t, sol = bu.timed(lambda: solve_per_read(lin, G_batch, Vr))
    worst = max(_rel(sol.I[k], DirectSolver(lin.replace(G=G_batch[k])).solve(Vr[k]).I[0]) for k in range(0, 64, 8))
    ok &= worst <= 1e-12
    lines.append(f"64 per-read solves of 32x32: {fmt_t(t)}, max {int(sol.iterations.max())} iterations, "
                 f"max rel diff to direct (8 reads) {worst:.1e}")
    return "\n".join(lines), ok


def ngspice_run(n, seed, timeout):
    """ngspice end to end on the one-input circuit of size n: seconds and currents."""
    import tempfile

    from xbarref.io.netlist import node_arrays, write_netlist
    from xbarref.validate.spice import run_ngspice

    xb, V1, _ = _circuit(n, seed)
    with tempfile.TemporaryDirectory(prefix="bench-spice-") as tmp:
        t0 = time.perf_counter()
        path = write_netlist(xb, V1, os.path.join(tmp, "bench.cir"))
        with open(path, encoding="ascii") as handle:
            text = handle.read()
        values = run_ngspice(text, tmp, timeout=timeout)
        I, _, _ = node_arrays(values, n, n)
        seconds = time.perf_counter() - t0
    return seconds, I


def _run_worker(kind, size, seed, timeout=1800, extra_args=(), pythonpath=None):
    """Run a worker in a fresh interpreter; returns its result dict (or an error dict)."""
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    if BLAS_THREADS:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(BLAS_THREADS)
    if NUMBA_THREADS:
        env["NUMBA_NUM_THREADS"] = str(NUMBA_THREADS)
    cmd = [sys.executable, os.path.abspath(__file__), "--_worker", kind, "--_size", str(size),
           "--seed", str(seed), *extra_args]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    wall = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        return {"error": f"worker {kind} {size} failed (exit {proc.returncode}): {tail}"}
    res = json.loads(lines[-1])
    res["wall"] = wall
    return res


# -- formatting -------------------------------------------------------------------------------

def fmt_t(seconds, est=False):
    """Seconds as a short string in ms or s; ``~`` marks an extrapolated value."""
    if seconds is None:
        return "-"
    mark = "~" if est else ""
    if seconds < 1.0:
        return f"{mark}{seconds * 1e3:.3g} ms"
    return f"{mark}{seconds:.3g} s"


def fmt_ratio(a, b):
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.3g}"


def fmt_e(x):
    return "-" if x is None else f"{x:.1e}"


def table(headers, rows):
    """Plain-text and markdown renderings of a table."""
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[k]) for r in cells)) if cells else len(h) for k, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    text = [line, "  ".join("-" * w for w in widths)]
    text += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in cells]
    md = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    md += ["| " + " | ".join(r) + " |" for r in cells]
    return "\n".join(text), "\n".join(md)


def _rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.abs(a - b).max() / np.abs(b).max())


def build_tables(ours, naive, issue3, spice, notes):
    """The result tables as (title, text, markdown) triples."""
    out = []
    sizes = [r["size"] for r in ours if "error" not in r]

    rows = []
    for r in ours:
        if "error" in r:
            continue
        n = r["size"]
        rows.append([
            f"{n}x{n}", fmt_t(r["assemble"]), fmt_t(r["factor"]),
            fmt_t(r["pcg1"]), str(r["pcg1_iter"]) + (" +direct" if r["pcg1_fallback"] else ""),
            fmt_e(r["pcg1_res"]),
            fmt_t(r["direct1"]),
            fmt_t(r["pcg_batch"], r["pcg_batch_est"]) + ("" if not r["pcg_batch_est"]
                                                        else f" ({r['pcg_batch_n']} timed)"),
            str(r["pcg_batch_maxiter"]) + (f" ({r['pcg_batch_fallback']} +direct)" if r["pcg_batch_fallback"] else ""),
            fmt_t(r.get("direct_batch")),
            fmt_t(r["effective"]),
            f"{r['rss_one']:.0f}", f"{r['rss_end']:.0f}",
        ])
    out.append(("xbarref", *table(
        ["M=N", "assemble", "factor", "1 input (PCG)", "PCG it", "residual", "1 direct solve",
         "batch of M (PCG)", "max it", "batch of M (direct)", "eff. matrix", "peak MB (1 input)",
         "peak MB (all)"], rows)))

    rows = []
    by_size = {r["size"]: r for r in naive if "error" not in r}
    for n in sizes:
        r = by_size.get(n)
        if r is None:
            continue
        e2e_eff = r["assemble"] + r["factor"] + r["effective_solve"]
        rows.append([
            f"{n}x{n}", fmt_t(r["assemble"]), fmt_t(r["factor"]), fmt_t(r["solve1"]),
            fmt_t(r["batch"], r["batch_est"]), fmt_t(r["effective_solve"], r["effective_est"]),
            fmt_t(e2e_eff, r["effective_est"]), f"{r['rss_end']:.0f}",
        ])
    out.append(("naive baseline (scipy COO + splu default options; solve times exclude the "
                "factorization)", *table(
                    ["M=N", "assemble", "factor", "1 solve", "batch of M (solve)",
                     "eff. matrix (N solves)", "eff. matrix end to end", "peak MB"], rows)))

    rows = []
    ours_by = {r["size"]: r for r in ours if "error" not in r}
    for n in sizes:
        o, r = ours_by[n], by_size.get(n)
        if r is None:
            continue
        base = r["assemble"] + r["factor"]
        est_b = r["batch_est"] or o["pcg_batch_est"]
        rows.append([
            f"{n}x{n}", fmt_ratio(o["assemble"], r["assemble"]), fmt_ratio(o["factor"], r["factor"]),
            fmt_ratio(o["pcg1"], base + r["solve1"]),
            fmt_ratio(o["assemble"] + o["factor"] + o["direct1"], base + r["solve1"]),
            ("~" if est_b else "") + fmt_ratio(o["pcg_batch"], base + r["batch"]),
            ("~" if r["effective_est"] else "") + fmt_ratio(o["effective"], base + r["effective_solve"]),
            fmt_ratio(o["rss_end"], r["rss_end"]),
            f"{_rel(o['I1'], r['I1']):.1e}", f"{_rel(o['A_cols'], r['A_cols']):.1e}",
        ])
    out.append(("ratios xbarref / naive (end to end: assembly + factorization + solves; < 1 means "
                "xbarref is faster)", *table(
                    ["M=N", "assemble", "factor", "1 input: PCG", "1 input: direct", "batch of M: PCG",
                     "eff. matrix", "peak memory", "max rel diff I", "max rel diff A[:, :8]"], rows)))

    if issue3 is not None and "error" not in issue3:
        r = issue3
        rows = [
            ["Newton, 128x128 sinh (k = 3 /V, V in [0, 0.5] V), 1 input", fmt_t(r["newton"]),
             str(r["newton_iter"]), fmt_e(r["newton_res"]), "-", "<= 0.2 s"],
            ["1024 reads of 64x64, per-read G (5 % Gaussian), solve_per_read", fmt_t(r["per_read"]),
             f"max {r['per_read_maxiter']}" + (f" ({r['per_read_fallback']} +direct)"
                                                if r["per_read_fallback"] else ""), fmt_e(r["per_read_res"]),
             fmt_e(r["per_read_vs_direct"]), "<= 1.5 s, 1e-10"],
        ]
        out.append(("non-linear devices and per-read conductances", *table(
            ["case", "time", "iterations", "residual", "max rel diff to direct (32 reads)", "target"],
            rows)))

    if spice:
        rows = []
        for n, res in spice:
            if "error" in res:
                rows.append([f"{n}x{n}", res["error"], "-", "-", "-"])
                continue
            o = ours_by.get(n)
            rows.append([f"{n}x{n}", fmt_t(res["seconds"]),
                         fmt_t(o["pcg1"]) if o else "-",
                         f"{res['seconds'] / o['pcg1']:.3g}" if o else "-",
                         f"{_rel(o['I1'], res['I']):.1e}" if o else "-"])
        out.append(("ngspice 39, one operating point end to end (netlist written, ngspice run, raw "
                    "file read)", *table(["M=N", "ngspice", "xbarref 1 input (PCG)", "ngspice / xbarref",
                                          "max rel diff I"], rows)))

    rows = []
    t128, t256, t1024 = (ours_by.get(k) for k in (128, 256, 1024))

    def target(name, value, goal, ok):
        rows.append([name, value, goal, "-" if ok is None else ("met" if ok else "NOT met")])

    if t128:
        target("1 input, 128x128 (assembly + solve, residual <= 1e-12)", fmt_t(t128["pcg1"]), "<= 5 ms",
               t128["pcg1"] <= 5e-3 and t128["pcg1_res"] <= 1e-12)
    if t256:
        target("1 input, 256x256", fmt_t(t256["pcg1"]), "<= 30 ms",
               t256["pcg1"] <= 30e-3 and t256["pcg1_res"] <= 1e-12)
        exact64 = t256["pcg_batch64_method"] == "effective-matrix" or t256["pcg_batch64_res"] <= 1e-12
        target(f"batch of 64 inputs, 256x256 (solve(): {t256['pcg_batch64_method']})",
               fmt_t(t256["pcg_batch64"]), "<= 1 s", t256["pcg_batch64"] <= 1.0 and exact64)
    if t1024:
        target("1 input, 1024x1024", fmt_t(t1024["pcg1"]), "<= 1 s",
               t1024["pcg1"] <= 1.0 and t1024["pcg1_res"] <= 1e-12)
        target("peak memory, 1 input, 1024x1024", f"{t1024['rss_one']:.0f} MB", "<= 4 GB",
               t1024["rss_one"] <= 4096)
    for n in (256, 512):
        o, r = ours_by.get(n), by_size.get(n)
        if o and r:
            speedup = (r["assemble"] + r["factor"] + r["effective_solve"]) / o["effective"]
            target(f"effective matrix {n}x{n} vs naive", ("~" if r["effective_est"] else "") + f"{speedup:.3g}x faster",
                   ">= 5x", speedup >= 5)
    if issue3 is not None and "error" not in issue3:
        target("Newton 128x128 sinh, 1 input", fmt_t(issue3["newton"]), "<= 0.2 s", issue3["newton"] <= 0.2)
        target("1024 per-read solves, 64x64", fmt_t(issue3["per_read"]), "<= 1.5 s, within 1e-10 of direct",
               issue3["per_read"] <= 1.5 and issue3["per_read_vs_direct"] <= 1e-10)
    if rows:
        out.append(("targets", *table(["target", "measured", "goal", "status"], rows)))
    return out


def regime_tables(regimes, newton, peer_spec):
    """Tables of the two regimes (iterations per size) and of the batched Newton solve."""
    out = []
    rows = []
    for res in regimes:
        if "error" in res:
            rows.append([f"{res['size']}x{res['size']}", res["error"]] + ["-"] * 9)
            continue
        n = res["size"]
        for r in res["rows"]:
            rows.append([f"{n}x{n}", r["regime"], fmt_t(r["line"]), str(r["line_it"]), fmt_e(r["line_err"]),
                         fmt_t(r["auto"]), str(r["auto_it"]) + (f" (block {r['block']})" if r["block"] else ""),
                         fmt_e(r["auto_est"]), fmt_e(r["auto_err"]),
                         fmt_t(r.get("peer")) if "peer" in r else r.get("peer_error", "-"),
                         fmt_e(r.get("peer_err"))])
    out.append(("one input in both regimes: line preconditioner alone and the default solver (two-level "
                "where it applies); error = max |I - I_direct| / max |I_direct|", *table(
                    ["M=N", "regime", "line PCG", "it", "error", "default", "it", "estimate", "error",
                     "peer" + (f" ({peer_spec})" if peer_spec else ""), "peer error"], rows)))
    if newton and "error" not in newton:
        r = newton
        rows = [["one input", fmt_t(r["one"]), str(r["one_it"]), fmt_e(r["one_res"]), "-"],
                [f"batch of {r['batch']} (batched Newton)", fmt_t(r["batched"]), f"max {r['batched_it']}",
                 fmt_e(r["batched_res"]), "1"],
                [f"batch of {r['batch']}, one input at a time ({r['subset']} timed, scaled)",
                 fmt_t(r["per_input"], True), "-", "-", f"{r['per_input'] / r['batched']:.3g}x"]]
        if "baseline" in r:
            rows.append([f"batch of {r['batch']}, --baseline-tree code ({r['subset']} timed, scaled)",
                         fmt_t(r["baseline"], True), "-", "-", f"{r['baseline'] / r['batched']:.3g}x"])
        elif "baseline_error" in r:
            rows.append(["--baseline-tree", r["baseline_error"], "-", "-", "-"])
        out.append((f"Newton on one {r['n']}x{r['n']} sinh crossbar (k = 3 /V, 1 ohm wires, 100 ohm drivers "
                    f"and sinks, V in [0, 0.5] V); batched vs one-at-a-time agree to {r['agree']:.1e}", *table(
                        ["case", "time", "iterations", "residual", "time / batched"], rows)))
    return out


def _print_tables(tables, header, footer, markdown):
    """Print ``tables`` (title, text, markdown) and ``footer``; write them as markdown too
    when ``markdown`` names a file. Returns the exit status 0."""
    print()
    for title, text, _ in tables:
        print(title)
        print(text)
        print()
    print("\n".join(footer))
    if markdown:
        md = [header.replace("\n", "  \n"), ""]
        for title, _, mdtab in tables:
            md += [f"**{title}**", "", mdtab, ""]
        md += [line + "  " for line in footer]
        bu.atomic_write_text(markdown, "\n".join(md) + "\n")
        print(f"markdown written to {markdown}")
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default=None, help="comma-separated M = N values (default 64,...,1024)")
    p.add_argument("--quick", action="store_true",
                   help="seconds: sizes 16-64 in one process (both regimes, Newton batch, per-read), "
                        "exit 1 if an error is above its tolerance")
    p.add_argument("--peer", metavar="MODULE:FUNCTION", default=os.environ.get("XBARREF_BENCH_PEER"),
                   help="a peer simulator's adapter f(G, r_source, r_sink, r_wire_row, r_wire_col, V) -> I, "
                        "timed side by side (default $XBARREF_BENCH_PEER)")
    p.add_argument("--baseline-tree", metavar="DIR",
                   help="an older xbarref tree (e.g. from git archive) whose Newton batch is timed in the "
                        "same run")
    p.add_argument("--compare-tree", metavar="DIR",
                   help="time the rows of the targets in this tree and in DIR (e.g. the main branch), "
                        "alternating, and print the speed-ups (only this comparison runs)")
    p.add_argument("--compare-rounds", type=int, default=2, help="alternating rounds of --compare-tree")
    p.add_argument("--compare-newton-batch", type=int, default=1024,
                   help="inputs of the Newton batch of --compare-tree (0: none)")
    p.add_argument("--compare-big", action="store_true",
                   help="with --compare-tree: also one input at 1024 x 1024 and the effective matrix there")
    p.add_argument("--compare-effective", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--ngspice", action="store_true", help="also time ngspice for sizes <= 128")
    p.add_argument("--ngspice-timeout", type=float, default=900.0, help="seconds per ngspice run")
    p.add_argument("--naive-max", type=int, default=NAIVE_MAX,
                   help=f"largest size of the naive baseline (default {NAIVE_MAX})")
    p.add_argument("--blas-threads", type=int, default=1,
                   help="OPENBLAS_NUM_THREADS / OMP_NUM_THREADS of the timed processes (default 1: "
                        "with 2 threads on a loaded 2-core machine SuperLU's multi-right-hand-side "
                        "solves were measured ~13x slower; 0 = inherit)")
    p.add_argument("--numba-threads", type=int, default=1,
                   help="NUMBA_NUM_THREADS of the timed processes (default 1: on the shared 2-core "
                        "machine, load ~10, the parallel kernels with 2 threads were measured up to 6x "
                        "slower; 0 = inherit)")
    p.add_argument("--no-issue3", action="store_true", help="skip the Newton and per-read rows")
    p.add_argument("--markdown", metavar="FILE", help="also write the tables as markdown")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--_worker", help=argparse.SUPPRESS)
    p.add_argument("--_size", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args._worker:
        if args._worker == "ours":
            res = worker_ours(args._size, args.seed)
        elif args._worker == "naive":
            res = worker_naive(args._size, args.seed)
        elif args._worker == "issue3":
            res = worker_issue3(args.seed)
        elif args._worker == "regimes":
            res = worker_regimes(args._size, args.seed, args.peer)
        elif args._worker == "newton":
            res = worker_newton(args.seed)
        elif args._worker == "newton_baseline":
            res = worker_newton_baseline(args.seed)
        elif args._worker == "targets":
            res = worker_targets(args.seed, args.compare_newton_batch)
        elif args._worker == "big":
            res = worker_big(args.seed, args.compare_effective)
        else:
            p.error(f"unknown worker {args._worker!r}")
        print(json.dumps(res))
        return 0

    if args.sizes:
        try:
            sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
        except ValueError:
            p.error(f"--sizes: expected comma-separated integers, got {args.sizes!r}")
        if not sizes or min(sizes) < 2:
            p.error("--sizes: every size must be >= 2")
    else:
        sizes = list(ALL_SIZES)
    if args.quick:
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        print(f"bench_solver --quick: {started}, {platform.node()}, {os.cpu_count()} cores; load average "
              f"(1/5/15 min) {bu.load_average()}", flush=True)
        t0 = time.perf_counter()
        text, ok = quick_run(args.seed, args.peer)
        print(text)
        print(f"load average at end: {bu.load_average()}; {time.perf_counter() - t0:.1f} s")
        if not ok:
            print("bench_solver --quick: an error is above its tolerance", file=sys.stderr)
        return 0 if ok else 1

    import scipy

    global BLAS_THREADS, NUMBA_THREADS
    BLAS_THREADS = args.blas_threads
    NUMBA_THREADS = args.numba_threads
    if BLAS_THREADS:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(BLAS_THREADS)
    load_start = bu.load_average()
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    header = (f"bench_solver: {started}, {platform.node()}, {os.cpu_count()} cores, Python "
              f"{platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}\n"
              f"circuit: r_source {bu.R_SOURCE:g} ohm, r_sink {bu.R_SINK:g} ohm, wires {bu.R_WIRE:g} ohm, "
              f"G uniform [{bu.G_MIN * 1e6:g}, {bu.G_MAX * 1e6:g}] uS, inputs uniform "
              f"[-{bu.V_MAX:g}, {bu.V_MAX:g}] V, seed {args.seed}\n"
              f"timed processes: BLAS threads {BLAS_THREADS or 'inherited'}, Numba threads "
              f"{NUMBA_THREADS or os.environ.get('NUMBA_NUM_THREADS', 'inherited (all cores)')}\n"
              f"load average at start (1/5/15 min): {load_start}  (shared machine: timings vary)")
    print(header, flush=True)

    if args.compare_tree:
        tables = compare_run(args.compare_tree, max(1, args.compare_rounds), args.compare_newton_batch,
                             args.compare_big, args.seed)
        footer = [f"load average at end (1/5/15 min): {bu.load_average()}"]
        return _print_tables(tables, header, footer, args.markdown)

    ours, naive, notes = [], [], []
    for n in sizes:
        res = _run_worker("ours", n, args.seed)
        res.setdefault("size", n)
        ours.append(res)
        print(f"  xbarref {n}x{n}: " + (res["error"] if "error" in res else f"done in {res['wall']:.1f} s"),
              flush=True)
        if n <= args.naive_max:
            res = _run_worker("naive", n, args.seed)
            res.setdefault("size", n)
            naive.append(res)
            print(f"  naive   {n}x{n}: " + (res["error"] if "error" in res else f"done in {res['wall']:.1f} s"),
                  flush=True)
        else:
            notes.append(f"naive baseline not run at {n}x{n} (--naive-max {args.naive_max}: its "
                         f"factorization alone takes minutes and >10 GB there)")
    regimes = []
    for n in sizes:
        res = _run_worker("regimes", n, args.seed, extra_args=(["--peer", args.peer] if args.peer else []))
        res.setdefault("size", n)
        regimes.append(res)
        print(f"  regimes {n}x{n}: " + (res["error"] if "error" in res else f"done in {res['wall']:.1f} s"),
              flush=True)
    newton = None
    if not args.no_issue3:
        newton = _run_worker("newton", 0, args.seed, timeout=3600)
        print("  Newton batch: " + (newton["error"] if "error" in newton else f"done in {newton['wall']:.1f} s"),
              flush=True)
        if args.baseline_tree and "error" not in newton:
            base = _run_worker("newton_baseline", 0, args.seed, timeout=3600, pythonpath=args.baseline_tree)
            if "error" in base:
                newton["baseline_error"] = base["error"]
            else:
                newton["baseline"] = base["baseline"]
            print("  Newton baseline: " + (base.get("error") or f"done in {base['wall']:.1f} s"), flush=True)
    issue3 = None
    if not args.no_issue3:
        issue3 = _run_worker("issue3", 0, args.seed)
        print("  Newton and per-read rows: " + (issue3["error"] if "error" in issue3 else f"done in {issue3['wall']:.1f} s"),
              flush=True)
    spice = []
    if args.ngspice:
        for n in [s for s in sizes if s <= 128]:
            try:
                seconds, I = ngspice_run(n, args.seed, args.ngspice_timeout)
                spice.append((n, {"seconds": seconds, "I": I.tolist()}))
            except Exception as exc:  # report, keep the other rows
                spice.append((n, {"error": f"{type(exc).__name__}: {exc}".splitlines()[0]}))
            print(f"  ngspice {n}x{n}: done", flush=True)

    for r in ours + naive + ([issue3] if issue3 else []):
        if "error" in r:
            notes.append(r["error"])
    for r in ours:
        if "error" in r:
            continue
        if r.get("pcg_batch_est"):
            notes.append(f"{r['size']}x{r['size']}: the PCG batch of {r['size']} was timed on {r['pcg_batch_n']} "
                         "inputs and scaled linearly (~)")
        if r["pcg1_method"] != "pcg" or r["pcg_batch_method"] != "pcg":
            notes.append(f"{r['size']}x{r['size']}: PCG did not reach its tolerance on {r['pcg1_fallback']} of 1 "
                         f"(one input) and {r['pcg_batch_fallback']} of {r['pcg_batch_n']} (batch) inputs, "
                         f"which solve() re-solved directly (path {r['pcg1_method']} / {r['pcg_batch_method']}; "
                         "times include that)")
    for r in naive:
        if "error" in r:
            continue
        for key, what in (("batch", "batch"), ("effective", "effective-matrix")):
            sub = r.get(key + "_subset_estimate")
            if sub is None:
                continue
            if r[key + "_est"]:
                notes.append(f"{r['size']}x{r['size']} naive: the {what} solve of {r['size']} right-hand sides "
                             f"estimated from a {SUBSET}-column solve scaled linearly (~)")
            else:
                notes.append(f"{r['size']}x{r['size']} naive: the {what} solve measured in full; the "
                             f"{SUBSET}-column estimate was {fmt_t(sub)} (check of the linear scaling)")
    for r in ours:
        if "error" not in r and r.get("direct_batch") is not None:
            notes.append(f"sizes <= {DIRECT_BATCH_MAX}: 'peak MB (all)' includes the direct batch of M inputs "
                         "(dense right-hand sides and iterative refinement)")
            break

    load_end = bu.load_average()
    tables = build_tables(ours, naive, issue3, spice, notes)
    tables += regime_tables(regimes, newton, args.peer)
    footer = [f"load average at end (1/5/15 min): {load_end}"] + [f"note: {n}" for n in notes]
    return _print_tables(tables, header, footer, args.markdown)


if __name__ == "__main__":
    sys.exit(main())
