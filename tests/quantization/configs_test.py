"""The layer -> quantization table: every custom layer declares how it quantizes where it is
defined, and the custom objects and error texts come from the table."""

import pytest

from mobile_sr.core.backend import keras
from mobile_sr.core.errors import QuantizationError
from mobile_sr.models import build_model, get_model_spec, make_config, model_names
from mobile_sr.models.custom_layers import CUSTOM_LAYERS, FOLDED_BY, Quantize
from mobile_sr.quantization.configs import custom_objects, layer_table, quantize_config_for, quantize_kind


def test_every_layer_of_every_model_has_a_kind():
    for name in model_names():
        model = build_model(name, make_config(name, **get_model_spec(name).tiny_config))
        for layer in model.layers:
            if not isinstance(layer, keras.layers.InputLayer):
                assert quantize_kind(layer) is not None, f"{name}: {layer.name} ({type(layer).__name__})"


def test_custom_objects_are_the_custom_layers_and_the_configs():
    objects = custom_objects()
    assert {layer.__name__ for layer in CUSTOM_LAYERS} <= set(objects)
    assert {"ConvQuantizeConfig", "OutputRangeQuantizeConfig", "ScalePreservingQuantizeConfig"} <= set(objects)
    assert all(kind is Quantize.TRAINING_ONLY for layer, kind in CUSTOM_LAYERS.items() if layer in FOLDED_BY)


def test_a_layer_outside_the_table_names_the_supported_ones():
    with pytest.raises(QuantizationError, match=r"'bn' \(BatchNormalization\) has no quantization config; declare .*"
                                                r"@custom_layer.*Conv2D.*DepthToSpace"):
        quantize_config_for(keras.layers.BatchNormalization(name="bn"), {})
    with pytest.raises(QuantizationError, match="'tanh' activation, which has no quantization config"):
        quantize_config_for(keras.layers.Activation("tanh", name="act"), {})
    assert "DecorrelatedConv2D" not in str(sorted(cls.__name__ for cls in layer_table() if cls not in FOLDED_BY))
