"""Model files: bit-exact round trips of every layer kind and zoo model, reading with
plain h5py, and every way a file can be bad (the error names the HDF5 path)."""

import json
import os

import h5py
import numpy as np
import pytest

import xbarref
from xbarref.errors import FileFormatError, XbarrefError
from xbarref.io.model import load_model, save_model
from xbarref.nn import (Add, AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, Dropout, Flatten,
                        GlobalAvgPool, Identity, Linear, MaxPool2d, Model, Node, ReLU,
                        digits_cnn, mlp, resnet, small_vgg)


def randomize(model, rng):
    """Random values in every array, batchnorm running variance > 0."""
    for arrays in (model.named_parameters(), model.named_buffers()):
        for key, arr in arrays.items():
            arr[...] = rng.standard_normal(arr.shape)
            if key.endswith("running_var"):
                arr[...] = rng.uniform(0.2, 3.0, arr.shape)
    return model


def every_kind_model(rng):
    """A residual model with every layer kind, non-square shapes and dotted names."""
    nodes = [
        Node("stem.conv", Conv2d(2, 4, (3, 2), stride=(1, 2), padding=(1, 0), bias=True)),
        Node("stem.bn", BatchNorm2d(4, eps=1e-3, momentum=0.3), ["stem.conv"]),
        Node("stem.relu", ReLU(), ["stem.bn"]),
        Node("block.0.conv", Conv2d(4, 4, 3, padding=1, bias=False), ["stem.relu"]),
        Node("block.0.id", Identity(), ["block.0.conv"]),
        Node("block.0.add", Add(), ["block.0.id", "stem.relu"]),
        Node("pool", AvgPool2d(2, stride=1, padding=1, count_include_pad=False),
             ["block.0.add"]),
        Node("maxpool", MaxPool2d((2, 1), stride=(2, 1)), ["pool"]),
        Node("gap", GlobalAvgPool(), ["maxpool"]),
        Node("flatten", Flatten(), ["gap"]),
        Node("fc1", Linear(4, 6, bias=False), ["flatten"]),
        Node("bn1d", BatchNorm1d(6), ["fc1"]),
        Node("drop", Dropout(0.25), ["bn1d"]),
        Node("fc2", Linear(6, 3), ["drop"]),
    ]
    model = Model(nodes, (2, 7, 5), classes=["a", "β", "c"],
                  normalization=dict(mean=[0.5, -1.0], std=[2.0, 0.25]), name="every kind")
    return randomize(model, rng)


def zoo_models():
    rng = np.random.default_rng(11)
    return {
        "every_kind": (every_kind_model(rng), (2, 7, 5)),
        "mlp": (randomize(mlp((64,), (32, 16), batchnorm=True, dropout=0.1, rng=rng), rng), (64,)),
        "digits_cnn": (randomize(digits_cnn(classes=list("0123456789"),
                                            normalization=dict(mean=[0.3], std=[0.4]), rng=rng),
                                 rng),
                       (1, 8, 8)),
        "resnet": (randomize(resnet(1, (4, 8, 8), input_shape=(3, 16, 16), rng=rng), rng),
                   (3, 16, 16)),
        "small_vgg": (randomize(small_vgg((3, 16, 16), widths=(4, 8), hidden=16, rng=rng), rng),
                      (3, 16, 16)),
    }


ZOO = zoo_models()


class TestRoundTrip:
    @pytest.mark.parametrize("key", sorted(ZOO))
    def test_bit_exact(self, tmp_path, key):
        model, shape = ZOO[key]
        path = tmp_path / "m.h5"
        save_model(model, path)
        back = xbarref.load_model(path)
        assert back.source_path == str(path)
        assert back.input_shape == model.input_shape == shape
        assert back.name == model.name and back.classes == model.classes
        assert [(n.name, n.layer.kind, n.inputs, n.layer.config()) for n in back.nodes] == \
            [(n.name, n.layer.kind, n.inputs, n.layer.config()) for n in model.nodes]
        for getter in ("named_parameters", "named_buffers"):
            want, got = getattr(model, getter)(), getattr(back, getter)()
            assert sorted(want) == sorted(got)
            for name in want:
                assert got[name].dtype == np.float64
                assert got[name].shape == want[name].shape
                assert got[name].tobytes() == want[name].tobytes(), name
        if model.normalization is None:
            assert back.normalization is None
        else:
            for k in ("mean", "std"):
                assert back.normalization[k].tobytes() == model.normalization[k].tobytes()
        x = np.random.default_rng(5).standard_normal((3,) + shape)
        logits = model(x)
        assert np.all(np.isfinite(logits)) and np.ptp(logits) > 0
        assert back(x).tobytes() == logits.tobytes()

    def test_paths_are_the_dotted_names(self, tmp_path):
        model, _ = ZOO["resnet"]
        save_model(model, tmp_path / "r.h5")
        with h5py.File(tmp_path / "r.h5") as f:
            for dotted, arr in model.named_parameters().items():
                node, key = dotted.rsplit(".", 1)
                np.testing.assert_array_equal(f[f"/parameters/{node}/{key}"][()], arr)
            for dotted, arr in model.named_buffers().items():
                node, key = dotted.rsplit(".", 1)
                np.testing.assert_array_equal(f[f"/buffers/{node}/{key}"][()], arr)
            assert "layer1.0.conv1" in f["parameters"]

    def test_read_with_plain_h5py(self, tmp_path):
        """The example of docs/model-format.md, then a forward pass written from it."""
        model, _ = ZOO["mlp"]
        save_model(model, tmp_path / "m.h5")
        seen = []

        def text(value):
            return value.decode() if isinstance(value, bytes) else value

        with h5py.File(tmp_path / "m.h5", "r") as f:
            assert text(f.attrs["format"]) == "xbarref.model"
            assert f.attrs["format_version"] == 1
            assert list(f.attrs["input_shape"]) == [64]
            for i in range(f["nodes"].attrs["count"]):
                node = f["nodes"][str(i)]
                name, kind = text(node.attrs["name"]), text(node.attrs["kind"])
                inputs = [text(s) for s in node.attrs["inputs"]]
                arrays = {k: v[()] for k, v in f["parameters"].get(name, {}).items()}
                buffers = {k: v[()] for k, v in f["buffers"].get(name, {}).items()}
                seen.append((name, kind, inputs, json.loads(node.attrs["config"]),
                             arrays, buffers))
        assert [s[0] for s in seen] == [n.name for n in model.nodes]
        # An independent NumPy forward from what h5py returned (eval mode).
        x = np.random.default_rng(8).standard_normal((4, 64))
        values = {"input": x}
        for name, kind, inputs, config, p, b in seen:
            v = values[inputs[0]]
            if kind == "linear":
                v = v @ p["weight"].T + (p["bias"] if config["bias"] else 0)
            elif kind == "batchnorm1d":
                v = (v - b["running_mean"]) / np.sqrt(b["running_var"] + config["eps"]) \
                    * p["weight"] + p["bias"]
            elif kind == "relu":
                v = np.maximum(v, 0)
            else:
                assert kind in ("dropout", "flatten"), kind
            values[name] = v
        np.testing.assert_allclose(values[seen[-1][0]], model(x), rtol=1e-12, atol=1e-12)

    def test_float32_arrays_are_accepted(self, tmp_path):
        model, _ = ZOO["digits_cnn"]
        path = tmp_path / "m.h5"
        save_model(model, path)
        with h5py.File(path, "r+") as f:
            del f.attrs["xbarref_sha256"]  # a hand-edited file: no content checksum
            w = f["/parameters/fc/weight"][()]
            del f["/parameters/fc/weight"]
            f["/parameters/fc/weight"] = w.astype(np.float32)
        back = load_model(path)
        np.testing.assert_array_equal(back.nodes[-1].layer.params["weight"],
                                      w.astype(np.float32).astype(np.float64))


class TestWrite:
    def test_refuses_to_overwrite_its_input(self, tmp_path):
        path = tmp_path / "m.h5"
        save_model(ZOO["mlp"][0], path)
        before = path.read_bytes()
        back = load_model(path)
        with pytest.raises(XbarrefError, match="overwrite"):
            save_model(back, path)
        assert path.read_bytes() == before
        save_model(back, tmp_path / "copy.h5")  # a new file is fine

    def test_failed_write_leaves_old_file_and_no_temp(self, tmp_path, monkeypatch):
        path = tmp_path / "m.h5"
        save_model(ZOO["mlp"][0], path)
        before = path.read_bytes()

        def disk_full(*args, **kwargs):
            raise OSError("No space left on device")

        monkeypatch.setattr(h5py.Group, "create_dataset", disk_full)
        with pytest.raises(OSError, match="No space"):
            save_model(ZOO["digits_cnn"][0], path)
        assert path.read_bytes() == before
        assert os.listdir(tmp_path) == ["m.h5"]

    def test_bad_node_name(self, tmp_path):
        model = Model([Node("a/b", Linear(2, 2))], (2,))
        with pytest.raises(XbarrefError, match="a/b"):
            save_model(model, tmp_path / "m.h5")
        assert os.listdir(tmp_path) == []

    def test_not_a_model(self, tmp_path):
        with pytest.raises(XbarrefError, match="model"):
            save_model({"fc.weight": np.zeros((2, 2))}, tmp_path / "m.h5")


# --------------------------------------------------------------------------- bad files
def _set_attr(h5path, key, value):
    def action(f):
        f[h5path].attrs[key] = value
    return action


def _del_attr(h5path, key):
    def action(f):
        del f[h5path].attrs[key]
    return action


def _delete(h5path):
    def action(f):
        del f[h5path]
    return action


def _replace(h5path, value):
    def action(f):
        del f[h5path]
        f[h5path] = value
    return action


def _create(h5path, value):
    def action(f):
        f[h5path] = value
    return action


def _group(h5path):
    def action(f):
        f.create_group(h5path)
    return action


# The digits CNN: nodes conv1 bn1 relu1 conv2 bn2 relu2 pool1 conv3 bn3 relu3 pool2
# flatten fc (indices 0..12).
BAD = {
    "format": (_set_attr("/", "format", "xbarref.case"), "/ attribute 'format'"),
    "no format": (_del_attr("/", "format"), "/ attribute 'format'"),
    "version": (_set_attr("/", "format_version", 2), "/ attribute 'format_version'"),
    "float version": (_set_attr("/", "format_version", 1.0), "/ attribute 'format_version'"),
    "no input_shape": (_del_attr("/", "input_shape"), "/ attribute 'input_shape'"),
    "zero input_shape": (_set_attr("/", "input_shape", [0, 8, 8]), "/ attribute 'input_shape'"),
    "wrong input_shape": (_set_attr("/", "input_shape", [1, 12, 12]), "/nodes/12"),
    "wrong channels": (lambda f: (_set_attr("/", "input_shape", [3, 8, 8])(f),
                                  _delete("/normalization")(f)), "/nodes/0"),
    "norm channels": (_set_attr("/", "input_shape", [3, 8, 8]), "/normalization/mean"),
    "in_features mismatch": (lambda f: (
        _set_attr("/nodes/12", "config", json.dumps(
            {"in_features": 64, "out_features": 10, "bias": True}))(f),
        _replace("/parameters/fc/weight", np.zeros((10, 64)))(f)), "/nodes/12"),
    "classes count": (_replace("/classes", np.array(["a", "b"], dtype=object)), "/classes"),
    "no nodes": (_delete("/nodes"), "/nodes"),
    "no count": (_del_attr("/nodes", "count"), "/nodes attribute 'count'"),
    "count too big": (_set_attr("/nodes", "count", 14), "/nodes/13"),
    "count too small": (_set_attr("/nodes", "count", 12), "/nodes/12"),
    "stray node group": (_group("/nodes/x"), "/nodes/x"),
    "unknown kind": (_set_attr("/nodes/2", "kind", "gelu"), "/nodes/2 attribute 'kind'"),
    "no kind": (_del_attr("/nodes/2", "kind"), "/nodes/2 attribute 'kind'"),
    "duplicate name": (_set_attr("/nodes/1", "name", "conv1"), "/nodes/1 attribute 'name'"),
    "name input": (_set_attr("/nodes/0", "name", "input"), "/nodes/0 attribute 'name'"),
    "name with slash": (_set_attr("/nodes/0", "name", "a/b"), "/nodes/0 attribute 'name'"),
    "unknown input": (_set_attr("/nodes/3", "inputs", ["ghost"]), "/nodes/3 attribute 'inputs'"),
    "forward input": (_set_attr("/nodes/3", "inputs", ["fc"]), "/nodes/3 attribute 'inputs'"),
    "two inputs": (_set_attr("/nodes/2", "inputs", ["bn1", "conv1"]),
                   "/nodes/2 attribute 'inputs'"),
    "no inputs": (_del_attr("/nodes/2", "inputs"), "/nodes/2 attribute 'inputs'"),
    "config not json": (_set_attr("/nodes/0", "config", "{in_channels: 1"),
                        "/nodes/0 attribute 'config'"),
    "config not object": (_set_attr("/nodes/0", "config", "[1, 2]"),
                           "/nodes/0 attribute 'config'"),
    "config missing key": (_set_attr("/nodes/0", "config", json.dumps({"in_channels": 1})),
                           "/nodes/0 attribute 'config'"),
    "config unknown key": (_set_attr("/nodes/2", "config", json.dumps({"slope": 0.1})),
                           "/nodes/2 attribute 'config'"),
    "config bad value": (_set_attr("/nodes/1", "config", json.dumps(
        {"num_features": 16, "eps": -1.0, "momentum": 0.1})), "/nodes/1 attribute 'config'"),
    "missing weight": (_delete("/parameters/conv1/weight"), "/parameters/conv1/weight"),
    "missing node arrays": (_delete("/parameters/fc"), "/parameters/fc/weight"),
    "missing buffer": (_delete("/buffers/bn2/running_var"), "/buffers/bn2/running_var"),
    "wrong shape": (_replace("/parameters/conv1/weight", np.zeros((16, 1, 5, 5))),
                    "/parameters/conv1/weight"),
    "integer weight": (_replace("/parameters/fc/bias", np.zeros(10, dtype=np.int64)),
                       "/parameters/fc/bias"),
    "weight is a group": (lambda f: (f.__delitem__("/parameters/fc/bias"),
                                     f.create_group("/parameters/fc/bias")),
                          "/parameters/fc/bias"),
    "extra array": (_create("/parameters/conv1/bias", np.zeros(16)), "/parameters/conv1/bias"),
    "unknown node arrays": (_create("/parameters/ghost/weight", np.zeros(3)), "/parameters/ghost"),
    "arrays for a relu": (_create("/buffers/relu1/x", np.zeros(3)), "/buffers/relu1/x"),
    "no parameters": (_delete("/parameters"), "/parameters"),
    "classes numeric": (_replace("/classes", np.arange(10)), "/classes"),
    "classes 2-D": (_replace("/classes", np.array([["a", "b"]], dtype=object).astype("S")),
                    "/classes"),
    "std zero": (_replace("/normalization/std", np.zeros(1)), "/normalization/std"),
    "std missing": (_delete("/normalization/std"), "/normalization/std"),
    "mean shape": (_replace("/normalization/mean", np.zeros(3)), "/normalization/mean"),
    "mean nan": (_replace("/normalization/mean", np.full(1, np.nan)), "/normalization/mean"),
}


@pytest.fixture(scope="module")
def good_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("good") / "cnn.h5"
    save_model(ZOO["digits_cnn"][0], path)
    return path


class TestBadFiles:
    @pytest.mark.parametrize("case", sorted(BAD))
    def test_rejected_naming_the_path(self, tmp_path, good_file, case):
        action, where = BAD[case]
        path = tmp_path / "bad.h5"
        path.write_bytes(good_file.read_bytes())
        with h5py.File(path, "r+") as f:
            del f.attrs["xbarref_sha256"]  # hand-edited: the content checks must catch it
            action(f)
        with pytest.raises(FileFormatError) as info:
            load_model(path)
        message = str(info.value)
        assert str(path) in message, message
        assert where in message, message

    def test_good_file_loads(self, good_file):
        assert len(load_model(good_file).nodes) == 13

    @pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.999])
    def test_truncated(self, tmp_path, good_file, fraction):
        data = good_file.read_bytes()
        path = tmp_path / "cut.h5"
        path.write_bytes(data[: int(len(data) * fraction)])
        with pytest.raises(FileFormatError, match="cut.h5"):
            load_model(path)

    def test_corrupt_bytes_in_the_middle(self, tmp_path, good_file):
        data = bytearray(good_file.read_bytes())
        rng = np.random.default_rng(3)
        start = len(data) // 3
        data[start:start + 4096] = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
        path = tmp_path / "corrupt.h5"
        path.write_bytes(bytes(data))
        with pytest.raises(FileFormatError, match="corrupt.h5"):
            load_model(path)

    def test_flipped_bytes_never_give_wrong_numbers(self, tmp_path, good_file):
        """Random byte damage (seeded): the reader either rejects the file or, when the
        damage hit bytes HDF5 does not use, returns exactly the original model. Metadata
        checksums and the Fletcher-32 filter on every array make silent changes
        impossible; any other exception type is a failure."""
        original = load_model(good_file)
        want = {**original.named_parameters(), **original.named_buffers()}
        clean = good_file.read_bytes()
        rng = np.random.default_rng(2026)
        rejected = 0
        for trial in range(40):
            data = bytearray(clean)
            for pos in rng.integers(0, len(data), size=int(rng.integers(1, 4))):
                data[pos] ^= int(rng.integers(1, 256))
            path = tmp_path / f"flip{trial}.h5"
            path.write_bytes(bytes(data))
            try:
                model = load_model(path)
            except FileFormatError as exc:
                assert f"flip{trial}.h5" in str(exc)
                rejected += 1
                continue
            got = {**model.named_parameters(), **model.named_buffers()}
            assert all(got[k].tobytes() == want[k].tobytes() for k in want), trial
        assert rejected > 0

    def test_not_hdf5(self, tmp_path):
        path = tmp_path / "model.txt"
        path.write_text("conv1 weight 1 2 3\n" * 100)
        with pytest.raises(FileFormatError, match="model.txt"):
            load_model(path)

    def test_missing_file(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="absent.h5"):
            load_model(tmp_path / "absent.h5")

    def test_a_dataset_file_is_not_a_model(self):
        from xbarref.io.data import bundled_dataset_path
        with pytest.raises(FileFormatError, match="attribute 'format'"):
            load_model(bundled_dataset_path())


# --------------------------------------------------------------------------- property
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

_floats = st.floats(allow_nan=False, allow_infinity=False, allow_subnormal=True,
                    min_value=-1e300, max_value=1e300, width=64)


@st.composite
def conv_models(draw):
    """A conv -> bn -> relu -> flatten -> linear model with drawn (often non-square)
    shapes and arbitrary float64 bit patterns (subnormals, -0.0, huge values)."""
    cin, cout = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    sh, sw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    h = draw(st.integers(max(1, kh - 2 * ph), 6))
    w = draw(st.integers(max(1, kw - 2 * pw), 6))
    ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    k = draw(st.integers(1, 4))
    nodes = [Node("c.0", Conv2d(cin, cout, (kh, kw), (sh, sw), (ph, pw), draw(st.booleans()))),
             Node("c.1", BatchNorm2d(cout), ["c.0"]), Node("r", ReLU(), ["c.1"]),
             Node("f", Flatten(), ["r"]), Node("fc", Linear(cout * ho * wo, k), ["f"])]
    model = Model(nodes, (cin, h, w), classes=[f"k{i}" for i in range(k)])
    for key, arr in {**model.named_parameters(), **model.named_buffers()}.items():
        values = draw(hnp.arrays(np.float64, arr.shape, elements=_floats))
        arr[...] = np.abs(values) + 0.5 if key.endswith("running_var") else values
    return model


@settings(max_examples=25)
@given(model=conv_models())
def test_round_trip_is_bitwise_for_any_values(tmp_path_factory, model):
    path = tmp_path_factory.mktemp("prop") / "m.h5"
    save_model(model, path)
    back = load_model(path)
    want = {**model.named_parameters(), **model.named_buffers()}
    got = {**back.named_parameters(), **back.named_buffers()}
    assert sorted(got) == sorted(want)
    for key in want:
        assert got[key].tobytes() == want[key].tobytes(), key
    x = np.linspace(-1, 1, 2 * int(np.prod(model.input_shape))).reshape((2,) + model.input_shape)
    with np.errstate(all="ignore"):
        a, b = model(x), back(x)
    assert a.tobytes() == b.tobytes()
