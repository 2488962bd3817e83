"""SCSRN, the skip-concatenated SR network (KETI; 1st in the Mobile AI & AIM 2022 real-time SR
challenge). Instead of ABPN's anchor (the input repeated s^2 times and added at full output depth),
the 8-bit LR input is concatenated to the last feature map, so it reaches the output conv without
the memory copies of the repeat and without passing through quantized features."""

from __future__ import annotations

import numpy as np

from mobile_sr.backend import keras
from mobile_sr.models.config import PlainSRConfig
from mobile_sr.models.layers import ClipToRange, DepthToSpace, conv3x3, lr_input, plain_feature_trunk
from mobile_sr.models.registry import register_model


class SCSRNConfig(PlainSRConfig):
    pass


@register_model(
    "scsrn",
    config_class=SCSRNConfig,
    param_budget=45_000,
    tiny_config={"scale": 2, "channels": 8, "feature_convs": 2},
    summary="skip-concatenated SR net: LR input concatenated before the last conv (MAI 2022 winner)",
)
def build_scsrn(config: SCSRNConfig):
    lr = lr_input()
    features = plain_feature_trunk(lr, channels=config.channels, convs=config.feature_convs)
    merged = keras.layers.Concatenate(name="skip_concat")([features, lr])
    output_conv = conv3x3(3 * config.scale**2, "output_conv", kernel_initializer="zeros")
    hr = DepthToSpace(config.scale, name="depth_to_space")(output_conv(merged))
    hr = ClipToRange(0.0, 255.0, name="clip")(hr)
    model = keras.Model(lr, hr, name="scsrn")
    # Start as nearest-neighbour upscaling, as ABPN's anchor does: the skipped LR pixels copied to
    # every sub-pixel, the features' weights zero. From a random output conv, SCSRN first spends
    # thousands of steps learning to pass the image through.
    kernel = np.zeros(output_conv.kernel.shape, np.float32)
    for sub_pixel in range(config.scale**2):
        for channel in range(3):
            kernel[1, 1, config.channels + channel, 3 * sub_pixel + channel] = 1.0
    output_conv.set_weights([kernel, np.zeros(output_conv.bias.shape, np.float32)])
    return model
