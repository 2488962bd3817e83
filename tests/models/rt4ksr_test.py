"""RT4KSR: exact folding of the reparameterizable blocks, the fixed high-pass filter, the
high-frequency loss, odd input sizes and the config checks."""

import numpy as np
import pytest

from mobile_sr.core.backend import keras
from mobile_sr.core.errors import ConfigError
from mobile_sr.models import build_model, get_model_spec, make_config
from mobile_sr.models.layers import HighPassFilter, gaussian_kernel
from mobile_sr.models.rt4ksr import fold_reparameterized
from mobile_sr.objectives.high_frequency import high_frequency_l1
from mobile_sr.tasks import get_task


def _randomized(config, seed=1, std=0.03):
    """The training-form model of ``config`` with every weight random (no identity shortcuts)."""
    model = build_model("rt4ksr", config)
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, std, w.shape).astype(np.float32) for w in model.get_weights()])
    return model


def _before_clip(model, lr):
    return keras.Model(model.input, model.get_layer("crop").output)(lr).numpy()


@pytest.mark.parametrize("scale, high_frequency_branch", [(2, True), (3, True), (3, False)])
def test_folding_is_exact(scale, high_frequency_branch):
    config = make_config("rt4ksr", scale=scale, channels=16, blocks=2, high_frequency_branch=high_frequency_branch)
    model = _randomized(config)
    folded = fold_reparameterized(model, config)
    lr = np.random.default_rng(0).uniform(0, 255, (2, 11, 14, 3)).astype(np.float32)
    unfolded_output = _before_clip(model, lr)
    assert np.abs(unfolded_output).max() > 10.0  # the blocks do change the output
    assert np.abs(_before_clip(folded, lr) - unfolded_output).max() <= 1e-4
    np.testing.assert_allclose(folded(lr).numpy(), model(lr).numpy(), atol=1e-4)


def test_folding_is_exact_in_float64(float64_models):
    config = make_config("rt4ksr", scale=3, channels=16, blocks=2)
    model = _randomized(config)
    lr = np.random.default_rng(0).uniform(0, 255, (1, 9, 10, 3))
    np.testing.assert_allclose(_before_clip(fold_reparameterized(model, config), lr), _before_clip(model, lr),
                               rtol=0, atol=1e-9)


def test_folded_model_is_smaller():
    config = make_config("rt4ksr", scale=3)
    model = build_model("rt4ksr", config)
    folded = fold_reparameterized(model, config)
    assert folded.count_params() < model.count_params() / 2
    assert len(folded.layers) < len(model.layers)
    assert all(not layer.name.endswith(("_expand", "_reduce")) for layer in folded.layers)
    assert build_model("rt4ksr", make_config("rt4ksr", reparameterized=True)).count_params() == folded.count_params()


@pytest.mark.parametrize("reparameterized", [False, True])
def test_starts_as_nearest_neighbour_upscaling(reparameterized):
    model = build_model("rt4ksr", make_config("rt4ksr", scale=3, reparameterized=reparameterized))
    lr = np.random.default_rng(2).uniform(0, 255, (1, 7, 10, 3)).astype(np.float32)
    np.testing.assert_allclose(model(lr).numpy()[0], lr[0].repeat(3, 0).repeat(3, 1), atol=1e-3)


def test_odd_sizes_are_mirror_padded_and_cropped():
    model = _randomized(make_config("rt4ksr", scale=2, channels=12, blocks=1))
    lr = np.random.default_rng(3).uniform(0, 255, (1, 9, 11, 3)).astype(np.float32)
    padded = np.concatenate([lr, lr[:, -1:]], axis=1)
    padded = np.concatenate([padded, padded[:, :, -1:]], axis=2)  # the edge row and column repeated
    np.testing.assert_allclose(model(lr).numpy(), model(padded).numpy()[:, :18, :22], atol=1e-4)


def test_gaussian_kernel_matches_torchvision():
    kernel = gaussian_kernel(5, 1.0)
    # torchvision GaussianBlur(5, sigma=1): the normalized pdf at -2..2, one axis at a time
    line = np.array([0.05448868, 0.24420134, 0.40261996, 0.24420134, 0.05448868])
    np.testing.assert_allclose(kernel, np.outer(line, line), rtol=1e-6)
    assert kernel.sum() == pytest.approx(1.0)


def test_high_pass_kernel_lies_on_the_int8_grid():
    kernel = HighPassFilter(5, 1.0).kernel()
    steps = kernel / (kernel.max() / 127)
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-9)
    assert steps[2, 2] == pytest.approx(127) and abs(steps.sum()) <= 4  # nearly no response to flat areas
    ideal = -gaussian_kernel(5, 1.0)
    ideal[2, 2] += 1
    assert np.abs(kernel - ideal).max() <= kernel.max() / 127 / 2 + 1e-12


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_high_pass_filter_runs_in_the_layer_precision(dtype):
    image = np.random.default_rng(0).uniform(0, 255, (1, 8, 8, 3)).astype(dtype)
    filtered = HighPassFilter(5, 1.0, dtype=dtype)(image)
    assert filtered.dtype == dtype
    expected = HighPassFilter(5, 1.0, dtype="float64")(image.astype(np.float64)).numpy()
    np.testing.assert_allclose(filtered.numpy(), expected, atol=0.5 if dtype == "float16" else 1e-3)


def test_high_frequency_l1_on_known_images():
    blur = gaussian_kernel(5, 1.0)
    flat_hr, flat_sr = np.full((1, 9, 9, 3), 200.0), np.full((1, 9, 9, 3), 50.0)
    assert float(high_frequency_l1(flat_hr, flat_sr, blur)) == pytest.approx(0.0, abs=1e-4)  # flat: no high frequencies
    impulse = np.zeros((1, 9, 9, 1))
    impulse[0, 4, 4, 0] = 1.0
    # an impulse away from the borders: |1 - centre tap| at the impulse, the other taps around it
    expected = ((1 - blur[2, 2]) + (1 - blur[2, 2])) / impulse.size
    assert float(high_frequency_l1(impulse, np.zeros_like(impulse), blur)) == pytest.approx(expected, rel=1e-5)
    assert float(high_frequency_l1(np.zeros_like(impulse), impulse, blur)) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="odd size"):
        high_frequency_l1(impulse, impulse, np.ones((4, 4)))


@pytest.mark.parametrize(
    "values, field",
    [
        ({"channels": 8}, "channels"),
        ({"blocks": 0}, "blocks"),
        ({"high_frequency_branch": 1}, "high_frequency_branch"),
        ({"reparameterized": "yes"}, "reparameterized"),
        ({"blur_sigma": 0.0}, "blur_sigma"),
        ({"blur_sigma": True}, "blur_sigma"),
        ({"blur_kernel_size": 4}, "blur_kernel_size"),
    ],
)
def test_invalid_configs_name_the_field(values, field):
    with pytest.raises(ConfigError, match=field):
        make_config("rt4ksr", **values)


def test_folding_refuses_a_folded_config():
    config = make_config("rt4ksr", **get_model_spec("rt4ksr").tiny_config, reparameterized=True)
    with pytest.raises(ConfigError, match="training form"):
        fold_reparameterized(build_model("rt4ksr", config), config)


@pytest.mark.large
def test_folded_model_converts_to_a_full_integer_graph(tmp_path):
    from mobile_sr.export import convert, inspect, verify
    from mobile_sr.quantization.qat import quantize_for_training
    from mobile_sr.tasks.sr.runner import TFLiteUpscaler

    config = make_config("rt4ksr", **get_model_spec("rt4ksr").tiny_config)
    model = _randomized(config, std=0.02)
    qat_model = quantize_for_training(fold_reparameterized(model, config))
    rng = np.random.default_rng(0)
    qat_model(rng.uniform(0, 255, (4, 12, 16, 3)).astype(np.float32), training=True)
    path = tmp_path / "rt4ksr.tflite"
    path.write_bytes(convert(qat_model, mode="int8", input_size=(12, 16)))
    report = inspect(path)
    verify(path, report, task=get_task("sr"), mode="int8", io_type="uint8")
    assert "QUANTIZE" not in report["ops"][1:-1] and "DEPTHWISE_CONV_2D" in report["ops"]
    lr = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    expected = qat_model(lr[None].astype(np.float32), training=False).numpy()[0]
    np.testing.assert_allclose(TFLiteUpscaler(path).upscale_float(lr), expected, atol=2.01)


def test_fixed_size_tflite_runs_odd_sized_images(tmp_path):
    """A fixed-size export has no padding op in its graph: the upscaler pads odd sizes itself."""
    import json

    from mobile_sr.export import convert
    from mobile_sr.tasks.sr.runner import TFLiteUpscaler

    model = build_model("rt4ksr", make_config("rt4ksr", scale=2, channels=12, blocks=1, reparameterized=True))
    path = tmp_path / "rt4ksr.tflite"
    path.write_bytes(convert(model, mode="float", input_size=(16, 16)))
    path.with_suffix(".json").write_text(json.dumps({"size_multiple": 2}))
    lr = np.random.default_rng(0).integers(0, 256, (11, 13, 3), dtype=np.uint8)
    np.testing.assert_allclose(TFLiteUpscaler(path).upscale_float(lr),
                               model(lr[None].astype(np.float32)).numpy()[0], atol=1e-2)
