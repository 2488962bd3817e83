"""Quantization-aware training models: our Keras models wrapped by tfmot with the layer configs
of :mod:`mobile_sr.quantization.configs`."""

from __future__ import annotations

from mobile_sr.backend import import_tfmot, keras
from mobile_sr.errors import QuantizationError
from mobile_sr.models.layers import ClipToRange, DepthToSpace, RepeatChannels
from mobile_sr.quantization.configs import (
    PIXEL_RANGE,
    QUANTIZE_CONFIGS,
    SCALE_PRESERVING_LAYERS,
    ConvQuantizeConfig,
    OutputRangeQuantizeConfig,
    ScalePreservingQuantizeConfig,
)

tfmot = import_tfmot()
_CUSTOM_OBJECTS = {
    "DepthToSpace": DepthToSpace, "ClipToRange": ClipToRange, "RepeatChannels": RepeatChannels, **QUANTIZE_CONFIGS,
}


def _producers(layer) -> list:
    producers = []
    for node in layer._inbound_nodes:
        inbound = node.inbound_layers
        producers += inbound if isinstance(inbound, (list, tuple)) else [inbound]
    return producers


def _pinned_output_ranges(model) -> dict[str, tuple[float, float]]:
    """Layers whose output range is fixed: see the rules in :mod:`mobile_sr.quantization.configs`."""
    inputs = {id(layer) for layer in model.layers if isinstance(layer, keras.layers.InputLayer)}
    pinned: dict[str, tuple[float, float]] = {}
    for layer in model.layers:
        if isinstance(layer, ClipToRange):
            value_range = (layer.min_value, layer.max_value)
            pinned[layer.name] = value_range
            (source,) = _producers(layer)
            while isinstance(source, DepthToSpace):
                (source,) = _producers(source)
            pinned[source.name] = value_range
        elif isinstance(layer, keras.layers.Concatenate):
            producers = _producers(layer)
            if any(id(p) in inputs for p in producers):
                for producer in producers:
                    if id(producer) not in inputs:
                        pinned[producer.name] = PIXEL_RANGE
    return pinned


def quantize_config_for(layer, pinned: dict[str, tuple[float, float]], concat_with_input: bool = False):
    """The QuantizeConfig of one layer, or a QuantizationError that says how to add one."""
    output_range = pinned.get(layer.name)
    if isinstance(layer, keras.layers.Conv2D):
        return ConvQuantizeConfig(output_range)
    if isinstance(layer, keras.layers.Concatenate) and not concat_with_input:
        return OutputRangeQuantizeConfig(output_range)  # inputs of different scales: TFLite requantizes them
    if isinstance(layer, SCALE_PRESERVING_LAYERS):
        return ScalePreservingQuantizeConfig()
    if isinstance(layer, (ClipToRange, keras.layers.Add, keras.layers.ReLU)):
        return OutputRangeQuantizeConfig(output_range)
    raise QuantizationError(
        f"layer '{layer.name}' ({type(layer).__name__}) has no quantization config; give it a QuantizeConfig "
        "in mobile_sr/quantization/qat.py:quantize_config_for, or build the model from supported layers "
        "(Conv2D, Add, Concatenate, ReLU, DepthToSpace, RepeatChannels, ClipToRange)"
    )


def quantize_for_training(model):
    """A QAT copy of ``model`` (weights copied): fake-quantized weights and activations, input
    fixed to the uint8 pixel range. ``model`` is left untouched."""
    pinned = _pinned_output_ranges(model)
    inputs = {layer.name for layer in model.layers if isinstance(layer, keras.layers.InputLayer)}

    def annotate(layer):
        if isinstance(layer, keras.layers.InputLayer):
            return layer.__class__.from_config(layer.get_config())
        concat_with_input = any(p.name in inputs for p in _producers(layer))
        config = quantize_config_for(layer, pinned, concat_with_input)
        clone = layer.__class__.from_config(layer.get_config())
        return tfmot.quantization.keras.quantize_annotate_layer(clone, quantize_config=config)

    with tfmot.quantization.keras.quantize_scope(_CUSTOM_OBJECTS):
        annotated = keras.models.clone_model(model, clone_function=annotate)
        annotated.set_weights(model.get_weights())
        quantized = tfmot.quantization.keras.quantize_apply(annotated)
        fixed = tfmot.quantization.keras.fix_input_output_range(
            quantized, input_min=PIXEL_RANGE[0], input_max=PIXEL_RANGE[1],
            output_min=PIXEL_RANGE[0], output_max=PIXEL_RANGE[1],
        )
        for layer in fixed.layers:
            source = quantized.get_layer(layer.name)
            if len(layer.weights) == len(source.weights):  # the input layer lost its range variables
                layer.set_weights(source.get_weights())
    return fixed


def quantize_scope():
    """Scope in which QAT models can be cloned or deserialized."""
    return tfmot.quantization.keras.quantize_scope(_CUSTOM_OBJECTS)
