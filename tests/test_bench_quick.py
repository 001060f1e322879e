"""The solver benchmark's quick mode runs, and its errors stay within tolerance (exit 0)."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_bench_solver_quick():
    script = os.path.join(ROOT, "validation", "bench_solver.py")
    out = subprocess.run([sys.executable, script, "--quick"], capture_output=True, text=True, timeout=900,
                         cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    # iteration counts per size for both regimes, Newton batch and per-read rows
    for n in (16, 32, 64):
        assert text.count(f"{n}x{n}  ") >= 2
    assert "benchmark" in text and "strong coupling" in text
    assert "Newton, 32 inputs" in text and "64 per-read solves" in text
    assert "load average" in text
