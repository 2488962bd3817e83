"""Network deconvolution: whitening, the Newton-Schulz inverse square root, running statistics,
exact folding into the plain EDSR / SRCNN, and the config checks."""

import numpy as np
import pytest

from mobile_sr.core.backend import keras, tf
from mobile_sr.core.errors import ConfigError, QuantizationError
from mobile_sr.models import build_model, make_config
from mobile_sr.models.deconvolution import DecorrelatedConv2D, fold_deconvolution, inverse_sqrt_newton_schulz
from mobile_sr.quantization.qat import quantize_for_training


def _patches(images: np.ndarray, k: int) -> np.ndarray:
    """im2col with 'same' zero padding, entries ordered (row, column, channel) like a conv kernel."""
    n, h, w, c = images.shape
    padded = np.pad(images, ((0, 0), (k // 2, k // 2), (k // 2, k // 2), (0, 0)))
    windows = [padded[:, i : i + h, j : j + w, :] for i in range(k) for j in range(k)]
    return np.concatenate(windows, axis=-1).reshape(-1, k * k * c)


def _correlated_images(rng, shape=(8, 24, 24, 3)) -> np.ndarray:
    """Noise whose neighbouring pixels and channels are strongly correlated, with a non-zero mean."""
    noise = rng.normal(size=shape)
    smooth = noise + 0.8 * np.roll(noise, 1, axis=1) + 0.6 * np.roll(noise, 1, axis=2)
    mixing = np.array([[1.0, 0.6, 0.3], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
    return (20.0 * smooth @ mixing + 100.0).astype(np.float32)


def _patch_whitener(k: int, channels: int, **options) -> DecorrelatedConv2D:
    """A DecorrelatedConv2D whose kernel is the identity: it outputs the decorrelated patches."""
    features = k * k * channels
    layer = DecorrelatedConv2D(features, k, **options)
    layer.build((None, None, None, channels))
    layer.kernel.assign(np.eye(features, dtype=np.float32).reshape(k, k, channels, features))
    return layer


def test_newton_schulz_matches_the_eigendecomposition():
    rng = np.random.default_rng(0)
    basis, _ = np.linalg.qr(rng.normal(size=(20, 20)))
    eigenvalues = rng.uniform(0.2, 5.0, 20)
    matrix = basis @ np.diag(eigenvalues) @ basis.T
    expected = basis @ np.diag(eigenvalues**-0.5) @ basis.T
    np.testing.assert_allclose(inverse_sqrt_newton_schulz(matrix, 25).numpy(), expected, atol=1e-8)


def test_whitening_decorrelates_correlated_patches():
    images = _correlated_images(np.random.default_rng(1))
    input_covariance = np.cov(_patches(images, 3), rowvar=False)
    correlation = input_covariance / np.sqrt(np.outer(np.diag(input_covariance), np.diag(input_covariance)))
    assert np.abs(correlation - np.eye(27)).max() > 0.5  # the test data is far from white
    layer = _patch_whitener(3, 3, eps=1e-5, iterations=30, sampling_stride=1, sample_images=len(images))
    whitened = layer(images, training=True).numpy().reshape(-1, 27)
    np.testing.assert_allclose(whitened.mean(axis=0), 0.0, atol=1e-3)
    mean_variance = np.trace(np.cov(_patches(images, 3), rowvar=False, bias=True)) / 27
    np.testing.assert_allclose(np.cov(whitened, rowvar=False, bias=True) / mean_variance, np.eye(27), atol=0.02)


def test_decorrelation_scales_with_its_input_like_a_plain_conv():
    images = _correlated_images(np.random.default_rng(6))
    layer = _patch_whitener(3, 3, eps=1e-9, iterations=30, sampling_stride=1, sample_images=len(images))
    np.testing.assert_allclose(layer(images / 255.0, training=True).numpy() * 255.0,
                               layer(images, training=True).numpy(), rtol=1e-3, atol=1e-2)


def test_running_statistics_update_in_training_and_serve_inference():
    rng = np.random.default_rng(2)
    first, second = (_correlated_images(rng, (4, 12, 12, 3))[..., :2] for _ in range(2))
    layer = _patch_whitener(3, 2, iterations=30, sampling_stride=1, sample_images=4, momentum=0.25)
    initial = layer(second).numpy().reshape(-1, 18)
    np.testing.assert_allclose(initial, _patches(second, 3), rtol=1e-6)  # the raw patches: mean 0, D = I
    np.testing.assert_array_equal(layer.running_deconv.numpy(), np.eye(18))
    np.testing.assert_array_equal(layer.running_mean.numpy(), 0.0)

    layer(first, training=True)
    patches = _patches(first, 3).astype(np.float64)
    covariance = np.cov(patches, rowvar=False, bias=True) + 1e-5 * np.eye(18)
    eigenvalues, basis = np.linalg.eigh(covariance)
    mean_std = np.sqrt(np.trace(covariance - 1e-5 * np.eye(18)) / 18)
    batch_deconv = mean_std * basis @ np.diag(eigenvalues**-0.5) @ basis.T
    np.testing.assert_allclose(layer.running_mean.numpy(), 0.75 * patches.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(layer.running_deconv.numpy(), 0.25 * np.eye(18) + 0.75 * batch_deconv, atol=2e-4)

    mean, deconv = layer.running_mean.numpy(), layer.running_deconv.numpy()
    expected = (_patches(second, 3) - mean) @ deconv
    np.testing.assert_allclose(layer(second, training=False).numpy().reshape(-1, 18), expected, atol=1e-3)
    np.testing.assert_array_equal(layer.running_mean.numpy(), mean)


MODEL_CONFIGS = {
    "edsr": {"scale": 3, "channels": 8, "residual_blocks": 2, "residual_scale": 0.5},
    "srcnn": {"scale": 2, "channels": 8, "mapping_channels": 6, "mapping_kernel": 5, "extraction_kernel": 7},
}


def _trained_deconvolution_model(name: str):
    """The model with deconvolution, random weights everywhere and running statistics from a few
    training-mode calls (momentum 0.5: far from their initial zero mean and identity)."""
    model = build_model(name, make_config(name, deconvolution=True, deconv_sampling_stride=2,
                                          deconv_momentum=0.5, **MODEL_CONFIGS[name]))
    rng = np.random.default_rng(3)
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, DecorrelatedConv2D)):
            fan_in = np.prod(layer.kernel.shape[:3])
            layer.kernel.assign(rng.normal(0, 0.5 / np.sqrt(fan_in), layer.kernel.shape))
            layer.bias.assign(rng.normal(0, 1, layer.bias.shape))
    for _ in range(3):
        model(rng.uniform(0, 255, (4, 16, 16, 3)).astype(np.float32), training=True)
    return model


def _pre_clip(net, lr: np.ndarray) -> np.ndarray:
    """The inference output before the clip, which would hide differences in clipped pixels."""
    return keras.Model(net.input, net.get_layer("depth_to_space").output)(lr, training=False).numpy()


@pytest.mark.parametrize("name", ["edsr", "srcnn"])
def test_folding_is_exact_and_gives_the_plain_model(name):
    model = _trained_deconvolution_model(name)
    folded = fold_deconvolution(model)
    plain = build_model(name, make_config(name, **MODEL_CONFIGS[name]))
    def layers(net):
        return [(type(layer), layer.name) for layer in net.layers]

    assert layers(folded) == layers(plain)
    assert folded.count_params() == plain.count_params()

    lr = np.random.default_rng(4).uniform(0, 255, (2, 13, 11, 3)).astype(np.float32)
    expected = _pre_clip(model, lr)
    assert expected.std() > 1.0  # a real signal, not a constant
    np.testing.assert_allclose(_pre_clip(folded, lr), expected, rtol=0, atol=1e-4)
    np.testing.assert_allclose(folded(lr).numpy(), model(lr, training=False).numpy(), rtol=0, atol=1e-4)


@pytest.mark.parametrize("name", ["edsr", "srcnn"])
def test_folding_is_exact_in_float64(name, float64_models):
    model = _trained_deconvolution_model(name)
    lr = np.random.default_rng(4).uniform(0, 255, (1, 9, 10, 3))
    np.testing.assert_allclose(_pre_clip(fold_deconvolution(model), lr), _pre_clip(model, lr), rtol=0, atol=1e-9)


def test_models_without_deconvolution_are_returned_as_they_are():
    model = build_model("srcnn", make_config("srcnn", scale=2, channels=8, mapping_channels=4))
    assert fold_deconvolution(model) is model


def test_unfolded_model_refuses_quantization_and_names_the_fix():
    model = build_model("srcnn", make_config("srcnn", scale=2, channels=8, mapping_channels=4, deconvolution=True))
    with pytest.raises(QuantizationError, match="fold_deconvolution"):
        quantize_for_training(model)


def test_deconvolution_model_trains_and_round_trips_through_its_config():
    model = build_model("srcnn", make_config("srcnn", scale=2, channels=8, mapping_channels=4, deconvolution=True))
    lr = np.random.default_rng(5).uniform(0, 255, (2, 10, 10, 3)).astype(np.float32)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.abs(model(lr, training=True) - 128.0))
    gradients = tape.gradient(loss, model.trainable_variables)
    assert all(g is not None and np.isfinite(g.numpy()).all() for g in gradients)
    clone = keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone(lr).numpy(), model(lr).numpy(), atol=1e-4)


@pytest.mark.parametrize("name", ["edsr", "srcnn"])
@pytest.mark.parametrize("field, value", [
    ("deconvolution", "yes"), ("deconv_eps", 0.0), ("deconv_iterations", 0), ("deconv_sampling_stride", 0),
    ("deconv_sample_images", 0), ("deconv_momentum", 1.0), ("deconv_momentum", "0.9"),
])
def test_invalid_deconvolution_options_are_named(name, field, value):
    with pytest.raises(ConfigError, match=field):
        make_config(name, **{field: value})


@pytest.mark.parametrize("name, field, value", [
    ("edsr", "residual_blocks", 0), ("edsr", "residual_scale", 0.0), ("edsr", "residual_scale", 1.5),
    ("srcnn", "mapping_kernel", 4), ("srcnn", "mapping_channels", 0), ("srcnn", "extraction_kernel", 13),
])
def test_invalid_model_options_are_named(name, field, value):
    with pytest.raises(ConfigError, match=field):
        make_config(name, **{field: value})
