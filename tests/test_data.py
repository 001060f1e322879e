"""The bundled files by name (xbarref.data) and ``xbarref examples DIR``."""

import filecmp
import os

import numpy as np
import pytest

import xbarref
import xbarref.data
from xbarref.cli import main
from xbarref.errors import XbarrefError


def test_every_name_is_a_file_and_every_file_a_name():
    folder = os.path.dirname(xbarref.data.__file__)
    on_disk = {n for n in os.listdir(folder) if n.endswith((".h5", ".toml"))}
    assert set(xbarref.data.names()) == on_disk
    for name in xbarref.data.names():
        assert os.path.isfile(xbarref.data.path(name))


def test_unknown_name_lists_the_names():
    with pytest.raises(XbarrefError, match="example_case.h5"):
        xbarref.data.path("nope.h5")


def test_loaders_read_the_bundled_files():
    case = xbarref.data.example_case()
    assert case.shape == (64, 64) and case.I is not None
    model = xbarref.data.digits_model()
    same = xbarref.load_model()          # no path: the bundled model
    x = xbarref.data.digits().x_test[:16]
    assert np.array_equal(model(x), same(x))
    assert xbarref.data.example_sweep().name == "example"


def test_example_suite_and_candidate_belong_together():
    """The candidate is the first-order model's output on the suite, recomputed here."""
    from xbarref.validate.approx import get_model

    suite = xbarref.data.example_suite()
    assert (suite.preset, suite.seed, len(suite)) == ("quick", 0, 16)
    assert all(c.ngspice_verified for c in suite.cases)
    candidate = xbarref.data.example_candidate()
    first_order = get_model("first-order")
    assert list(candidate) == [c.name for c in suite.cases]
    for c in suite.cases:
        np.testing.assert_allclose(candidate[c.name], first_order(c.case.crossbar, c.case.V),
                                   rtol=1e-12, atol=0)


def test_write_examples_copies_keeps_and_refuses(tmp_path):
    paths = xbarref.data.write_examples(tmp_path / "ex")
    assert [os.path.basename(p) for p in paths] == xbarref.data.names()
    for name, p in zip(xbarref.data.names(), paths):
        assert filecmp.cmp(xbarref.data.path(name), p, shallow=False)
    assert xbarref.data.write_examples(tmp_path / "ex") == paths  # identical files: fine
    (tmp_path / "ex" / "digits.h5").write_bytes(b"mine")
    with pytest.raises(XbarrefError, match="differs"):
        xbarref.data.write_examples(tmp_path / "ex")
    assert (tmp_path / "ex" / "digits.h5").read_bytes() == b"mine"
    xbarref.data.write_examples(tmp_path / "ex", overwrite=True)
    assert filecmp.cmp(xbarref.data.path("digits.h5"), tmp_path / "ex" / "digits.h5", shallow=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(XbarrefError, match="not a folder"):
        xbarref.data.write_examples(tmp_path / "file")


def test_examples_command(tmp_path, capsys):
    assert main(["examples", str(tmp_path / "ex")]) == 0
    out = capsys.readouterr().out
    for name in xbarref.data.names():
        assert name in out and (tmp_path / "ex" / name).is_file()
    (tmp_path / "ex" / "example_case.h5").write_bytes(b"x")
    assert main(["examples", str(tmp_path / "ex")]) == 2
    assert "example_case.h5" in capsys.readouterr().err
