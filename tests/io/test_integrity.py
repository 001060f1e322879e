"""Damage and size limits: every value is checksummed, no value comes from elsewhere,
no declared size is allocated before it is checked."""

from __future__ import annotations

import json
import os
import warnings

import h5py
import numpy as np
import pytest

from xbarref.circuit import Crossbar
from xbarref.errors import FileFormatError, SizeLimitError, XbarrefError
from xbarref.io.h5 import DIGEST_ATTR, IntegrityWarning, content_digest
from xbarref.io.case import Case, read_case, write_case
from xbarref.io.model import load_model, save_model


def bundled_model():
    """The bundled digits CNN (has batchnorm), detached from its file."""
    import xbarref

    model = load_model(os.path.join(os.path.dirname(xbarref.__file__), "data", "digits_cnn.h5"))
    model.source_path = None
    return model


def make_case(path, r_source=10.0):
    rng = np.random.default_rng(0)
    xb = Crossbar(rng.uniform(1e-6, 1e-4, (5, 4)), r_source=r_source, r_sink=3.0,
                  r_wire_row=1.0, r_wire_col=1.0)
    write_case(Case(xb, rng.uniform(0, 0.3, (2, 5))), path)
    return path


def flip_bit_of_value(path, value, bit=1):
    """Flip one bit of the little-endian float64 ``value`` where it is stored in the file."""
    data = bytearray(open(path, "rb").read())
    needle = np.float64(value).tobytes()
    at = data.find(needle)
    assert at >= 0, "value not found in the file"
    data[at + 7] ^= 1 << bit  # a bit of the exponent
    open(path, "wb").write(bytes(data))


class TestChecksum:
    def test_flipped_bit_in_a_scalar_resistance(self, tmp_path):
        """A scalar (stored without a Fletcher-32 filter) damaged in the file: 10 ohm
        becoming 5.6e-308 ohm must not be read as a valid case."""
        path = make_case(tmp_path / "c.h5", r_source=10.0)
        flip_bit_of_value(path, 10.0, bit=6)
        with pytest.raises(FileFormatError, match="checksum"):
            read_case(path)

    def test_changed_suite_attribute(self, tmp_path):
        from tests.validate.helpers import make, spec
        from xbarref.validate.suite import read_suite, write_suite

        suite = make([("a_4x4", spec(4, 4, "moderate")), ("b_3x5", spec(3, 5, "weak"))])
        path = tmp_path / "s.h5"
        write_suite(suite, path)
        raw = open(path, "rb").read()
        params = json.dumps(suite.cases[0].params, sort_keys=True).encode()
        at = raw.find(params)
        assert at >= 0
        # change one digit in the stored generator parameters (same length)
        k = at + next(i for i, ch in enumerate(params) if chr(ch).isdigit())
        new = b"9" if raw[k:k + 1] != b"9" else b"8"
        open(path, "wb").write(raw[:k] + new + raw[k + 1:])
        with pytest.raises(FileFormatError):
            read_suite(path)

    def test_digest_ignores_layout(self, tmp_path):
        """Re-writing the same content gives the same checksum (layout is not hashed)."""
        a = make_case(tmp_path / "a.h5")
        b = tmp_path / "b.h5"
        case = read_case(a)
        case.path = None
        write_case(case, b)
        with h5py.File(a) as fa, h5py.File(b) as fb:
            assert fa.attrs[DIGEST_ATTR] == fb.attrs[DIGEST_ATTR]
            assert content_digest(fa) == fb.attrs[DIGEST_ATTR].decode()

    def test_any_edit_is_detected(self, tmp_path):
        path = make_case(tmp_path / "c.h5")
        with h5py.File(path, "r+") as f:
            f["/crossbar"].attrs["note"] = "added"
        with pytest.raises(FileFormatError, match="checksum mismatch"):
            read_case(path)

    def test_file_without_checksum_reads_with_a_warning(self, tmp_path):
        path = make_case(tmp_path / "c.h5")
        with h5py.File(path, "r+") as f:
            del f.attrs[DIGEST_ATTR]
        with pytest.warns(IntegrityWarning, match="no content checksum"):
            case = read_case(path)
        assert case.crossbar.r_source[0] == 10.0

    def test_cli_warns_in_one_line(self, tmp_path, capsys):
        from xbarref.cli import main

        path = make_case(tmp_path / "c.h5")
        with h5py.File(path, "r+") as f:
            del f.attrs[DIGEST_ATTR]
        assert main(["info", str(path)]) == 0
        err = capsys.readouterr().err
        assert err.startswith("xbarref: warning:") and len(err.strip().splitlines()) == 1

    def test_model_checksum(self, tmp_path):
        model = bundled_model()
        path = tmp_path / "m.h5"
        save_model(model, path)
        weight = np.asarray(model.nodes[-1].layer.params["weight"]).ravel()[0]
        flip_bit_of_value(path, weight, bit=0)
        with pytest.raises(FileFormatError):
            load_model(path)

    def test_bundled_files_carry_checksums(self):
        import xbarref

        folder = os.path.join(os.path.dirname(xbarref.__file__), "data")
        for name in ("digits.h5", "digits_cnn.h5", "example_case.h5"):
            with h5py.File(os.path.join(folder, name)) as f:
                assert content_digest(f) == f.attrs[DIGEST_ATTR].decode(), name


class TestForeignStorage:
    def _case_with(self, tmp_path, make_G):
        """A case file whose /crossbar/G is made by ``make_G(file)``; no checksum (hand-made)."""
        path = make_case(tmp_path / "c.h5")
        with h5py.File(path, "r+") as f:
            del f.attrs[DIGEST_ATTR]
            del f["/crossbar/G"]
            make_G(f)
        return path

    def test_unwritten_dataset(self, tmp_path):
        path = self._case_with(tmp_path, lambda f: f.create_dataset("/crossbar/G", (5, 4), "f8",
                                                                    fillvalue=1e-5))
        with pytest.raises(FileFormatError, match="never"):
            read_case(path)

    def test_partly_written_chunked_dataset(self, tmp_path):
        def make(f):
            d = f.create_dataset("/crossbar/G", (5, 4), "f8", chunks=(1, 4), fillvalue=1e-5)
            d[0] = 2e-5
        path = self._case_with(tmp_path, make)
        with pytest.raises(FileFormatError, match="never"):
            read_case(path)

    def test_external_raw_storage(self, tmp_path):
        raw = tmp_path / "elsewhere.bin"
        np.full((5, 4), 1e-5).tofile(raw)
        path = self._case_with(tmp_path, lambda f: f.create_dataset(
            "/crossbar/G", (5, 4), "<f8", external=[(str(raw), 0, h5py.h5f.UNLIMITED)]))
        with pytest.raises(FileFormatError, match="external raw storage"):
            read_case(path)

    def test_virtual_dataset(self, tmp_path):
        src = tmp_path / "source.h5"
        with h5py.File(src, "w") as f:
            f["G"] = np.full((5, 4), 1e-5)
        layout = h5py.VirtualLayout(shape=(5, 4), dtype="f8")
        layout[:] = h5py.VirtualSource(str(src), "G", shape=(5, 4))
        path = self._case_with(tmp_path, lambda f: f.create_virtual_dataset("/crossbar/G", layout))
        with pytest.raises(FileFormatError, match="virtual dataset"):
            read_case(path)
        os.unlink(src)  # a missing source would read as the fill value
        with pytest.raises(FileFormatError, match="virtual dataset"):
            read_case(path)

    def test_external_link(self, tmp_path):
        src = tmp_path / "source.h5"
        with h5py.File(src, "w") as f:
            f["G"] = np.full((5, 4), 1e-5)

        def make(f):
            f["/crossbar/G"] = h5py.ExternalLink(str(src), "G")
        path = self._case_with(tmp_path, make)
        with pytest.raises(FileFormatError, match="external link"):
            read_case(path)

    def test_explicit_permission(self, tmp_path, monkeypatch):
        raw = tmp_path / "elsewhere.bin"
        G = np.full((5, 4), 2e-5)
        G.tofile(raw)
        path = self._case_with(tmp_path, lambda f: f.create_dataset(
            "/crossbar/G", (5, 4), "<f8", external=[(str(raw), 0, h5py.h5f.UNLIMITED)]))
        monkeypatch.setenv("XBARREF_ALLOW_EXTERNAL_STORAGE", "1")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", IntegrityWarning)
            np.testing.assert_array_equal(read_case(path).crossbar.G, G)


class TestSizeLimits:
    def test_huge_declared_case_is_refused_before_reading(self, tmp_path):
        """A small file that declares G as 100 000 x 100 000 (74.5 GiB)."""
        path = tmp_path / "c.h5"
        make_case(path)
        with h5py.File(path, "r+") as f:
            del f.attrs[DIGEST_ATTR]
            del f["/crossbar/G"]
            f.create_dataset("/crossbar/G", (100_000, 100_000), "f8", chunks=(100, 100))
        assert os.path.getsize(path) < 100_000
        with pytest.raises(SizeLimitError, match="100000 x 100000"):
            read_case(path)

    def test_limits_are_adjustable(self, tmp_path, monkeypatch):
        path = make_case(tmp_path / "c.h5")
        monkeypatch.setenv("XBARREF_MAX_CELLS", "10")
        with pytest.raises(SizeLimitError, match="XBARREF_MAX_CELLS"):
            read_case(path)
        monkeypatch.setenv("XBARREF_MAX_CELLS", "20")
        assert read_case(path).shape == (5, 4)
        monkeypatch.setenv("XBARREF_MAX_ARRAY_BYTES", "100")
        with pytest.raises(SizeLimitError, match="XBARREF_MAX_ARRAY_BYTES"):
            read_case(path)
        monkeypatch.setenv("XBARREF_MAX_ARRAY_BYTES", "lots")
        with pytest.raises(XbarrefError, match="XBARREF_MAX_ARRAY_BYTES"):
            read_case(path)

    def test_model_node_count(self, tmp_path):
        path = tmp_path / "m.h5"
        save_model(bundled_model(), path)
        with h5py.File(path, "r+") as f:
            del f.attrs[DIGEST_ATTR]
            f["/nodes"].attrs["count"] = 10**9
        with pytest.raises(FileFormatError, match="count is 1000000000"):
            load_model(path)

    def test_model_huge_hyper_parameters(self, tmp_path):
        model = bundled_model()
        path = tmp_path / "m.h5"
        save_model(model, path)
        with h5py.File(path, "r+") as f:
            del f.attrs[DIGEST_ATTR]
            last = f["/nodes"][str(len(model.nodes) - 1)]
            config = json.loads(last.attrs["config"])
            config["in_features"] = 10**7
            config["out_features"] = 10**6
            last.attrs["config"] = json.dumps(config)
        with pytest.raises((SizeLimitError, FileFormatError)):
            load_model(path)

    @pytest.mark.parametrize("text,match", [
        ('[sweep]\nseeds = 1000000000\n', "sweep.seeds"),
        ('[grid]\n"dac.bits" = [' + ", ".join(["4"] * 100) + ']\n'
         '"adc.bits" = [' + ", ".join(["4"] * 100) + ']\n'
         '"parasitics.r_wire_row" = [' + ", ".join(["1.0"] * 100) + ']\n', "grid"),
    ])
    def test_sweep_counts(self, text, match):
        import time

        from xbarref.sweep.spec import loads_spec

        t0 = time.perf_counter()
        with pytest.raises(SizeLimitError, match=match):
            loads_spec(text)
        assert time.perf_counter() - t0 < 5


class TestModelValues:
    @pytest.fixture
    def saved(self, tmp_path):
        model = bundled_model()
        path = tmp_path / "m.h5"
        save_model(model, path)
        return model, path

    @pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
    def test_non_finite_weight(self, saved, bad):
        model, path = saved
        node = model.nodes[-1].name
        with h5py.File(path, "r+") as f:
            del f.attrs[DIGEST_ATTR]
            w = f[f"/parameters/{node}/weight"]
            arr = w[()]
            arr.flat[3] = bad
            w[...] = arr
        with pytest.raises(FileFormatError, match=rf"{node}\.weight must be finite"):
            load_model(path)

    @pytest.mark.parametrize("bad", [-1.0, np.nan])
    def test_impossible_running_var(self, saved, bad):
        model, path = saved
        bn = next(n.name for n in model.nodes if "running_var" in n.layer.buffers)
        with h5py.File(path, "r+") as f:
            del f.attrs[DIGEST_ATTR]
            d = f[f"/buffers/{bn}/running_var"]
            arr = d[()]
            arr[0] = bad
            d[...] = arr
        with pytest.raises(FileFormatError, match=rf"{bn}\.running_var"):
            load_model(path)

    def test_cli_infer_refuses(self, saved, capsys):
        from xbarref.cli import main

        model, path = saved
        node = model.nodes[-1].name
        with h5py.File(path, "r+") as f:
            del f.attrs[DIGEST_ATTR]
            w = f[f"/parameters/{node}/weight"]
            arr = w[()]
            arr.flat[0] = np.nan
            w[...] = arr
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert main(["infer", str(path)]) == 2
        err = capsys.readouterr().err
        assert f"{node}.weight" in err and "accuracy" not in err
