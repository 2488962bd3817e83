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


class FixedPointwiseMix(keras.layers.Layer):
    """Base of layers that mix channels with a fixed 1x1 convolution between two data moves. The
    kernel is a constant, not a weight: TFLite runs it as a plain CONV_2D, and the int8 converter
    quantizes it exactly (its entries are +-0.5, 1 and 0)."""

    def mix_matrix(self, in_channels: int) -> np.ndarray:
        """The ``in_channels x out_channels`` matrix of the 1x1 convolution."""
        raise NotImplementedError

    def before_mix(self, inputs):
        return inputs

    def after_mix(self, mixed):
        return mixed

    def call(self, inputs):
        blocks = self.before_mix(inputs)
        kernel = tf.constant(self.mix_matrix(int(blocks.shape[-1]))[None, None])
        return self.after_mix(tf.nn.conv2d(blocks, kernel, strides=1, padding="VALID"))


@keras.utils.register_keras_serializable(package=_PACKAGE)
class HaarDWT(FixedPointwiseMix):
    """One level of the 2-D Haar wavelet transform: ``H x W x C`` -> ``H/2 x W/2 x 4C`` with the
    sub-bands LL, LH, HL, HH as consecutive groups of C channels (space-to-depth, then the Haar
    matrix across the four block positions). The encoder's downsampling in place of a strided
    conv. H and W must be even."""

    def mix_matrix(self, in_channels: int) -> np.ndarray:
        return np.kron(_HAAR.T, np.eye(in_channels // 4, dtype=np.float32))

    def before_mix(self, inputs):
        return tf.nn.space_to_depth(inputs, 2)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, None if h is None else h // 2, None if w is None else w // 2, 4 * c)


@keras.utils.register_keras_serializable(package=_PACKAGE)
class HaarIWT(FixedPointwiseMix):
    """The inverse of :class:`HaarDWT` (exact: the transpose of the orthonormal Haar matrix, then
    depth-to-space): ``H x W x 4C`` -> ``2H x 2W x C``; the decoder's upsampling in place of a
    transposed conv."""

    def mix_matrix(self, in_channels: int) -> np.ndarray:
        if in_channels % 4:
            raise ValueError(f"HaarIWT needs a multiple of 4 channels, got {in_channels}")
        return np.kron(_HAAR, np.eye(in_channels // 4, dtype=np.float32))

    def after_mix(self, mixed):
        return tf.nn.depth_to_space(mixed, 2)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, None if h is None else h * 2, None if w is None else w * 2, c // 4)


@keras.utils.register_keras_serializable(package=_PACKAGE)
class SumGroups(FixedPointwiseMix):
    """Sum ``groups`` consecutive equal channel groups: ``... x (groups*C)`` -> ``... x C``."""

    def __init__(self, groups: int, **kwargs):
        super().__init__(**kwargs)
        self.groups = int(groups)

    def mix_matrix(self, in_channels: int) -> np.ndarray:
        if in_channels % self.groups:
            raise ValueError(f"{in_channels} channels do not split into {self.groups} groups")
        return np.kron(np.ones((self.groups, 1), np.float32), np.eye(in_channels // self.groups, dtype=np.float32))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] // self.groups)

    def get_config(self):
        return {**super().get_config(), "groups": self.groups}


@keras.utils.register_keras_serializable(package=_PACKAGE)
class GroupSoftmax(keras.layers.Layer):
    """Softmax across ``groups`` consecutive channel groups, channel by channel: for input
    ``[V_1, ..., V_g]`` (each C channels) the output ``[w_1, ..., w_g]`` has sum_i w_i = 1 in
    every channel (Selective Kernel Merging's choice between the exposures)."""

    def __init__(self, groups: int, **kwargs):
        super().__init__(**kwargs)
        self.groups = int(groups)

    def call(self, inputs):
        shape = tf.shape(inputs)
        channels = inputs.shape[-1] // self.groups
        grouped = tf.reshape(inputs, [shape[0], shape[1], shape[2], self.groups, channels])
        # TFLite's int8 SOFTMAX works on the last axis: put the groups there and back.
        weights = tf.nn.softmax(tf.transpose(grouped, [0, 1, 2, 4, 3]), axis=-1)
        return tf.reshape(tf.transpose(weights, [0, 1, 2, 4, 3]), shape)

    def get_config(self):
        return {**super().get_config(), "groups": self.groups}


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
