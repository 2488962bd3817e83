"""The layers a QAT-form model quantizes, and the float model with only one of them quantized."""

import numpy as np
import pytest

from mobile_sr.core.backend import keras
from mobile_sr.models import build_model, get_model_spec, make_config
from mobile_sr.quantization.diagnosis import INPUT_KIND, quantized_layers, with_only
from mobile_sr.quantization.qat import equalize_concat_ranges, quantize_for_training


def _tiny(name: str):
    return build_model(name, make_config(name, **get_model_spec(name).tiny_config))


@pytest.mark.large
def test_each_input_and_shared_layer_is_one_quantized_layer():
    hdr = quantized_layers(quantize_for_training(_tiny("hdr_unet"), value_range=(0.0, 1.0)))
    names = [layer.name for layer in hdr]
    assert len(names) == len(set(names))
    assert sorted(layer.name for layer in hdr if layer.kind == INPUT_KIND) == ["exposure1", "exposure2", "exposure3"]
    assert next(layer for layer in hdr if layer.name == "encoder1_conv1").calls == 3  # shared by the exposures


@pytest.fixture(scope="module")
def scsrn_nearest():
    """A tiny SCSRN, its float form with equalized concat ranges, its quantized layers (nearest
    rounding) and integer pixels."""
    model = _tiny("scsrn")
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if layer.weights:  # away from the identity start, so that every layer computes something
            layer.set_weights([w + rng.normal(0, 0.02, w.shape).astype(np.float32) for w in layer.get_weights()])
    calibration = rng.integers(0, 256, (8, 12, 16, 3)).astype(np.float32)
    reference = equalize_concat_ranges(model, calibration, (0.0, 255.0))
    layers = {layer.name: layer for layer in quantized_layers(
        quantize_for_training(model, calibration, data_aware_rounding=False))}
    return reference, layers, rng.integers(0, 256, (2, 12, 16, 3)).astype(np.float32)


def test_sr_layers_are_the_input_the_convs_and_the_clip(scsrn_nearest):
    _, layers, _ = scsrn_nearest
    # the concatenation shares the input's scale and depth-to-space moves values: neither quantizes
    assert list(layers) == ["lr", "feature_conv1", "feature_conv2", "output_conv", "clip"]
    assert [layer.kind for layer in layers.values()] == [INPUT_KIND, "Conv2D", "Conv2D", "Conv2D", "ClipToRange"]


def test_only_the_chosen_layer_is_quantized(scsrn_nearest):
    reference, layers, pixels = scsrn_nearest
    expected = reference(pixels).numpy()
    assert not np.allclose(expected, np.round(expected))

    def output(name: str) -> np.ndarray:
        return with_only(reference, layers[name])(pixels, training=False).numpy()

    np.testing.assert_array_equal(output("lr"), expected)  # uint8 pixels lie on the input's grid
    first_conv = output("feature_conv1")  # quantized, then float layers: off the output's grid
    assert not np.allclose(first_conv, expected) and not np.allclose(first_conv, np.round(first_conv))
    last_conv = output("output_conv")  # its output quantizer has the pixels' grid
    assert not np.allclose(last_conv, expected)
    np.testing.assert_allclose(last_conv, np.round(last_conv), atol=1e-3)
    np.testing.assert_array_equal(reference(pixels).numpy(), expected)  # the float model is shared, not changed


def test_float_outputs_stay_the_float_models_own_after_sharing(scsrn_nearest):
    reference, layers, pixels = scsrn_nearest
    for layer in layers.values():
        with_only(reference, layer)  # each adds calls of the float model's layers
    probe = keras.Model(reference.inputs, [t for layer in layers.values() for t in layer.float_outputs(reference)])
    assert len(probe(pixels)) == len(layers)
