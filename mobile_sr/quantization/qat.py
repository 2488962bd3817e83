"""Quantization-aware training models: our Keras models wrapped by tfmot with the layer configs
of :mod:`mobile_sr.quantization.configs`."""

from __future__ import annotations

import numpy as np

from mobile_sr.core.backend import import_tfmot, keras
from mobile_sr.models.custom_layers import Quantize
from mobile_sr.quantization.configs import custom_objects, quantize_config_for, quantize_kind
from mobile_sr.quantization.probing import chunked_values

tfmot = import_tfmot()


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
        kind = quantize_kind(layer)
        if kind is Quantize.CLIP:
            value_range = (layer.min_value, layer.max_value)
            pinned[layer.name] = value_range
            source = _producers(layer)[0]
            # scale-preserving layers move their first input's values (a crop's second input is a reference)
            while quantize_kind(source) is Quantize.SCALE_PRESERVING:
                source = _producers(source)[0]
            pinned[source.name] = value_range
        elif kind is Quantize.CONCATENATION:
            producers = _producers(layer)
            if any(id(p) in inputs for p in producers):
                for producer in producers:
                    if id(producer) not in inputs:
                        pinned[producer.name] = value_range
    return pinned


def _consumers(model, layer) -> list:
    return [other for other in model.layers if any(p is layer for p in _producers(other))]


def equalize_concat_ranges(
    model, lr_batch, value_range: tuple[float, float], *, percentile: float = 99.99, balance: float = 0.5,
):
    """A copy of ``model`` computing the same function, with the features concatenated to the
    input image rescaled to the image's range (``value_range``, e.g. [0, 255]).

    The concatenation must share the image's exact scale, so features quantized with that scale
    must span about the same range (trained SCSRN features reach ~1,400 against 255).
    ReLU(a x) = a ReLU(x) for a > 0: dividing output channel c of the producing conv (kernel and
    bias) by a_c and multiplying the consuming conv's weights for that channel by a_c leaves the
    output unchanged. a_c = (p / top) * (p_c / p) ** balance, with p_c the ``percentile`` of
    channel c on ``lr_batch``, p that of all channels and top the range's upper end:
    ``balance`` 0 scales all channels alike (weak channels then use few of the 256 levels),
    1 stretches every channel over the full range (each gets all 256 levels; the consumer's
    weights for weak channels shrink, so their int8 steps grow coarser); 0.5, the default, was best
    on a trained SCSRN x3 (by 0.01 dB). Dead channels stay as they are.
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
                overall = float(np.percentile(features, percentile))
                per_channel = np.percentile(features.reshape(-1, channels), percentile, axis=0)
                if overall > 0:
                    live = per_channel > 0
                    factors = np.ones(channels)
                    factors[live] = overall / value_range[1] * (per_channel[live] / overall) ** balance
                    kernel, bias = producer.get_weights()
                    producer.set_weights([kernel / factors, bias / factors])
                    consumer_kernel[:, :, offset : offset + channels, :] *= factors[:, None]
            offset += channels
        consumers[0].set_weights([consumer_kernel, consumer_bias])
    return clone


def _output_ranges(model, layer_names: list[str], batch, chunk: int = 8) -> dict[str, tuple[float, float]]:
    """Min and max of each named layer's output on ``batch`` (an array, or a list for a
    multi-input model), from one pass over ``chunk`` samples at a time: memory stays small and
    each layer is computed once."""
    ranges: dict[str, tuple[float, float]] = {}
    for outputs in chunked_values(model, [model.get_layer(name).output for name in layer_names], batch, chunk):
        for name, values in zip(layer_names, outputs, strict=True):
            values = values.numpy()
            low, high = ranges.get(name, (np.inf, -np.inf))
            ranges[name] = (min(low, float(values.min())), max(high, float(values.max())))
    return ranges


def calibrate_output_ranges(qat_model, float_model, lr_batch, value_range: tuple[float, float]) -> None:
    """Start every learned activation range at the range seen on ``lr_batch``: tfmot starts them at
    [-6, 6] and moves them by 0.1% a step, far too slowly for a short fine-tune. A range is at
    least one input step wide: an output that is all zero on the batch (a dead ReLU) would get a
    near-zero scale, whose ratio to its neighbours' scales XNNPACK's int8 kernels refuse."""
    narrowest = (value_range[1] - value_range[0]) / 255.0
    from mobile_sr.core.backend import tf

    qat_model(lr_batch, training=True)  # sets the per-channel kernel ranges
    range_variables = {}
    for wrapper in qat_model.layers:
        variables = {w.name.split("/")[-1].split(":")[0]: w for w in wrapper.non_trainable_weights}
        if "output_min" in variables:
            range_variables[wrapper.layer.name] = variables
    if not range_variables:
        return
    seen = _output_ranges(float_model, list(range_variables), lr_batch)
    for name, variables in range_variables.items():
        low = min(0.0, seen[name][0])
        high = max(low + narrowest, seen[name][1])
        variables["output_min"].assign(tf.constant(low, variables["output_min"].dtype))
        variables["output_max"].assign(tf.constant(high, variables["output_max"].dtype))


def quantize_for_training(
    model, calibration=None, *, value_range: tuple[float, float] = (0.0, 255.0), data_aware_rounding: bool = True,
):
    """A QAT copy of ``model`` (weights copied): fake-quantized weights and activations, inputs
    and outputs fixed to ``value_range`` (the registry's ``ModelSpec.value_range``: SR pixels
    [0, 255], HDR [0, 1]). ``model`` is left untouched.

    With ``calibration`` (a batch of model inputs) the features concatenated to the input are
    first rescaled into its range (:func:`equalize_concat_ranges`), the conv kernels are put on
    their int8 grid by data-aware rounding (:func:`~mobile_sr.quantization.rounding.round_conv_kernels`;
    fine-tuning then starts from the rounding that fits the data; with ``data_aware_rounding``
    False the fake quantizers round to nearest, as in plain tfmot QAT) and the learned activation
    ranges start at the ranges seen on it (:func:`calibrate_output_ranges`)."""
    if calibration is not None:
        from mobile_sr.quantization.rounding import round_conv_kernels

        model = equalize_concat_ranges(model, calibration, value_range)
        if data_aware_rounding:
            round_conv_kernels(model, calibration)
    pinned = _pinned_output_ranges(model, value_range)
    inputs = {layer.name for layer in model.layers if isinstance(layer, keras.layers.InputLayer)}

    def annotate(layer):
        if isinstance(layer, keras.layers.InputLayer):
            return layer.__class__.from_config(layer.get_config())
        producers = _producers(layer)
        same_scale_inputs = any(p.name in inputs for p in producers) or len({id(p) for p in producers}) == 1
        config = quantize_config_for(layer, pinned, same_scale_inputs)
        layer_config = layer.get_config()
        if quantize_kind(layer) is Quantize.CLIP:  # its fixed-range output quantizer clamps already
            layer_config["by_quantizer"] = True
        clone = layer.__class__.from_config(layer_config)
        return tfmot.quantization.keras.quantize_annotate_layer(clone, quantize_config=config)

    with tfmot.quantization.keras.quantize_scope(custom_objects()):
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
    return tfmot.quantization.keras.quantize_scope(custom_objects())
