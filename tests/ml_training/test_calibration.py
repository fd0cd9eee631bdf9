"""Temperature and class-bias calibration fitted on validation probabilities."""

import numpy as np
import pytest

from ml_training import calibration


def _miscalibrated(n=4000, seed=0):
    """Labels drawn from softmax(z); the member reports softmax(z * 2 - bias_shift)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 2.0, (n, 4))
    truth = calibration.softmax(z)
    labels = np.array([rng.choice(4, p=p) for p in truth])
    shift = np.array([0.0, -1.0, 0.5, 1.5])
    reported = calibration.softmax(z * 2.0 - shift)
    return reported, labels


def test_fit_recovers_temperature_and_bias():
    probs, labels = _miscalibrated()
    fitted = calibration.fit(probs, labels)
    # reported logits are 2z - shift: T = 2 and b = shift / 2 (relative to class 0) undo it
    assert fitted.temperature == pytest.approx(2.0, rel=0.1)
    np.testing.assert_allclose(fitted.bias, [0.0, -0.5, 0.25, 0.75], atol=0.12)
    calibrated = fitted.apply_to_log_probs(np.log(probs))
    assert calibration.nll(calibrated, labels) < calibration.nll(probs, labels) - 0.05


def test_folding_into_the_dense_layer_equals_calibrating_the_output():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(16, 8)).astype(np.float32)
    kernel = rng.normal(size=(8, 4)).astype(np.float32)
    bias = rng.normal(size=4).astype(np.float32)
    fitted = calibration.Calibration(temperature=0.4, bias=np.array([0.0, 1.0, -2.0, 0.5]))
    k2, b2 = fitted.fold_into_dense(kernel, bias)
    assert k2.dtype == kernel.dtype and b2.dtype == bias.dtype
    folded = calibration.softmax(x @ k2 + b2)
    outside = fitted.apply_to_log_probs(np.log(calibration.softmax(x @ kernel + bias)))
    np.testing.assert_allclose(folded, outside, rtol=1e-4, atol=1e-6)


def test_a_perfect_member_keeps_finite_parameters():
    labels = np.arange(40) % 4
    probs = np.full((40, 4), 1e-4)
    probs[np.arange(40), labels] = 1 - 3e-4
    fitted = calibration.fit(probs, labels)
    assert np.isfinite(fitted.temperature) and np.all(np.abs(fitted.bias) <= 20)
    assert (fitted.apply_to_log_probs(np.log(probs)).argmax(1) == labels).all()


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="calibration needs"):
        calibration.fit(np.ones((3, 4)) / 4, np.array([0, 1]))
