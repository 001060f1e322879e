"""The compiled forward kernels of the layers against the plain NumPy statements they
replace: same bits (signs of zeros, NaN payloads), same strides, same caches and
gradients, on random inputs of many shapes and memory layouts (C order, channel-major,
channels-last, Fortran order, strided slices, reversed axes) with ties, +-0, +-inf and
NaN."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from xbarref.nn import BatchNorm1d, BatchNorm2d, Conv2d, MaxPool2d, ReLU
from xbarref.nn import _kernels
from xbarref.nn.layers import _channel_major, _reshape_is_view, _ufunc_output, _windows

NAN_PAYLOAD = np.array([0x7FF8000000000ABC, 0xFFF8000000000123], dtype=np.uint64).view(np.float64)


def _rng(*seed):
    return np.random.default_rng(list(seed))


def _values(rng, shape, kind):
    """Random float64 values: ``normal``; ``ties`` (0, 1, 2 and both zeros: many equal
    maxima); ``special`` (normal values mixed with +-0, +-inf and NaNs with payloads)."""
    if kind == "normal":
        return rng.standard_normal(shape)
    if kind == "ties":
        v = rng.integers(0, 3, shape).astype(np.float64)
        return np.where(rng.random(shape) < 0.5, -v, v)      # -0.0 and +0.0 alike
    pool = np.concatenate([[0.0, -0.0, np.inf, -np.inf, np.nan], NAN_PAYLOAD])
    v = rng.standard_normal(shape)
    pick = rng.random(shape) < 0.3
    return np.where(pick, pool[rng.integers(0, len(pool), shape)], v)


def _laid_out(values, perm, how):
    """``values`` copied into memory in the axis order ``perm`` (``values.transpose(perm)``
    C-contiguous), then ``how``: ``dense`` as is, ``sliced`` every other element of a
    twice larger last memory axis (not dense), ``reversed`` the first axis reversed."""
    inv = np.argsort(perm)
    if how == "sliced":
        shape = list(values.shape)
        shape[perm[-1]] *= 2
        big = np.zeros(tuple(shape[p] for p in perm)).transpose(inv)
        index = [slice(None)] * values.ndim
        index[perm[-1]] = slice(0, None, 2)
        x = big[tuple(index)]
        x[...] = values
        return x
    if how == "reversed":   # same values, a negative stride on axis 0
        return np.ascontiguousarray(values[::-1].transpose(perm)).transpose(inv)[::-1]
    return np.ascontiguousarray(values.transpose(perm)).transpose(inv)


def assert_same(a, b):
    """Same shape, strides and bits (so zeros' signs and NaN payloads too)."""
    assert a.shape == b.shape and a.dtype == b.dtype == np.float64
    assert a.strides == b.strides
    np.testing.assert_array_equal(a.view(np.uint64), b.view(np.uint64))


def _layouts(nd):
    return st.tuples(st.permutations(range(nd)), st.sampled_from(["dense", "dense", "sliced", "reversed"]))


kinds = st.sampled_from(["normal", "ties", "special"])


# ----------------------------------------------------------------------------- helpers
def test_laid_out_keeps_values_and_changes_memory():
    v = np.arange(24.0).reshape(2, 3, 4)
    for perm in [(0, 1, 2), (1, 0, 2), (2, 1, 0)]:
        for how in ("dense", "sliced", "reversed"):
            x = _laid_out(v, perm, how)
            np.testing.assert_array_equal(x, v)
            assert x.flags.c_contiguous == (perm == (0, 1, 2) and how == "dense")
    assert _laid_out(v, (0, 1, 2), "reversed").strides[0] < 0
    assert _laid_out(v, (2, 1, 0), "dense").flags.f_contiguous


@settings(max_examples=200)
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4), data=st.data())
def test_ufunc_output_has_numpys_layout(shape, data):
    """The allocation used by the kernels is laid out as NumPy lays out ``x * s``."""
    nd = len(shape)
    perm, how = data.draw(_layouts(nd))
    x = _laid_out(np.ones(shape), perm, how)
    s = np.ones((1, shape[1]) + (1,) * (nd - 2)) if nd >= 2 else np.ones(1)
    assert _ufunc_output(x, s).strides == (x * s).strides
    assert _ufunc_output(x, 0.0).strides == np.maximum(x, 0.0).strides


@settings(max_examples=300)
@given(shape=st.lists(st.integers(1, 3), min_size=2, max_size=6), data=st.data())
def test_reshape_is_view_is_numpys_rule(shape, data):
    """``_reshape_is_view`` says True exactly when NumPy's reshape returns a view."""
    nd = len(shape)
    split = data.draw(st.integers(0, nd))
    perm, how = data.draw(_layouts(nd))
    x = _laid_out(np.zeros(shape), perm, how)
    step = data.draw(st.sampled_from([1, 2]))
    if step == 2:   # strides not made by a permutation
        x = _laid_out(np.zeros([2 * n for n in shape]), perm, how)[(slice(None, None, 2),) * nd]
    k = int(np.prod(shape[:split]))
    y = x.reshape(k, -1)
    assert _reshape_is_view(x.shape, x.strides, split) == np.shares_memory(x, y)


# ----------------------------------------------------------------------------- max pooling
def _maxpool_numpy(layer, x):
    """The running maximum of ``MaxPool2d._forward_tiled`` as plain NumPy statements."""
    kh, kw = layer.kernel_size
    n, c, h, w = x.shape
    ho, wo = h // kh, w // kw
    y = _channel_major((n, c, ho, wo), 0.0)
    y[...] = x[:, :, 0:ho * kh:kh, 0:wo * kw:kw]
    for k in range(1, kh * kw):
        i, j = divmod(k, kw)
        np.maximum(x[:, :, i:ho * kh:kh, j:wo * kw:kw], y, out=y)
    if y.size and np.isnan(y.max()):
        y = layer._tiled_index(x)[0]
    return y


@settings(max_examples=150)
@given(n=st.integers(1, 3), c=st.integers(1, 5), h=st.integers(1, 9), w=st.integers(1, 9),
       k=st.sampled_from([(2, 2), (2, 2), (1, 2), (3, 2), (3, 3)]), kind=kinds, data=st.data())
def test_maxpool_equals_numpy(n, c, h, w, k, kind, data):
    assume(h >= k[0] and w >= k[1])
    perm, how = data.draw(_layouts(4))
    rng = _rng(n, c, h, w, *k, len(kind), *perm, len(how))
    x = _laid_out(_values(rng, (n, c, h, w), kind), perm, how)
    layer, ref = MaxPool2d(k), MaxPool2d(k)
    y = layer.forward(x)
    assert_same(y, _maxpool_numpy(ref, x))
    assert layer._cache[0] == x.shape and layer._cache[1] is x and layer._cache[2] is True
    g = rng.standard_normal(y.shape)
    ref._cache = (x.shape, x, True)
    assert_same(layer.backward(g), ref.backward(g))


@pytest.mark.parametrize("layout", ["planes", "channels_last"])
@settings(max_examples=60)
@given(n=st.integers(1, 3), c=st.integers(1, 6), h=st.integers(2, 9), w=st.integers(2, 9), kind=kinds)
def test_maxpool_kernels_are_np_maximum(layout, n, c, h, w, kind):
    """The kernels themselves (before the NaN path): ``np.maximum``'s values, zeros' signs
    on ties, NaN wherever NumPy has one, and the NaN flag."""
    rng = _rng(n, c, h, w, len(kind), len(layout))
    x = _values(rng, (n, c, h, w), kind)
    ho, wo = h // 2, w // 2
    ref = np.array(x[:, :, 0:2 * ho:2, 0:2 * wo:2])
    for i, j in ((0, 1), (1, 0), (1, 1)):
        np.maximum(x[:, :, i:2 * ho:2, j:2 * wo:2], ref, out=ref)
    buf = np.empty((c, n, ho, wo))
    if layout == "planes":
        xt = np.ascontiguousarray(x.transpose(1, 0, 2, 3))
        nan = _kernels.maxpool2x2_planes(xt.reshape(c * n, h, w), buf.reshape(c * n, ho, wo))
    else:
        nan = _kernels.maxpool2x2_channels_last(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), buf)
    y = buf.transpose(1, 0, 2, 3)
    assert nan == bool(np.isnan(ref).any())
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
    ok = ~np.isnan(ref)
    np.testing.assert_array_equal(y.view(np.uint64)[ok], ref.view(np.uint64)[ok])


def test_maxpool_zero_signs_and_nan_rules():
    """``np.maximum(part, y)`` keeps ``y`` on ties: the first zero's sign wins; a window
    with a NaN gives NaN only when its first element is NaN (the exact path)."""
    windows = [((0.0, -0.0, -0.0, 0.0), False), ((-0.0, 0.0, 0.0, 0.0), True),   # (a list:
               ((-1.0, -0.0, 0.0, -0.0), True), ((np.nan, 1.0, 2.0, 3.0), None),  # 0.0 == -0.0)
               ((1.0, np.nan, 5.0, 2.0), 5.0), ((-np.inf,) * 4, -np.inf)]
    for perm in ((1, 0, 2, 3), (0, 2, 3, 1)):      # channel-major and channels-last
        for window, want in windows:
            x = _laid_out(np.tile(np.array(window).reshape(1, 1, 2, 2), (1, 3, 1, 1)), perm, "dense")
            y = MaxPool2d(2).forward(x)
            assert np.array_equal(y, y[:, :1].repeat(3, axis=1), equal_nan=True)
            y = y[0, 0, 0, 0]
            if want is None:
                assert np.isnan(y)
            elif isinstance(want, bool):
                assert y == 0.0 and np.signbit(y) == want
            else:
                assert y == want


def _maxpool_backward_numpy(layer, x, g):
    """The tiled backward as plain NumPy statements: the first maxima
    (``MaxPool2d._tiled_index``), then ``np.where(index == k, g, 0.0)`` per offset."""
    index = layer._tiled_index(x)[1]
    return layer._backward_tiled(np.asarray(g, dtype=np.float64), x.shape, index)


@settings(max_examples=200)
@given(n=st.integers(1, 3), c=st.integers(1, 5), h=st.integers(1, 9), w=st.integers(1, 9),
       k=st.sampled_from([(2, 2), (2, 2), (2, 2), (1, 2), (2, 1), (3, 2), (3, 3), (1, 1)]),
       kind=kinds, gkind=kinds, data=st.data())
def test_maxpool_backward_equals_numpy(n, c, h, w, k, kind, gkind, data):
    """The compiled tiled backward (dense inputs: channel-major, C order, channels-last,
    any axis order) against the NumPy statements, also on the NumPy fallback layouts
    (strided slices, reversed axes): same bits (gradient NaN payloads and zeros' signs,
    +0.0 off the maxima and past the last whole window), same strides; inputs with ties
    (the first maximum wins), +-0, +-inf and NaN (a NaN first element keeps the gradient,
    a later NaN never takes it); non-square and 1 x n / n x 1 shapes."""
    assume(h >= k[0] and w >= k[1])
    perm, how = data.draw(_layouts(4))
    gperm, ghow = data.draw(_layouts(4))
    rng = _rng(n, c, h, w, *k, len(kind), len(gkind), *perm, len(how), *gperm, len(ghow))
    x = _laid_out(_values(rng, (n, c, h, w), kind), perm, how)
    layer, ref = MaxPool2d(k), MaxPool2d(k)
    y = layer.forward(x)
    g = _laid_out(_values(rng, y.shape, gkind), gperm, ghow)
    assert_same(layer.backward(g), _maxpool_backward_numpy(ref, x, g))


@pytest.mark.parametrize("perm", [(1, 0, 2, 3), (0, 1, 2, 3), (0, 2, 3, 1)])
@pytest.mark.parametrize("shape", [(2, 3, 6, 4), (1, 2, 5, 7), (3, 1, 1, 8), (2, 2, 9, 2)])
def test_maxpool_backward_is_compiled_for_dense_inputs(perm, shape, monkeypatch):
    """Channel-major, C-ordered and channels-last inputs take the kernel (the NumPy index
    is never built) and give the NumPy statements' bits, ties and NaNs included."""
    rng = _rng(*perm, *shape)
    x = _laid_out(_values(rng, shape, "ties"), perm, "dense")
    x[0, 0, 0, 0] = np.nan                   # a NaN first element keeps the gradient
    if shape[3] > 1:
        x[-1, -1, 0, 1] = np.nan             # a later NaN never takes it
    layer = MaxPool2d(2, stride=(2, 2)) if shape[2] > 1 else MaxPool2d((1, 2))
    y = layer.forward(x)
    g = _values(rng, y.shape, "special")
    want = _maxpool_backward_numpy(MaxPool2d(layer.kernel_size), x, g)

    def refuse(*args):
        raise AssertionError("NumPy path taken")

    monkeypatch.setattr(layer, "_tiled_index", refuse)
    got = layer.backward(g)
    assert_same(got, want)
    assert want[0, 0, 0, 0].view(np.uint64) == np.asarray(g)[0, 0, 0, 0].view(np.uint64)


def test_maxpool_backward_kernel_first_maximum_rules():
    """The kernel on hand-made 2 x 2 windows: the first of equal maxima (also +0.0 and
    -0.0, which compare equal) takes the gradient, NaN rules as in ``_tiled_index``."""
    windows = [((1.0, 1.0, 1.0, 1.0), 0), ((0.0, -0.0, 0.0, 0.0), 0), ((-0.0, 0.0, 0.0, 1.0), 3),
               ((1.0, 2.0, 2.0, 0.0), 1), ((0.0, 0.0, 3.0, 3.0), 2), ((np.nan, 5.0, 6.0, 7.0), 0),
               ((1.0, np.nan, 0.5, 2.0), 3), ((-np.inf, -np.inf, -np.inf, -np.inf), 0),
               ((2.0, np.nan, np.nan, np.nan), 0)]
    for window, first in windows:
        x = np.array(window).reshape(1, 1, 2, 2)
        out = np.full((1, 1, 2, 2), 7.0)
        g = NAN_PAYLOAD[:1].copy()
        _kernels.maxpool_tiled_backward(x.reshape(-1), (0, 0, 2, 1), g, (0, 0, 0, 0), x.shape, 2, 2, out)
        want = np.zeros(4)
        want[first] = g[0]
        np.testing.assert_array_equal(out.reshape(-1).view(np.uint64), want.view(np.uint64))


# ----------------------------------------------------------------------------- im2col
def _im2col_numpy(layer, x):
    """``Conv2d._im2col`` as plain NumPy statements (window view, transposed reshape)."""
    win = _windows(x, layer.kernel_size, layer.stride, layer.padding)
    n, c, ho, wo, kh, kw = win.shape
    cols_t = win.transpose(1, 4, 5, 0, 2, 3).reshape(c * kh * kw, n * ho * wo)
    return cols_t.T, ho, wo


@settings(max_examples=200)
@given(n=st.integers(1, 3), c=st.integers(1, 4), h=st.integers(1, 7), w=st.integers(1, 7),
       kh=st.integers(1, 3), kw=st.integers(1, 3), sh=st.integers(1, 3), sw=st.integers(1, 3),
       ph=st.integers(0, 2), pw=st.integers(0, 2), kind=kinds, data=st.data())
def test_im2col_equals_numpy(n, c, h, w, kh, kw, sh, sw, ph, pw, kind, data):
    assume(h + 2 * ph >= kh and w + 2 * pw >= kw)
    perm, how = data.draw(_layouts(4))
    rng = _rng(n, c, h, w, kh, kw, sh, sw, ph, pw, len(kind), *perm, len(how))
    x = _laid_out(_values(rng, (n, c, h, w), kind), perm, how)
    layer = Conv2d(c, 2, (kh, kw), stride=(sh, sw), padding=(ph, pw))
    cols, ho, wo = layer._im2col(x)
    ref, ho_ref, wo_ref = _im2col_numpy(layer, x)
    assert (ho, wo) == (ho_ref, wo_ref)
    assert_same(cols, ref)
    assert np.shares_memory(cols, x) == np.shares_memory(ref, x)
    # built in float32 (plain float32 crossbar reads): the float64 matrix rounded
    with np.errstate(over="ignore"):
        single, expected = layer._im2col(x, np.float32)[0], ref.astype(np.float32)
    assert single.dtype == np.float32 and single.shape == ref.shape
    np.testing.assert_array_equal(single, expected)      # NaN where NaN, signs of inf
    assert not np.shares_memory(single, x)


@settings(max_examples=60)
@given(n=st.integers(1, 3), c=st.integers(1, 3), h=st.integers(3, 8), w=st.integers(3, 8),
       pad=st.integers(0, 1), bias=st.booleans(), training=st.booleans(), data=st.data())
def test_conv2d_forward_backward_unchanged(n, c, h, w, pad, bias, training, data):
    """A whole Conv2d step gives the outputs, caches and gradients of the NumPy im2col."""
    perm, how = data.draw(_layouts(4))
    rng = _rng(n, c, h, w, pad, bias, training, *perm, len(how))
    x = _laid_out(rng.standard_normal((n, c, h, w)), perm, how)
    layer, ref = Conv2d(c, 3, 3, padding=pad, bias=bias), Conv2d(c, 3, 3, padding=pad, bias=bias)
    layer.reset_parameters(_rng(1))
    ref.reset_parameters(_rng(1))
    ref._im2col = lambda v: _im2col_numpy(ref, v)
    assert_same(layer.forward(x, training), ref.forward(x, training))
    if training:
        assert_same(layer._cache[1], ref._cache[1])
    else:
        assert layer._cache[1] is None and ref._cache[1] is None
    g = rng.standard_normal((n, 3) + layer._cache[2:])
    assert_same(layer.backward(g), ref.backward(g))
    for key in layer.grads:
        assert_same(layer.grads[key], ref.grads[key])


# ----------------------------------------------------------------------------- batchnorm
def _batchnorm(nd, c, rng, params):
    layer = BatchNorm2d(c) if nd == 4 else BatchNorm1d(c)
    layer.params["weight"][...] = rng.standard_normal(c)
    layer.params["bias"][...] = rng.standard_normal(c)
    layer.buffers["running_mean"][...] = rng.standard_normal(c)
    layer.buffers["running_var"][...] = rng.random(c) + 0.1
    if params == "nan":
        layer.params["weight"][rng.integers(c)] = np.nan
    elif params == "inf":
        layer.buffers["running_mean"][rng.integers(c)] = np.inf
    return layer


def _batchnorm_numpy(layer, x):
    """The eval branch of ``_BatchNorm.forward`` as plain NumPy statements."""
    shape = (1, layer.num_features) + (1,) * (x.ndim - 2)
    inv_std = 1.0 / np.sqrt(layer.buffers["running_var"] + layer.eps)
    scale = layer.params["weight"] * inv_std
    shift = layer.params["bias"] - layer.buffers["running_mean"] * scale
    y = x * scale.reshape(shape)
    y += shift.reshape(shape)
    return y, inv_std


@pytest.mark.filterwarnings("ignore::RuntimeWarning")     # inf - inf in the NaN cases
@settings(max_examples=150)
@given(shape=st.lists(st.integers(1, 5), min_size=2, max_size=4), kind=kinds,
       params=st.sampled_from(["finite", "finite", "nan", "inf"]), data=st.data())
def test_batchnorm_eval_equals_numpy(shape, kind, params, data):
    nd = len(shape)
    perm, how = data.draw(_layouts(nd))
    rng = _rng(*shape, len(kind), len(params), *perm, len(how))
    x = _laid_out(_values(rng, tuple(shape), kind), perm, how)
    layer = _batchnorm(nd, shape[1], rng, params)
    y = layer.forward(x)
    ref, inv_std = _batchnorm_numpy(layer, x)
    assert_same(y, ref)
    training, saved, inv, axes, cshape = layer._cache
    assert training is False and saved is x and axes == (0,) + tuple(range(2, nd))
    assert_same(inv, inv_std)
    assert cshape == (1, shape[1]) + (1,) * (nd - 2)
    g = rng.standard_normal(y.shape)
    gx = layer.backward(g)
    with np.errstate(invalid="ignore"):
        ref_gx = g * (layer.params["weight"] * inv_std).reshape(cshape)
    assert_same(gx, ref_gx)


def test_batchnorm_eval_has_two_roundings():
    """``fl(fl(x * s) + t)``, not a fused multiply-add: here the product rounds to
    ``1 + 2**-29`` and the sum is exactly 0 (a fused one would give ``2**-60``)."""
    layer = BatchNorm2d(1, eps=0.0)
    e = 2.0 ** -30
    layer.params["weight"][...] = 1.0 + e
    layer.params["bias"][...] = -(1.0 + 2 * e)
    for x in (np.full((2, 1, 3, 3), 1.0 + e), np.full((2, 3, 3, 1), 1.0 + e).transpose(0, 3, 1, 2)):
        y = layer.forward(x)
        assert np.all(y == 0.0) and not np.signbit(y).any()
        assert (1.0 + e) * (1.0 + e) - (1.0 + 2 * e) == 0.0


@pytest.mark.filterwarnings("ignore::RuntimeWarning")     # inf - inf in the NaN cases
@settings(max_examples=150)
@given(shape=st.lists(st.integers(1, 5), min_size=2, max_size=4), kind=kinds,
       params=st.sampled_from(["finite", "finite", "nan", "inf"]), data=st.data())
def test_batchnorm_relu_in_one_pass_is_the_two_layers(shape, kind, params, data):
    """``eval_relu`` (batchnorm and ReLU in one compiled pass, used by ``Model.__call__``)
    gives the bits and strides of the two layers' forward passes one after the other."""
    nd = len(shape)
    perm, how = data.draw(_layouts(nd))
    rng = _rng(*shape, len(kind), len(params), *perm, len(how), 7)
    x = _laid_out(_values(rng, tuple(shape), kind), perm, how)
    layer = _batchnorm(nd, shape[1], rng, params)
    y = layer.eval_relu(x, ReLU())
    for ref in (ReLU().forward(_batchnorm_numpy(layer, x)[0]), np.maximum(layer.forward(x), 0.0)):
        assert y.shape == ref.shape and y.dtype == ref.dtype
        # the same memory layout (strides of length-1 axes say nothing)
        assert [s for s, n in zip(y.strides, y.shape) if n > 1] == \
               [s for s, n in zip(ref.strides, ref.shape) if n > 1]
        np.testing.assert_array_equal(y.view(np.uint64), ref.view(np.uint64))


# ----------------------------------------------------------------------------- relu
@settings(max_examples=150)
@given(shape=st.lists(st.integers(1, 5), min_size=0, max_size=4), kind=kinds, data=st.data())
def test_relu_equals_np_maximum(shape, kind, data):
    nd = len(shape)
    perm, how = data.draw(_layouts(nd)) if nd else ((), "dense")
    rng = _rng(*shape, len(kind), *perm, len(how))
    values = _values(rng, tuple(shape), kind)
    x = _laid_out(values, perm, how) if nd else values
    layer = ReLU()
    y = layer.forward(x)
    ref = np.maximum(x, 0.0)
    assert_same(y, ref)
    assert layer._cache is y
    g = rng.standard_normal(y.shape)
    assert_same(np.asarray(layer.backward(g)), np.asarray(g * (ref > 0.0)))


def test_relu_zero_and_nan_bits():
    x = np.concatenate([[-0.0, 0.0, -np.inf, np.inf, -1.0, 2.0], NAN_PAYLOAD, [np.nan, -np.nan]])
    y = ReLU().forward(x)
    assert_same(y, np.maximum(x, 0.0))
    assert not np.signbit(y[:2]).any()
    np.testing.assert_array_equal(y[6:].view(np.uint64), x[6:].view(np.uint64))


@pytest.mark.parametrize("shape", [(0, 3, 4, 4), (2, 0, 4, 4), (2, 3, 4, 0)])
@pytest.mark.parametrize("perm", [(0, 1, 2, 3), (1, 0, 2, 3), (0, 2, 3, 1)])
def test_empty_inputs(shape, perm):
    """Empty batches, channels or columns: the same (empty) outputs and strides."""
    x = _laid_out(np.zeros(shape), perm, "dense")
    y = ReLU().forward(x)
    assert_same(y, np.maximum(x, 0.0))
    if shape[1]:
        layer = BatchNorm2d(shape[1])
        assert_same(layer.forward(x), _batchnorm_numpy(layer, x)[0])
        conv = Conv2d(shape[1], 2, 3, padding=1)
        if shape[3]:
            assert_same(conv._im2col(x)[0], _im2col_numpy(conv, x)[0])
    if shape[3]:
        assert_same(MaxPool2d(2).forward(x), _maxpool_numpy(MaxPool2d(2), x))
