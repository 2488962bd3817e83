"""Data-aware rounding of conv kernels onto the int8 grid."""

import numpy as np

from mobile_sr.core.backend import keras
from mobile_sr.quantization.rounding import INT8_LEVELS, round_columns, round_conv_kernels


def _correlated_inputs(rows: int, size: int, seed: int = 0) -> np.ndarray:
    """Inputs like neighbouring pixels: a shared component plus a little independent noise."""
    rng = np.random.default_rng(seed)
    return rng.normal(0, 1, (rows, 1)) * 50 + rng.normal(0, 5, (rows, size))


def test_rounded_weights_lie_on_the_int8_grid_and_keep_the_step():
    rng = np.random.default_rng(1)
    weights = rng.normal(0, 0.1, (6, 27))
    inputs = _correlated_inputs(4000, 27)
    rounded = round_columns(weights, inputs.T @ inputs / len(inputs))
    step = np.abs(weights).max(axis=1, keepdims=True) / INT8_LEVELS
    levels = rounded / step
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-9)
    np.testing.assert_allclose(np.abs(levels).max(axis=1), INT8_LEVELS)  # the converter finds the same step


def test_output_error_is_far_below_nearest_rounding_on_correlated_inputs():
    rng = np.random.default_rng(2)
    weights = rng.normal(0, 0.1, (8, 27))
    inputs = _correlated_inputs(4000, 27)
    step = np.abs(weights).max(axis=1, keepdims=True) / INT8_LEVELS
    nearest = np.round(weights / step) * step
    rounded = round_columns(weights, inputs.T @ inputs / len(inputs))

    def output_error(candidate):
        return np.mean((inputs @ (candidate - weights).T) ** 2)

    assert output_error(rounded) < 0.2 * output_error(nearest)


def test_round_conv_kernels_rounds_every_conv_of_a_model():
    lr = keras.Input((None, None, 3))
    hidden = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(lr)
    output = keras.layers.Conv2D(3, 3, padding="same", dilation_rate=2, name="conv2")(hidden)
    model = keras.Model(lr, output)
    calibration = np.random.default_rng(3).uniform(0, 255, (4, 16, 16, 3)).astype(np.float32)
    before = model(calibration).numpy()
    round_conv_kernels(model, calibration)
    for layer in model.layers[1:]:
        kernel = layer.kernel.numpy().reshape(-1, layer.filters)
        levels = kernel / (np.abs(kernel).max(axis=0) / INT8_LEVELS)
        np.testing.assert_allclose(levels, np.round(levels), atol=1e-3)
    assert np.abs(model(calibration).numpy() - before).mean() < 0.05 * np.abs(before).mean()
