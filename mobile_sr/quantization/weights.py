"""Weight clipping and the symmetric-weight regularizer of the SCSRN recipe (QAT; the regularizer
also from scratch, ``mobile-sr train --symmetry``).

int8 conv kernels are quantized per output channel and symmetrically: the scale of channel c is
``max|w_c| / 127``. Two things waste that range:

* **outliers**: one large weight stretches the scale for all others. *Weight clipping* bounds
  every kernel of channel c to ``[-t_c, t_c]``, with ``t_c`` fixed from the float weights when
  QAT starts (so clipping does not keep shrinking the weights). ``t_c`` is either the threshold
  that minimizes the channel's int8 error (clipping plus rounding; ``"mse"``, the default) or
  ``k * rms(w_c)``. The MSE choice clips a tail of many small outliers but never a few weights
  that carry the channel (SCSRN's skip weights, which copy the LR image to the output, are ~1
  among weights of ~0.05: a fixed 3-RMS clip would cut them to a fifth and break the model);
* **asymmetry**: if ``max(w_c) = 2 |min(w_c)|``, the negative half of the int8 grid is half
  empty. The *symmetric regularizer* adds ``strength * mean_c(((max w_c + min w_c) /
  max(max w_c - min w_c, max|w_c|))^2)`` per layer to the loss: zero when the channel's extremes
  are symmetric about zero, growing as they shift to one side (one when the minimum is zero, at
  most four when all weights share a sign). Where the extremes straddle zero the denominator is
  ``max w_c - min w_c``; ``max|w_c|`` keeps it bounded when they do not (e.g. all weights equal).
  A kernel with one weight per channel (a 1x1 conv of one input channel) adds nothing: int8 holds
  a single weight exactly at either sign.

Both are plain Keras pieces (:class:`ChannelClip`, a constraint; :class:`SymmetricRegularizer`,
a regularizer) that any registered model can switch on; training applies them to every conv kernel.
"""

from __future__ import annotations

import numpy as np

from mobile_sr.core.backend import keras, tf


@keras.utils.register_keras_serializable(package="mobile_sr")
class ChannelClip(keras.constraints.Constraint):
    """Clip each output channel (last axis) of a kernel to ``[-threshold_c, threshold_c]``."""

    def __init__(self, thresholds):
        self.thresholds = [float(t) for t in np.ravel(thresholds)]

    @classmethod
    def from_kernel(cls, kernel, threshold: str | float) -> ChannelClip:
        """Per-channel thresholds: ``"mse"`` (least int8 error) or a number k (k times the RMS)."""
        values = np.asarray(kernel, dtype=np.float64).reshape(-1, np.shape(kernel)[-1])
        if threshold == "mse":
            return cls(mse_optimal_thresholds(values))
        return cls(float(threshold) * np.sqrt(np.mean(values**2, axis=0)))

    def __call__(self, kernel):
        thresholds = tf.constant(self.thresholds, dtype=kernel.dtype)
        return tf.clip_by_value(kernel, -thresholds, thresholds)

    def get_config(self):
        return {"thresholds": self.thresholds}


def int8_grid(values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """``values`` clipped per column to ``[-t, t]`` and rounded to the nearest point of the
    symmetric narrow-range int8 grid of step ``t / 127``."""
    step = np.maximum(thresholds, 1e-12) / 127.0
    return np.clip(np.round(values / step), -127, 127) * step


def int8_error(values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Per-column mean squared error of :func:`int8_grid`."""
    return np.mean((values - int8_grid(values, thresholds)) ** 2, axis=0)


def mse_optimal_thresholds(values: np.ndarray, candidates: int = 100) -> np.ndarray:
    """For each column of ``values`` (one output channel), the clip threshold in
    ``[0.2, 1] * max|w|`` with the least int8 error."""
    peak = np.abs(values).max(axis=0)
    ratios = np.linspace(0.2, 1.0, candidates)
    errors = np.stack([int8_error(values, ratio * peak) for ratio in ratios])
    return ratios[np.argmin(errors, axis=0)] * peak


@keras.utils.register_keras_serializable(package="mobile_sr")
class SymmetricRegularizer(keras.regularizers.Regularizer):
    """Penalize per-channel asymmetry of a kernel's extremes (see the module docstring)."""

    def __init__(self, strength: float = 1e-2):
        self.strength = float(strength)

    def __call__(self, kernel):
        if kernel.shape[:-1].num_elements() == 1:  # one weight per channel: nothing to even out
            return tf.constant(0.0, dtype=kernel.dtype)
        channels = tf.reshape(kernel, [-1, tf.shape(kernel)[-1]])
        high = tf.reduce_max(channels, axis=0)
        low = tf.reduce_min(channels, axis=0)
        spread = tf.maximum(high - low, tf.maximum(high, -low))
        asymmetry = (high + low) / tf.maximum(spread, 1e-12)
        return self.strength * tf.reduce_mean(tf.square(asymmetry))

    def get_config(self):
        return {"strength": self.strength}


def conv_kernels(model) -> list:
    """The kernel variables of every Conv2D in ``model``, also inside QAT wrappers."""
    kernels = []
    for layer in model.layers:
        if isinstance(getattr(layer, "layer", layer), keras.layers.Conv2D):
            # a QAT wrapper owns the kernel variable; the inner layer's `kernel` is fake-quantized
            kernels += [w for w in layer.trainable_weights if w.name.endswith("kernel:0")]
    return kernels


class WeightShaping:
    """Clipping and regularization of a model's conv kernels, applied by the training step: the
    penalty is added to the loss, and the clip runs after each optimizer update."""

    def __init__(self, kernels: list, *, clip_threshold: str | float | None, symmetry_strength: float):
        self.kernels = kernels
        self.clips = [ChannelClip.from_kernel(k.numpy(), clip_threshold) for k in kernels] if clip_threshold else []
        self.regularizer = SymmetricRegularizer(symmetry_strength) if symmetry_strength else None

    def penalty(self):
        if self.regularizer is None:
            return tf.constant(0.0)
        return tf.add_n([self.regularizer(kernel) for kernel in self.kernels])

    def apply_clip(self) -> None:
        if not self.clips:  # the regularizer alone
            return
        for kernel, clip in zip(self.kernels, self.clips, strict=True):
            kernel.assign(clip(kernel))


def asymmetry(kernel) -> float:
    """Mean per-channel ``((max + min) / max(max - min, max|w|))^2`` of a kernel (what the
    regularizer sees: 0 for one weight per channel)."""
    values = np.asarray(kernel).reshape(-1, np.shape(kernel)[-1])
    if len(values) == 1:
        return 0.0
    high, low = values.max(axis=0), values.min(axis=0)
    spread = np.maximum(high - low, np.maximum(high, -low))
    return float(np.mean(((high + low) / np.maximum(spread, 1e-12)) ** 2))
