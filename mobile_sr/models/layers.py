"""Custom layers as real, serializable Keras layers (never ``Lambda``), so that tfmot can clone and
quantize every model and the TFLite converter sees plain ops."""

from __future__ import annotations

from mobile_sr.backend import keras, tf

_PACKAGE = "mobile_sr"


@keras.utils.register_keras_serializable(package=_PACKAGE)
class DepthToSpace(keras.layers.Layer):
    """Pixel shuffle: ``H x W x (C*b*b)`` -> ``bH x bW x C`` (TFLite DEPTH_TO_SPACE)."""

    def __init__(self, block_size: int, **kwargs):
        super().__init__(**kwargs)
        self.block_size = int(block_size)

    def call(self, inputs):
        return tf.nn.depth_to_space(inputs, self.block_size)

    def compute_output_shape(self, input_shape):
        b = self.block_size
        n, h, w, c = input_shape
        return (n, None if h is None else h * b, None if w is None else w * b, c // (b * b))

    def get_config(self):
        return {**super().get_config(), "block_size": self.block_size}


@keras.utils.register_keras_serializable(package=_PACKAGE)
class ClipToRange(keras.layers.Layer):
    """Clamp to ``[min_value, max_value]``, e.g. the valid [0, 255] pixel range of the output.

    ``by_quantizer=True`` is for quantized models whose output quantizer has exactly this fixed
    range: that quantizer already clamps, so the layer passes values through and the int8 graph
    carries no MINIMUM/RELU pair (which cost ~30% of an int8 SCSRN frame on the host, since
    XNNPACK leaves the int8 RELU to a slow reference kernel).
    """

    def __init__(self, min_value: float = 0.0, max_value: float = 255.0, by_quantizer: bool = False, **kwargs):
        super().__init__(**kwargs)
        if min_value >= max_value:
            raise ValueError(f"min_value {min_value} must be below max_value {max_value}")
        self.min_value = float(min_value)
        self.max_value = float(max_value)
        self.by_quantizer = bool(by_quantizer)

    def call(self, inputs):
        if self.by_quantizer:
            return tf.identity(inputs)
        return tf.clip_by_value(inputs, self.min_value, self.max_value)

    def get_config(self):
        return {**super().get_config(), "min_value": self.min_value, "max_value": self.max_value,
                "by_quantizer": self.by_quantizer}


@keras.utils.register_keras_serializable(package=_PACKAGE)
class RepeatChannels(keras.layers.Layer):
    """Concatenate the input ``times`` times along channels: ABPN's anchor, which after
    depth-to-space is the nearest-neighbour upscaled input."""

    def __init__(self, times: int, **kwargs):
        super().__init__(**kwargs)
        self.times = int(times)

    def call(self, inputs):
        return tf.concat([inputs] * self.times, axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] * self.times)

    def get_config(self):
        return {**super().get_config(), "times": self.times}


def conv3x3(filters: int, name: str, activation: str | None = None, kernel_initializer: str = "he_normal"):
    """A 3x3 'same' convolution (He initialisation by default), the building block of the plain SR nets."""
    return keras.layers.Conv2D(
        filters, 3, padding="same", activation=activation, kernel_initializer=kernel_initializer, name=name
    )


def plain_feature_trunk(lr, *, channels: int, convs: int):
    """The feature layers SCSRN and ABPN share: ``convs`` 3x3 conv + ReLU layers named
    ``feature_conv1``, ``feature_conv2``, ... (names the checkpoints and the QAT configs rely on)."""
    features = lr
    for index in range(convs):
        features = conv3x3(channels, f"feature_conv{index + 1}", "relu")(features)
    return features


def lr_input(name: str = "lr"):
    """The LR image input: any size, RGB in [0, 255]."""
    return keras.Input(shape=(None, None, 3), name=name)
