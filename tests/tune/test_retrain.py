"""Noise-aware retraining with its budget chosen on a validation split."""

import numpy as np
import pytest

from xbarref.config import DeviceConfig, DriftConfig, FaultConfig, NoiseConfig, preset
from xbarref.nn import digits_cnn
from xbarref.nn.optim import Adam
from xbarref.nn.train import train_steps
from xbarref.tune.retrain import retrain_with_validation, validation_loss, weight_change


def test_train_steps_is_the_one_loop_and_lowers_the_loss(digits):
    model = digits_cnn(widths=(4, 8, 8), rng=np.random.default_rng(0))
    x, y = digits.x_train[:256], digits.y_train[:256]
    rng = np.random.default_rng(1)
    opt = Adam(model.named_parameters(), lr=3e-3)
    losses = train_steps(model, x, y, opt, (rng.choice(256, 32, replace=False) for _ in range(60)))
    assert len(losses) == 60 and np.mean(losses[-10:]) < np.mean(losses[:10]) - 0.3


def test_budget_is_chosen_on_validation_and_stops_early(digits):
    model = digits_cnn(widths=(4, 8, 8), rng=np.random.default_rng(0))
    # an untrained model on faulty hardware: retraining must help, and must stop
    hw = preset("ideal").replace(device=DeviceConfig(model="ideal"), faults=FaultConfig(0.02, 0.02),
                                 drift=DriftConfig(0.0, 0.0, "none"), noise=NoiseConfig(0.0, 0.0, 0.0))
    x, y = digits.x_train[:600], digits.y_train[:600]
    xv, yv = digits.x_train[600:800], digits.y_train[600:800]
    out = retrain_with_validation(model, hw, x, y, xv, yv, lrs=(1e-4, 3e-3), batch_size=32, max_steps=60,
                                  eval_every=10, patience=2, reprogram_every=5, rng=np.random.default_rng(2),
                                  val_seed=7)
    assert set(out.curves) == {1e-4, 3e-3}
    for curve in out.curves.values():
        assert curve[0][0] == 0 and all(b[0] > a[0] for a, b in zip(curve, curve[1:]))
    best = min(v for c in out.curves.values() for _, v in c)
    assert validation_loss(out.model, hw, xv, yv, 7) == pytest.approx(best, rel=1e-12)
    assert best < out.curves[3e-3][0][1] - 0.2        # the validation loss fell
    assert out.lr == 3e-3 and out.steps > 0
    assert out.weight_change == pytest.approx(weight_change(model, out.model)) and out.weight_change > 0.01
    assert weight_change(model, model) == 0.0
