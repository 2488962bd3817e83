"""Network deconvolution (Ye et al., ICLR 2020), as applied to SR by Kang and Bae: a conv reads its
k x k x C input patches decorrelated, pixel against pixel and channel against channel, so that it
learns from whitened data and converges faster.

With ``P`` the patches as rows (N x F, F = k*k*C), mean ``mu`` and covariance
``Cov = (P - mu)^T (P - mu) / N``, the decorrelated patches are ``(P - mu) D`` with
``D = s (Cov + eps I)^(-1/2)``, computed by Newton-Schulz iterations (only matrix products, so it runs
fast on a GPU and back-propagates). The paper whitens (``s = 1``) images in [0, 1]; our nets work in
0-255 pixels, and unit-variance patches there would leave a conv that must write pixels with
weights hundreds of times larger than the plain conv's (SRCNN's reconstruction conv, which has no
residual path, then never learns in a few thousand steps). So ``s = sqrt(trace(Cov) / F)``: the
decorrelated patches keep the input's total variance, and the layer scales with its input as a
plain conv does. The statistics come from a subsample of the patches (every
``sampling_stride``-th pixel of the first ``sample_images`` images of the batch); like batch
normalisation the layer keeps running averages of ``mu`` and ``D`` for inference.

The conv on the decorrelated patches, ``(P - mu) D W + b``, is the plain k x k conv with kernel
``D W`` and bias ``b - mu D W``. :class:`DecorrelatedConv2D` computes it that way in every step (as
the paper's fast implementation does): the F decorrelated channels per pixel are never
materialised, which would cost k^2 * F / filters times the conv. In inference ``mu`` and ``D`` are
constants, so :func:`fold_deconvolution` turns a trained model into the plain model (same layers,
names and cost) that quantizes and runs on the phone. The unfolded model is for float training.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from mobile_sr.core.backend import keras, tf
from mobile_sr.core.errors import ConfigError
from mobile_sr.models.config import ModelConfig
from mobile_sr.models.custom_layers import Quantize, custom_layer


def inverse_sqrt_newton_schulz(matrix, iterations: int):
    """``matrix^(-1/2)`` of a symmetric positive-definite matrix by the coupled Newton-Schulz
    iteration: Y -> A^(1/2) and Z -> A^(-1/2). Scaling ``matrix`` by its Frobenius norm puts every
    eigenvalue in (0, 1], where the iteration converges; eigenvalues far below the largest
    converge slowly, so few iterations whiten the strong directions and damp the weak ones."""
    matrix = tf.convert_to_tensor(matrix)
    norm = tf.norm(matrix)
    identity = tf.eye(tf.shape(matrix)[0], dtype=matrix.dtype)
    y, z = matrix / norm, identity
    for _ in range(iterations):
        step = 0.5 * (3.0 * identity - z @ y)
        y, z = y @ step, step @ z
    return z / tf.sqrt(norm)


@custom_layer(Quantize.TRAINING_ONLY, folded_by="mobile_sr.models.deconvolution.fold_deconvolution(model)")
class DecorrelatedConv2D(keras.layers.Layer):
    """A 'same' ``kernel_size`` conv (stride 1) on network-deconvolved input patches:
    ``activation((P - mu) D W + b)``, with the kernel ``W`` (k x k x C x filters) acting on the
    decorrelated patch entries in a Conv2D kernel's (row, column, channel) order.

    ``training=True`` whitens with the batch statistics (gradients flow through them) and moves
    the running mean and running ``D`` toward them: ``running = momentum * running + (1 - momentum)
    * batch``, Keras' batch-norm convention. Otherwise the running statistics are used; they start
    at zero mean and ``D = I``, where the layer is the plain conv.
    """

    # Under a mixed-precision policy the layer computes in float32: 16-bit covariances and
    # Newton-Schulz products lose the small eigenvalues the whitening divides by.
    needs_float32 = True

    def __init__(self, filters: int, kernel_size: int, *, activation=None, kernel_initializer="he_normal",
                 eps: float = 1e-5, iterations: int = 5, sampling_stride: int = 3, sample_images: int = 16,
                 momentum: float = 0.9, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.eps = float(eps)
        self.iterations = int(iterations)
        self.sampling_stride = int(sampling_stride)
        self.sample_images = int(sample_images)
        self.momentum = float(momentum)

    def build(self, input_shape):
        channels = int(input_shape[-1])
        features = self.kernel_size**2 * channels
        self.kernel = self.add_weight(name="kernel", shape=(self.kernel_size, self.kernel_size, channels, self.filters),
                                      initializer=self.kernel_initializer)
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")
        # Replicas each see their own batch: their statistics are averaged on read, as batch norm's.
        statistics = {"trainable": False, "synchronization": tf.VariableSynchronization.ON_READ,
                      "aggregation": tf.VariableAggregation.MEAN}
        self.running_mean = self.add_weight(name="running_mean", shape=(features,), initializer="zeros", **statistics)
        self.running_deconv = self.add_weight(
            name="running_deconv", shape=(features, features), initializer="identity", **statistics
        )
        super().build(input_shape)

    def call(self, inputs, training=None):
        if training is None:
            training = keras.backend.learning_phase()
        mean, deconv = tf.__internal__.smart_cond.smart_cond(
            training,
            lambda: self._batch_statistics(inputs),
            lambda: (tf.convert_to_tensor(self.running_mean), tf.convert_to_tensor(self.running_deconv)),
        )
        kernel = tf.reshape(deconv @ tf.reshape(self.kernel, [deconv.shape[0], self.filters]), self.kernel.shape)
        bias = self.bias - tf.linalg.matvec(tf.reshape(kernel, [-1, self.filters]), mean, transpose_a=True)
        return self.activation(tf.nn.conv2d(inputs, kernel, strides=1, padding="SAME") + bias)

    def _batch_statistics(self, inputs):
        k, stride = self.kernel_size, self.sampling_stride
        features = self.running_mean.shape[0]
        patches = tf.image.extract_patches(
            inputs[: self.sample_images], sizes=[1, k, k, 1], strides=[1, stride, stride, 1], rates=[1, 1, 1, 1],
            padding="SAME",
        )
        patches = tf.reshape(patches, [-1, features])
        mean = tf.reduce_mean(patches, axis=0)
        centered = patches - mean
        covariance = tf.matmul(centered, centered, transpose_a=True) / tf.cast(tf.shape(patches)[0], patches.dtype)
        scale = tf.sqrt(tf.linalg.trace(covariance) / features)
        deconv = scale * inverse_sqrt_newton_schulz(covariance + self.eps * tf.eye(features, dtype=covariance.dtype),
                                                    self.iterations)
        keep = self.momentum
        self.running_mean.assign(keep * self.running_mean + (1.0 - keep) * tf.stop_gradient(mean))
        self.running_deconv.assign(keep * self.running_deconv + (1.0 - keep) * tf.stop_gradient(deconv))
        return mean, deconv

    def folded_weights(self) -> list[np.ndarray]:
        """Kernel ``D W`` and bias ``b - mu D W`` of the equivalent plain conv in inference, in
        float64 (``set_weights`` rounds them to the layer's precision)."""
        kernel = self.kernel.numpy().astype(np.float64)
        deconv = self.running_deconv.numpy().astype(np.float64)
        folded = deconv @ kernel.reshape(-1, self.filters)
        bias = self.bias.numpy().astype(np.float64) - self.running_mean.numpy().astype(np.float64) @ folded
        return [folded.reshape(kernel.shape), bias]

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "activation": keras.activations.serialize(self.activation),
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer), "eps": self.eps,
                "iterations": self.iterations, "sampling_stride": self.sampling_stride,
                "sample_images": self.sample_images, "momentum": self.momentum}


@dataclass(frozen=True)
class DeconvolutionConfig(ModelConfig):
    """Options shared by models whose convs can read network-deconvolved patches
    (``deconvolution``); the others set up :class:`DecorrelatedConv2D` (see its docstring)."""

    deconvolution: bool = False
    deconv_eps: float = 1e-5
    deconv_iterations: int = 5
    deconv_sampling_stride: int = 3
    deconv_sample_images: int = 16
    deconv_momentum: float = 0.9

    def validate(self) -> None:
        if not isinstance(self.deconvolution, bool):
            raise ConfigError(f"deconvolution must be true or false, got {self.deconvolution!r}")
        for name in ("deconv_eps", "deconv_momentum"):
            if isinstance(getattr(self, name), bool) or not isinstance(getattr(self, name), (int, float)):
                raise ConfigError(f"{name} must be a number, got {getattr(self, name)!r}")
        if not self.deconv_eps > 0:
            raise ConfigError(f"deconv_eps must be positive (e.g. 1e-5), got {self.deconv_eps}")
        if not 1 <= self.deconv_iterations <= 100:
            raise ConfigError(f"deconv_iterations must be in [1, 100], got {self.deconv_iterations}")
        if not 1 <= self.deconv_sampling_stride <= 64:
            raise ConfigError(f"deconv_sampling_stride must be in [1, 64], got {self.deconv_sampling_stride}")
        if self.deconv_sample_images < 1:
            raise ConfigError(f"deconv_sample_images must be at least 1, got {self.deconv_sample_images}")
        if not 0 <= self.deconv_momentum < 1:
            raise ConfigError(f"deconv_momentum must be in [0, 1), got {self.deconv_momentum}")


def conv_with_deconvolution(config: DeconvolutionConfig, filters: int, kernel_size: int, name: str, *,
                            activation: str | None = None, kernel_initializer="he_normal"):
    """A 'same' ``kernel_size`` conv layer named ``name``: a :class:`DecorrelatedConv2D` with
    ``config.deconvolution``, else the Conv2D that :func:`fold_deconvolution` turns it into."""
    if not config.deconvolution:
        return keras.layers.Conv2D(filters, kernel_size, padding="same", activation=activation,
                                   kernel_initializer=kernel_initializer, name=name)
    return DecorrelatedConv2D(
        filters, kernel_size, activation=activation, kernel_initializer=kernel_initializer, eps=config.deconv_eps,
        iterations=config.deconv_iterations, sampling_stride=config.deconv_sampling_stride,
        sample_images=config.deconv_sample_images, momentum=config.deconv_momentum, name=name,
    )


def fold_deconvolution(model):
    """``model`` with every :class:`DecorrelatedConv2D` replaced by the plain Conv2D of the same
    name computing the same function in inference (kernel ``D W``, bias ``b - mu D W`` from the
    running statistics): the model built with ``deconvolution=False``, ready for QAT and export.
    A model without such layers is returned as it is."""
    if not any(isinstance(layer, DecorrelatedConv2D) for layer in model.layers):
        return model

    def plain(layer):
        if isinstance(layer, DecorrelatedConv2D):
            return keras.layers.Conv2D(layer.filters, layer.kernel_size, padding="same", activation=layer.activation,
                                       name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    folded = keras.models.clone_model(model, clone_function=plain)
    for layer in folded.layers:
        source = model.get_layer(layer.name)
        layer.set_weights(source.folded_weights() if isinstance(source, DecorrelatedConv2D) else source.get_weights())
    return folded


def deploy_deconvolution(model, config: DeconvolutionConfig):
    """The registry's inference form of a model with optional network deconvolution: folded
    (:func:`fold_deconvolution`), with the config that builds the folded layout."""
    if not config.deconvolution:
        return model, config
    return fold_deconvolution(model), dataclasses.replace(config, deconvolution=False)
