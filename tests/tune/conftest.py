"""Shared fixtures of the tune tests: a small trained CNN with batchnorm on the bundled digits."""

import numpy as np
import pytest

from xbarref.io.data import load_dataset
from xbarref.io.model import load_model
from xbarref.commands.infer import bundled_model_path


@pytest.fixture(scope="session")
def digits():
    return load_dataset()


@pytest.fixture(scope="session")
def trained_cnn():
    """The bundled trained digits CNN (98.9 % test accuracy)."""
    return load_model(bundled_model_path())


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
