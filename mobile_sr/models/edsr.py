"""EDSR, the enhanced deep residual network (Lim et al., CVPRW 2017): residual blocks of
conv-ReLU-conv without batch normalisation (which hurt SR by normalising away the range of the
features), optionally scaled down before their skip addition to keep deep, wide nets stable, and a
global skip from the head to the end of the body.

The input is normalised by subtracting the DIV2K mean (:class:`MeanShift`); the mean is added back
through the output conv's initial bias, as the upsampler here is one conv to ``3 * scale^2``
channels and a depth-to-space (EDSR chains x2 stages for x4 and ends in a conv to RGB). The default
is a mobile-sized EDSR; ``channels=64, residual_blocks=16`` is EDSR-baseline and
``channels=256, residual_blocks=32, residual_scale=0.1`` the full EDSR.

With ``deconvolution`` the convs inside the residual blocks read network-deconvolved patches
(:mod:`mobile_sr.models.deconvolution`); the head, body-end and upsampler convs stay plain, since
decorrelating the layers that read the image and write the output cost the SR paper accuracy.
That paper found it no faster to converge than plain EDSR: the residual learning already gives
well-conditioned gradients.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mobile_sr.core.backend import keras, tf
from mobile_sr.core.errors import ConfigError
from mobile_sr.models.custom_layers import Quantize, custom_layer
from mobile_sr.models.deconvolution import DeconvolutionConfig, conv_with_deconvolution, deploy_deconvolution
from mobile_sr.models.layers import DIV2K_RGB_MEAN, ClipToRange, DepthToSpace, MeanShift, conv3x3, lr_input
from mobile_sr.models.registry import register_model
from mobile_sr.tasks.sr.protocol import check_scale


@dataclass(frozen=True)
class EDSRConfig(DeconvolutionConfig):
    scale: int = 3
    channels: int = 32
    residual_blocks: int = 4
    residual_scale: float = 1.0  # multiplies each block's residual; EDSR uses 0.1 for its widest nets

    def validate(self) -> None:
        super().validate()
        check_scale(self.scale)
        if not 1 <= self.channels <= 512:
            raise ConfigError(f"channels must be in [1, 512], got {self.channels}")
        if not 1 <= self.residual_blocks <= 64:
            raise ConfigError(f"residual_blocks must be in [1, 64], got {self.residual_blocks}")
        if isinstance(self.residual_scale, bool) or not isinstance(self.residual_scale, (int, float)) \
                or not 0 < self.residual_scale <= 1:
            raise ConfigError(f"residual_scale must be a number in (0, 1], got {self.residual_scale!r}")


@custom_layer(Quantize.LEARNED_RANGE)
class ResidualScale(keras.layers.Layer):
    """Multiply by a constant ``factor``: EDSR's residual scaling (an int8 MUL by a constant)."""

    def __init__(self, factor: float, **kwargs):
        super().__init__(**kwargs)
        self.factor = float(factor)

    def call(self, inputs):
        return inputs * tf.constant(self.factor, inputs.dtype)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


@register_model(
    "edsr",
    config_class=EDSRConfig,
    param_budget=95_000,
    tiny_config={"scale": 2, "channels": 8, "residual_blocks": 1, "residual_scale": 0.5},
    deploy=deploy_deconvolution,
    summary="EDSR: residual blocks without batch norm, global skip; optional network deconvolution "
            "(fold before export)",
)
def build_edsr(config: EDSRConfig):
    lr = lr_input()
    normalized = MeanShift(DIV2K_RGB_MEAN, name="mean_shift")(lr)
    head = conv3x3(config.channels, "head_conv")(normalized)
    features = head
    for block in range(1, config.residual_blocks + 1):
        residual = conv_with_deconvolution(config, config.channels, 3, f"res{block}_conv1", activation="relu")(features)
        residual = conv_with_deconvolution(config, config.channels, 3, f"res{block}_conv2")(residual)
        if config.residual_scale != 1.0:
            residual = ResidualScale(config.residual_scale, name=f"res{block}_scale")(residual)
        features = keras.layers.Add(name=f"res{block}_add")([features, residual])
    body = conv3x3(config.channels, "body_conv")(features)
    features = keras.layers.Add(name="global_skip")([head, body])
    # A tiny kernel and the mean as bias: the net starts near flat grey, inside the clip's range, so
    # no gradient is lost to clipped pixels, and the DIV2K mean is restored. Not a zero kernel:
    # int8 conversion scales the bias by the kernel's scale, which a zero kernel makes zero.
    output_conv = conv3x3(3 * config.scale**2, "upsample_conv",
                          kernel_initializer=keras.initializers.RandomNormal(stddev=1e-3))
    hr = DepthToSpace(config.scale, name="depth_to_space")(output_conv(features))
    hr = ClipToRange(0.0, 255.0, name="clip")(hr)
    model = keras.Model(lr, hr, name="edsr")
    output_conv.bias.assign(np.tile(np.float32(DIV2K_RGB_MEAN), config.scale**2))
    return model
