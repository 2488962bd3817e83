"""RT4KSR's high-frequency loss, a term on the output: the L1 of the high frequencies the output
misses."""

from __future__ import annotations

import numpy as np

from mobile_sr.objectives.base import Objective


def high_frequency_l1(hr, sr, blur_kernel):
    """RT4KSR's high-frequency loss: the mean absolute difference between the high frequencies
    of the target and of the output, an image's high frequencies being the image minus its blur
    by ``blur_kernel`` (a 2-D kernel, e.g. ``layers.gaussian_kernel(5, 1.0)``; reflect padding
    at the borders). It weighs the edges and texture that a plain L1 averages away.

    ``hr`` and ``sr``: ``N x H x W x C`` batches. The high-pass filter is linear, so
    ``(hr - blur(hr)) - (sr - blur(sr))`` is computed as ``d - blur(d)`` with ``d = hr - sr``."""
    from mobile_sr.core.backend import tf

    kernel = np.asarray(blur_kernel, np.float32)
    if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1] or kernel.shape[0] % 2 == 0:
        raise ValueError(f"blur_kernel must be a square 2-D kernel of odd size, got shape {kernel.shape}")
    difference = tf.cast(hr, tf.float32) - tf.cast(sr, tf.float32)
    channels = int(difference.shape[-1])
    radius = kernel.shape[0] // 2
    padded = tf.pad(difference, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
    depthwise = tf.constant(np.repeat(kernel[:, :, None, None], channels, axis=2))
    blurred = tf.nn.depthwise_conv2d(padded, depthwise, strides=[1, 1, 1, 1], padding="VALID")
    return tf.reduce_mean(tf.abs(difference - blurred))


class HighFrequencyObjective(Objective):
    name = "high_frequency"
    summary = "L1 of the high frequencies (image minus its Gaussian blur) of output and target (RT4KSR)"
    produces_output = False
    defaults = {"kernel_size": 5, "sigma": 1.0}

    def __init__(self, model, model_config, weight, **options):
        from mobile_sr.models.layers import gaussian_kernel

        super().__init__(model, model_config, weight, **options)
        self.blur_kernel = gaussian_kernel(self.options["kernel_size"], self.options["sigma"])

    def term(self, target, output):
        return high_frequency_l1(target, output, self.blur_kernel)
