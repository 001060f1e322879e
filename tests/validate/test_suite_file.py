"""Suite and candidate files: round trip, each case a spec case, corrupt and mismatched files."""

import h5py
import numpy as np
import pytest

from xbarref.errors import FileFormatError, XbarrefError
from xbarref.io.case import read_case
from xbarref.validate.suite import (Suite, extract_case, read_candidate, read_suite, suite_case_names,
                                    write_candidate, write_suite)

from .helpers import make, regimes_suite, spec


@pytest.fixture(scope="module")
def suite():
    return regimes_suite()


@pytest.fixture(scope="module")
def suite_path(suite, tmp_path_factory):
    path = tmp_path_factory.mktemp("suite") / "suite.h5"
    write_suite(suite, path)
    return path


class TestRoundTrip:
    def test_every_field_back(self, suite, suite_path):
        back = read_suite(suite_path)
        assert back.names == suite.names
        assert (back.preset, back.seed, back.generator) == (suite.preset, suite.seed, suite.generator)
        for a, b in zip(suite.cases, back.cases):
            xa, xb = a.case.crossbar, b.case.crossbar
            for attr in ("G", "r_source", "r_sink", "r_wire_row", "r_wire_col"):
                np.testing.assert_array_equal(getattr(xa, attr), getattr(xb, attr))
            assert (xa.device, xa.sinh_k) == (xb.device, xb.sinh_k)
            np.testing.assert_array_equal(a.case.V, b.case.V)
            np.testing.assert_array_equal(a.case.I, b.case.I)
            assert a.case.solver == b.case.solver
            assert a.params == b.params and a.seed == b.seed
            assert a.residual == b.residual and a.note == b.note
            assert a.ngspice_verified == b.ngspice_verified

    def test_each_case_group_is_a_spec_case(self, suite, suite_path, tmp_path):
        """Copying a case group to the root of a file gives a case file read_case accepts."""
        name = "nonuniform_16x24"
        out = tmp_path / "one.h5"
        with h5py.File(suite_path, "r") as src, h5py.File(out, "w") as dst:
            for key in src[f"/cases/{name}"]:
                src.copy(f"/cases/{name}/{key}", dst, name=key)
            for key, value in src[f"/cases/{name}"].attrs.items():
                dst.attrs[key] = value
        case = read_case(out)
        np.testing.assert_array_equal(case.I, suite[name].case.I)
        np.testing.assert_array_equal(case.crossbar.r_wire_row, suite[name].case.crossbar.r_wire_row)

    def test_extract_case(self, suite, suite_path, tmp_path):
        out = extract_case(suite_path, "strong_24x8_sinh", tmp_path / "sinh.h5")
        case = read_case(out)
        assert case.crossbar.device == "sinh" and case.crossbar.sinh_k == 4.0
        np.testing.assert_array_equal(case.I, suite["strong_24x8_sinh"].case.I)

    def test_names_and_subset(self, suite, suite_path):
        assert suite_case_names(suite_path) == suite.names
        sub = read_suite(suite_path, names=["col_12x1"])
        assert sub.names == ["col_12x1"]
        with pytest.raises(FileFormatError, match="/cases/nope: missing"):
            read_suite(suite_path, names=["nope"])

    def test_never_overwrites_its_input(self, suite_path):
        back = read_suite(suite_path)
        with pytest.raises(XbarrefError, match="refusing to overwrite"):
            write_suite(back, suite_path)

    def test_ngspice_flag_round_trip(self, tmp_path, ngspice_path):
        s = make([("small", spec(6, 5, "strong"))], ngspice=True)
        assert s.cases[0].ngspice_verified and s.cases[0].ngspice_inputs == [0, 1, 2, 3]
        assert s.cases[0].ngspice_max_rel_error < 1e-9
        write_suite(s, tmp_path / "s.h5")
        back = read_suite(tmp_path / "s.h5").cases[0]
        assert back.ngspice_verified and back.ngspice_inputs == [0, 1, 2, 3]
        assert back.ngspice_max_rel_error == s.cases[0].ngspice_max_rel_error


class TestBadSuiteFiles:
    def test_truncated(self, suite_path, tmp_path):
        data = open(suite_path, "rb").read()
        bad = tmp_path / "trunc.h5"
        bad.write_bytes(data[: len(data) // 2])
        with pytest.raises(FileFormatError, match="trunc.h5"):
            read_suite(bad)

    def test_not_hdf5(self, tmp_path):
        bad = tmp_path / "text.h5"
        bad.write_text("hello")
        with pytest.raises(FileFormatError, match="not a readable HDF5 file"):
            read_suite(bad)

    def test_missing_file(self, tmp_path):
        with pytest.raises(FileNotFoundError):
            read_suite(tmp_path / "none.h5")

    def _copy(self, suite_path, tmp_path):
        out = tmp_path / "copy.h5"
        out.write_bytes(open(suite_path, "rb").read())
        return out

    def test_case_without_outputs(self, suite_path, tmp_path):
        p = self._copy(suite_path, tmp_path)
        with h5py.File(p, "a") as f:
            del f["/cases/col_12x1/outputs/I"]
        with pytest.raises(FileFormatError, match="/cases/col_12x1/outputs/I: missing"):
            read_suite(p)

    def test_case_with_bad_shape(self, suite_path, tmp_path):
        p = self._copy(suite_path, tmp_path)
        with h5py.File(p, "a") as f:
            del f["/cases/row_1x12/crossbar/r_wire_row"]
            f["/cases/row_1x12/crossbar/r_wire_row"] = np.ones((1, 3))
        with pytest.raises(FileFormatError, match=r"/cases/row_1x12/crossbar/r_wire_row: expected shape"):
            read_suite(p)

    def test_wrong_format(self, suite_path, tmp_path):
        p = self._copy(suite_path, tmp_path)
        with h5py.File(p, "a") as f:
            f.attrs["format"] = "xbarref.case"
        with pytest.raises(FileFormatError, match="format"):
            read_suite(p)

    def test_negative_resistance(self, suite_path, tmp_path):
        p = self._copy(suite_path, tmp_path)
        with h5py.File(p, "a") as f:
            f["/cases/ideal_8x8/crossbar/r_sink"][()] = -1.0
        with pytest.raises(FileFormatError, match="/cases/ideal_8x8/crossbar/r_sink: must be >= 0"):
            read_suite(p)


class TestCandidateFiles:
    def test_round_trip(self, suite, tmp_path):
        outputs = {sc.name: sc.case.I * 1.01 for sc in suite.cases}
        write_candidate(outputs, tmp_path / "c.h5", solver="me")
        expected = {sc.name: sc.case.I.shape for sc in suite.cases}
        back, solver = read_candidate(tmp_path / "c.h5", expected=expected)
        assert solver == "me" and list(back) == suite.names
        for name in outputs:
            np.testing.assert_array_equal(back[name], outputs[name])

    def test_suite_file_is_a_candidate(self, suite, suite_path):
        back, _ = read_candidate(suite_path, expected={sc.name: sc.case.I.shape for sc in suite.cases})
        np.testing.assert_array_equal(back["strong_32x32"], suite["strong_32x32"].case.I)

    def test_missing_case(self, suite, tmp_path):
        outputs = {sc.name: sc.case.I for sc in suite.cases[1:]}
        write_candidate(outputs, tmp_path / "c.h5")
        with pytest.raises(FileFormatError, match=r"/cases/ideal_8x8/outputs/I: missing"):
            read_candidate(tmp_path / "c.h5", expected={sc.name: sc.case.I.shape for sc in suite.cases})

    def test_extra_case(self, suite, tmp_path):
        outputs = {sc.name: sc.case.I for sc in suite.cases}
        outputs["stranger"] = np.zeros((1, 2))
        write_candidate(outputs, tmp_path / "c.h5")
        with pytest.raises(FileFormatError, match="'stranger' is not in the suite"):
            read_candidate(tmp_path / "c.h5", expected={sc.name: sc.case.I.shape for sc in suite.cases})

    def test_wrong_shape(self, suite, tmp_path):
        outputs = {sc.name: sc.case.I for sc in suite.cases}
        outputs["strong_32x32"] = outputs["strong_32x32"][:, :-1]
        write_candidate(outputs, tmp_path / "c.h5")
        with pytest.raises(FileFormatError, match=r"/cases/strong_32x32/outputs/I: expected shape \(4, 32\)"):
            read_candidate(tmp_path / "c.h5", expected={sc.name: sc.case.I.shape for sc in suite.cases})

    def test_non_finite(self, suite, tmp_path):
        outputs = {sc.name: sc.case.I.copy() for sc in suite.cases}
        write_candidate(outputs, tmp_path / "c.h5")
        expected = {sc.name: sc.case.I.shape for sc in suite.cases}
        with h5py.File(tmp_path / "c.h5", "a") as f:
            f["/cases/strong_32x32/outputs/I"][1, 3] = np.nan   # part of a row: not a 'no answer' row
        with pytest.raises(FileFormatError, match="/cases/strong_32x32/outputs/I: input 1 has NaN in some"):
            read_candidate(tmp_path / "c.h5", expected=expected)
        with h5py.File(tmp_path / "c.h5", "a") as f:
            f["/cases/strong_32x32/outputs/I"][1, 3] = np.inf
        with pytest.raises(FileFormatError, match="/cases/strong_32x32/outputs/I: must be finite"):
            read_candidate(tmp_path / "c.h5", expected=expected)

    def test_no_answer_rows_are_read_back(self, suite, tmp_path):
        outputs = {sc.name: sc.case.I.copy() for sc in suite.cases}
        outputs["strong_32x32"][2] = np.nan                 # input 2 without answer
        outputs["col_12x1"][:] = np.nan                      # whole case not run
        write_candidate(outputs, tmp_path / "c.h5")
        back, _ = read_candidate(tmp_path / "c.h5", expected={sc.name: sc.case.I.shape for sc in suite.cases})
        assert np.isnan(back["strong_32x32"][2]).all() and np.isfinite(back["strong_32x32"][[0, 1, 3]]).all()
        assert np.isnan(back["col_12x1"]).all()

    def test_corrupt(self, suite, tmp_path):
        outputs = {sc.name: sc.case.I for sc in suite.cases}
        path = write_candidate(outputs, tmp_path / "c.h5")
        data = bytearray(open(path, "rb").read())
        bad = tmp_path / "bad.h5"
        bad.write_bytes(bytes(data[: len(data) // 3]))
        with pytest.raises(FileFormatError, match="bad.h5"):
            read_candidate(bad, expected={sc.name: sc.case.I.shape for sc in suite.cases})

    def test_write_refuses_bad_outputs(self, tmp_path):
        with pytest.raises(XbarrefError, match=r"outputs\['a'\]: must be finite"):
            write_candidate({"a": np.array([[np.inf]])}, tmp_path / "c.h5")
        with pytest.raises(XbarrefError, match=r"outputs\['a'\]: input 0 has NaN in some outputs but not all"):
            write_candidate({"a": np.array([[np.nan, 1.0]])}, tmp_path / "c.h5")
        with pytest.raises(XbarrefError, match=r"outputs\['a'\]: expected a \(B, N\) array"):
            write_candidate({"a": np.zeros(3)}, tmp_path / "c.h5")
        with pytest.raises(XbarrefError, match="case name"):
            write_candidate({"a/b": np.zeros((1, 1))}, tmp_path / "c.h5")
        assert not (tmp_path / "c.h5").exists()

    def test_duplicate_names_refused(self, suite):
        with pytest.raises(XbarrefError, match="duplicate case names"):
            Suite(cases=[suite.cases[0], suite.cases[0]])
