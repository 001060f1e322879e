"""IDX files and the Fashion-MNIST import: files the tests write themselves (good and
corrupt), the ``xbarref data fashion-mnist`` command, and the real Debian package."""

import gzip
import os
import struct

import h5py
import numpy as np
import pytest

from xbarref.cli import main
from xbarref.errors import FileFormatError, XbarrefError
from xbarref.io.data import load_dataset
from xbarref.io.idx import (FASHION_MNIST_CLASSES, load_fashion_mnist, read_idx,
                            stratified_split)

TYPE_CODES = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype("i2"): 0x0B,
              np.dtype("i4"): 0x0C, np.dtype("f4"): 0x0D, np.dtype("f8"): 0x0E}


def idx_bytes(array):
    """IDX encoding written from the format description (magic, big-endian sizes, data)."""
    array = np.asarray(array)
    head = bytes([0, 0, TYPE_CODES[array.dtype], array.ndim])
    head += b"".join(struct.pack(">I", s) for s in array.shape)
    return head + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path, array, *, gz=False, raw=None):
    data = idx_bytes(array) if raw is None else raw
    if gz:
        with gzip.open(path, "wb") as handle:
            handle.write(data)
    else:
        with open(path, "wb") as handle:
            handle.write(data)
    return path


class TestReadIdx:
    @pytest.mark.parametrize("dtype", ["u1", "i1", "i2", "i4", "f4", "f8"])
    @pytest.mark.parametrize("gz", [False, True])
    def test_round_trip(self, tmp_path, dtype, gz):
        rng = np.random.default_rng(1)
        array = (rng.standard_normal((3, 4, 5)) * 50).astype(dtype)
        out = read_idx(write_idx(tmp_path / "a.idx", array, gz=gz))
        assert out.shape == (3, 4, 5) and out.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(out, array)

    def test_byte_order_is_big_endian(self, tmp_path):
        raw = bytes([0, 0, 0x0B, 1]) + struct.pack(">I", 2) + bytes([1, 2, 0xFF, 0xFE])
        out = read_idx(write_idx(tmp_path / "b.idx", None, raw=raw))
        np.testing.assert_array_equal(out, [258, -2])

    @pytest.mark.parametrize("raw, match", [
        (b"\x00\x00\x08", "too short"),
        (b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00", "magic"),
        (b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00", "magic"),
        (b"\x00\x00\x08\x00", "0 dimensions"),
        (b"\x00\x00\x08\x02" + struct.pack(">I", 1), "truncated IDX header"),
        (b"\x00\x00\x08\x01" + struct.pack(">I", 5) + b"\x00" * 4, "payload has 4 bytes"),
        (b"\x00\x00\x08\x01" + struct.pack(">I", 5) + b"\x00" * 6, "payload has 6 bytes"),
    ])
    def test_corrupt_files_are_rejected(self, tmp_path, raw, match):
        path = write_idx(tmp_path / "bad.idx", None, raw=raw)
        with pytest.raises(FileFormatError, match=match) as info:
            read_idx(path)
        assert str(path) in str(info.value)

    def test_damaged_gzip(self, tmp_path):
        path = tmp_path / "bad.gz"
        good = gzip.compress(idx_bytes(np.arange(1000, dtype=np.uint8).reshape(10, 100) % 7))
        path.write_bytes(good[: len(good) // 2])
        with pytest.raises(FileFormatError, match="gzip"):
            read_idx(path)

    def test_required_dims_and_type(self, tmp_path):
        path = write_idx(tmp_path / "c.idx", np.zeros((2, 3), dtype=np.uint8))
        with pytest.raises(FileFormatError, match="3-D"):
            read_idx(path, ndim=3)
        with pytest.raises(FileFormatError, match="int32"):
            read_idx(path, dtype="i4")

    def test_missing_file(self, tmp_path):
        with pytest.raises(FileNotFoundError):
            read_idx(tmp_path / "nothing.idx")


# ----------------------------------------------------------------------------- Fashion-MNIST
def pixel_of(row):
    """Synthetic image ``row`` of a file: every pixel (7 * row) % 256."""
    return (7 * row) % 256


def make_fashion_dir(folder, *, gz=True, n_train=60000, n_test=10000):
    """The four IDX files with synthetic content: image ``i`` is constant ``pixel_of(i)``,
    its label ``i % 10``."""
    os.makedirs(folder, exist_ok=True)
    suffix = ".gz" if gz else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        rows = np.arange(n)
        images = np.broadcast_to(pixel_of(rows).astype(np.uint8)[:, None, None], (n, 28, 28))
        write_idx(os.path.join(folder, f"{prefix}-images-idx3-ubyte{suffix}"),
                  np.ascontiguousarray(images), gz=gz)
        write_idx(os.path.join(folder, f"{prefix}-labels-idx1-ubyte{suffix}"),
                  (rows % 10).astype(np.uint8), gz=gz)
    return folder


@pytest.fixture(scope="module")
def fake_dir(tmp_path_factory):
    return make_fashion_dir(tmp_path_factory.mktemp("fm") / "idx")


class TestFashionImport:
    def test_content_split_and_provenance(self, fake_dir):
        data = load_fashion_mnist(fake_dir, validation=5000, seed=3)
        assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (55000, 5000, 10000)
        assert data.x_train.shape == (55000, 1, 28, 28) and data.x_train.dtype == np.float32
        assert data.classes == FASHION_MNIST_CLASSES and len(data.classes) == 10
        for x, y, index in ((data.x_train, data.y_train, data.train_index),
                            (data.x_val, data.y_val, data.val_index),
                            (data.x_test, data.y_test, data.test_index)):
            np.testing.assert_array_equal(y, index % 10)
            np.testing.assert_allclose(x[:, 0, 5, 7], pixel_of(index) / 255.0, rtol=1e-7)
        both = np.concatenate([data.train_index, data.val_index])
        np.testing.assert_array_equal(np.sort(both), np.arange(60000))
        np.testing.assert_array_equal(np.bincount(data.y_val), [500] * 10)
        assert "Xiao" in data.citation and data.licence == "MIT"

    def test_split_is_seeded(self, fake_dir):
        a = load_fashion_mnist(fake_dir, validation=1000, seed=5).val_index
        b = load_fashion_mnist(fake_dir, validation=1000, seed=5).val_index
        c = load_fashion_mnist(fake_dir, validation=1000, seed=6).val_index
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)

    def test_no_validation(self, fake_dir):
        data = load_fashion_mnist(fake_dir, validation=0)
        assert not data.has_validation and len(data.y_train) == 60000

    def test_uncompressed_files(self, tmp_path):
        folder = make_fashion_dir(tmp_path / "plain", gz=False)
        data = load_fashion_mnist(folder, validation=10)
        assert len(data.y_test) == 10000 and len(data.y_val) == 10

    def test_missing_files_name_the_apt_command(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="apt-get install -y dataset-fashion-mnist"):
            load_fashion_mnist(tmp_path)

    def test_wrong_count(self, tmp_path):
        folder = make_fashion_dir(tmp_path / "short", n_test=9999)
        with pytest.raises(FileFormatError, match="expected 10000 images"):
            load_fashion_mnist(folder)

    @pytest.mark.parametrize("case", ["label_range", "label_count", "image_shape", "labels_3d"])
    def test_bad_files(self, tmp_path, fake_dir, case):
        folder = tmp_path / case
        os.makedirs(folder)
        for name in os.listdir(fake_dir):
            os.symlink(os.path.join(fake_dir, name), folder / name)
        labels = folder / "t10k-labels-idx1-ubyte.gz"
        images = folder / "t10k-images-idx3-ubyte.gz"
        if case == "label_range":
            y = np.arange(10000) % 10
            y[1234] = 10
            labels.unlink()
            write_idx(labels, y.astype(np.uint8), gz=True)
            match = "labels must be in 0..9, found 10"
        elif case == "label_count":
            labels.unlink()
            write_idx(labels, (np.arange(9000) % 10).astype(np.uint8), gz=True)
            match = "expected 10000 labels"
        elif case == "image_shape":
            images.unlink()
            write_idx(images, np.zeros((10000, 28, 27), dtype=np.uint8), gz=True)
            match = "28 x 28"
        else:
            labels.unlink()
            write_idx(labels, np.zeros((10000, 1, 1), dtype=np.uint8), gz=True)
            match = "1-D"
        with pytest.raises(FileFormatError, match=match):
            load_fashion_mnist(folder)

    def test_stratified_split_proportions(self):
        rng = np.random.default_rng(0)
        labels = rng.integers(0, 4, 997)
        split, rest = stratified_split(labels, 101, np.random.default_rng(1))
        assert len(split) == 101 and len(np.intersect1d(split, rest)) == 0
        share = np.bincount(labels, minlength=4) * 101 / 997
        got = np.bincount(labels[split], minlength=4)
        assert np.all(got >= np.floor(share)) and np.all(got <= np.ceil(share))
        with pytest.raises(XbarrefError):
            stratified_split(labels, 997, rng)


class TestDataCommand:
    def test_writes_a_dataset_file(self, fake_dir, tmp_path, capsys):
        out = tmp_path / "fm.h5"
        assert main(["data", "fashion-mnist", "-o", str(out), "--from", str(fake_dir),
                     "--validation", "2000", "--seed", "9"]) == 0
        assert "2000 validation (seed 9)" in capsys.readouterr().out
        data = load_dataset(out, dtype=np.float32)
        ref = load_fashion_mnist(fake_dir, validation=2000, seed=9)
        for split in ("train", "val", "test"):
            # the file stores the pixel as uint8 and reads it back as pixel * (1/255)
            np.testing.assert_allclose(getattr(data, f"x_{split}"), getattr(ref, f"x_{split}"),
                                       rtol=2e-7, atol=0)
            np.testing.assert_array_equal(getattr(data, f"y_{split}"), getattr(ref, f"y_{split}"))
            np.testing.assert_array_equal(getattr(data, f"{split}_index"),
                                          getattr(ref, f"{split}_index"))
        # the one output rule: an existing output is replaced only with --overwrite
        before = out.read_bytes()
        assert main(["data", "fashion-mnist", "-o", str(out), "--from", str(fake_dir)]) == 2
        assert "--overwrite" in capsys.readouterr().err and out.read_bytes() == before
        assert main(["data", "fashion-mnist", "-o", str(out), "--from", str(fake_dir),
                     "--validation", "1000", "--overwrite"]) == 0
        assert len(load_dataset(out).y_val) == 1000
        with h5py.File(out, "r") as handle:
            assert handle["train/x"].dtype == np.uint8
            np.testing.assert_array_equal(handle["validation/x"][:, 0, 3, 3],
                                          pixel_of(handle["validation/index"][()]))
            assert handle["validation/x"].attrs["scale"] == pytest.approx(1 / 255)

    def test_missing_source_is_one_line_and_writes_nothing(self, tmp_path, capsys):
        out = tmp_path / "fm.h5"
        assert main(["data", "fashion-mnist", "-o", str(out), "--from", str(tmp_path)]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "apt-get install -y dataset-fashion-mnist" in err
        assert not out.exists()

    def test_corrupt_source_leaves_existing_output(self, fake_dir, tmp_path, capsys):
        folder = tmp_path / "corrupt"
        os.makedirs(folder)
        for name in os.listdir(fake_dir):
            os.symlink(os.path.join(fake_dir, name), folder / name)
        bad = folder / "train-labels-idx1-ubyte.gz"
        bad.unlink()
        write_idx(bad, None, raw=b"\x00\x00\x08\x01" + struct.pack(">I", 60000) + b"\x01" * 10, gz=True)
        out = tmp_path / "fm.h5"
        out.write_bytes(b"old")
        # even with --overwrite, a source that fails its checks leaves the old output as it was
        assert main(["data", "fashion-mnist", "-o", str(out), "--from", str(folder),
                     "--overwrite"]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "payload" in err and "train-labels" in err
        assert out.read_bytes() == b"old"
        assert sorted(os.listdir(tmp_path)) == ["corrupt", "fm.h5"]  # no temporary left


def test_real_fashion_mnist_package(fashion_mnist_dir, tmp_path):
    """The Debian package: published counts (6000 per class in training, 1000 in test)
    and the first labels of both files (an ankle boot, class 9)."""
    out = tmp_path / "fm.h5"
    assert main(["data", "fashion-mnist", "-o", str(out)]) == 0
    data = load_dataset(out, dtype=np.float32)
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (55000, 5000, 10000)
    y_all = np.empty(60000, dtype=np.int64)
    y_all[data.train_index] = data.y_train
    y_all[data.val_index] = data.y_val
    np.testing.assert_array_equal(np.bincount(y_all), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(data.y_test), [1000] * 10)
    np.testing.assert_array_equal(np.bincount(data.y_val), [500] * 10)
    assert y_all[0] == 9 and data.y_test[0] == 9
    assert data.x_test.min() == 0.0 and data.x_test.max() == 1.0
    assert 0.2 < data.x_test.mean() < 0.4  # mostly dark background, ~0.29 published mean
