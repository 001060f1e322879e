"""A model with a dataset split, checked against each other (:func:`load_inputs`); the
bundled model's path is re-exported from :mod:`xbarref.io.model`."""

from __future__ import annotations

from xbarref.errors import XbarrefError
from xbarref.io.data import load_dataset
from xbarref.io.model import BUNDLED_MODEL, bundled_model_path, load_model

__all__ = ["BUNDLED_MODEL", "bundled_model_path", "load_inputs"]


def load_inputs(model_path, data_path, split="test"):
    """Load the model and the chosen split of the dataset, checking they fit each other.

    ``model_path`` / ``data_path`` None: the bundled digits CNN / UCI digits.

    Returns
    -------
    model : xbarref.nn.Model
    x, y : numpy.ndarray
    dataset : xbarref.io.data.Dataset
    """
    model = load_model(bundled_model_path() if model_path is None else model_path)
    dataset = load_dataset(data_path)
    x, y = (dataset.x_test, dataset.y_test) if split == "test" else (dataset.x_train, dataset.y_train)
    data_name = "bundled digits" if data_path is None else data_path
    if tuple(x.shape[1:]) != tuple(model.input_shape):
        raise XbarrefError(f"data_path: samples of {data_name} have shape {tuple(x.shape[1:])}, the model "
                           f"expects input_shape {tuple(model.input_shape)}")
    if model.classes is not None and len(model.classes) != len(dataset.classes):
        raise XbarrefError(f"data_path: {data_name} has {len(dataset.classes)} classes, the model "
                           f"{len(model.classes)}")
    return model, x, y, dataset
