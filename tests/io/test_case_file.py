"""Case files: every variant of docs/case-format.md reads, bad files are refused."""

import os
import zlib

import h5py
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from xbarref.circuit import Crossbar
from xbarref.errors import FileFormatError, XbarrefError
from xbarref.io.case import Case, read_case, write_case

M, N, B = 3, 4, 2


def spec_file(path, *, G=None, r_source=10.0, r_sink=5.0, r_wire_row=1.0, r_wire_col=2.0,
              device="linear", sinh_k=None, V=None, outputs=None, solver=None):
    """Write a case file by hand with h5py, straight from the spec (not via write_case)."""
    rng = np.random.default_rng(7)
    if G is None:
        G = rng.uniform(1e-6, 1e-4, (M, N))
    if V is None:
        V = rng.uniform(-0.5, 0.5, (B, M))
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "xbarref.case"
        f.attrs["format_version"] = 1
        g = f.create_group("crossbar")
        g["G"] = np.asarray(G, dtype=np.float64)
        for name, value in (("r_source", r_source), ("r_sink", r_sink),
                            ("r_wire_row", r_wire_row), ("r_wire_col", r_wire_col)):
            g[name] = np.asarray(value, dtype=np.float64)
        g.attrs["device"] = device
        if sinh_k is not None:
            g.attrs["sinh_k"] = sinh_k
        f.create_group("inputs")["V"] = np.asarray(V, dtype=np.float64)
        if outputs is not None:
            o = f.create_group("outputs")
            for name, value in outputs.items():
                o[name] = np.asarray(value, dtype=np.float64)
            if solver is not None:
                o.attrs["solver"] = solver
    return path


def _rng_case(rng, M, N, B, device="linear", outputs=(), scalar=True):
    def r(shape):
        if scalar:
            return float(rng.uniform(0, 10))
        vals = rng.uniform(0, 10, shape)
        vals[rng.random(shape) < 0.3] = 0.0
        return vals

    G = rng.uniform(0, 1e-4, (M, N))
    G[rng.random((M, N)) < 0.2] = 0.0
    xb = Crossbar(G, r_source=r((M,)), r_sink=r((N,)), r_wire_row=r((M, N - 1)),
                  r_wire_col=r((M - 1, N)), device=device,
                  sinh_k=2.5 if device == "sinh" else None)
    V = rng.uniform(-0.6, 0.6, (B, M))
    out = {}
    if "I" in outputs:
        out["I"] = rng.normal(size=(B, N)) * 1e-5
    if "nodes" in outputs:
        out["V_row"] = rng.normal(size=(B, M, N))
        out["V_col"] = rng.normal(size=(B, M, N))
    return Case(xb, V, solver="test-solver" if out else None, **out)


def assert_same_case(a, b):
    for name in ("G", "r_source", "r_sink", "r_wire_row", "r_wire_col"):
        np.testing.assert_array_equal(getattr(a.crossbar, name), getattr(b.crossbar, name))
    assert a.crossbar.device == b.crossbar.device
    assert a.crossbar.sinh_k == b.crossbar.sinh_k
    np.testing.assert_array_equal(a.V, b.V)
    for name in ("I", "V_row", "V_col"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            np.testing.assert_array_equal(x, y)
    assert a.solver == b.solver


class TestRoundTrip:
    @pytest.mark.parametrize("shape", [(1, 1), (1, 5), (5, 1), (3, 4), (6, 2)])
    @pytest.mark.parametrize("device", ["linear", "sinh"])
    @pytest.mark.parametrize("scalar", [True, False])
    @pytest.mark.parametrize("outputs", [(), ("I",), ("I", "nodes"), ("nodes",)])
    def test_write_then_read(self, tmp_path, shape, device, scalar, outputs):
        rng = np.random.default_rng(zlib.crc32(repr((shape, device, scalar, outputs)).encode()))
        case = _rng_case(rng, *shape, B=3, device=device, outputs=outputs, scalar=scalar)
        path = write_case(case, tmp_path / "c.h5")
        back = read_case(path)
        assert_same_case(case, back)
        assert back.path == os.fspath(tmp_path / "c.h5")
        # and once more: a copy of a read case is the same case
        write_case(back, tmp_path / "d.h5")
        assert_same_case(back, read_case(tmp_path / "d.h5"))

    def test_written_layout_is_the_spec(self, tmp_path):
        rng = np.random.default_rng(3)
        case = _rng_case(rng, 3, 4, 2, device="sinh", outputs=("I", "nodes"), scalar=False)
        write_case(case, tmp_path / "c.h5")
        with h5py.File(tmp_path / "c.h5", "r") as f:
            assert f.attrs["format"] == "xbarref.case"
            assert int(f.attrs["format_version"]) == 1
            assert f["crossbar"].attrs["device"] == "sinh"
            assert float(f["crossbar"].attrs["sinh_k"]) == 2.5
            want = {"crossbar/G": (3, 4), "crossbar/r_source": (3,), "crossbar/r_sink": (4,),
                    "crossbar/r_wire_row": (3, 3), "crossbar/r_wire_col": (2, 4),
                    "inputs/V": (2, 3), "outputs/I": (2, 4), "outputs/V_row": (2, 3, 4),
                    "outputs/V_col": (2, 3, 4)}
            for p, shape in want.items():
                assert f[p].dtype == np.float64, p
                assert f[p].shape == shape, p
            assert f["outputs"].attrs["solver"] == "test-solver"

    def test_equal_resistances_written_as_scalars(self, tmp_path):
        xb = Crossbar(np.full((2, 3), 1e-5), r_source=[4.0, 4.0], r_sink=0.0,
                      r_wire_row=1.5, r_wire_col=np.array([[1.0, 2.0, 3.0]]))
        write_case(Case(xb, [0.1, 0.2]), tmp_path / "c.h5")
        with h5py.File(tmp_path / "c.h5", "r") as f:
            assert f["crossbar/r_source"].shape == ()
            assert f["crossbar/r_source"][()] == 4.0
            assert f["crossbar/r_sink"][()] == 0.0
            assert f["crossbar/r_wire_row"].shape == ()
            assert f["crossbar/r_wire_col"].shape == (1, 3)
            assert "outputs" not in f
            assert "sinh_k" not in f["crossbar"].attrs

    def test_hand_written_scalars_and_arrays(self, tmp_path):
        rng = np.random.default_rng(1)
        G = rng.uniform(0, 1e-4, (M, N))
        rs = np.array([0.0, 3.0, 7.0])
        rw = rng.uniform(0, 2, (M, N - 1))
        V = rng.uniform(-1, 1, (B, M))
        spec_file(tmp_path / "c.h5", G=G, r_source=rs, r_sink=0.0, r_wire_row=rw,
                  r_wire_col=4.0, V=V)
        case = read_case(tmp_path / "c.h5")
        np.testing.assert_array_equal(case.crossbar.G, G)
        np.testing.assert_array_equal(case.crossbar.r_source, rs)
        np.testing.assert_array_equal(case.crossbar.r_sink, np.zeros(N))
        np.testing.assert_array_equal(case.crossbar.r_wire_row, rw)
        np.testing.assert_array_equal(case.crossbar.r_wire_col, np.full((M - 1, N), 4.0))
        np.testing.assert_array_equal(case.V, V)
        assert case.crossbar.device == "linear" and case.crossbar.sinh_k is None
        assert not case.has_outputs and case.solver is None

    def test_one_dimensional_V_is_a_batch_of_one(self, tmp_path):
        spec_file(tmp_path / "c.h5", V=[0.1, -0.2, 0.3])
        case = read_case(tmp_path / "c.h5")
        assert case.V.shape == (1, M)
        np.testing.assert_array_equal(case.V[0], [0.1, -0.2, 0.3])

    def test_sinh_and_partial_outputs(self, tmp_path):
        I = np.arange(B * N, dtype=float).reshape(B, N) * 1e-6
        spec_file(tmp_path / "c.h5", device="sinh", sinh_k=3.0, outputs={"I": I},
                  solver="ngspice 39")
        case = read_case(tmp_path / "c.h5")
        assert case.crossbar.device == "sinh" and case.crossbar.sinh_k == 3.0
        np.testing.assert_array_equal(case.I, I)
        assert case.V_row is None and case.V_col is None
        assert case.solver == "ngspice 39"

    def test_outputs_without_solver_attribute(self, tmp_path):
        spec_file(tmp_path / "c.h5", outputs={"V_row": np.zeros((B, M, N))})
        case = read_case(tmp_path / "c.h5")
        assert case.I is None and case.V_row.shape == (B, M, N) and case.solver is None

    def test_single_row_full_empty_column_wires(self, tmp_path):
        # M = 1: r_wire_col has the full shape (0, N); N = 1: r_wire_row (M, 0).
        spec_file(tmp_path / "c.h5", G=np.full((1, 3), 1e-5), r_wire_col=np.zeros((0, 3)),
                  V=[[0.2]])
        assert read_case(tmp_path / "c.h5").crossbar.r_wire_col.shape == (0, 3)
        spec_file(tmp_path / "d.h5", G=np.full((2, 1), 1e-5), r_wire_row=np.zeros((2, 0)),
                  r_wire_col=np.ones((1, 1)), V=[[0.2, 0.1]])
        assert read_case(tmp_path / "d.h5").crossbar.r_wire_row.shape == (2, 0)


def _edit(path, fn):
    with h5py.File(path, "a") as f:
        fn(f)


def _replace(h5path, value):
    def fn(f):
        del f[h5path]
        f[h5path] = value
    return fn


def _del(h5path):
    def fn(f):
        del f[h5path]
    return fn


def _attr(h5path, name, value):
    def fn(f):
        if value is None:
            del f[h5path].attrs[name]
        else:
            f[h5path].attrs[name] = value
    return fn


BAD_FILES = {
    # name: (edit, substring the message must contain: the HDF5 path)
    "format wrong": (_attr("/", "format", "xbarref.model"), "'format'"),
    "format missing": (_attr("/", "format", None), "'format'"),
    "version 2": (_attr("/", "format_version", 2), "'format_version'"),
    "version string": (_attr("/", "format_version", "1"), "'format_version'"),
    "version missing": (_attr("/", "format_version", None), "'format_version'"),
    "crossbar missing": (_del("/crossbar"), "/crossbar"),
    "G missing": (_del("/crossbar/G"), "/crossbar/G"),
    "G 1-D": (_replace("/crossbar/G", np.ones(M * N) * 1e-5), "/crossbar/G"),
    "G NaN": (_replace("/crossbar/G", np.full((M, N), np.nan)), "/crossbar/G"),
    "G negative": (_replace("/crossbar/G", -np.ones((M, N)) * 1e-5), "/crossbar/G"),
    "G integer": (_replace("/crossbar/G", np.ones((M, N), dtype=np.int64)), "/crossbar/G"),
    "G empty": (_replace("/crossbar/G", np.ones((0, N))), "/crossbar/G"),
    "G null dataspace": (_replace("/crossbar/G", h5py.Empty("f8")), "/crossbar/G"),
    "r_sink null dataspace": (_replace("/crossbar/r_sink", h5py.Empty("f8")), "/crossbar/r_sink"),
    "V null dataspace": (_replace("/inputs/V", h5py.Empty("f8")), "/inputs/V"),
    "G string": (_replace("/crossbar/G", "abc"), "/crossbar/G"),
    "r_source shape": (_replace("/crossbar/r_source", np.ones(M + 1)), "/crossbar/r_source"),
    "r_source missing": (_del("/crossbar/r_source"), "/crossbar/r_source"),
    "r_sink negative": (_replace("/crossbar/r_sink", -1.0), "/crossbar/r_sink"),
    "r_sink transposed": (_replace("/crossbar/r_sink", np.ones((N, 1))), "/crossbar/r_sink"),
    "r_wire_row shape": (_replace("/crossbar/r_wire_row", np.ones((M, N))), "/crossbar/r_wire_row"),
    "r_wire_row inf": (_replace("/crossbar/r_wire_row", np.inf), "/crossbar/r_wire_row"),
    "r_wire_col shape": (_replace("/crossbar/r_wire_col", np.ones((M, N - 1))), "/crossbar/r_wire_col"),
    "r_wire_col NaN": (_replace("/crossbar/r_wire_col", np.full((M - 1, N), np.nan)), "/crossbar/r_wire_col"),
    "r_wire_col group": (lambda f: (f.__delitem__("/crossbar/r_wire_col"),
                                    f.create_group("/crossbar/r_wire_col")), "/crossbar/r_wire_col"),
    "device unknown": (_attr("/crossbar", "device", "memristor"), "'device'"),
    "device missing": (_attr("/crossbar", "device", None), "'device'"),
    "sinh without k": (_attr("/crossbar", "device", "sinh"), "'sinh_k'"),
    "sinh_k on linear": (_attr("/crossbar", "sinh_k", 2.0), "'sinh_k'"),
    "inputs missing": (_del("/inputs"), "/inputs"),
    "V missing": (_del("/inputs/V"), "/inputs/V"),
    "V wrong width": (_replace("/inputs/V", np.ones((B, M + 1))), "/inputs/V"),
    "V 3-D": (_replace("/inputs/V", np.ones((B, M, 1))), "/inputs/V"),
    "V NaN": (_replace("/inputs/V", np.full((B, M), np.nan)), "/inputs/V"),
    "V empty batch": (_replace("/inputs/V", np.ones((0, M))), "/inputs/V"),
    "V scalar": (_replace("/inputs/V", 0.5), "/inputs/V"),
    "outputs dataset": (lambda f: f.__setitem__("/outputs", np.ones(3)), "/outputs"),
    "I wrong shape": (lambda f: f.__setitem__("/outputs/I", np.ones((B, N + 1))), "/outputs/I"),
    "I wrong batch": (lambda f: f.__setitem__("/outputs/I", np.ones((B + 1, N))), "/outputs/I"),
    "I NaN": (lambda f: f.__setitem__("/outputs/I", np.full((B, N), np.nan)), "/outputs/I"),
    "V_row wrong shape": (lambda f: f.__setitem__("/outputs/V_row", np.ones((B, N, M))), "/outputs/V_row"),
    "V_col inf": (lambda f: f.__setitem__("/outputs/V_col", np.full((B, M, N), -np.inf)), "/outputs/V_col"),
    "solver not a string": (lambda f: (f.create_group("/outputs"),
                                       f["/outputs"].attrs.__setitem__("solver", 3)), "'solver'"),
}


class TestBadFiles:
    @pytest.mark.parametrize("name", sorted(BAD_FILES))
    def test_bad_file_names_the_path(self, tmp_path, name):
        edit, where = BAD_FILES[name]
        path = spec_file(tmp_path / "c.h5")
        _edit(path, edit)
        with pytest.raises(FileFormatError) as info:
            read_case(path)
        message = str(info.value)
        assert where in message, message
        assert os.fspath(path) in message, message

    def test_file_format_error_is_a_value_error(self):
        assert issubclass(FileFormatError, XbarrefError)
        assert issubclass(FileFormatError, ValueError)

    @pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
    def test_truncated_file(self, tmp_path, fraction):
        rng = np.random.default_rng(5)
        case = _rng_case(rng, 20, 30, 8, outputs=("I", "nodes"), scalar=False)
        write_case(case, tmp_path / "good.h5")
        data = (tmp_path / "good.h5").read_bytes()
        (tmp_path / "cut.h5").write_bytes(data[: int(len(data) * fraction)])
        with pytest.raises(FileFormatError) as info:
            read_case(tmp_path / "cut.h5")
        assert "cut.h5" in str(info.value)

    def test_corrupt_bytes(self, tmp_path):
        rng = np.random.default_rng(6)
        write_case(_rng_case(rng, 5, 5, 2), tmp_path / "good.h5")
        data = bytearray((tmp_path / "good.h5").read_bytes())
        data[:8] = b"\x00" * 8  # destroy the HDF5 signature
        (tmp_path / "bad.h5").write_bytes(bytes(data))
        with pytest.raises(FileFormatError, match="bad.h5"):
            read_case(tmp_path / "bad.h5")

    def test_flipped_byte_in_an_array(self, tmp_path):
        # write_case stores arrays with checksums: a damaged value is detected, not read
        rng = np.random.default_rng(12)
        case = _rng_case(rng, 6, 7, 2, scalar=False)
        write_case(case, tmp_path / "good.h5")
        data = bytearray((tmp_path / "good.h5").read_bytes())
        at = bytes(data).find(case.crossbar.G.tobytes())
        assert at > 0
        data[at + 13] ^= 0x10
        (tmp_path / "flip.h5").write_bytes(bytes(data))
        with pytest.raises(FileFormatError, match="flip.h5"):
            read_case(tmp_path / "flip.h5")

    def test_not_hdf5(self, tmp_path):
        (tmp_path / "c.h5").write_text("format = xbarref.case\n")
        with pytest.raises(FileFormatError, match="c.h5"):
            read_case(tmp_path / "c.h5")

    def test_missing_file(self, tmp_path):
        with pytest.raises(FileNotFoundError):
            read_case(tmp_path / "nope.h5")


class TestWriting:
    def test_refuses_to_overwrite_its_input(self, tmp_path):
        path = spec_file(tmp_path / "c.h5")
        before = path.read_bytes()
        case = read_case(path)
        with pytest.raises(XbarrefError, match="overwrite"):
            write_case(case, path)
        assert path.read_bytes() == before
        assert sorted(os.listdir(tmp_path)) == ["c.h5"]

    def test_replaces_other_file_atomically_without_leftovers(self, tmp_path):
        rng = np.random.default_rng(8)
        a, b = _rng_case(rng, 3, 3, 1), _rng_case(rng, 4, 2, 2, outputs=("I",))
        write_case(a, tmp_path / "out.h5")
        write_case(b, tmp_path / "out.h5")
        assert_same_case(b, read_case(tmp_path / "out.h5"))
        assert sorted(os.listdir(tmp_path)) == ["out.h5"]

    def test_failed_write_leaves_nothing(self, tmp_path, monkeypatch):
        rng = np.random.default_rng(9)
        case = _rng_case(rng, 3, 3, 1, outputs=("I",))

        def broken(*args, **kwargs):
            raise OSError("disk full (simulated)")

        monkeypatch.setattr(h5py.Group, "create_dataset", broken)
        with pytest.raises(OSError, match="simulated"):
            write_case(case, tmp_path / "out.h5")
        assert os.listdir(tmp_path) == []

    def test_missing_folder(self, tmp_path):
        rng = np.random.default_rng(10)
        with pytest.raises(XbarrefError, match="folder"):
            write_case(_rng_case(rng, 2, 2, 1), tmp_path / "no" / "out.h5")


class TestCaseObject:
    def test_checks_shapes(self):
        xb = Crossbar(np.ones((2, 3)) * 1e-5)
        with pytest.raises(XbarrefError, match="^V:"):
            Case(xb, np.ones((2, 4)))
        with pytest.raises(XbarrefError, match="^I:"):
            Case(xb, np.ones((2, 2)), I=np.ones((2, 2)))
        with pytest.raises(XbarrefError, match="^V_row:"):
            Case(xb, np.ones(2), V_row=np.ones((1, 3, 2)))
        with pytest.raises(XbarrefError, match="^V_col:"):
            Case(xb, np.ones(2), V_col=np.full((1, 2, 3), np.nan))
        with pytest.raises(XbarrefError, match="^crossbar:"):
            Case(np.ones((2, 3)), np.ones(2))
        with pytest.raises(XbarrefError, match="^V:"):
            Case(xb, np.ones((0, 2)))
        with pytest.raises(XbarrefError, match="^solver:"):
            Case(xb, np.ones(2), I=np.ones((1, 3)), solver="a\x00b")
        with pytest.raises(XbarrefError, match="^solver:"):
            Case(xb, np.ones(2), solver=3)

    def test_batch_of_one(self):
        case = Case(Crossbar(np.ones((2, 3)) * 1e-5), [0.1, 0.2])
        assert case.V.shape == (1, 2) and case.batch_size == 1 and case.shape == (2, 3)


# --- property: any valid case survives write -> read unchanged -------------------------

_finite_nonneg = st.floats(min_value=0.0, max_value=1e12, allow_nan=False,
                           allow_subnormal=True)
_finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_subnormal=True)


@st.composite
def valid_cases(draw):
    M, N, B = draw(st.integers(1, 5)), draw(st.integers(1, 5)), draw(st.integers(1, 3))

    def param(shape):
        if draw(st.booleans()):
            return draw(_finite_nonneg)
        return draw(hnp.arrays(np.float64, shape, elements=_finite_nonneg))

    device = draw(st.sampled_from(["linear", "sinh"]))
    xb = Crossbar(draw(hnp.arrays(np.float64, (M, N), elements=_finite_nonneg)),
                  r_source=param((M,)), r_sink=param((N,)), r_wire_row=param((M, N - 1)),
                  r_wire_col=param((M - 1, N)), device=device,
                  sinh_k=draw(st.floats(1e-3, 50.0)) if device == "sinh" else None)
    outputs = {}
    for name, shape in (("I", (B, N)), ("V_row", (B, M, N)), ("V_col", (B, M, N))):
        if draw(st.booleans()):
            outputs[name] = draw(hnp.arrays(np.float64, shape, elements=_finite))
    solver = draw(st.one_of(st.none(), st.text(max_size=20))) if outputs else None
    return Case(xb, draw(hnp.arrays(np.float64, (B, M), elements=_finite)), solver=solver,
                **outputs)


@given(case=valid_cases())
def test_any_valid_case_round_trips(tmp_path_factory, case):
    path = tmp_path_factory.mktemp("rt") / "c.h5"
    write_case(case, path)
    assert_same_case(case, read_case(path))
