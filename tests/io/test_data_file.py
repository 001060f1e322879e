"""Dataset HDF5 files: the bundled digits, round trips, and every way a file can be bad."""

import os

import h5py
import numpy as np
import pytest

from xbarref.errors import FileFormatError, XbarrefError
from xbarref.io.data import Dataset, bundled_dataset_path, load_dataset, save_dataset


def small_dataset(rng, x_dtype=np.float64, shape=(3, 4, 5), n_train=7, n_test=4):
    return Dataset(
        x_train=rng.random((n_train,) + shape).astype(x_dtype),
        y_train=rng.integers(0, 3, n_train),
        x_test=rng.random((n_test,) + shape).astype(x_dtype),
        y_test=rng.integers(0, 3, n_test),
        classes=["cat", "dog", "émeu"], name="toy", citation="me", licence="CC0")


class TestBundledDigits:
    def test_shapes_and_values(self):
        data = load_dataset()
        assert data.name == "digits"
        assert data.x_train.shape == (1437, 1, 8, 8)
        assert data.x_test.shape == (360, 1, 8, 8)
        assert data.x_train.dtype == np.float64
        assert data.classes == [str(k) for k in range(10)]
        for x in (data.x_train, data.x_test):
            assert x.min() == 0.0 and x.max() == 1.0
            counts = x * 16
            np.testing.assert_array_equal(counts, np.rint(counts))  # pixel counts 0..16
        for y in (data.y_train, data.y_test):
            assert y.dtype == np.int64 and set(np.unique(y)) == set(range(10))

    def test_split_is_a_stratified_partition(self):
        data = load_dataset()
        both = np.concatenate([data.train_index, data.test_index])
        np.testing.assert_array_equal(np.sort(both), np.arange(1797))
        y_all = np.empty(1797, dtype=np.int64)
        y_all[data.train_index] = data.y_train
        y_all[data.test_index] = data.y_test
        share = np.bincount(y_all, minlength=10) * 360 / 1797
        test_counts = np.bincount(data.y_test, minlength=10)
        assert np.all(test_counts >= np.floor(share)) and np.all(test_counts <= np.ceil(share))

    def test_citation_and_licence(self):
        data = load_dataset()
        assert "Alpaydin" in data.citation and "Kaynak" in data.citation
        assert "UCI Machine Learning Repository" in data.citation
        assert "CC BY 4.0" in data.licence
        assert os.path.basename(bundled_dataset_path()) == "digits.h5"

    def test_float32_option(self):
        data = load_dataset(dtype=np.float32)
        assert data.x_test.dtype == np.float32
        np.testing.assert_array_equal(data.x_test, load_dataset().x_test.astype(np.float32))

    def test_matches_scikit_learn_copy(self):
        datasets = pytest.importorskip("sklearn.datasets")  # only the generator needs it
        digits = datasets.load_digits()
        data = load_dataset()
        np.testing.assert_array_equal(data.x_test[:, 0] * 16, digits.images[data.test_index])
        np.testing.assert_array_equal(data.y_train, digits.target[data.train_index])


class TestRoundTrip:
    @pytest.mark.parametrize("x_dtype", [np.float64, np.float32])
    def test_float_bit_exact(self, tmp_path, x_dtype):
        data = small_dataset(np.random.default_rng(1), x_dtype=x_dtype)
        save_dataset(data, tmp_path / "d.h5")
        back = load_dataset(tmp_path / "d.h5")
        for key in ("x_train", "x_test"):
            np.testing.assert_array_equal(getattr(back, key),
                                          getattr(data, key).astype(np.float64))
        for key in ("y_train", "y_test"):
            np.testing.assert_array_equal(getattr(back, key), getattr(data, key))
        assert back.classes == ["cat", "dog", "émeu"]
        assert (back.name, back.citation, back.licence) == ("toy", "me", "CC0")
        assert back.train_index is None

    def test_uint8_with_scale(self, tmp_path):
        rng = np.random.default_rng(2)
        raw = rng.integers(0, 256, (6, 3, 32, 32), dtype=np.uint8)  # CIFAR-like
        data = Dataset(x_train=raw[:4] / 255.0, y_train=np.arange(4) % 10,
                       x_test=raw[4:] / 255.0, y_test=np.array([3, 9]),
                       classes=[f"c{k}" for k in range(10)], name="cifar-like")
        save_dataset(data, tmp_path / "c.h5", scale=1 / 255)
        with h5py.File(tmp_path / "c.h5") as f:
            assert f["/train/x"].dtype == np.uint8
            np.testing.assert_array_equal(f["/train/x"][()], raw[:4])
        back = load_dataset(tmp_path / "c.h5")
        np.testing.assert_allclose(back.x_train, raw[:4] / 255.0, rtol=1e-15, atol=0)
        with pytest.raises(XbarrefError, match="scale"):
            save_dataset(data, tmp_path / "bad.h5", scale=1 / 7)
        assert not (tmp_path / "bad.h5").exists()

    def test_hand_written_uint8_file_with_offset(self, tmp_path):
        path = tmp_path / "h.h5"
        with h5py.File(path, "w") as f:
            f.attrs["format"] = "xbarref.dataset"
            f.attrs["format_version"] = 1
            f.attrs["name"] = "by hand"
            f["classes"] = np.array([b"a", b"b"])  # fixed-length ASCII is fine too
            f["test/x"] = np.array([[0, 2], [4, 255]], dtype=np.uint8)
            f["test/x"].attrs["scale"] = 0.5
            f["test/x"].attrs["offset"] = -1.0
            f["test/y"] = np.array([1, 0], dtype=np.int32)
        back = load_dataset(path)
        np.testing.assert_array_equal(back.x_test, [[-1.0, 0.0], [1.0, 126.5]])
        assert back.x_train.shape == (0, 2) and back.y_train.shape == (0,)
        assert back.classes == ["a", "b"]

    def test_inference_only_round_trip(self, tmp_path):
        data = small_dataset(np.random.default_rng(3), n_train=0)
        save_dataset(data, tmp_path / "t.h5")
        with h5py.File(tmp_path / "t.h5") as f:
            assert "train" not in f
        back = load_dataset(tmp_path / "t.h5")
        assert back.x_train.shape == (0, 3, 4, 5)
        np.testing.assert_array_equal(back.x_test, data.x_test)


def write_good(path):
    save_dataset(small_dataset(np.random.default_rng(4)), path)
    return path


def edit(path, action):
    with h5py.File(path, "r+") as f:
        action(f)


def replace(h5path, value, attrs=None):
    def action(f):
        del f[h5path]
        f[h5path] = value
        for key, val in (attrs or {}).items():
            f[h5path].attrs[key] = val
    return action


class TestBadFiles:
    @pytest.mark.parametrize("action, where", [
        (lambda f: f.attrs.__setitem__("format", "xbarref.model"), "attribute 'format'"),
        (lambda f: f.attrs.__setitem__("format_version", 2), "attribute 'format_version'"),
        (lambda f: f.attrs.__delitem__("format_version"), "attribute 'format_version'"),
        (lambda f: f.attrs.__delitem__("name"), "/ attribute 'name'"),
        (lambda f: f.__delitem__("classes"), "/classes"),
        (lambda f: f.__delitem__("test/y"), "/test/y"),
        (lambda f: f.__delitem__("test"), "/test/x"),
        (replace("test/y", np.zeros(3, dtype=np.int64)), "/test/y"),
        (replace("test/y", np.zeros(4)), "/test/y"),
        (replace("train/y", np.full(7, 3)), "/train/y"),
        (replace("train/y", np.full(7, -1)), "/train/y"),
        (replace("test/x", np.zeros((4, 3, 4, 6))), "/train/x"),
        (replace("test/x", np.full((4, 3, 4, 5), np.nan)), "/test/x"),
        (replace("test/x", np.zeros(4)), "/test/x"),
        (replace("test/x", np.zeros((4, 3, 4, 5), dtype=np.uint8)), "/test/x attribute 'scale'"),
        (replace("test/x", np.zeros((4, 3, 4, 5), dtype=np.uint8), {"scale": -1.0}),
         "/test/x attribute 'scale'"),
        (replace("classes", np.arange(3)), "/classes"),
        (replace("classes", np.array([b"a", b"a", b"b"])), "/classes"),
        (replace("train/index", np.arange(3)), "/train/index"),
    ])
    def test_rejected_naming_the_path(self, tmp_path, action, where):
        path = write_good(tmp_path / "d.h5")
        if "index" in where:
            edit(path, lambda f: f.create_dataset("train/index", data=np.arange(7)))
        edit(path, action)
        with pytest.raises(FileFormatError) as info:
            load_dataset(path)
        assert str(path) in str(info.value)
        assert where in str(info.value)

    def test_truncated(self, tmp_path):
        path = write_good(tmp_path / "d.h5")
        data = path.read_bytes()
        cut = tmp_path / "cut.h5"
        cut.write_bytes(data[: len(data) // 2])
        with pytest.raises(FileFormatError, match="cut.h5"):
            load_dataset(cut)

    def test_not_hdf5(self, tmp_path):
        path = tmp_path / "junk.h5"
        path.write_bytes(b"this is not an HDF5 file" * 50)
        with pytest.raises(FileFormatError, match="junk.h5"):
            load_dataset(path)

    def test_missing_file(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="nope.h5"):
            load_dataset(tmp_path / "nope.h5")

    def test_bad_dtype_argument(self):
        with pytest.raises(XbarrefError, match="dtype"):
            load_dataset(dtype=np.int32)


class TestSaveChecks:
    @pytest.mark.parametrize("change, name", [
        (dict(y_test=np.array([0, 1, 2, 3])), "y_test"),
        (dict(y_test=np.zeros(3, dtype=int)), "y_test"),
        (dict(y_train=np.zeros(7)), "y_train"),
        (dict(x_train=np.zeros((7, 3, 4, 6))), "x_train"),
        (dict(x_test=np.full((4, 3, 4, 5), np.inf)), "x_test"),
        (dict(classes=["a", "a", "b"]), "classes"),
        (dict(classes=[]), "classes"),
    ])
    def test_inconsistent_dataset(self, tmp_path, change, name):
        import dataclasses
        data = dataclasses.replace(small_dataset(np.random.default_rng(5)), **change)
        with pytest.raises(XbarrefError, match=name):
            save_dataset(data, tmp_path / "d.h5")
        assert os.listdir(tmp_path) == []

    def test_not_a_dataset(self, tmp_path):
        with pytest.raises(XbarrefError, match="dataset"):
            save_dataset({"x_train": 1}, tmp_path / "d.h5")

    def test_failed_write_keeps_old_file_and_leaves_no_temp(self, tmp_path):
        import dataclasses
        path = write_good(tmp_path / "d.h5")
        before = path.read_bytes()
        bad = dataclasses.replace(small_dataset(np.random.default_rng(6)),
                                  train_index=np.arange(3))  # fails inside the write
        with pytest.raises(XbarrefError, match="train_index"):
            save_dataset(bad, path)
        assert path.read_bytes() == before
        assert os.listdir(tmp_path) == ["d.h5"]

    def test_refuses_missing_folder(self, tmp_path):
        with pytest.raises(XbarrefError, match="folder"):
            save_dataset(small_dataset(np.random.default_rng(7)), tmp_path / "no" / "d.h5")


class TestValidationSplit:
    def with_validation(self, rng, x_dtype=np.float64):
        base = small_dataset(rng, x_dtype)
        return Dataset(x_train=base.x_train, y_train=base.y_train, x_test=base.x_test,
                       y_test=base.y_test, classes=base.classes, name="toy",
                       x_val=rng.random((5, 3, 4, 5)).astype(x_dtype),
                       y_val=np.array([0, 2, 1, 1, 0]), val_index=np.arange(10, 15))

    def test_round_trip(self, tmp_path):
        data = self.with_validation(np.random.default_rng(5))
        save_dataset(data, tmp_path / "v.h5")
        with h5py.File(tmp_path / "v.h5") as f:
            assert set(f["validation"]) == {"x", "y", "index"}
        back = load_dataset(tmp_path / "v.h5")
        assert back.has_validation and "validation=5" in repr(back)
        np.testing.assert_array_equal(back.x_val, data.x_val)
        np.testing.assert_array_equal(back.y_val, data.y_val)
        np.testing.assert_array_equal(back.val_index, data.val_index)

    def test_uint8_round_trip_of_float32_pixels(self, tmp_path):
        pixels = np.arange(256, dtype=np.uint8).reshape(4, 1, 8, 8)
        x = pixels.astype(np.float32) / np.float32(255)  # not exactly k / 255 in float64
        data = Dataset(x_train=x, y_train=np.arange(4) % 2, x_test=x[:2], y_test=np.array([0, 1]),
                       classes=["a", "b"], x_val=x[2:], y_val=np.array([1, 1]))
        save_dataset(data, tmp_path / "p.h5", scale=1 / 255)
        with h5py.File(tmp_path / "p.h5") as f:
            np.testing.assert_array_equal(f["validation/x"][()], pixels[2:])
            np.testing.assert_array_equal(f["train/x"][()], pixels)

    def test_files_without_validation(self, tmp_path):
        back = load_dataset(write_good(tmp_path / "d.h5"))
        assert not back.has_validation and back.x_val is None and back.val_index is None
        assert not load_dataset().has_validation

    @pytest.mark.parametrize("action, where", [
        (replace("validation/x", np.zeros((5, 3, 4, 6))), "/validation/x"),
        (replace("validation/y", np.full(5, 3)), "/validation/y"),
        (replace("validation/y", np.zeros(4, dtype=np.int64)), "/validation/y"),
        (replace("validation/index", np.arange(4)), "/validation/index"),
        (lambda f: f.__delitem__("validation/y"), "/validation/y"),
    ])
    def test_bad_validation_group(self, tmp_path, action, where):
        path = tmp_path / "v.h5"
        save_dataset(self.with_validation(np.random.default_rng(6)), path)
        edit(path, action)
        with pytest.raises(FileFormatError) as info:
            load_dataset(path)
        assert where in str(info.value) and str(path) in str(info.value)

    def test_save_checks_validation(self, tmp_path):
        good = self.with_validation(np.random.default_rng(7))
        bad = Dataset(x_train=good.x_train, y_train=good.y_train, x_test=good.x_test,
                      y_test=good.y_test, classes=good.classes, x_val=good.x_val,
                      y_val=np.array([0, 1, 2, 3, 0]))
        with pytest.raises(XbarrefError, match="y_val"):
            save_dataset(bad, tmp_path / "b.h5")
        assert not (tmp_path / "b.h5").exists()
