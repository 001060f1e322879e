"""A reference that never lies: extreme values, bad options, OS errors, output rules, signals.

Each test builds its own bad input and asserts one of the two honest outcomes: a correct
result (checked against an exact rational reference or a closed form), or a clear
one-line error - never a traceback, a hang or a wrong number with exit status 0.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xbarref.circuit import Crossbar, solve, solve_per_read
import importlib
from xbarref.cli import main
from xbarref.errors import ConvergenceError, XbarrefError
from xbarref.io.case import Case, read_case, write_case

solve_module = importlib.import_module("xbarref.circuit.solve")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --------------------------------------------------------------------------- exact reference

def exact_currents(G, r_source, r_sink, r_row, r_col, V):
    """Output currents of a small crossbar by exact rational nodal analysis (all r > 0)."""
    M, N = G.shape
    F = Fraction
    idx = {}
    for i in range(M):
        for j in range(N):
            idx[("r", i, j)] = len(idx)
            idx[("c", i, j)] = len(idx)
    n = len(idx)
    A = [[F(0)] * n for _ in range(n)]
    b = [F(0)] * n

    def branch(p, q, g):
        A[p][p] += g
        A[q][q] += g
        A[p][q] -= g
        A[q][p] -= g

    for i in range(M):
        g = 1 / F(float(r_source[i]))
        p = idx[("r", i, 0)]
        A[p][p] += g
        b[p] += g * F(float(V[i]))
        for j in range(N):
            if G[i, j] > 0:
                branch(idx[("r", i, j)], idx[("c", i, j)], F(float(G[i, j])))
            if j + 1 < N:
                branch(idx[("r", i, j)], idx[("r", i, j + 1)], 1 / F(float(r_row[i, j])))
            if i + 1 < M:
                branch(idx[("c", i, j)], idx[("c", i + 1, j)], 1 / F(float(r_col[i, j])))
    for j in range(N):
        p = idx[("c", M - 1, j)]
        A[p][p] += 1 / F(float(r_sink[j]))
    # Gaussian elimination, exact
    for k in range(n):
        piv = next(r for r in range(k, n) if A[r][k] != 0)
        A[k], A[piv] = A[piv], A[k]
        b[k], b[piv] = b[piv], b[k]
        for r in range(k + 1, n):
            if A[r][k] != 0:
                f = A[r][k] / A[k][k]
                for c in range(k, n):
                    A[r][c] -= f * A[k][c]
                b[r] -= f * b[k]
    x = [F(0)] * n
    for k in range(n - 1, -1, -1):
        x[k] = (b[k] - sum(A[k][c] * x[c] for c in range(k + 1, n))) / A[k][k]
    return np.array([float(x[idx[("c", M - 1, j)]] / F(float(r_sink[j]))) for j in range(N)])


# --------------------------------------------------------------------------- the solver

class TestExtremeValues:
    """Defects 1 and 3: tiny resistances, tiny conductances."""

    def _grid(self, r, G=None, M=16, N=16, seed=0):
        rng = np.random.default_rng(seed)
        G = rng.uniform(1e-6, 1e-4, (M, N)) if G is None else G
        return Crossbar(G, r_source=10.0, r_sink=10.0, r_wire_row=r, r_wire_col=r), \
            rng.uniform(0, 0.3, (3, M))

    @pytest.mark.parametrize("r", [1e-16, 1e-300, 5e-324])
    def test_tiny_wires_are_shorts(self, r):
        xb, V = self._grid(r)
        sol = solve(xb, V)
        shorted = solve(xb.replace(r_wire_row=0.0, r_wire_col=0.0), V)
        # the 1e-16 ohm segments change no current by more than rounding
        assert np.max(np.abs(sol.I - shorted.I)) <= 1e-14 * np.max(np.abs(shorted.I))
        assert sol.info["conditioned"]["shorted"] == xb.r_wire_row.size + xb.r_wire_col.size
        assert sol.residual <= solve_module.TOL

    def test_short_rule_at_its_limit(self):
        xb, V = self._grid(1.0)
        G = xb.G
        M, N = G.shape
        g_wire = max(G.sum(axis=1).max(), G.sum(axis=0).max())
        r_short = solve_module.SHORT_FRACTION * solve_module.TOL / ((M + N + 2) * g_wire)
        at = solve(xb.replace(r_wire_row=r_short, r_wire_col=r_short), V)
        assert at.info["conditioned"]["shorted"] == xb.r_wire_row.size + xb.r_wire_col.size
        above = None
        try:
            above = solve(xb.replace(r_wire_row=4 * r_short, r_wire_col=4 * r_short), V)
        except ConvergenceError:
            pass  # refusing is honest; a wrong answer is not
        if above is not None:
            assert above.info["conditioned"]["shorted"] == 0
            assert np.max(np.abs(above.I - at.I)) <= 1e-12 * np.max(np.abs(at.I))

    def test_open_rule_at_its_limit(self):
        xb, V = self._grid(1.0)
        M, N = xb.shape
        g_open = solve_module.SHORT_FRACTION * solve_module.TOL * xb.G.max() / (M + N)
        G = xb.G.copy()
        G[3, 4] = g_open
        G[5, 6] = 2 * g_open
        sol = solve(xb.replace(G=G), V)
        assert sol.info["conditioned"]["opened"] == 1
        ref = solve(xb.replace(G=np.where(G <= g_open, 0.0, G)), V)
        assert np.max(np.abs(sol.I - ref.I)) <= 1e-14 * np.max(np.abs(ref.I))

    @pytest.mark.parametrize("g", [1e-170, 1e-200, 1e-300])
    def test_tiny_conductances_solve(self, g):
        xb, V = self._grid(1.0, G=np.full((8, 8), g), M=8, N=8)
        t0 = time.perf_counter()
        sol = solve(xb, V)
        assert time.perf_counter() - t0 < 30
        # 1 ohm wires are ideal next to 1e-200 S devices: I = V @ G, up to r G N ~ 1e-199
        np.testing.assert_allclose(sol.I, V @ xb.G, rtol=1e-12)

    def test_subnormal_outputs_are_refused(self):
        xb, V = self._grid(1.0, G=np.full((8, 8), 1e-320), M=8, N=8)
        with pytest.raises(ConvergenceError, match="resolution of float64"):
            solve(xb, V)

    def test_one_subnormal_device_among_normal_ones(self):
        xb, V = self._grid(1.0)
        G = xb.G.copy()
        G[0, 0] = 1e-320
        sol = solve(xb.replace(G=G), V)
        G[0, 0] = 0.0
        ref = solve(xb.replace(G=G), V)
        assert np.max(np.abs(sol.I - ref.I)) <= 1e-14 * np.max(np.abs(ref.I))

    def test_per_read_tiny_wires(self):
        xb, V = self._grid(1e-300, M=8, N=8)
        G_batch = np.stack([xb.G * (1 + 0.1 * k) for k in range(3)])
        sol = solve_per_read(xb, G_batch, V)
        for k in range(3):
            ref = solve(xb.replace(G=G_batch[k], r_wire_row=0.0, r_wire_col=0.0), V[k])
            assert np.max(np.abs(sol.I[k] - ref.I[0])) <= 1e-14 * np.max(np.abs(ref.I))

    @pytest.mark.parametrize("method,rw", [("pcg", 1.5), ("direct", 1.5), ("auto", 0.0)])
    def test_conditioning_changes_no_bit_of_an_ordinary_circuit(self, monkeypatch, method, rw):
        """The power-of-two scaling is exact: ordinary circuits give bit-identical currents
        and node voltages with and without it (golden suites stay bit-identical)."""
        rng = np.random.default_rng(11)
        xb = Crossbar(rng.uniform(1e-6, 1e-4, (20, 24)), r_source=rng.uniform(1, 20, 20),
                      r_sink=5.0, r_wire_row=rw, r_wire_col=rw)
        V = rng.uniform(0, 0.3, (4, 20))
        a = solve(xb, V, nodes=True, method=method)
        assert a.info["conditioned"]["scale"] != 1.0
        monkeypatch.setattr(solve_module, "conditioned",
                            lambda c, V, tol, G_batch=None: (c, G_batch, 1.0, {}))
        b = solve(xb, V, nodes=True, method=method)
        assert np.array_equal(a.I, b.I)
        assert np.array_equal(a.V_row, b.V_row) and np.array_equal(a.V_col, b.V_col)

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(M=st.integers(1, 2), N=st.integers(1, 2),
           g_exp=st.floats(-320, -1), r_exps=st.lists(st.floats(-300, 5), min_size=4, max_size=4),
           seed=st.integers(0, 2**16))
    def test_exact_or_refused(self, M, N, g_exp, r_exps, seed):
        """Any extreme mix: the currents agree with exact rational arithmetic, or a clear
        error is raised."""
        rng = np.random.default_rng(seed)
        G = 10.0 ** g_exp * rng.uniform(0.2, 1.0, (M, N))
        rs, rk, rr, rc = (10.0 ** e for e in r_exps)
        V = rng.uniform(0.05, 1.0, M)
        xb = Crossbar(G, r_source=rs, r_sink=rk, r_wire_row=rr, r_wire_col=rc)
        ref = exact_currents(G, xb.r_source, xb.r_sink, xb.r_wire_row, xb.r_wire_col, V)
        try:
            sol = solve(xb, V)
        except ConvergenceError:
            return
        scale = np.max(np.abs(ref))
        assert scale > 0
        assert np.max(np.abs(sol.I[0] - ref)) <= 1e-9 * scale, (sol.I[0], ref)


class TestOptions:
    @pytest.mark.parametrize("max_iter", [-5, 0, 2.5, True, "10"])
    def test_bad_max_iter(self, max_iter):
        xb = Crossbar(np.full((4, 4), 1e-5), r_wire_row=1.0, r_wire_col=1.0)
        with pytest.raises(XbarrefError, match="max_iter"):
            solve(xb, np.ones(4), max_iter=max_iter)
        with pytest.raises(XbarrefError, match="max_iter"):
            solve_per_read(xb, np.full((1, 4, 4), 1e-5), np.ones((1, 4)), max_iter=max_iter)

    @pytest.mark.parametrize("tol", [0.0, 1.0, -1e-3, float("nan"), float("inf"), None])
    def test_bad_tol(self, tol):
        xb = Crossbar(np.full((4, 4), 1e-5), r_wire_row=1.0, r_wire_col=1.0)
        with pytest.raises(XbarrefError, match="tol"):
            solve(xb, np.ones(4), tol=tol)

    def test_max_iter_one_is_still_right(self):
        """Too few iterations: the direct fall-back answers, and the result is exact."""
        rng = np.random.default_rng(3)
        xb = Crossbar(rng.uniform(1e-6, 1e-4, (12, 12)), r_source=5.0, r_sink=5.0,
                      r_wire_row=2.0, r_wire_col=2.0)
        V = rng.uniform(0, 0.3, (2, 12))
        sol = solve(xb, V, method="pcg", max_iter=1)
        ref = solve(xb, V, method="direct")
        assert sol.method == "pcg+direct"
        np.testing.assert_allclose(sol.I, ref.I, rtol=1e-12)


class TestResultCheck:
    def test_residual_above_tol_is_an_error(self, monkeypatch):
        real = solve_module.DirectSolver

        class Sloppy(real):
            def solve(self, V, nodes=False):
                sol = super().solve(V, nodes=nodes)
                sol.residuals = np.full(sol.residuals.shape, 3e-6)
                return sol

        monkeypatch.setattr(solve_module, "DirectSolver", Sloppy)
        xb = Crossbar(np.full((4, 4), 1e-5), r_wire_row=1.0, r_wire_col=1.0)
        with pytest.raises(ConvergenceError, match=r"input 0: achieved residual 3e-06"):
            solve(xb, np.ones((2, 4)), method="direct")
        # PCG that does not converge, then a direct fall-back that is not good enough
        with pytest.raises(ConvergenceError, match="achieved residual"):
            solve(xb, np.ones((2, 4)), method="pcg", max_iter=1)

    def test_non_finite_result_is_an_error(self, monkeypatch):
        real = solve_module.DirectSolver

        class Broken(real):
            def solve(self, V, nodes=False):
                sol = super().solve(V, nodes=nodes)
                sol.I[0, 0] = np.nan
                return sol

        monkeypatch.setattr(solve_module, "DirectSolver", Broken)
        xb = Crossbar(np.full((4, 4), 1e-5), r_wire_row=1.0, r_wire_col=1.0)
        with pytest.raises(ConvergenceError, match="non-finite"):
            solve(xb, np.ones(4), method="direct")

    def test_cli_names_the_case(self, tmp_path, capsys, monkeypatch):
        real = solve_module.DirectSolver

        class Sloppy(real):
            def solve(self, V, nodes=False):
                sol = super().solve(V, nodes=nodes)
                sol.residuals = np.full(sol.residuals.shape, 1e-3)
                return sol

        monkeypatch.setattr(solve_module, "DirectSolver", Sloppy)
        path = tmp_path / "case.h5"
        write_case(Case(Crossbar(np.full((4, 4), 1e-5)), np.ones((1, 4))), path)
        code = main(["solve", str(path), "-o", str(tmp_path / "out.h5")])
        err = capsys.readouterr().err
        assert code == 2
        assert str(path) in err and "input 0" in err and "0.001" in err
        assert sorted(os.listdir(tmp_path)) == ["case.h5"]


# --------------------------------------------------------------------------- CLI errors

def small_case(folder, name="case.h5", r=1.0):
    rng = np.random.default_rng(0)
    xb = Crossbar(rng.uniform(1e-6, 1e-4, (6, 5)), r_source=10.0, r_sink=10.0,
                  r_wire_row=r, r_wire_col=r)
    path = os.path.join(folder, name)
    write_case(Case(xb, rng.uniform(0, 0.3, (3, 6))), path)
    return path


def one_line_error(err):
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


class TestCommandErrors:
    def test_tiny_wires_solve_correctly(self, tmp_path, capsys):
        path = small_case(tmp_path, r=1e-16)
        assert main(["solve", path, "-o", str(tmp_path / "out.h5")]) == 0
        got = read_case(tmp_path / "out.h5")
        xb = got.crossbar
        ref = np.array([exact_currents(xb.G, xb.r_source, xb.r_sink, xb.r_wire_row,
                                       xb.r_wire_col, v) for v in got.V])
        assert np.max(np.abs(got.I - ref)) <= 1e-12 * np.max(np.abs(ref))

    def test_permission_error_is_one_line(self, tmp_path, capsys, monkeypatch):
        import tempfile

        path = small_case(tmp_path)

        def denied(*args, **kwargs):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(tmp_path))

        monkeypatch.setattr(tempfile, "mkstemp", denied)
        assert main(["solve", path, "-o", str(tmp_path / "out.h5")]) == 2
        line = one_line_error(capsys.readouterr().err)
        assert "Permission denied" in line and str(tmp_path) in line

    def test_name_too_long(self, tmp_path, capsys):
        path = small_case(tmp_path)
        assert main(["solve", path, "-o", str(tmp_path / ("x" * 300 + ".h5"))]) == 2
        line = one_line_error(capsys.readouterr().err)
        assert "too long" in line.lower()
        assert sorted(os.listdir(tmp_path)) == ["case.h5"]

    def test_bad_numbers_in_options(self, tmp_path, capsys):
        path = small_case(tmp_path)
        assert main(["spice-check", path, "--timeout", "nan"]) == 2
        assert "--timeout" in one_line_error(capsys.readouterr().err)
        assert main(["infer", "--seed", "-1"]) == 2
        assert "--seed" in one_line_error(capsys.readouterr().err)

    def test_fifo_input_does_not_hang(self, tmp_path, capsys):
        fifo = tmp_path / "in.h5"
        os.mkfifo(fifo)
        assert main(["info", str(fifo)]) == 2
        assert "not a regular file" in one_line_error(capsys.readouterr().err)


def _cli(args, **kwargs):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "xbarref.cli", *args], capture_output=True,
                          text=True, timeout=120, env=env, **kwargs)


class TestOperatingSystem:
    def test_full_disk_is_one_line_and_leaves_nothing(self, tmp_path):
        """A file-size limit (EFBIG, like ENOSPC: the write fails mid-way) during the
        write: one line, exit 2, no temporary file (h5py used to crash in its close)."""
        import resource

        path = small_case(tmp_path)
        big = tmp_path / "big.h5"
        rng = np.random.default_rng(0)
        write_case(Case(Crossbar(rng.uniform(1e-6, 1e-4, (64, 64))), rng.uniform(0, 1, (8, 64))), big)

        def limit():
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

        out = tmp_path / "out.h5"
        proc = _cli(["solve", str(big), "-o", str(out), "--nodes", "--no-progress"], preexec_fn=limit)
        assert proc.returncode == 2, proc.stderr
        line = one_line_error(proc.stderr)
        assert "too large" in line.lower() or "no space" in line.lower()
        assert sorted(os.listdir(tmp_path)) == sorted(["case.h5", "big.h5"]), os.listdir(tmp_path)
        assert os.path.exists(path)

    def test_closed_pipe_is_quiet(self, tmp_path):
        path = small_case(tmp_path)
        env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
        proc = subprocess.Popen([sys.executable, "-m", "xbarref.cli", "info", path],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        proc.stdout.close()  # the reader is gone before anything is written (`| head -0`)
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=120) == 0
        assert err == ""


class TestOutputRules:
    def test_existing_output_needs_overwrite(self, tmp_path, capsys):
        path = small_case(tmp_path)
        out = tmp_path / "out.h5"
        out.write_bytes(b"keep me")
        assert main(["solve", path, "-o", str(out)]) == 2
        line = one_line_error(capsys.readouterr().err)
        assert "--overwrite" in line and str(out) in line
        assert out.read_bytes() == b"keep me"
        assert main(["solve", path, "-o", str(out), "--overwrite"]) == 0
        assert read_case(out).I is not None

    @pytest.mark.parametrize("argv", [
        ["netlist", "{case}", "-o", "{out}"],
        ["hardware", "-o", "{out}"],
    ])
    def test_every_command_refuses_an_existing_output(self, tmp_path, capsys, argv):
        path = small_case(tmp_path)
        out = tmp_path / "existing"
        out.write_text("old")
        args = [a.format(case=path, out=out) for a in argv]
        assert main(args) == 2
        assert "--overwrite" in one_line_error(capsys.readouterr().err)
        assert out.read_text() == "old"
        assert main(args + ["--overwrite"]) == 0
        assert out.read_text() != "old"

    def test_fifo_and_device_are_never_replaced(self, tmp_path, capsys):
        path = small_case(tmp_path)
        fifo = tmp_path / "out.fifo"
        os.mkfifo(fifo)
        for target in (str(fifo), os.devnull):
            assert main(["solve", path, "-o", target, "--overwrite"]) == 2
            assert "not a regular file" in one_line_error(capsys.readouterr().err)
        import stat

        assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
        assert stat.S_ISCHR(os.stat(os.devnull).st_mode)

    def test_symlink_leaving_the_folder_is_refused(self, tmp_path, capsys):
        path = small_case(tmp_path)
        (tmp_path / "elsewhere").mkdir()
        victim = tmp_path / "elsewhere" / "victim.h5"
        victim.write_bytes(b"victim")
        (tmp_path / "out").mkdir()
        link = tmp_path / "out" / "link.h5"
        os.symlink(victim, link)
        assert main(["solve", path, "-o", str(link), "--overwrite"]) == 2
        assert "symbolic link" in one_line_error(capsys.readouterr().err)
        assert victim.read_bytes() == b"victim" and os.path.islink(link)

    def test_symlink_within_the_folder_writes_its_target(self, tmp_path, capsys):
        path = small_case(tmp_path)
        target = tmp_path / "target.h5"
        target.write_bytes(b"old")
        os.symlink("target.h5", tmp_path / "link.h5")
        assert main(["solve", path, "-o", str(tmp_path / "link.h5"), "--overwrite"]) == 0
        assert os.path.islink(tmp_path / "link.h5")
        assert read_case(target).I is not None


# --------------------------------------------------------------------------- signals

DRIVER = textwrap.dedent('''
    import os, sys, time
    sys.path.insert(0, {tests!r})
    import numpy as np
    mode = sys.argv[1]
    if mode == "kernel":
        import importlib
        solve_module = importlib.import_module("xbarref.circuit.solve")  # the module, not the function
        real = solve_module.solve_batch
        def flagged(*a):
            print("kernel", file=sys.stderr, flush=True)
            return real(*a)
        solve_module.solve_batch = flagged
    elif mode == "write":
        import xbarref.io.case as case_module
        real = case_module.write_case_group
        def slow(group, case):
            real(group, case)
            print("writing", file=sys.stderr, flush=True)
            t = time.time()
            while time.time() - t < 4:
                sum(range(1000))
        case_module.write_case_group = slow
    from xbarref.cli import main
    sys.exit(main(sys.argv[2:]))
''')


def _start(tmp_path, mode, args):
    script = tmp_path.parent / f"driver_{mode}.py"
    script.write_text(DRIVER.format(tests=os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))

    def reset():
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    return subprocess.Popen([sys.executable, str(script), mode, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, preexec_fn=reset)


def _wait_for(proc, flag, timeout=120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        line = proc.stderr.readline()
        if not line:
            break
        if line.strip() == flag:
            return
    proc.kill()
    raise AssertionError(f"the child never reached {flag!r}")


@pytest.fixture(scope="module")
def big_case(tmp_path_factory):
    folder = tmp_path_factory.mktemp("big")
    rng = np.random.default_rng(0)
    xb = Crossbar(rng.uniform(1e-6, 1e-4, (384, 384)), r_source=10.0, r_sink=10.0,
                  r_wire_row=1.0, r_wire_col=1.0)
    path = folder / "big.h5"
    write_case(Case(xb, rng.uniform(0, 0.3, (8, 384))), path)
    return path


class TestSignalHandler:
    """The handler of the command, in this process (SIGINT only: SIGTERM's default
    action would end the test run)."""

    def test_raises_in_ordinary_code(self):
        from xbarref import _signals

        with pytest.raises(KeyboardInterrupt):
            _signals._handler(signal.SIGINT, sys._getframe())
        with pytest.raises(KeyboardInterrupt):
            _signals._raise_for(signal.SIGINT)
        from xbarref.errors import Terminated

        with pytest.raises(Terminated):
            _signals._raise_for(signal.SIGTERM)
        assert _signals.exit_status(Terminated()) == 143
        assert _signals.exit_status(KeyboardInterrupt()) == 130

    def test_redelivers_from_a_numba_frame(self, monkeypatch):
        """Inside Numba's own Python code (where the crash happened) the handler does not
        raise; it asks for the signal again, to land after Numba has returned."""
        from xbarref import _signals

        asked = []
        monkeypatch.setattr(_signals._thread, "interrupt_main", asked.append)
        namespace = {"__name__": "numba.core.serialize", "sys": sys}
        exec("def boxing(handler):\n    return handler(2, sys._getframe())", namespace)
        assert namespace["boxing"](_signals._handler) is None
        assert asked == [signal.SIGINT]

    def test_deferred_block_delivers_at_its_end(self):
        from xbarref import _signals

        done = []
        before = signal.getsignal(signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):
            with _signals.deferred():
                os.kill(os.getpid(), signal.SIGINT)
                for _ in range(10_000):
                    pass  # the signal has arrived; the handler only records it
                done.append(True)
        assert done == [True]
        assert signal.getsignal(signal.SIGINT) is before


class TestSignals:
    @pytest.mark.parametrize("sig,status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
    def test_inside_the_numba_kernel(self, tmp_path, big_case, sig, status):
        out = tmp_path / "out.h5"
        proc = _start(tmp_path, "kernel", ["solve", str(big_case), "-o", str(out), "--no-progress"])
        _wait_for(proc, "kernel")
        time.sleep(0.3)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == status, err
        assert "Traceback" not in err and "SystemError" not in err
        assert os.listdir(tmp_path) == []

    @pytest.mark.parametrize("sig,status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
    def test_during_the_hdf5_write(self, tmp_path, sig, status):
        path = small_case(tmp_path)
        out = tmp_path / "out.h5"
        proc = _start(tmp_path, "write", ["solve", path, "-o", str(out)])
        _wait_for(proc, "writing")
        proc.send_signal(sig)
        stdout, err = proc.communicate(timeout=120)
        assert proc.returncode == status, err
        assert "wrote" not in stdout
        assert sorted(os.listdir(tmp_path)) == ["case.h5"]


POOL_DRIVER = textwrap.dedent('''
    import os, sys, time
    sys.path.insert(0, {helpers!r})
    import pool_helpers

    def run():
        from xbarref import _signals
        from xbarref.sweep.executor import make_tasks, run_tasks

        _signals.install()
        mode = sys.argv[1]
        tasks = make_tasks([{{"k": k, "dir": sys.argv[2]}} for k in range(4)], 0)
        fn = pool_helpers.solving_task if mode == "inprocess" else pool_helpers.sleeping_task
        try:
            run_tasks(tasks, fn, sys.argv[3], workers=1 if mode == "inprocess" else 2,
                      progress=False, retries=3)
        except KeyboardInterrupt as exc:
            sys.exit(_signals.exit_status(exc))
        sys.exit(0)

    if __name__ == "__main__":
        run()
''')

POOL_HELPERS = textwrap.dedent('''
    import os, sys, time
    import numpy as np

    def sleeping_task(params, seed):
        with open(os.path.join(params["dir"], f"{os.getpid()}.pid"), "w") as fh:
            fh.write(str(os.getpid()))
        time.sleep(600)
        return {"x": 1.0}

    def solving_task(params, seed):
        from xbarref.circuit import Crossbar, solve
        rng = np.random.default_rng(0)
        xb = Crossbar(rng.uniform(1e-6, 1e-4, (384, 384)), r_source=10.0, r_sink=10.0,
                      r_wire_row=1.0, r_wire_col=1.0)
        print("task", file=sys.stderr, flush=True)
        for _ in range(20):
            solve(xb, rng.uniform(0, 0.3, (8, 384)), method="pcg")
        return {"x": 1.0}
''')


def _start_pool(tmp_path, mode):
    helpers = tmp_path / "helpers"
    helpers.mkdir()
    (helpers / "pool_helpers.py").write_text(POOL_HELPERS)
    (helpers / "driver.py").write_text(POOL_DRIVER.format(helpers=str(helpers)))
    pids = tmp_path / "pids"
    pids.mkdir()
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))

    def reset():
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    proc = subprocess.Popen([sys.executable, str(helpers / "driver.py"), mode, str(pids),
                             str(tmp_path / "out")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, preexec_fn=reset)
    return proc, pids


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by its parent) counts as gone
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _worker_pids(pids, n=2, timeout=120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        found = [int(p.stem) for p in pids.glob("*.pid")]
        if len(found) >= n:
            return found
        time.sleep(0.2)
    raise AssertionError("the workers never started")


class TestWorkers:
    @pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL, signal.SIGINT])
    def test_workers_die_with_their_parent(self, tmp_path, sig):
        proc, pids = _start_pool(tmp_path, "pool")
        workers = _worker_pids(pids)
        proc.send_signal(sig)
        proc.communicate(timeout=120)
        if sig != signal.SIGKILL:
            assert proc.returncode == 128 + sig
        t0 = time.time()
        while any(_alive(p) for p in workers) and time.time() - t0 < 20:
            time.sleep(0.2)
        assert not any(_alive(p) for p in workers)
        assert not list((tmp_path / "out" / "tasks").glob("*.h5"))

    def test_in_process_interrupt_is_not_a_task_failure(self, tmp_path):
        proc, _ = _start_pool(tmp_path, "inprocess")
        _wait_for(proc, "task")
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 130, err
        assert "SystemError" not in err and "Traceback" not in err
        assert not (tmp_path / "out" / "failed.json").exists()
        assert not list((tmp_path / "out" / "tasks").glob("*.h5"))


class TestAtomicHelper:
    def test_interrupt_in_the_body_leaves_nothing(self, tmp_path):
        from xbarref.io.atomic import atomic_file

        out = tmp_path / "x.txt"
        with pytest.raises(KeyboardInterrupt):
            with atomic_file(out, text=True) as fh:
                fh.write("partial")
                raise KeyboardInterrupt
        assert os.listdir(tmp_path) == []

    def test_rules_in_the_library(self, tmp_path):
        from xbarref.errors import OutputExistsError
        from xbarref.io.atomic import check_output, write_bytes

        out = tmp_path / "x.bin"
        write_bytes(out, b"one")
        with pytest.raises(OutputExistsError, match="overwrite=True") as info:
            write_bytes(out, b"two")
        assert info.value.path == str(out)
        assert "--" not in str(info.value)  # library messages name arguments, not flags
        write_bytes(out, b"two", overwrite=True)
        assert out.read_bytes() == b"two"
        with pytest.raises(XbarrefError, match="input"):
            check_output(out, overwrite=True, inputs=[out])
        with pytest.raises(XbarrefError, match="does not exist"):
            check_output(tmp_path / "no" / "x.bin")
        assert sorted(os.listdir(tmp_path)) == ["x.bin"]

    def test_hdf5_writer_refuses_before_writing(self, tmp_path):
        from xbarref.errors import OutputExistsError
        from xbarref.io.h5 import atomic_h5

        out = tmp_path / "x.h5"
        out.write_bytes(b"keep")
        entered = []
        with pytest.raises(OutputExistsError):
            with atomic_h5(out, overwrite=False) as f:
                entered.append(f)
        assert entered == [] and out.read_bytes() == b"keep"
