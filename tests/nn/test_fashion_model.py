"""The bundled Fashion-MNIST CNN: its architecture, and >= 90 % on the real test set."""

import importlib.resources
import os

import numpy as np

from xbarref.cli import main
from xbarref.io.model import load_model
from xbarref.io.idx import FASHION_MNIST_CLASSES, load_fashion_mnist
from xbarref.nn import fashion_cnn, run_inference


def bundled_fashion_path():
    return os.fspath(importlib.resources.files("xbarref") / "data" / "fashion_cnn.h5")


def test_bundled_fashion_model_is_the_zoo_architecture():
    model = load_model(bundled_fashion_path())
    ref = fashion_cnn(rng=0)
    assert model.name == "fashion_cnn" and model.classes == FASHION_MNIST_CLASSES
    assert model.input_shape == (1, 28, 28)
    assert [(n.name, n.layer.kind, n.layer.config()) for n in model.nodes] == \
        [(n.name, n.layer.kind, n.layer.config()) for n in ref.nodes]
    assert model.normalization is not None
    assert 0.2 < model.normalization["mean"][0] < 0.4  # training pixels' mean (~0.29)


def test_bundled_fashion_model_reaches_90_percent(fashion_mnist_dir):
    model = load_model(bundled_fashion_path())
    data = load_fashion_mnist(fashion_mnist_dir)
    result = run_inference(model, data.x_test, data.y_test)
    assert result.n_samples == 10000
    assert result.accuracy >= 0.90
    # the held-out validation images were not trained on, and score alike
    val = run_inference(model, data.x_val, data.y_val)
    assert abs(val.accuracy - result.accuracy) < 0.03


def test_infer_command_on_the_imported_data(fashion_mnist_dir, tmp_path, capsys):
    out = tmp_path / "fm.h5"
    assert main(["data", "fashion-mnist", "-o", str(out)]) == 0
    capsys.readouterr()
    assert main(["infer", bundled_fashion_path(), str(out)]) == 0
    text = capsys.readouterr().out
    assert "samples    10000" in text
    acc = float(text.split("accuracy")[1].split()[0])
    assert acc >= 0.90
    assert np.isfinite(acc)
