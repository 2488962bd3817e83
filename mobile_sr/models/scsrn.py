"""SCSRN, the skip-concatenated SR network (KETI; 1st in the Mobile AI & AIM 2022 real-time SR
challenge). Instead of ABPN's anchor (the input repeated s^2 times and added at full output depth),
the 8-bit LR input is concatenated to the last feature map, so it reaches the output conv without
the memory copies of the repeat and without passing through quantized features."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mobile_sr.core.backend import keras
from mobile_sr.models.config import PlainSRConfig
from mobile_sr.models.layers import ClipToRange, DepthToSpace, conv3x3, lr_input, plain_feature_trunk
from mobile_sr.models.registry import register_model


@dataclass(frozen=True)
class SCSRNConfig(PlainSRConfig):
    """Four feature convs of 32 channels, where ABPN keeps five of 28. On XNNPACK an int8 3x3 conv
    at 360x640 costs about the same, 11 ms on one host core, at any width from 24 to 48 channels
    (``benchmarks/latency.py`` times the grid), so the int8 frame time follows the conv count: one
    feature conv fewer makes the frame about 17% faster, and the 4 extra channels keep the
    parameters and MACs of a five-conv, 28-channel trunk (37k, 8.5 GMAC per 360x640 frame).
    Trained at equal CPU time over depths 2-4 and widths 32-64 (``benchmarks/scsrn_grid.py``),
    4x32 ties for the best Mobile AI score, and no faster config of the grid reaches its PSNR."""

    channels: int = 32
    feature_convs: int = 4


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
