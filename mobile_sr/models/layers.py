"""Custom layers as real, serializable Keras layers (never ``Lambda``), so that tfmot can clone and
quantize every model and the TFLite converter sees plain ops."""

from __future__ import annotations

import numpy as np

from mobile_sr.backend import keras, tf
from mobile_sr.hdr_protocol import EXPOSURES, INPUT_CHANNELS

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


# Haar analysis filters of the 2x2 block [[a, b], [c, d]] as rows LL, LH, HL, HH (the HDR paper's
# f_LL, f_LH, f_HL, f_HH), halved so that the matrix is orthonormal: its transpose inverts it.
_HAAR = 0.5 * np.array([[1, 1, 1, 1], [-1, -1, 1, 1], [-1, 1, -1, 1], [1, -1, -1, 1]], np.float32)


def _mix_groups(blocks, channels: int, matrix: np.ndarray):
    """Apply ``matrix`` (4 x 4) across the four ``channels``-wide groups of ``blocks`` (the 2x2
    block positions after space-to-depth, or the four sub-bands before depth-to-space)."""
    shape = tf.shape(blocks)
    grouped = tf.reshape(blocks, [shape[0], shape[1], shape[2], 4, channels])
    mixed = tf.einsum("nhwkc,jk->nhwjc", grouped, tf.constant(matrix))
    return tf.reshape(mixed, [shape[0], shape[1], shape[2], 4 * channels])


@keras.utils.register_keras_serializable(package=_PACKAGE)
class HaarDWT(keras.layers.Layer):
    """One level of the 2-D Haar wavelet transform: ``H x W x C`` -> ``H/2 x W/2 x 4C`` with the
    sub-bands LL, LH, HL, HH as consecutive groups of C channels. Fixed filters, no weights; the
    encoder's downsampling in place of a strided conv. H and W must be even."""

    def call(self, inputs):
        return _mix_groups(tf.nn.space_to_depth(inputs, 2), inputs.shape[-1], _HAAR)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, None if h is None else h // 2, None if w is None else w // 2, 4 * c)


@keras.utils.register_keras_serializable(package=_PACKAGE)
class HaarIWT(keras.layers.Layer):
    """The inverse of :class:`HaarDWT` (exact: the transpose of the orthonormal Haar matrix):
    ``H x W x 4C`` -> ``2H x 2W x C``; the decoder's upsampling in place of a transposed conv."""

    def call(self, inputs):
        if inputs.shape[-1] % 4:
            raise ValueError(f"HaarIWT needs a multiple of 4 channels, got {inputs.shape[-1]}")
        return tf.nn.depth_to_space(_mix_groups(inputs, inputs.shape[-1] // 4, _HAAR.T), 2)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, None if h is None else h * 2, None if w is None else w * 2, c // 4)


@keras.utils.register_keras_serializable(package=_PACKAGE)
class SoftmaxAcrossInputs(keras.layers.Layer):
    """Softmax over a list of same-shaped tensors, element by element: returns one weight tensor per
    input, the weights summing to one at every position (Selective Kernel Merging's per-channel
    choice between the exposures)."""

    def call(self, inputs):
        weights = tf.nn.softmax(tf.stack(inputs, axis=0), axis=0)
        return tf.unstack(weights, num=len(inputs), axis=0)

    def compute_output_shape(self, input_shape):
        return list(input_shape)


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


def exposure_inputs():
    """The three exposure inputs of an HDR model (short, reference, long), any size, 6 channels:
    the LDR RGB in [0, 1] and its HDR-domain version L^2.2 / t."""
    return [keras.Input(shape=(None, None, INPUT_CHANNELS), name=f"exposure{index + 1}") for index in range(EXPOSURES)]
