"""Progress bars and the compile notice (xbarref.commands.progress)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from xbarref.commands.progress import COMPILE_NOTICE, compile_notice

ROOT = Path(__file__).resolve().parents[1]

KERNEL = """
import numba

@numba.njit(cache=True)
def twice(x):
    return 2.0 * x
"""

RUN = """
import sys
sys.path.insert(0, sys.argv[1])
from xbarref.commands.progress import compile_notice
with compile_notice(package="tinykernel") as state:
    import tinykernel
    tinykernel.twice(1.5)
    tinykernel.twice(2.5)          # already compiled: no second notice
print(state["compiled"])
"""


def test_notice_on_the_first_run_only(tmp_path):
    """A cached kernel compiles in the first process (one notice) and loads from the
    on-disk cache in the second (no notice)."""
    (tmp_path / "mod").mkdir()
    (tmp_path / "mod" / "tinykernel.py").write_text(KERNEL)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"),
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    runs = [subprocess.run([sys.executable, "-c", RUN, str(tmp_path / "mod")], env=env,
                           capture_output=True, text=True, timeout=300) for _ in range(2)]
    for proc in runs:
        assert proc.returncode == 0, proc.stderr
    assert runs[0].stdout.split() == ["1"] and runs[0].stderr.count(COMPILE_NOTICE) == 1
    assert runs[1].stdout.split() == ["0"] and COMPILE_NOTICE not in runs[1].stderr


def test_no_notice_for_other_packages_or_when_disabled(capsys):
    import numba

    @numba.njit
    def thrice(x):
        return 3.0 * x

    with compile_notice() as state:        # this test module is not xbarref
        thrice(1.0)
    assert state["compiled"] == 0
    with compile_notice(enabled=False, package=__name__) as state:
        thrice(2)                          # a new signature compiles, silently
    assert state["compiled"] == 0
    assert COMPILE_NOTICE not in capsys.readouterr().err


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


def test_inference_with_progress_is_one_call(monkeypatch):
    """Batch by batch, with the bar counting tile reads layer by layer: the same
    predictions as one call, and the bar ends exactly at its total."""
    import xbarref
    import xbarref.commands.progress as progress
    import xbarref.data
    from xbarref.commands.infer import _infer_with_progress
    from xbarref.mapping import map_model
    from xbarref.nn import run_inference

    bars = []

    class FakeBar:
        def __init__(self, total, desc, enabled=True, unit="it"):
            self.total, self.n, self.closed = total, 0, False
            bars.append(self)

        def update(self, n=1):
            self.n += n

        def close(self):
            self.closed = True

    monkeypatch.setattr(progress, "progress_bar", FakeBar)
    data = xbarref.data.digits()
    x, y = data.x_test[:40], data.y_test[:40]
    digital = xbarref.load_model()
    model = map_model(digital, "ir_drop", np.random.default_rng(0))
    one = run_inference(model, x, y, 16)
    for kwargs in ({}, {"digital": digital}):
        parts = _infer_with_progress(model, x, y, 16, True, **kwargs)
        assert np.array_equal(one.predictions, parts.predictions)
        assert (parts.n_samples, parts.n_correct) == (one.n_samples, one.n_correct)
        assert bars[-1].closed and bars[-1].n == bars[-1].total > 0
    assert bars[-1].total > 40  # counted in tile reads, not samples
    again = run_inference(model, x, y, 16)  # the operators were put back
    assert np.array_equal(one.predictions, again.predictions)
    assert all(type(layer.matmul).__name__ == "AnalogMatmul"
               for _, layer in model.layers_of_kind("conv2d", "linear"))


# --------------------------------------------------------------- notice from worker processes
WORKER_TASK = """
import numpy as np


def adc_task(params, seed):
    # a kernel the parent never called: the worker compiles it on a cold cache
    from xbarref.devices.converters import ADC

    out = ADC(8).convert(np.linspace(-1e-6, 1e-6, 6).reshape(2, 3), 1e-6)
    return {"value": float(out.sum())}
"""

WORKER_RUN = """
import sys
sys.path.insert(0, sys.argv[1])
import workertask
from xbarref.commands.progress import compile_notice
from xbarref.sweep import make_tasks, run

enabled = sys.argv[2] == "on"
with compile_notice(enabled=enabled) as state:
    done = run(make_tasks([{"i": i} for i in range(4)]), workertask.adc_task, workers=2,
               progress=False)
print(len(done.results), state["compiled"])
"""


def _run_workers(tmp_path, cache, flag):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache),
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env.pop("XBARREF_COMPILE_NOTICE", None)
    proc = subprocess.run([sys.executable, "-c", WORKER_RUN, str(tmp_path / "mod"), flag], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc


def test_worker_processes_relay_the_notice_once(tmp_path):
    """Two spawned workers compile the ADC kernel on a cold cache: the command shows the
    notice once (not once per worker, not zero times) though the parent compiled
    nothing; with the notice off, nothing; on a warm cache, nothing."""
    (tmp_path / "mod").mkdir()
    (tmp_path / "mod" / "workertask.py").write_text(WORKER_TASK)
    quiet = _run_workers(tmp_path, tmp_path / "cache-off", "off")
    assert quiet.stdout.split() == ["4", "0"] and COMPILE_NOTICE not in quiet.stderr
    cold = _run_workers(tmp_path, tmp_path / "cache", "on")
    assert cold.stdout.split() == ["4", "0"]            # the parent compiled nothing itself
    assert cold.stderr.count(COMPILE_NOTICE) == 1, cold.stderr
    warm = _run_workers(tmp_path, tmp_path / "cache", "on")
    assert warm.stdout.split() == ["4", "0"] and COMPILE_NOTICE not in warm.stderr


STUDY_AFTER_WARM_UP = """
import sys
from xbarref.commands.progress import compile_notice, warm_up_for_workers
with compile_notice() as state:
    assert warm_up_for_workers(2)
print(state["compiled"])
"""


def test_study_workers_find_their_kernels_warm(tmp_path):
    """What a study task runs (read noise, ADC, drift) compiles nothing once the parent's
    warm-up ran on the same (fresh) cache: the workers start with every kernel cached,
    so the notice printed before the bar is the only wait for compilation. The study
    runs in one process here so that a kernel the warm-up missed would show the notice
    on its standard error."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"),
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env.pop("XBARREF_COMPILE_NOTICE", None)
    warm = subprocess.run([sys.executable, "-c", STUDY_AFTER_WARM_UP], env=env,
                          capture_output=True, text=True, timeout=900)
    assert warm.returncode == 0, warm.stderr
    assert int(warm.stdout.split()[-1]) > 0 and warm.stderr.count(COMPILE_NOTICE) == 1
    study = subprocess.run(
        [sys.executable, "-m", "xbarref.cli", "study", "--quick", "--only",
         "quantization,read_noise,drift", "--seeds", "1", "--test-samples", "40", "--jobs", "1",
         "-o", str(tmp_path / "out")], env=env, capture_output=True, text=True, timeout=900)
    assert study.returncode == 0, study.stderr
    assert (tmp_path / "out" / "report.md").is_file()
    assert COMPILE_NOTICE not in study.stderr, study.stderr


def test_study_on_a_cold_cache_says_compiling_before_the_bar(tmp_path):
    """``study --jobs 2`` on a fresh cache: the notice comes once, before the first
    progress output (the parent compiles while the user reads it)."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"),
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env.pop("XBARREF_COMPILE_NOTICE", None)
    proc = subprocess.run(
        [sys.executable, "-m", "xbarref.cli", "study", "--quick", "--only", "drift", "--seeds", "2",
         "--test-samples", "40", "--jobs", "2", "-o", str(tmp_path / "out")],
        env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr
    assert err.count(COMPILE_NOTICE) == 1, err
    assert "%|" in err and err.index(COMPILE_NOTICE) < err.index("%|"), err


def test_a_bar_counts_its_elapsed_time_during_one_long_step(capsys):
    """One step of 2.6 s (a single solve): the bar appears after a second and is redrawn
    every second, so the elapsed time counts up before the step ends; disabled: silent."""
    import re
    import time

    from xbarref.commands.progress import progress_bar

    with progress_bar(1, "solving", unit="solve") as bar:
        time.sleep(2.6)
        during = capsys.readouterr().err
        bar.update(1)
    assert re.findall(r"0/1 solve \[00:0(\d) elapsed", during)[-1:] >= ["2"], during
    assert "1/1 solve" in capsys.readouterr().err       # closed at its total
    with progress_bar(1, "quiet", enabled=False) as bar:
        time.sleep(1.3)
        bar.update(1)
    assert capsys.readouterr().err == ""
