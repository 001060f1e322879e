"""Every benchmark script of validation/ runs: each ``bench_*.py --quick`` once.

The numbers a quick run prints mean little (tiny sizes, one repeat); the point is that the
scripts that produce docs/performance.md cannot rot unnoticed.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "validation").glob("bench_*.py"))
# bench_solver.py gets its quick mode from the solver's owners; until it has one it is the
# only script allowed to lack it.
MAY_LACK_QUICK = {"bench_solver.py"}
NEEDS_TORCH = {"bench_nn.py"}


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env["MPLBACKEND"] = "Agg"
    return env


def test_scripts_found():
    assert {"bench_analog.py", "bench_nn.py", "bench_solver.py"} <= {p.name for p in SCRIPTS}


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_quick_run(script, tmp_path, request):
    if script.name in NEEDS_TORCH:
        request.getfixturevalue("torch_module")
    helptext = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True,
                              env=_env(), cwd=tmp_path, timeout=120)
    assert helptext.returncode == 0, f"{script.name} --help failed:\n{helptext.stderr[-2000:]}"
    if "--quick" not in helptext.stdout:
        if script.name in MAY_LACK_QUICK:
            pytest.skip(f"{script.name} has no --quick option yet (its owners add one)")
        pytest.fail(f"{script.name} has no --quick option: every benchmark needs one")
    proc = subprocess.run([sys.executable, str(script), "--quick"], capture_output=True, text=True,
                          env=_env(), cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, (f"{script.name} --quick failed (exit {proc.returncode}):\n"
                                  f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    assert proc.stdout.strip(), f"{script.name} --quick printed nothing"
