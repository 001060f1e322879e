"""Finite-difference gradient checks shared by the nn tests."""

import numpy as np

H = 1e-6  # central-difference step


def _indices(shape, rng, limit):
    """All indices of an array of ``shape`` if there are at most ``limit``, else a sample."""
    size = int(np.prod(shape))
    flat = np.arange(size) if size <= limit else rng.choice(size, limit, replace=False)
    return [np.unravel_index(i, shape) for i in flat]


def numeric_grad(f, arr, index):
    """Central difference of scalar ``f()`` with respect to ``arr[index]`` (modified in place)."""
    old = arr[index]
    arr[index] = old + H
    fp = f()
    arr[index] = old - H
    fm = f()
    arr[index] = old
    return (fp - fm) / (2 * H)


def assert_close(numeric, analytic, what, rtol=1e-5, atol=1e-6):
    numeric, analytic = np.asarray(numeric), np.asarray(analytic)
    err = np.abs(numeric - analytic)
    bound = atol + rtol * np.abs(numeric)
    assert np.all(err <= bound), (f"{what}: max abs error {err.max():.3e}; "
                                  f"numeric {numeric[np.argmax(err - bound)]:.6e} "
                                  f"analytic {analytic[np.argmax(err - bound)]:.6e}")


def check_layer(layer, inputs, rng, training=False, limit=40, before_forward=None):
    """Check ``layer.backward`` against finite differences of ``sum(forward(*inputs) * R)``
    for every input and every parameter (all entries, or ``limit`` sampled ones)."""
    inputs = [np.array(x, dtype=np.float64) for x in inputs]

    def f():
        if before_forward is not None:
            before_forward()
        return float(np.sum(layer.forward(*inputs, training=training) * weights))

    if before_forward is not None:
        before_forward()
    y = layer.forward(*inputs, training=training)
    weights = rng.standard_normal(y.shape)
    grads_in = layer.backward(weights)
    if len(inputs) == 1:
        grads_in = (grads_in,)
    param_grads = {k: np.array(v) for k, v in layer.grads.items()}
    assert set(param_grads) == set(layer.params)
    for i, (x, g) in enumerate(zip(inputs, grads_in)):
        assert g.shape == x.shape, f"input {i}: gradient shape {g.shape} != {x.shape}"
        idx = _indices(x.shape, rng, limit)
        assert_close([numeric_grad(f, x, j) for j in idx], [g[j] for j in idx], f"input {i}")
    for name, p in layer.params.items():
        g = param_grads[name]
        assert g.shape == p.shape
        idx = _indices(p.shape, rng, limit)
        assert_close([numeric_grad(f, p, j) for j in idx], [g[j] for j in idx], f"param {name}")


def check_model(model, x, rng, training=False, limit=25, before_forward=None):
    """Finite-difference check of ``model.backward`` for the input and every parameter."""
    x = np.array(x, dtype=np.float64)

    def f():
        if before_forward is not None:
            before_forward()
        return float(np.sum(model.forward(x, training=training) * weights))

    if before_forward is not None:
        before_forward()
    logits = model.forward(x, training=training)
    weights = rng.standard_normal(logits.shape)
    gx = model.backward(weights)
    grads = {k: np.array(v) for k, v in model.named_grads().items()}
    params = model.named_parameters()
    assert set(grads) == set(params)
    # model.backward returns the gradient wrt the normalised input
    std = 1.0 if model.normalization is None else model.normalization["std"].reshape(
        (1, -1) + (1,) * (x.ndim - 2))
    gx_raw = gx / std
    idx = _indices(x.shape, rng, limit)
    assert_close([numeric_grad(f, x, j) for j in idx], [gx_raw[j] for j in idx], "input")
    for name, p in params.items():
        idx = _indices(p.shape, rng, max(4, limit // 4))
        assert_close([numeric_grad(f, p, j) for j in idx], [grads[name][j] for j in idx], name)
