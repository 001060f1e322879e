"""Progress bars and the compile notice (xbarref.commands.progress)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from xbarref.commands.progress import (COMPILE_NOTICE, SOLVER_KERNELS, compile_notice,
                                       kernels_need_compiling)

ROOT = Path(__file__).resolve().parents[1]


def test_no_notice_once_the_kernels_ran(capsys):
    from xbarref.circuit import Crossbar, solve

    solve(Crossbar(np.full((4, 3), 1e-5), r_wire_row=1.0, r_wire_col=1.0), np.ones((2, 4)))
    assert not kernels_need_compiling(SOLVER_KERNELS)
    assert compile_notice(SOLVER_KERNELS) is False
    assert capsys.readouterr().err == ""


def test_notice_with_an_empty_cache(tmp_path):
    """With an empty Numba cache folder nothing is cached: the notice is due (checked
    without compiling anything)."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))
    code = ("import sys; from xbarref.commands.progress import SOLVER_KERNELS, compile_notice;"
            "print(compile_notice(SOLVER_KERNELS)); print(compile_notice(SOLVER_KERNELS, enabled=False))")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "False"]
    assert COMPILE_NOTICE in proc.stderr


def test_newton_solve_with_progress_is_one_call():
    from xbarref.circuit import Crossbar, solve
    from xbarref.commands.case import _solve_with_progress

    rng = np.random.default_rng(3)
    xb = Crossbar(rng.uniform(1e-5, 5e-5, (6, 5)), r_source=10.0, r_sink=5.0, r_wire_row=2.0,
                  r_wire_col=2.0, device="sinh", sinh_k=3.0)
    V = rng.uniform(-0.3, 0.3, (7, 6))
    one = solve(xb, V, nodes=True)
    parts = _solve_with_progress(xb, V, True, enabled=False)
    for name in ("I", "V_row", "V_col", "residuals", "iterations"):
        assert np.array_equal(getattr(one, name), getattr(parts, name)), name


def test_inference_with_progress_is_one_call():
    import xbarref
    import xbarref.data
    from xbarref.commands.infer import _infer_with_progress
    from xbarref.mapping import map_model
    from xbarref.nn import run_inference

    data = xbarref.data.digits()
    x, y = data.x_test[:40], data.y_test[:40]
    model = map_model(xbarref.load_model(), "ir_drop", np.random.default_rng(0))
    one = run_inference(model, x, y, 16)
    parts = _infer_with_progress(model, x, y, 16, enabled=False)
    assert np.array_equal(one.predictions, parts.predictions)
    assert (parts.n_samples, parts.n_correct) == (one.n_samples, one.n_correct)
