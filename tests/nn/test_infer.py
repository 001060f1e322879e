"""The bundled digits model and the ``xbarref infer`` command."""

import re

import numpy as np

from xbarref.cli import main
from xbarref.commands.infer import bundled_model_path
from xbarref.io.data import Dataset, load_dataset, save_dataset
from xbarref.io.model import load_model
from xbarref.nn import run_inference


def test_bundled_model_reaches_97_percent():
    model = load_model(bundled_model_path())
    data = load_dataset()
    assert model.name == "digits_cnn" and model.classes == data.classes
    result = run_inference(model, data.x_test, data.y_test)
    assert result.n_samples == 360
    assert result.accuracy >= 0.97


def test_infer_defaults_print_accuracy_samples_and_timing(capsys):
    assert main(["infer"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^samples\s+360$", out, re.M)
    acc = float(re.search(r"^accuracy\s+([0-9.]+) \((\d+)/360\)$", out, re.M).group(1))
    assert acc >= 0.97
    assert re.search(r"^time\s+[0-9.]+ s \(\d+ samples/s, batch size 256\)$", out, re.M)


def test_infer_explicit_files_and_split(capsys):
    data = load_dataset()
    assert main(["infer", bundled_model_path(), "--split", "train", "--batch-size", "100"]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"^samples\s+{len(data.y_train)}$", out, re.M)


def test_infer_rejects_data_of_the_wrong_shape(tmp_path, capsys):
    rng = np.random.default_rng(0)
    other = Dataset(x_train=rng.uniform(0, 1, (4, 1, 6, 6)), y_train=np.arange(4),
                    x_test=rng.uniform(0, 1, (3, 1, 6, 6)), y_test=np.arange(3),
                    classes=[str(i) for i in range(10)], name="tiny")
    path = tmp_path / "tiny.h5"
    save_dataset(other, path)
    assert main(["infer", bundled_model_path(), str(path)]) == 2
    err = capsys.readouterr().err
    assert "data_path" in err and str(path) in err and "(1, 6, 6)" in err and "(1, 8, 8)" in err


def test_infer_missing_model_file(tmp_path, capsys):
    assert main(["infer", str(tmp_path / "missing.h5")]) == 2
    assert "missing.h5" in capsys.readouterr().err
