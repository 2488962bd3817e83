"""Custom layers as real, serializable Keras layers (never ``Lambda``), so that tfmot can clone and
quantize every model and the TFLite converter sees plain ops."""

from __future__ import annotations

import numpy as np

from mobile_sr.core.backend import keras, tf
from mobile_sr.models.custom_layers import Quantize, custom_layer
from mobile_sr.tasks import get_task


@custom_layer(Quantize.SCALE_PRESERVING)
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


@custom_layer(Quantize.SCALE_PRESERVING)
class SpaceToDepth(keras.layers.Layer):
    """Pixel unshuffle, the inverse of :class:`DepthToSpace`: ``H x W x C`` -> ``H/b x W/b x
    (C*b*b)`` (TFLite SPACE_TO_DEPTH). H and W must be multiples of ``block_size``."""

    def __init__(self, block_size: int, **kwargs):
        super().__init__(**kwargs)
        self.block_size = int(block_size)

    def call(self, inputs):
        return tf.nn.space_to_depth(inputs, self.block_size)

    def compute_output_shape(self, input_shape):
        b = self.block_size
        n, h, w, c = input_shape
        return (n, None if h is None else h // b, None if w is None else w // b, c * b * b)

    def get_config(self):
        return {**super().get_config(), "block_size": self.block_size}


@custom_layer(Quantize.SCALE_PRESERVING)
class PadToMultiple(keras.layers.Layer):
    """Pad the bottom and right edges to a multiple of ``multiple`` by mirroring the edge rows and
    columns, so that a model that unshuffles its input accepts every image size.

    Where the size is known when the graph is built (a fixed-size TFLite export, a training
    patch) and already a multiple, the layer adds no op at all; otherwise the graph pads by the
    size it sees at run time (:class:`CropToScaledInput` then removes the margin from the output)."""

    def __init__(self, multiple: int, **kwargs):
        super().__init__(**kwargs)
        self.multiple = int(multiple)

    def call(self, inputs):
        height, width = inputs.shape[1], inputs.shape[2]
        if height is not None and width is not None and height % self.multiple == 0 and width % self.multiple == 0:
            return tf.identity(inputs)
        # Mirror by the largest margin, then slice to the multiple: paddings computed in the graph
        # would hide even the channel count from the TFLite converter, which a conv needs.
        margin = self.multiple - 1
        padded = tf.pad(inputs, [[0, 0], [0, margin], [0, margin], [0, 0]], mode="SYMMETRIC")
        shape = tf.shape(inputs)
        return padded[:, : shape[1] + (-shape[1] % self.multiple), : shape[2] + (-shape[2] % self.multiple), :]

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        m = self.multiple
        return (n, None if h is None else -(-h // m) * m, None if w is None else -(-w // m) * m, c)

    def get_config(self):
        return {**super().get_config(), "multiple": self.multiple}


@custom_layer(Quantize.SCALE_PRESERVING)
class CropToScaledInput(keras.layers.Layer):
    """``[image, reference]`` -> the top-left ``scale * H x scale * W`` of ``image``, H x W being
    the reference's size: removes the margin :class:`PadToMultiple` added to the LR input from
    the upscaled output. No op where the sizes already match when the graph is built."""

    def __init__(self, scale: int, **kwargs):
        super().__init__(**kwargs)
        self.scale = int(scale)

    def call(self, inputs):
        image, reference = inputs
        target = [None if size is None else size * self.scale for size in reference.shape[1:3]]
        if None not in target and list(image.shape[1:3]) == target:
            return tf.identity(image)
        size = tf.shape(reference)[1:3] * self.scale
        return image[:, : size[0], : size[1], :]

    def compute_output_shape(self, input_shape):
        image_shape, reference_shape = input_shape
        n, h, w, _ = reference_shape
        return (n, None if h is None else h * self.scale, None if w is None else w * self.scale, image_shape[-1])

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


def gaussian_kernel(size: int, sigma: float) -> np.ndarray:
    """The ``size x size`` Gaussian blur kernel of standard deviation ``sigma`` pixels, summing to
    1 (float64; the kernel of torchvision's ``GaussianBlur``)."""
    offsets = np.arange(size, dtype=np.float64) - (size - 1) / 2
    line = np.exp(-0.5 * (offsets / sigma) ** 2)
    line /= line.sum()
    return np.outer(line, line)


@custom_layer(Quantize.LEARNED_RANGE)
class HighPassFilter(keras.layers.Layer):
    """The high frequencies of each channel, ``x - G * x`` with G a Gaussian blur, as one fixed
    depthwise convolution with the kernel ``identity - G`` ('same' zero padding).

    The taps are rounded to int8 steps of the largest (the centre) tap: the int8 converter stores
    exactly this kernel, so the float and the quantized model filter alike. The rounding leaves
    the filter a small response to flat areas (a few steps of 1/127 of the centre tap)."""

    def __init__(self, kernel_size: int = 5, sigma: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.kernel_size = int(kernel_size)
        self.sigma = float(sigma)

    def kernel(self) -> np.ndarray:
        """The ``kernel_size x kernel_size`` filter, on the int8 grid of its centre tap."""
        high_pass = -gaussian_kernel(self.kernel_size, self.sigma)
        high_pass[self.kernel_size // 2, self.kernel_size // 2] += 1.0
        step = np.abs(high_pass).max() / 127.0
        return np.round(high_pass / step) * step

    def call(self, inputs):
        channels = int(inputs.shape[-1])
        kernel = np.repeat(self.kernel()[:, :, None, None], channels, axis=2)
        return tf.nn.depthwise_conv2d(inputs, tf.constant(kernel, dtype=inputs.dtype), strides=[1, 1, 1, 1], padding="SAME")

    def get_config(self):
        return {**super().get_config(), "kernel_size": self.kernel_size, "sigma": self.sigma}


@custom_layer(Quantize.CLIP)
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


@custom_layer(Quantize.SCALE_PRESERVING)
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


# The mean RGB of the DIV2K training images in [0, 255] (as EDSR normalises its input).
DIV2K_RGB_MEAN = (114.444, 111.4605, 103.02)


@custom_layer(Quantize.LEARNED_RANGE)
class MeanShift(keras.layers.Layer):
    """Subtract a fixed per-channel mean (e.g. :data:`DIV2K_RGB_MEAN`) from the input: the input
    normalisation of EDSR, kept as a constant layer rather than folded into the first conv's bias,
    since the conv's zero padding would then see the image border differently and the bias would
    no longer be fixed. One int8 SUB on the 3-channel LR image."""

    def __init__(self, mean, **kwargs):
        super().__init__(**kwargs)
        self.mean = [float(value) for value in mean]

    def call(self, inputs):
        return inputs - tf.constant(self.mean, inputs.dtype)

    def get_config(self):
        return {**super().get_config(), "mean": self.mean}


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
        kernel = tf.constant(self.mix_matrix(int(blocks.shape[-1]))[None, None], blocks.dtype)  # exact in 16 bits
        return self.after_mix(tf.nn.conv2d(blocks, kernel, strides=1, padding="VALID"))


@custom_layer(Quantize.LEARNED_RANGE)
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


@custom_layer(Quantize.LEARNED_RANGE)
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


@custom_layer(Quantize.LEARNED_RANGE)
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


@custom_layer(Quantize.PROBABILITY)
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


def task_inputs(task: str) -> list:
    """The inputs of a model of ``task`` (its :attr:`~mobile_sr.tasks.base.Task.inputs`), any size."""
    return [keras.Input(shape=(None, None, model_input.channels), name=model_input.name)
            for model_input in get_task(task).inputs]


def lr_input():
    """The LR image input of an SR model: any size, RGB in [0, 255]."""
    (lr,) = task_inputs("sr")
    return lr


def exposure_inputs():
    """The three exposure inputs of an HDR model (short, reference, long), any size, 6 channels:
    the LDR RGB in [0, 1] and its HDR-domain version L^2.2 / t."""
    return task_inputs("hdr")
