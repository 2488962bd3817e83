"""ABPN, the anchor-based plain net (Du et al., CVPRW 2021; winner of the Mobile AI 2021 real-time
quantized SR challenge), our baseline. The input repeated s^2 times (the anchor) is added to the
last conv's output, so after depth-to-space the network learns a residual over nearest-neighbour
upscaling without a feature-domain skip connection."""

from __future__ import annotations

from mobile_sr.core.backend import keras
from mobile_sr.models.config import PlainSRConfig
from mobile_sr.models.layers import ClipToRange, DepthToSpace, RepeatChannels, conv3x3, lr_input, plain_feature_trunk
from mobile_sr.models.registry import register_model


class ABPNConfig(PlainSRConfig):
    pass


@register_model(
    "abpn",
    config_class=ABPNConfig,
    param_budget=50_000,
    tiny_config={"scale": 2, "channels": 8, "feature_convs": 2},
    summary="anchor-based plain net: input repeated s^2 times and added before depth-to-space (MAI 2021)",
)
def build_abpn(config: ABPNConfig):
    lr = lr_input()
    features = plain_feature_trunk(lr, channels=config.channels, convs=config.feature_convs)
    out_channels = 3 * config.scale**2
    features = conv3x3(out_channels, "tail_conv1", "relu")(features)
    # Zero-initialised, the net starts as nearest-neighbour upscaling: with a random last conv the
    # first, huge errors on [0, 255] pixels killed every ReLU of tail_conv1 in our runs.
    residual = conv3x3(out_channels, "tail_conv2", kernel_initializer="zeros")(features)
    anchor = RepeatChannels(config.scale**2, name="anchor")(lr)
    merged = keras.layers.Add(name="anchor_add")([residual, anchor])
    hr = DepthToSpace(config.scale, name="depth_to_space")(merged)
    hr = ClipToRange(0.0, 255.0, name="clip")(hr)
    return keras.Model(lr, hr, name="abpn")
