"""BN recalibration and tuning through simulated hardware."""

import copy

import numpy as np
import pytest

from xbarref.config import (ADCConfig, DACConfig, DeviceConfig, DriftConfig, NoiseConfig,
                            ParasiticsConfig, TileConfig, preset)
from xbarref.errors import XbarrefError
from xbarref.mapping import map_model
from xbarref.nn import MatmulOp, digits_cnn, run_inference, softmax_cross_entropy
from xbarref.tune import BN_KINDS, recalibrate_bn, tune_bn


def _static_noisy_hardware():
    """PCM programming noise, wire resistance, small tiles, converters off, no read noise:
    every forward pass is the same linear circuit (a fixed noise sample)."""
    return preset("default").replace(
        tiles=TileConfig(16, 8),
        dac=DACConfig(bits=0), adc=ADCConfig(bits=0),
        parasitics=ParasiticsConfig(r_source=5.0, r_sink=5.0, r_wire_row=2.0, r_wire_col=2.0),
        device=DeviceConfig(model="pcm"), noise=NoiseConfig(2.0, 0.0, 0.0),
        drift=DriftConfig(86400.0, 1.0, "none"))


def _loss(model, x, y):
    return softmax_cross_entropy(model.forward(x, training=False), y)[0]


def test_bn_gradients_through_crossbars_match_finite_differences(rng):
    model = digits_cnn(widths=(3, 4, 4), rng=np.random.default_rng(0))
    for _, bn in model.layers_of_kind(*BN_KINDS):     # non-trivial BN state
        bn.params["weight"][...] = rng.uniform(0.5, 1.5, bn.num_features)
        bn.params["bias"][...] = rng.normal(0, 0.2, bn.num_features)
        bn.buffers["running_mean"][...] = rng.normal(0, 0.3, bn.num_features)
        bn.buffers["running_var"][...] = rng.uniform(0.5, 2.0, bn.num_features)
    hw_model = map_model(model, _static_noisy_hardware(), np.random.default_rng(5))
    x = rng.uniform(0, 1, (6, 1, 8, 8))
    y = rng.integers(0, 10, 6)
    # the hardware differs from the ideal product (so this is not the digital gradient)
    assert np.max(np.abs(hw_model.forward(x) - model.forward(x))) > 1e-3
    logits = hw_model.forward(x, training=False)
    _, g = softmax_cross_entropy(logits, y)
    hw_model.backward(g)
    grads = {k: v.copy() for k, v in hw_model.named_grads().items()}
    params = hw_model.named_parameters()
    checked = 0
    for key, arr in params.items():
        if not key.startswith("bn"):
            continue
        for i in range(arr.size):
            old = arr.flat[i]
            h = 1e-6
            arr.flat[i] = old + h
            up = _loss(hw_model, x, y)
            arr.flat[i] = old - h
            down = _loss(hw_model, x, y)
            arr.flat[i] = old
            fd = (up - down) / (2 * h)
            assert grads[key].flat[i] == pytest.approx(fd, rel=1e-5, abs=1e-8), (key, i)
            checked += 1
    assert checked == 2 * (3 + 4 + 4)


def test_tuning_on_ideal_hardware_leaves_accuracy_unchanged(trained_cnn, digits):
    # On ideal hardware there is nothing to repair: the study's settings (256 calibration
    # samples, 20 Adam steps of 32, lr 0.01) move at most one test prediction (measured:
    # one digit more is right after tuning) and the BN parameters only slightly.
    software = run_inference(trained_cnn, digits.x_test, digits.y_test)
    hw_model = map_model(trained_cnn, "ideal", np.random.default_rng(0))
    assert run_inference(hw_model, digits.x_test, digits.y_test).accuracy == software.accuracy
    cal = np.random.default_rng(3).choice(len(digits.y_train), 256, replace=False)
    before = {k: v.copy() for k, v in hw_model.named_parameters().items()}
    recalibrate_bn(hw_model, digits.x_train[cal])
    tune_bn(hw_model, digits.x_train[cal], digits.y_train[cal], steps=20, batch_size=32,
            rng=np.random.default_rng(4))
    tuned = run_inference(hw_model, digits.x_test, digits.y_test)
    assert np.sum(tuned.predictions != software.predictions) <= 1
    assert abs(tuned.accuracy - software.accuracy) <= 1 / len(digits.y_test)
    after = hw_model.named_parameters()
    for key in after:
        assert np.max(np.abs(after[key] - before[key])) < 0.25, key


def test_crossbar_weights_are_frozen_bitwise(trained_cnn, digits):
    hw = preset("default").replace(parasitics=ParasiticsConfig(), noise=NoiseConfig(1.0, 1.0, 0.0))
    hw_model = map_model(trained_cnn, hw, np.random.default_rng(0))
    before_params = {k: v.copy() for k, v in hw_model.named_parameters().items()}
    analog = [layer.matmul.matrix for _, layer in hw_model.layers_of_kind("conv2d", "linear")]
    before_states = [[(st.G_target.copy(), st.G_prog.copy(), st.nu.copy()) for t in m.tiles for st in t.states]
                     for m in analog]
    before_lin = [m.linear_map().copy() for m in analog]
    x, y = digits.x_train[:64], digits.y_train[:64]
    recalibrate_bn(hw_model, x)
    tune_bn(hw_model, x, y, steps=3, batch_size=16, lr=0.05, rng=np.random.default_rng(1))
    after = hw_model.named_parameters()
    changed = [k for k in after if not np.array_equal(after[k], before_params[k])]
    assert changed and all(k.split(".")[0].startswith("bn") for k in changed)
    for k in after:
        if not k.split(".")[0].startswith("bn"):
            assert after[k].tobytes() == before_params[k].tobytes(), k
    for m, states, lin in zip(analog, before_states, before_lin):
        now = [(st.G_target, st.G_prog, st.nu) for t in m.tiles for st in t.states]
        for a, b in zip(now, states):
            for u, v in zip(a, b):
                assert u.tobytes() == v.tobytes()
        assert m.linear_map().tobytes() == lin.tobytes()


class _ColumnAffine(MatmulOp):
    """A pure per-column gain and offset distortion of the exact product."""

    def __init__(self, gain, offset):
        self.gain, self.offset = gain, offset

    def forward(self, x2d, w2d):
        self._w = w2d
        return (x2d @ w2d) * self.gain + self.offset

    def backward(self, grad_y2d):
        return (grad_y2d * self.gain) @ self._w.T


def test_gain_offset_distortion_is_recovered_by_recalibration_and_tuning(trained_cnn, digits):
    software = run_inference(trained_cnn, digits.x_test, digits.y_test).accuracy
    rng = np.random.default_rng(11)
    distorted = copy.deepcopy(trained_cnn)
    for name, layer in distorted.layers_of_kind("conv2d"):     # every conv is followed by BN
        n = layer.out_channels
        layer.matmul = _ColumnAffine(rng.uniform(0.3, 3.0, n), rng.normal(0.0, 2.0, n))
    broken = run_inference(distorted, digits.x_test, digits.y_test).accuracy
    assert broken < software - 0.2
    cal = np.random.default_rng(3).choice(len(digits.y_train), 256, replace=False)
    xc, yc = digits.x_train[cal], digits.y_train[cal]
    reference = copy.deepcopy(trained_cnn)     # the same mitigation on undistorted hardware
    for m in (distorted, reference):
        recalibrate_bn(m, xc)
    recal = run_inference(distorted, digits.x_test, digits.y_test).accuracy
    for m in (distorted, reference):
        tune_bn(m, xc, yc, steps=20, batch_size=32, rng=np.random.default_rng(4))
    tuned = run_inference(distorted, digits.x_test, digits.y_test).accuracy
    assert recal >= software - 1.5 / len(digits.y_test)
    assert tuned >= software - 1.5 / len(digits.y_test)
    assert tuned == run_inference(reference, digits.x_test, digits.y_test).accuracy


def test_recalibration_matches_the_statistics_of_the_calibration_set(rng):
    model = digits_cnn(widths=(3, 4, 4), rng=np.random.default_rng(0))
    x = rng.uniform(0, 1, (40, 1, 8, 8))
    report = recalibrate_bn(model, x, batch_size=40)
    conv1 = model.nodes[0].layer
    out = conv1.forward(x)
    bn1 = model.nodes[1].layer
    np.testing.assert_allclose(bn1.buffers["running_mean"], out.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(bn1.buffers["running_var"], out.var(axis=(0, 2, 3), ddof=1), rtol=1e-12)
    assert report.calibration_samples == 40 and report.steps == 0
    assert bn1.momentum == 0.1     # restored


def test_tune_report_counts(trained_cnn, digits):
    model = copy.deepcopy(trained_cnn)
    report = tune_bn(model, digits.x_train[:50], digits.y_train[:50], steps=3, batch_size=20,
                     rng=np.random.default_rng(0))
    n_bn = sum(2 * layer.num_features for _, layer in model.layers_of_kind(*BN_KINDS))
    assert (report.steps, report.samples_seen, report.calibration_samples) == (3, 60, 50)
    assert report.trainable_parameters == n_bn
    assert report.optimizer_bytes == 2 * 8 * n_bn


@pytest.mark.parametrize("kwargs, match", [
    (dict(steps=0), "steps"), (dict(batch_size=0), "batch_size"), (dict(rng=3), "rng"),
])
def test_tune_bn_rejects_bad_arguments(trained_cnn, digits, kwargs, match):
    args = dict(steps=1, batch_size=4, rng=np.random.default_rng(0))
    args.update(kwargs)
    with pytest.raises(XbarrefError, match=match):
        tune_bn(copy.deepcopy(trained_cnn), digits.x_train[:8], digits.y_train[:8], **args)


def test_bad_inputs_name_the_argument(trained_cnn, digits):
    with pytest.raises(XbarrefError, match="x: expected shape"):
        recalibrate_bn(copy.deepcopy(trained_cnn), np.zeros((4, 3, 8, 8)))
    with pytest.raises(XbarrefError, match="y: expected 8 integer labels"):
        tune_bn(copy.deepcopy(trained_cnn), digits.x_train[:8], digits.y_train[:7],
                rng=np.random.default_rng(0))
    from xbarref.nn import mlp
    with pytest.raises(XbarrefError, match="no batchnorm"):
        recalibrate_bn(mlp(rng=0), np.zeros((4, 64)))


def _fashion_chip():
    """The bundled Fashion CNN on the fashion preset's "programming noise" chip, float32
    reads (the study's setting)."""
    from xbarref.io.model import load_model
    from xbarref.mapping import set_read_precision
    from xbarref.tune.scenarios import default_scenarios
    import xbarref
    import os
    model = load_model(os.path.join(os.path.dirname(xbarref.__file__), "data", "fashion_cnn.h5"))
    scenario = {s.name: s for s in default_scenarios(preset="fashion")}["programming noise"]
    chip = map_model(model, scenario.hardware, np.random.default_rng(1), t_inference=0.0)
    return set_read_precision(chip, "float32"), (1, 28, 28)


def _digits_chip(trained_cnn):
    return map_model(trained_cnn, _static_noisy_hardware(), np.random.default_rng(2)), (1, 8, 8)


@pytest.mark.parametrize("which", ["digits", "fashion"])
def test_tuning_with_the_pruned_backward_is_bit_identical(which, trained_cnn, monkeypatch):
    """tune_bn's backward pruned to the batchnorm gradients (``keys``) against the full
    backward of every layer (``keys=None``, the optimizer then picking its own
    gradients): the same batchnorm parameters and losses bit for bit, step after step."""
    import xbarref.tune.batchnorm as bn_module
    from xbarref.nn.train import train_steps
    chip, shape = _fashion_chip() if which == "fashion" else _digits_chip(trained_cnn)
    rng = np.random.default_rng(11)
    x = rng.uniform(0, 1, (48,) + shape)
    y = rng.integers(0, 10, 48)
    calls = []

    def full_backward(*args, **kwargs):
        calls.append(kwargs["keys"])
        kwargs["keys"] = None
        return train_steps(*args, **kwargs)

    runs = {}
    for mode in ("pruned", "full"):
        model = copy.deepcopy(chip)
        if mode == "full":
            monkeypatch.setattr(bn_module, "train_steps", full_backward)
        report = tune_bn(model, x, y, steps=6, batch_size=16, lr=0.05, rng=np.random.default_rng(3))
        runs[mode] = (report, model.named_parameters(), model.named_grads())
    assert calls and calls[0] == set(bn_module.select_parameters(chip, kinds=BN_KINDS))
    (rep_p, par_p, grads_p), (rep_f, par_f, grads_f) = runs["pruned"], runs["full"]
    assert set(grads_p) == calls[0] and set(grads_f) == set(par_f)     # really pruned / full
    assert (rep_p.loss_first, rep_p.loss_last) == (rep_f.loss_first, rep_f.loss_last)
    moved = 0
    for key, arr in par_p.items():
        assert np.array_equal(arr.view(np.uint64), par_f[key].view(np.uint64)), key
        moved += key in calls[0] and not np.array_equal(arr, chip.named_parameters()[key])
    assert moved == len(calls[0])         # every batchnorm parameter was tuned
