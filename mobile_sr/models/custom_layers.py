"""The registry of mobile-sr's custom layers and how each one quantizes, declared where the layer
is defined (``@custom_layer(Quantize.SCALE_PRESERVING)``). Models never import the quantization
package; :mod:`mobile_sr.quantization.configs` maps these kinds to tfmot ``QuantizeConfig``s."""

from __future__ import annotations

import enum

from mobile_sr.core.backend import keras


class Quantize(enum.Enum):
    """How a layer is quantized for int8 (the rules are in :mod:`mobile_sr.quantization.configs`)."""

    CONV = "per-channel int8 kernel; output range learned, or fixed where it is pinned"
    LEARNED_RANGE = "no weights; output range learned, or fixed where it is pinned"
    CLIP = "the output clip: its fixed-range output quantizer does the clamping"
    SCALE_PRESERVING = "moves or copies values: keeps its input's scale"
    CONCATENATION = "keeps its inputs' scale where they share one, else learns a range"
    PROBABILITY = "output in [0, 1): the fixed scale of int8 LOGISTIC and SOFTMAX"
    ACTIVATION = "a Keras Activation: quantizable when it is a sigmoid"
    TRAINING_ONLY = "exists only in training; the model's deploy hook folds it into plain layers"


CUSTOM_LAYERS: dict[type, Quantize] = {}
# training-only layers -> the call that folds them into plain layers
FOLDED_BY: dict[type, str] = {}


def custom_layer(quantize: Quantize, *, folded_by: str | None = None):
    """Class decorator: register a custom layer for Keras (de)serialization, and how it quantizes
    (a ``TRAINING_ONLY`` layer names the call that folds it away, ``folded_by``)."""
    if (quantize is Quantize.TRAINING_ONLY) != (folded_by is not None):
        raise ValueError("a TRAINING_ONLY layer, and only such a layer, names the call that folds it (folded_by)")

    def decorator(cls: type) -> type:
        CUSTOM_LAYERS[cls] = quantize
        if folded_by is not None:
            FOLDED_BY[cls] = folded_by
        return keras.utils.register_keras_serializable(package="mobile_sr")(cls)

    return decorator
