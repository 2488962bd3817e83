"""tfmot ``QuantizeConfig``s for every layer of our models, chosen so that the converted graph is
int8 end to end with no requantize op inside it.

Three rules decide a layer's output quantizer:

* **Pixel-range layers.** The model input is uint8 pixels, so it is quantized with the fixed
  range [0, 255] (scale 1, exact). The output clip is a fixed [0, 255] quantizer, and so is every
  layer whose output reaches the clip only through scale-preserving layers (depth-to-space): the
  last conv (SCSRN) or the anchor add (ABPN) already produces int8 pixels, and the clip costs
  nothing. A learned range there would force a requantize before the same-scale ops.
* **Concatenation with the input.** TFLite's int8 CONCATENATION needs one scale for all inputs.
  The features concatenated to the LR image are therefore quantized with the image's range
  [0, 255] too: the image enters the feature map as it is, as the SCSRN paper intends.
* **Scale-preserving layers** (depth-to-space, channel repeat, concatenation) get no quantizer
  of their own; they inherit their input's scale.

Conv kernels are quantized per output channel, symmetric, narrow range (int8 in [-127, 127]), as
TFLite's int8 kernels expect; other convs quantize their (ReLU) output with a moving-average range.
"""

from __future__ import annotations

from mobile_sr.backend import import_tfmot, keras
from mobile_sr.models.layers import ClipToRange, DepthToSpace, RepeatChannels

tfmot = import_tfmot()
_quantizers = tfmot.quantization.keras.quantizers
PIXEL_RANGE = (0.0, 255.0)


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
SCALE_PRESERVING_LAYERS = (DepthToSpace, RepeatChannels, keras.layers.Concatenate)
