import os
import sys

import numpy as np
import pytest

# The task functions of the tests live in sweep_helpers.py next to this file; worker
# processes (spawned pools, Dask workers) import it by name.
HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (HERE, os.environ.get("PYTHONPATH")) if p)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A tiny MLP (64 -> 12 -> 10) trained for 3 epochs on the bundled digits, saved to a
    model file."""
    from xbarref.io import load_dataset, save_model
    from xbarref.nn import Adam, fit, mlp

    data = load_dataset()
    model = mlp((1, 8, 8), hidden=(12,), rng=np.random.default_rng(5))
    fit(model, data.x_train, data.y_train, Adam(model.named_parameters(), lr=0.01), epochs=3,
        batch_size=32, rng=np.random.default_rng(6))
    folder = tmp_path_factory.mktemp("tiny_model")
    path = folder / "tiny.h5"
    save_model(model, path)
    return path


def tiny_spec_text(model_path, seeds=3, extra=""):
    """A sweep over the tiny model: 2 wire resistances x (programming noise only), 24 samples."""
    return f"""
[sweep]
name = "tiny"
seed = 11
seeds = {seeds}
samples = 24
batch_size = 8

[grid]
"parasitics.r_wire_row" = [0.35, 5.0]
"noise.read_scale" = [0.0]
"noise.programming_scale" = [3.0]
"tiles.rows" = [32]

[[models]]
name = "tiny"
model = "{model_path}"
{extra}
"""
