"""Layer by layer, what quantization adds to a model: the quantizers of a QAT-form model grouped by
the float layer (or model input) they belong to, and the float model with only one layer's
quantizers, to measure what quantizing that layer costs on its own.

Each quantizer belongs to the layer whose tensor it quantizes: a conv owns its kernel's and its
output's; the input of a layer is its producer's output, so the ops that merely move values
(depth-to-space, a concatenation sharing the input's scale) own none. The model inputs' quantizers
form layers of their own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mobile_sr.core.backend import import_tfmot, keras
from mobile_sr.quantization.qat import _producers

tfmot = import_tfmot()

INPUT_KIND = "input"


@dataclass(frozen=True)
class QuantizedLayer:
    """A layer (or model input) ``name`` of the float model, of type ``kind`` (``input`` for a
    model input), and the QAT model's layer that quantizes it (``quantizer``: its QuantizeWrapper,
    or the QuantizeLayer after the input), called ``calls`` times (a shared layer: once per call)."""

    name: str
    kind: str
    quantizer: Any
    calls: int

    def quantized_outputs(self) -> list:
        """The symbolic outputs of every call of ``quantizer`` in the QAT model."""
        return [self.quantizer.get_output_at(call) for call in range(self.calls)]

    def float_outputs(self, float_model) -> list:
        """The same tensors in ``float_model``, the float model the QAT model was made from (the
        first ``calls`` calls of the layer are the model's own: later models that share it add
        theirs after them)."""
        layer = float_model.get_layer(self.name)
        return [layer.get_output_at(call) for call in range(self.calls)]


def quantized_layers(qat_model) -> list[QuantizedLayer]:
    """The layers of ``qat_model`` that quantize something (weights or output), in graph order.
    Call it before :func:`with_only` shares their quantizers with other models."""
    found = []
    for layer in qat_model.layers:
        if isinstance(layer, tfmot.quantization.keras.QuantizeWrapper):
            config = layer.quantize_config
            if config.get_weights_and_quantizers(layer.layer) or config.get_output_quantizers(layer.layer):
                found.append(QuantizedLayer(layer.layer.name, type(layer.layer).__name__, layer,
                                            len(layer._inbound_nodes)))
        elif not isinstance(layer, keras.layers.InputLayer):  # tfmot's QuantizeLayer after a model input
            found.append(QuantizedLayer(_producers(layer)[0].name, INPUT_KIND, layer, 1))
    return found


def with_only(float_model, quantized: QuantizedLayer):
    """``float_model`` with only ``quantized``'s quantization: its QAT layer (fake-quantized kernel
    and output) in place of the float layer, or its input quantizer before the model. The other
    layers are ``float_model``'s own, shared rather than copied."""
    if quantized.kind == INPUT_KIND:
        inputs = [keras.Input(tensor.shape[1:], name=name) for tensor, name in
                  zip(float_model.inputs, float_model.input_names, strict=True)]
        fed = [quantized.quantizer(tensor) if name == quantized.name else tensor
               for tensor, name in zip(inputs, float_model.input_names, strict=True)]
        return keras.Model(inputs, float_model(fed if len(fed) > 1 else fed[0]))
    return keras.models.clone_model(
        float_model, clone_function=lambda layer: quantized.quantizer if layer.name == quantized.name else layer)
