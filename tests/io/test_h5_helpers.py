"""The shared HDF5 helpers of xbarref.io.h5 (used by the case, model and dataset files)."""

import os

import h5py
import numpy as np
import pytest

from xbarref.errors import FileFormatError, XbarrefError
from xbarref.io.h5 import (atomic_h5, check_format, open_h5, read_array, read_attr,
                            read_strings, require_group, write_array, write_str_array_attr,
                            write_str_attr, write_strings)


@pytest.fixture
def sample(tmp_path):
    path = tmp_path / "s.h5"
    with atomic_h5(path) as f:
        write_str_attr(f, "format", "xbarref.test")
        f.attrs["format_version"] = 3
        write_str_attr(f, "empty", "")
        write_str_attr(f, "unicode", "Ω µS — ü")
        write_str_array_attr(f, "names", ["input", "layer1.0.conv1", "β"])
        f.attrs["vlen"] = "plain h5py string"
        f.attrs["flag"] = True
        f.attrs["shape"] = np.array([3, 4])
        f.attrs["ratio"] = 0.5
        write_strings(f, "labels", ["zero", "één", ""])
        write_array(f, "a", np.arange(12.0).reshape(3, 4))
        write_array(f, "scalar", np.float64(2.5))
        write_array(f, "empty_array", np.zeros((0, 3)))
        write_array(f, "g/i", np.arange(5, dtype=np.int32), compression="gzip")
    return path


class TestWriteAndRead:
    def test_strings_round_trip(self, sample):
        with open_h5(sample) as f:
            assert read_attr(f, "format", sample, "str") == "xbarref.test"
            assert read_attr(f, "empty", sample, "str") == ""
            assert read_attr(f, "unicode", sample, "str") == "Ω µS — ü"
            assert read_attr(f, "vlen", sample, "str") == "plain h5py string"
            assert read_attr(f, "names", sample, "str_array") == ["input", "layer1.0.conv1", "β"]
            assert read_strings(f, "labels", sample, length=3) == ["zero", "één", ""]

    def test_strings_are_fixed_length_and_arrays_checksummed(self, sample):
        with h5py.File(sample) as f:
            assert h5py.check_string_dtype(f.attrs.get_id("format").dtype).length is not None
            assert h5py.check_string_dtype(f["labels"].dtype).length is not None
            assert f["a"].fletcher32 and f["g/i"].fletcher32 and f["g/i"].compression == "gzip"
            assert not f["scalar"].fletcher32  # scalars cannot be chunked
            # libver v110 -> superblock version >= 2 (with checksums); default HDF5 writes 0
            assert f.id.get_create_plist().get_version()[0] >= 2

    def test_numbers(self, sample):
        with open_h5(sample) as f:
            assert check_format(f, sample, "xbarref.test", {1, 3}) == 3
            assert read_attr(f, "flag", sample, "bool") is True
            assert read_attr(f, "shape", sample, "int_array").tolist() == [3, 4]
            assert read_attr(f, "ratio", sample, "float") == 0.5
            assert read_attr(f, "format_version", sample, "float") == 3.0
            assert read_attr(f, "missing", sample, "int", required=False, default=7) == 7
            a = read_array(f, "a", sample, shape=(None, 4), finite=True)
            np.testing.assert_array_equal(a, np.arange(12.0).reshape(3, 4))
            assert read_array(f, "scalar", sample, shape=()) == 2.5
            assert read_array(f, "empty_array", sample, shape=(0, 3)).shape == (0, 3)
            assert read_array(f, "/g/i", sample, kind="iu", dtype=np.int64).dtype == np.int64
            assert require_group(f, "g", sample).name == "/g"

    def test_nul_in_strings_rejected(self, tmp_path):
        with pytest.raises(XbarrefError, match="NUL"):
            with atomic_h5(tmp_path / "n.h5") as f:
                write_str_attr(f, "x", "a\0b")
        assert os.listdir(tmp_path) == []


class TestErrorsNameFileAndPath:
    @pytest.mark.parametrize("call, message", [
        (lambda f, p: check_format(f, p, "xbarref.other", {3}),
         "/ attribute 'format': expected 'xbarref.other'"),
        (lambda f, p: check_format(f, p, "xbarref.test", {1, 2}),
         "/ attribute 'format_version': unsupported version 3"),
        (lambda f, p: read_attr(f, "ratio", p, "int"), "/ attribute 'ratio': must be an integer"),
        (lambda f, p: read_attr(f, "flag", p, "float"), "/ attribute 'flag': must be a number"),
        (lambda f, p: read_attr(f, "shape", p, "str"), "/ attribute 'shape': must be a string"),
        (lambda f, p: read_attr(f, "nope", p, "str"), "/ attribute 'nope': missing"),
        (lambda f, p: read_array(f, "a", p, shape=(3, 5)), "/a: expected shape (3, 5), got (3, 4)"),
        (lambda f, p: read_array(f, "a", p, ndim=1), "/a: expected 1 dimensions"),
        (lambda f, p: read_array(f, "a", p, kind="iu"), "/a: must be integer, got dtype float64"),
        (lambda f, p: read_array(f, "g", p), "/g: must be a dataset, found a group"),
        (lambda f, p: read_array(f, "g/nope", p), "/g/nope: missing"),
        (lambda f, p: read_strings(f, "a", p), "/a: must be a 1-D string dataset"),
        (lambda f, p: read_strings(f, "labels", p, length=2), "/labels: expected 2 strings"),
        (lambda f, p: require_group(f, "a", p), "/a: must be a group, found a dataset"),
    ])
    def test_messages(self, sample, call, message):
        with open_h5(sample) as f:
            with pytest.raises(FileFormatError) as info:
                call(f, str(sample))
        assert str(info.value).startswith(f"{sample}: ")
        assert message in str(info.value)

    def test_non_finite(self, tmp_path):
        path = tmp_path / "nan.h5"
        with atomic_h5(path) as f:
            write_array(f, "x", np.array([1.0, np.inf]))
        with open_h5(path) as f:
            with pytest.raises(FileFormatError, match=r"/x: must be finite, found inf at index \(1,\)"):
                read_array(f, "x", path, finite=True)

    def test_open_errors(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="none.h5"):
            with open_h5(tmp_path / "none.h5"):
                pass
        with pytest.raises(FileFormatError, match="is a directory"):
            with open_h5(tmp_path):
                pass
        (tmp_path / "text.h5").write_text("hello")
        with pytest.raises(FileFormatError, match="text.h5: not a readable HDF5 file"):
            with open_h5(tmp_path / "text.h5"):
                pass


class TestAtomicWrite:
    def test_replaces_only_on_success(self, tmp_path):
        path = tmp_path / "a.h5"
        with atomic_h5(path) as f:
            f["x"] = 1
        before = path.read_bytes()
        with pytest.raises(RuntimeError):
            with atomic_h5(path) as f:
                f["x"] = 2
                raise RuntimeError("interrupted")
        assert path.read_bytes() == before
        assert os.listdir(tmp_path) == ["a.h5"]

    def test_permissions_follow_umask(self, tmp_path):
        path = tmp_path / "p.h5"
        old = os.umask(0o027)
        try:
            with atomic_h5(path) as f:
                f["x"] = 1
        finally:
            os.umask(old)
        assert os.stat(path).st_mode & 0o777 == 0o640

    def test_refusals(self, tmp_path):
        src = tmp_path / "in.h5"
        with atomic_h5(src) as f:
            f["x"] = 1
        with pytest.raises(XbarrefError, match="overwrite the input"):
            with atomic_h5(src, inputs=[os.fspath(src)]):
                pass
        with pytest.raises(XbarrefError, match="is a directory"):
            with atomic_h5(tmp_path):
                pass
        with pytest.raises(XbarrefError, match="does not exist"):
            with atomic_h5(tmp_path / "missing" / "x.h5"):
                pass
        assert sorted(os.listdir(tmp_path)) == ["in.h5"]
