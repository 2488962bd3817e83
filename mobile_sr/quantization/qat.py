"""Quantization-aware training models: our Keras models wrapped by tfmot with the layer configs
of :mod:`mobile_sr.quantization.configs`."""

from __future__ import annotations

import numpy as np

from mobile_sr.backend import import_tfmot, keras
from mobile_sr.errors import QuantizationError
from mobile_sr.models.layers import (
    ClipToRange, DepthToSpace, FixedPointwiseMix, GroupSoftmax, HaarDWT, HaarIWT, RepeatChannels, SumGroups,
)
from mobile_sr.quantization.configs import (
    PROBABILITY_RANGE,
    QUANTIZE_CONFIGS,
    SCALE_PRESERVING_LAYERS,
    ConvQuantizeConfig,
    OutputRangeQuantizeConfig,
    ScalePreservingQuantizeConfig,
)

tfmot = import_tfmot()
_CUSTOM_OBJECTS = {
    layer.__name__: layer
    for layer in (DepthToSpace, ClipToRange, RepeatChannels, HaarDWT, HaarIWT, SumGroups, GroupSoftmax)
} | QUANTIZE_CONFIGS


def _producers(layer) -> list:
    producers = []
    for node in layer._inbound_nodes:
        inbound = node.inbound_layers
        producers += inbound if isinstance(inbound, (list, tuple)) else [inbound]
    return producers


def _pinned_output_ranges(model, value_range: tuple[float, float]) -> dict[str, tuple[float, float]]:
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
                        pinned[producer.name] = value_range
    return pinned


_LEARNED_RANGE_LAYERS = (
    FixedPointwiseMix, ClipToRange, keras.layers.Add, keras.layers.ReLU, keras.layers.Multiply, keras.layers.GlobalAveragePooling2D,
)


def quantize_config_for(layer, pinned: dict[str, tuple[float, float]], same_scale_inputs: bool = False):
    """The QuantizeConfig of one layer, or a QuantizationError that says how to add one.
    ``same_scale_inputs``: the layer's inputs share one scale (a concatenation with the input,
    or of calls of one shared layer), so a concatenation needs no requantization."""
    output_range = pinned.get(layer.name)
    if isinstance(layer, keras.layers.Conv2D):
        return ConvQuantizeConfig(output_range)
    if isinstance(layer, keras.layers.Concatenate) and not same_scale_inputs:
        return OutputRangeQuantizeConfig(output_range)  # inputs of different scales: TFLite requantizes them
    if isinstance(layer, SCALE_PRESERVING_LAYERS):
        return ScalePreservingQuantizeConfig()
    if isinstance(layer, GroupSoftmax) or (isinstance(layer, keras.layers.Activation) and layer.get_config()["activation"] == "sigmoid"):
        return OutputRangeQuantizeConfig(PROBABILITY_RANGE)
    if isinstance(layer, _LEARNED_RANGE_LAYERS):
        return OutputRangeQuantizeConfig(output_range)
    raise QuantizationError(
        f"layer '{layer.name}' ({type(layer).__name__}) has no quantization config; give it a QuantizeConfig "
        "in mobile_sr/quantization/qat.py:quantize_config_for, or build the model from supported layers "
        "(Conv2D, Add, Multiply, Concatenate, ReLU, sigmoid Activation, GlobalAveragePooling2D, DepthToSpace, RepeatChannels, "
        "ClipToRange, HaarDWT, HaarIWT, SumGroups, GroupSoftmax)"
    )


def _consumers(model, layer) -> list:
    return [other for other in model.layers if any(p is layer for p in _producers(other))]


def equalize_concat_ranges(model, lr_batch, value_range: tuple[float, float], percentile: float = 99.99):
    """A copy of ``model`` computing the same function, with the features concatenated to the
    input image rescaled to the image's range (``value_range``, e.g. [0, 255]).

    The concatenation must share the image's exact scale, so features quantized with that scale
    must span about the same range (trained SCSRN features reach ~1,400 against 255).
    ReLU(a x) = a ReLU(x) for a > 0: dividing the producing conv's kernel and bias by
    a = p / max (p: the ``percentile`` of the feature activations on ``lr_batch``) and
    multiplying the consuming conv's weights for those channels by a leaves the output unchanged.
    """
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    inputs = {id(layer) for layer in clone.layers if isinstance(layer, keras.layers.InputLayer)}
    for concat in clone.layers:
        producers = _producers(concat) if isinstance(concat, keras.layers.Concatenate) else []
        if not any(id(p) in inputs for p in producers):
            continue
        consumers = _consumers(clone, concat)
        if len(consumers) != 1 or not isinstance(consumers[0], keras.layers.Conv2D):
            continue
        consumer_kernel, consumer_bias = consumers[0].get_weights()
        offset = 0
        for producer in producers:
            channels = int(producer.output.shape[-1])
            relu_conv = isinstance(producer, keras.layers.Conv2D) and producer.activation is keras.activations.relu
            if relu_conv and len(_consumers(clone, producer)) == 1:
                features = keras.Model(clone.input, producer.output)(lr_batch, training=False).numpy()
                factor = float(np.percentile(features, percentile)) / value_range[1]
                if factor > 0:
                    kernel, bias = producer.get_weights()
                    producer.set_weights([kernel / factor, bias / factor])
                    consumer_kernel[:, :, offset : offset + channels, :] *= factor
            offset += channels
        consumers[0].set_weights([consumer_kernel, consumer_bias])
    return clone


def calibrate_output_ranges(qat_model, float_model, lr_batch, value_range: tuple[float, float]) -> None:
    """Start every learned activation range at the range seen on ``lr_batch``: tfmot starts them at
    [-6, 6] and moves them by 0.1% a step, far too slowly for a short fine-tune. A range is at
    least one input step wide: an output that is all zero on the batch (a dead ReLU) would get a
    near-zero scale, whose ratio to its neighbours' scales XNNPACK's int8 kernels refuse."""
    narrowest = (value_range[1] - value_range[0]) / 255.0
    from mobile_sr.backend import tf

    qat_model(lr_batch, training=True)  # sets the per-channel kernel ranges
    for wrapper in qat_model.layers:
        ranges = {w.name.split("/")[-1].split(":")[0]: w for w in wrapper.non_trainable_weights}
        if "output_min" not in ranges:
            continue
        float_layer = float_model.get_layer(wrapper.layer.name)
        values = keras.Model(float_model.input, float_layer.output)(lr_batch, training=False).numpy()
        low = min(0.0, float(values.min()))
        high = max(low + narrowest, float(values.max()))
        ranges["output_min"].assign(tf.constant(low, ranges["output_min"].dtype))
        ranges["output_max"].assign(tf.constant(high, ranges["output_max"].dtype))


def quantize_for_training(model, calibration=None, *, value_range: tuple[float, float] = (0.0, 255.0)):
    """A QAT copy of ``model`` (weights copied): fake-quantized weights and activations, inputs
    and outputs fixed to ``value_range`` (the registry's ``ModelSpec.value_range``: SR pixels
    [0, 255], HDR [0, 1]). ``model`` is left untouched.

    With ``calibration`` (a batch of model inputs) the features concatenated to the input are
    first rescaled into its range (:func:`equalize_concat_ranges`) and the learned activation
    ranges start at the ranges seen on it (:func:`calibrate_output_ranges`)."""
    if calibration is not None:
        model = equalize_concat_ranges(model, calibration, value_range)
    pinned = _pinned_output_ranges(model, value_range)
    inputs = {layer.name for layer in model.layers if isinstance(layer, keras.layers.InputLayer)}

    def annotate(layer):
        if isinstance(layer, keras.layers.InputLayer):
            return layer.__class__.from_config(layer.get_config())
        producers = _producers(layer)
        same_scale_inputs = any(p.name in inputs for p in producers) or len({id(p) for p in producers}) == 1
        config = quantize_config_for(layer, pinned, same_scale_inputs)
        layer_config = layer.get_config()
        if isinstance(layer, ClipToRange):  # its fixed-range output quantizer clamps already
            layer_config["by_quantizer"] = True
        clone = layer.__class__.from_config(layer_config)
        return tfmot.quantization.keras.quantize_annotate_layer(clone, quantize_config=config)

    with tfmot.quantization.keras.quantize_scope(_CUSTOM_OBJECTS):
        annotated = keras.models.clone_model(model, clone_function=annotate)
        annotated.set_weights(model.get_weights())
        quantized = tfmot.quantization.keras.quantize_apply(annotated)
        fixed = tfmot.quantization.keras.fix_input_output_range(
            quantized, input_min=value_range[0], input_max=value_range[1],
            output_min=value_range[0], output_max=value_range[1],
        )
        for layer in fixed.layers:
            source = quantized.get_layer(layer.name)
            if len(layer.weights) == len(source.weights):  # the input layer lost its range variables
                layer.set_weights(source.get_weights())
    if calibration is not None:
        calibrate_output_ranges(fixed, model, calibration, value_range)
    return fixed


def quantize_scope():
    """Scope in which QAT models can be cloned or deserialized."""
    return tfmot.quantization.keras.quantize_scope(_CUSTOM_OBJECTS)
