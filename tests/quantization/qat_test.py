"""QAT wrapping, weight shaping, and the registry-wide quantize -> convert -> interpreter -> compare
test: every registered model must become a full-integer int8 graph that matches its QAT model."""

import numpy as np
import pytest

from mobile_sr.core.backend import keras, tf
from mobile_sr.core.errors import QuantizationError
from mobile_sr.export import convert
from mobile_sr.models import build_model, get_model_spec, make_config, model_names
from mobile_sr.models.layers import lr_input
from mobile_sr.quantization.qat import quantize_for_training
from mobile_sr.quantization.weights import (
    ChannelClip,
    SymmetricRegularizer,
    WeightShaping,
    asymmetry,
    conv_kernels,
    int8_error,
)
from mobile_sr.tasks import task_of_model
from mobile_sr.tasks.sr.runner import TFLiteUpscaler
from tests.helpers import tiered


@pytest.mark.parametrize("name", tiered(model_names(task="sr"), fast={"scsrn"}))
def test_quantize_convert_interpret_compare(name, tmp_path):
    model = build_model(name, make_config(name, **get_model_spec(name).tiny_config))
    rng = np.random.default_rng(0)
    for kernel in conv_kernels(model):  # small random weights keep every output inside [0, 255]
        kernel.assign(kernel * 0.2)
    qat_model = quantize_for_training(model)
    calibration = rng.uniform(0, 255, (4, 12, 16, 3)).astype(np.float32)
    qat_model(calibration, training=True)  # let the moving-average ranges see data
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(convert(qat_model, mode="int8", input_size=(12, 16)))

    from mobile_sr.export import inspect, verify

    report = inspect(path)
    verify(path, report, task=task_of_model(name), mode="int8", io_type="uint8")  # full integer, uint8 I/O, runs
    assert report["input"]["scale"] == pytest.approx(1.0) and report["input"]["zero_point"] == 0
    assert "QUANTIZE" not in report["ops"][1:-1], "no requantize inside the graph"
    lr = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    expected = qat_model(lr[None].astype(np.float32), training=False).numpy()[0]
    np.testing.assert_allclose(TFLiteUpscaler(path).upscale_float(lr), expected, atol=2.01)


@pytest.mark.large
@pytest.mark.parametrize("name", model_names(task="hdr"))
def test_hdr_quantize_convert_interpret_compare(name, tmp_path):
    from mobile_sr.export import inspect, verify
    from mobile_sr.tasks.hdr.runner import TFLiteMerger

    spec = get_model_spec(name)
    model = build_model(name, make_config(name, **spec.tiny_config))
    rng = np.random.default_rng(0)
    for kernel in conv_kernels(model):  # no zero-initialised convs: every path must reach the output
        kernel.assign(kernel + rng.normal(0, 0.05, kernel.shape).astype(np.float32))
    calibration = [rng.uniform(0, 1, (4, 16, 16, 6)).astype(np.float32) for _ in range(3)]
    qat_model = quantize_for_training(model, calibration, value_range=spec.value_range)
    qat_model(calibration, training=True)
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(convert(qat_model, mode="int8", input_size=(16, 16)))
    report = inspect(path)
    verify(path, report, task=task_of_model(name), mode="int8", io_type="uint8")  # full integer, uint8 I/O, runs
    assert [d["scale"] for d in report["inputs"]] == pytest.approx([1 / 255] * 3)
    inputs = [np.round(rng.uniform(0, 1, (16, 16, 6)) * 255) / 255 for _ in range(3)]
    expected = qat_model([x[None].astype(np.float32) for x in inputs], training=False).numpy()[0]
    error = np.abs(TFLiteMerger(path, size_multiple=1).tonemapped(inputs) - expected) * 255
    # rounding differences add up through AHDRNet's random attention and dense blocks: over
    # random initialisations the mean stays near 1-2.3 int8 steps, the 99th percentile 4-12
    assert error.mean() < 3.0 and np.percentile(error, 99) <= 16.0


def test_qat_model_keeps_the_float_weights():
    model = build_model("scsrn", make_config("scsrn", scale=2, channels=8, feature_convs=2))
    kernels = [k.numpy() for k in conv_kernels(model)]
    quantized = quantize_for_training(model)
    for before, after in zip(kernels, conv_kernels(quantized), strict=True):
        np.testing.assert_array_equal(before, after.numpy())


@pytest.mark.parametrize("data_aware", [True, False])
def test_qat_starts_from_data_aware_or_nearest_rounding(data_aware):
    model = build_model("scsrn", make_config("scsrn", scale=2, channels=8, feature_convs=2))
    calibration = np.random.default_rng(0).uniform(0, 255, (4, 12, 16, 3)).astype(np.float32)
    quantized = quantize_for_training(model, calibration, data_aware_rounding=data_aware)
    on_grid = []
    for kernel in conv_kernels(quantized):
        values = kernel.numpy().reshape(-1, kernel.shape[-1])
        levels = values / (np.abs(values).max(axis=0) / 127.0)
        on_grid.append(np.allclose(levels, np.round(levels), atol=1e-3))
    # data-aware rounding puts the kernels on their int8 grid; otherwise the fake quantizers round to nearest
    assert all(on_grid) if data_aware else not all(on_grid)
    np.testing.assert_allclose(quantized(calibration).numpy(), model(calibration).numpy(), atol=6.0)


def test_unsupported_layer_says_how_to_fix():
    lr = lr_input()
    normalized = keras.layers.BatchNormalization(name="bn")(lr)
    with pytest.raises(QuantizationError, match="'bn' \\(BatchNormalization\\) has no quantization config"):
        quantize_for_training(keras.Model(lr, normalized))


def test_channel_clip_on_a_known_kernel():
    kernel = np.array([[1.0, -10.0], [-1.0, 0.5], [1.0, 0.5], [-1.0, 0.5]], np.float32)  # 2 output channels
    clip = ChannelClip.from_kernel(kernel, 1.5)
    np.testing.assert_allclose(clip.thresholds, [1.5, 1.5 * np.sqrt((100 + 0.75) / 4)], rtol=1e-6)
    clipped = clip(tf.constant(kernel)).numpy()
    assert clipped[1, 0] == -1.0 and clipped[0, 1] == pytest.approx(-clip.thresholds[1])
    assert ChannelClip(**clip.get_config()).thresholds == clip.thresholds


def test_symmetric_regularizer_on_known_kernels():
    regularizer = SymmetricRegularizer(strength=0.5)
    symmetric = tf.constant([[-2.0, 1.0], [2.0, -1.0], [0.0, 0.3]])
    one_signed = tf.constant([[1.0, 1.0], [3.0, 2.0]])
    assert float(regularizer(symmetric)) == pytest.approx(0.0)
    # channel extremes (1, 3) and (1, 2), all of one sign: normalised by max|w|, ((4 / 3)^2 + (3 / 2)^2) / 2
    assert float(regularizer(one_signed)) == pytest.approx(0.5 * ((4 / 3) ** 2 + (3 / 2) ** 2) / 2)
    assert asymmetry(symmetric.numpy()) == pytest.approx(0.0)
    one_sided = tf.constant([[0.0, -1.0], [2.0, 0.0], [1.0, -0.5]])  # the minimum (maximum) is zero: 1
    assert float(regularizer(one_sided)) == pytest.approx(0.5)
    equal = tf.constant([[0.7], [0.7]])  # coinciding extremes stay bounded: (1.4 / 0.7)^2
    assert float(regularizer(equal)) == pytest.approx(0.5 * 4.0)


def test_symmetric_regularizer_ignores_single_weight_channels():
    # a 1x1 conv of one input channel (hdr_unet): one weight per output channel, exact in int8
    single = tf.constant([[[[0.8, -0.3, 0.0]]]])
    assert float(SymmetricRegularizer(strength=1.0)(single)) == 0.0 and asymmetry(single.numpy()) == 0.0
    shaping = WeightShaping([tf.Variable(single), tf.Variable([[[[1.0, -0.5]]], [[[-0.5, 1.0]]]])],
                            clip_threshold=None, symmetry_strength=1.0)
    assert float(shaping.penalty()) == pytest.approx((0.5 / 1.5) ** 2)


def test_weight_shaping_clips_after_an_update():
    model = build_model("scsrn", make_config("scsrn", scale=2, channels=8, feature_convs=2))
    shaping = WeightShaping(conv_kernels(model), clip_threshold=2.0, symmetry_strength=1e-2)
    first = shaping.kernels[0]
    first.assign(first * 10.0)
    shaping.apply_clip()
    assert np.abs(first.numpy()).max() <= max(shaping.clips[0].thresholds) + 1e-6
    assert float(shaping.penalty()) >= 0.0


def test_mse_clip_never_costs_int8_error_and_keeps_dominant_weights():
    rng = np.random.default_rng(0)
    skip_like = np.concatenate([rng.normal(0, 0.03, 278), [1.0]])  # one weight carries the channel
    heavy_tail = rng.standard_t(df=2, size=279) * 0.05
    values = np.stack([skip_like, heavy_tail], axis=1)
    thresholds = np.array(ChannelClip.from_kernel(values, "mse").thresholds)
    peaks = np.abs(values).max(axis=0)
    assert thresholds[0] == pytest.approx(1.0) and (thresholds <= peaks + 1e-9).all()
    assert (int8_error(values, thresholds) <= int8_error(values, peaks) + 1e-15).all()


def test_concat_equalization_preserves_the_function_and_fits_the_pixel_range():
    from mobile_sr.quantization.qat import equalize_concat_ranges

    model = build_model("scsrn", make_config("scsrn", scale=2, channels=8, feature_convs=2))
    features = model.get_layer("feature_conv2")
    kernel, bias = features.get_weights()
    features.set_weights([kernel * 20.0, bias + 5.0])  # features far beyond [0, 255]
    lr = np.random.default_rng(3).uniform(0, 255, (2, 16, 16, 3)).astype(np.float32)
    for balance in (0.0, 0.5, 1.0):
        equalized = equalize_concat_ranges(model, lr, (0.0, 255.0), percentile=100.0, balance=balance)
        np.testing.assert_allclose(equalized(lr).numpy(), model(lr).numpy(), atol=1e-3)
        probe = keras.Model(equalized.input, equalized.get_layer("feature_conv2").output)
        channel_peaks = probe(lr).numpy().reshape(-1, 8).max(axis=0)
        assert channel_peaks.max() <= 255.0 * (1 + 1e-4)
        live = channel_peaks > 0
        if balance == 0.0:  # one factor: the largest channel fills the range
            assert channel_peaks.max() == pytest.approx(255.0, rel=1e-4)
        if balance == 1.0:  # every live channel fills the range
            np.testing.assert_allclose(channel_peaks[live], 255.0, rtol=1e-4)
