import os
import shutil

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", deadline=None, derandomize=True, max_examples=60,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "dev", deadline=None, max_examples=30,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def _opted_out(var):
    """Only an explicit XBARREF_SKIP_NGSPICE=1 / XBARREF_SKIP_TORCH=1 / XBARREF_SKIP_DASK=1
    outside CI opts out."""
    return os.environ.get(var, "") not in ("", "0") and os.environ.get("CI", "") != "true"


@pytest.fixture(scope="session")
def ngspice_path():
    """Path of ngspice; a missing ngspice fails the test (CI must install it)."""
    path = shutil.which("ngspice")
    if path is None:
        if _opted_out("XBARREF_SKIP_NGSPICE"):
            pytest.skip("XBARREF_SKIP_NGSPICE=1 was set")
        pytest.fail("ngspice is required but not on PATH: apt-get install -y ngspice")
    return path


@pytest.fixture(scope="session")
def distributed_module():
    """The dask.distributed module; a missing Dask fails the test (CI must install it)."""
    try:
        import distributed
    except ImportError:
        if _opted_out("XBARREF_SKIP_DASK"):
            pytest.skip("XBARREF_SKIP_DASK=1 was set")
        pytest.fail("dask.distributed is required but not installed: pip install 'xbarref[dask]'")
    return distributed


@pytest.fixture(scope="session")
def torch_module():
    """The torch module; a missing torch fails the test (CI must install it)."""
    try:
        import torch
    except ImportError:
        if _opted_out("XBARREF_SKIP_TORCH"):
            pytest.skip("XBARREF_SKIP_TORCH=1 was set")
        pytest.fail("torch is required but not installed: pip install torch==2.13.0")
    return torch


@pytest.fixture(scope="session")
def fashion_mnist_dir():
    """Folder of the Debian package's Fashion-MNIST IDX files; missing files fail the
    test (CI must install the package)."""
    from xbarref.io.idx import FASHION_MNIST_DIR, FASHION_MNIST_FILES

    def present(stem):
        return any(os.path.isfile(os.path.join(FASHION_MNIST_DIR, stem + ext)) for ext in ("", ".gz"))

    if not all(present(stem) for stem in FASHION_MNIST_FILES.values()):
        if _opted_out("XBARREF_SKIP_FASHION_MNIST"):
            pytest.skip("XBARREF_SKIP_FASHION_MNIST=1 was set")
        pytest.fail(f"Fashion-MNIST is required but not in {FASHION_MNIST_DIR}: "
                    "apt-get install -y dataset-fashion-mnist")
    return FASHION_MNIST_DIR
