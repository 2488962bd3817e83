"""tfmot ``QuantizeConfig``s for every layer of our models, chosen so that the converted graph is
int8 end to end with no requantize op inside it.

Three rules decide a layer's output quantizer:

* **Value-range layers.** The model inputs are quantized with the fixed range of the task's
  values (SR: uint8 pixels, [0, 255], scale 1, exact; HDR: exposures in [0, 1]). The output clip
  is a fixed quantizer of its range, and so is every layer whose output reaches the clip only
  through scale-preserving layers (depth-to-space): the last conv (SCSRN) or the anchor add
  (ABPN) already produces int8 pixels, and the clip costs nothing. A learned range there would
  force a requantize before the same-scale ops.
* **Concatenation with the input.** TFLite's int8 CONCATENATION needs one scale for all inputs.
  The features concatenated to the input image are therefore quantized with the input's range
  too: the image enters the feature map as it is, as the SCSRN paper intends. A concatenation
  of several calls of one shared layer (an encoder applied to every exposure) has one scale
  already.
* **Scale-preserving layers** (depth-to-space, space-to-depth, channel repeat, edge padding,
  cropping, such concatenations) get no quantizer of their own; they inherit their input's scale.
* **Fixed-mix layers** (Haar DWT/IWT, group sums) are 1x1 convs with constant kernels, which
  the converter quantizes exactly; their outputs learn a range. The SKM softmax has the fixed
  range of probabilities, and so do sigmoids. The high-pass filter is a depthwise conv whose
  constant kernel lies on the int8 grid already; its output learns a range.

Conv kernels are quantized per output channel, symmetric, narrow range (int8 in [-127, 127]), as
TFLite's int8 kernels expect; other convs quantize their (ReLU) output with a moving-average range.
"""

from __future__ import annotations

from mobile_sr.core.backend import import_tfmot, keras
from mobile_sr.core.errors import QuantizationError
from mobile_sr.models.custom_layers import CUSTOM_LAYERS, FOLDED_BY, Quantize

tfmot = import_tfmot()
_quantizers = tfmot.quantization.keras.quantizers
# TFLite's int8 LOGISTIC and SOFTMAX fix their output scale to 1/256 (zero point -128): this range
# has exactly that scale, so no requantize follows a sigmoid or softmax (1.0 is out of int8 reach).
PROBABILITY_RANGE = (0.0, 255.0 / 256.0)


def _fixed(value_range: tuple[float, float]):
    return _quantizers.FixedQuantizer(num_bits=8, init_min=value_range[0], init_max=value_range[1], narrow_range=False)


def _moving_average():
    return _quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False, narrow_range=False)


@keras.utils.register_keras_serializable(package="mobile_sr")
class OutputRangeQuantizeConfig(tfmot.quantization.keras.QuantizeConfig):
    """No weights; the output quantized with a fixed range, or with a learned one if None."""

    def __init__(self, output_range: tuple[float, float] | None = None):
        self.output_range = None if output_range is None else tuple(output_range)

    def get_weights_and_quantizers(self, layer):
        return []

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        pass

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return [_moving_average() if self.output_range is None else _fixed(self.output_range)]

    def get_config(self):
        return {"output_range": self.output_range}


@keras.utils.register_keras_serializable(package="mobile_sr")
class ConvQuantizeConfig(OutputRangeQuantizeConfig):
    """Per-channel symmetric int8 kernel; the output (after the fused activation) either with a
    learned moving-average range or pinned to ``output_range``."""

    def get_weights_and_quantizers(self, layer):
        kernel_quantizer = _quantizers.LastValueQuantizer(num_bits=8, per_axis=True, symmetric=True, narrow_range=True)
        return [(layer.kernel, kernel_quantizer)]

    def set_quantize_weights(self, layer, quantize_weights):
        (layer.kernel,) = quantize_weights


@keras.utils.register_keras_serializable(package="mobile_sr")
class ScalePreservingQuantizeConfig(OutputRangeQuantizeConfig):
    """Layers that only move or copy values: the output keeps the input's quantization."""

    def get_output_quantizers(self, layer):
        return []

    def get_config(self):
        return {}


QUANTIZE_CONFIGS = {
    "ConvQuantizeConfig": ConvQuantizeConfig,
    "OutputRangeQuantizeConfig": OutputRangeQuantizeConfig,
    "ScalePreservingQuantizeConfig": ScalePreservingQuantizeConfig,
}

# The Keras layers mobile-sr's models use; custom layers declare their kind where they are defined.
KERAS_LAYERS: dict[type, Quantize] = {
    keras.layers.Conv2D: Quantize.CONV,
    keras.layers.Concatenate: Quantize.CONCATENATION,
    keras.layers.Add: Quantize.LEARNED_RANGE,
    keras.layers.Multiply: Quantize.LEARNED_RANGE,
    keras.layers.ReLU: Quantize.LEARNED_RANGE,
    keras.layers.LeakyReLU: Quantize.LEARNED_RANGE,
    keras.layers.GlobalAveragePooling2D: Quantize.LEARNED_RANGE,
    keras.layers.Activation: Quantize.ACTIVATION,
}


def layer_table() -> dict[type, Quantize]:
    """Layer type -> how it quantizes: the Keras layers above and every registered custom layer."""
    return {**KERAS_LAYERS, **CUSTOM_LAYERS}


def quantize_kind(layer) -> Quantize | None:
    """How ``layer`` quantizes: the entry of its class, or of the nearest base class in the table."""
    table = layer_table()
    return next((table[cls] for cls in type(layer).__mro__ if cls in table), None)


def custom_objects() -> dict[str, type]:
    """What Keras needs to clone or deserialize a QAT model: the custom layers and the configs."""
    return {layer.__name__: layer for layer in CUSTOM_LAYERS} | QUANTIZE_CONFIGS


def _unsupported(layer, why: str) -> QuantizationError:
    supported = ", ".join(sorted(cls.__name__ for cls in layer_table() if cls not in FOLDED_BY))
    return QuantizationError(
        f"layer '{layer.name}' ({type(layer).__name__}) {why}; declare how it quantizes where it is defined "
        f"(@custom_layer in mobile_sr/models/custom_layers.py), or build the model from supported layers ({supported})"
    )


def quantize_config_for(layer, pinned: dict[str, tuple[float, float]], same_scale_inputs: bool = False):
    """The QuantizeConfig of one layer by its kind (:func:`quantize_kind`), or a QuantizationError
    that says how to add one. ``pinned``: the fixed output ranges (``_pinned_output_ranges`` in
    :mod:`mobile_sr.quantization.qat`); ``same_scale_inputs``: the layer's inputs share one scale
    (a concatenation with the input, or of calls of one shared layer), so a concatenation needs
    no requantization."""
    kind = quantize_kind(layer)
    output_range = pinned.get(layer.name)
    if kind is Quantize.CONV:
        return ConvQuantizeConfig(output_range)
    if kind is Quantize.SCALE_PRESERVING or (kind is Quantize.CONCATENATION and same_scale_inputs):
        return ScalePreservingQuantizeConfig()
    if kind is Quantize.PROBABILITY or (kind is Quantize.ACTIVATION and layer.get_config()["activation"] == "sigmoid"):
        return OutputRangeQuantizeConfig(PROBABILITY_RANGE)
    if kind in (Quantize.LEARNED_RANGE, Quantize.CLIP, Quantize.CONCATENATION):  # concatenation: TFLite requantizes
        return OutputRangeQuantizeConfig(output_range)
    if kind is Quantize.TRAINING_ONLY:
        raise QuantizationError(f"layer '{layer.name}' is a training-only {type(layer).__name__}; fold it into "
                                f"plain layers first with {FOLDED_BY[type(layer)]}")
    if kind is Quantize.ACTIVATION:
        raise _unsupported(layer, f"is a '{layer.get_config()['activation']}' activation, which has no quantization "
                                  "config (sigmoid has)")
    raise _unsupported(layer, "has no quantization config")
