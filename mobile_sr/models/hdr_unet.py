"""The lightweight multi-exposure HDR U-Net (Seoul National Univ.): a U-Net whose encoder halves the
size with a Haar DWT (channels x4) instead of strided convs and whose decoder doubles it with the
inverse DWT instead of transposed convs; the three exposures' encoder features are merged by
Selective Kernel Merging (SKM). The wavelets are fixed, so they cost neither weights nor the
activations a learned resampling layer keeps for its gradient: the paper's 4.5 GB against
AHDRNet's 13.5 GB.

Our reading of the figure-less text: one encoder, shared by the three exposures; an SKM at every
stage, whose merged features feed the decoder's skip connection of that stage; the decoder adds the
skip to the IWT output. Like SCSRN, the reference exposure's input is concatenated before the
output conv, which starts as the identity on its tonemapped HDR-domain channels: the network
begins by returning the reference exposure's radiance and learns what the other exposures add.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mobile_sr.core.backend import keras
from mobile_sr.core.errors import ConfigError
from mobile_sr.models.config import HDRConfig
from mobile_sr.models.layers import (
    ClipToRange,
    GroupSoftmax,
    HaarDWT,
    HaarIWT,
    SumGroups,
    conv3x3,
    exposure_inputs,
)
from mobile_sr.models.registry import register_model
from mobile_sr.tasks.hdr.protocol import REFERENCE_EXPOSURE


@dataclass(frozen=True)
class HDRUNetConfig(HDRConfig):
    """``stages`` resolutions (full, 1/2, 1/4, ... ; inputs must be divisible by 2^(stages-1));
    stage k has ``channels * 2^k`` channels and ``convs_per_stage`` 3x3 conv + ReLU in the
    encoder and in the decoder; SKM squeezes to ``channels_of_stage / skm_reduction``."""

    channels: int = 16
    stages: int = 3
    convs_per_stage: int = 2
    skm_reduction: int = 4

    def validate(self) -> None:
        super().validate()
        if not 2 <= self.stages <= 6:
            raise ConfigError(f"stages must be in [2, 6], got {self.stages}")
        if not 1 <= self.convs_per_stage <= 8:
            raise ConfigError(f"convs_per_stage must be in [1, 8], got {self.convs_per_stage}")
        if not 1 <= self.skm_reduction <= self.channels:
            raise ConfigError(f"skm_reduction must be in [1, channels={self.channels}], got {self.skm_reduction}")

    @property
    def size_multiple(self) -> int:
        return 2 ** (self.stages - 1)

    def stage_channels(self, stage: int) -> int:
        return self.channels * 2**stage


def selective_kernel_merge(features: list, channels: int, reduction: int, name: str):
    """SKM: U = F1 + F2 + F3 -> global average pool -> fc (ReLU) -> one fc per exposure -> softmax
    across the exposures per channel -> M = sum_i w_i * F_i. The fcs are 1x1 convs on the pooled
    1x1 map (the per-exposure ones as one conv to 3C channels), and the weighted sum is a
    multiply of the concatenated features followed by a fixed group-sum conv: plain int8 ops,
    with one scale for the concatenation since one shared conv produced every F_i."""
    exposures = len(features)
    summed = features[0]
    for index, feature in enumerate(features[1:], 2):  # binary adds: int8 TFLite quantizes each sum
        summed = keras.layers.Add(name=f"{name}_sum{index}")([summed, feature])
    pooled = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(summed)
    squeezed = keras.layers.Conv2D(max(channels // reduction, 1), 1, activation="relu", name=f"{name}_fc")(pooled)
    logits = keras.layers.Conv2D(exposures * channels, 1, name=f"{name}_fc_exposures")(squeezed)
    weights = GroupSoftmax(exposures, name=f"{name}_softmax")(logits)
    stacked = keras.layers.Concatenate(name=f"{name}_stack")(features)
    weighted = keras.layers.Multiply(name=f"{name}_weight")([stacked, weights])
    return SumGroups(exposures, name=f"{name}_merge")(weighted)


@register_model(
    "hdr_unet",
    config_class=HDRUNetConfig,
    param_budget=300_000,
    task="hdr",
    tiny_config={"channels": 4, "stages": 2, "convs_per_stage": 1, "skm_reduction": 2},
    summary="lightweight multi-exposure HDR U-Net: Haar DWT encoder, IWT decoder, selective kernel merging",
)
def build_hdr_unet(config: HDRUNetConfig):
    inputs = exposure_inputs()
    encoder = []  # encoder[stage][conv]: one layer object applied to every exposure
    for stage in range(config.stages):
        width = config.stage_channels(stage)
        encoder.append([conv3x3(width, f"encoder{stage + 1}_conv{c + 1}", "relu") for c in range(config.convs_per_stage)])

    merged = []
    per_exposure = list(inputs)
    for stage, convs in enumerate(encoder):
        if stage:
            dwt = HaarDWT(name=f"encoder{stage + 1}_dwt")
            per_exposure = [dwt(f) for f in per_exposure]
        for conv in convs:
            per_exposure = [conv(f) for f in per_exposure]
        merged.append(selective_kernel_merge(
            per_exposure, config.stage_channels(stage), config.skm_reduction, f"skm{stage + 1}"))

    features = merged[-1]
    for stage in reversed(range(config.stages - 1)):
        width = config.stage_channels(stage)
        sub_bands = conv3x3(4 * width, f"decoder{stage + 1}_to_sub_bands")(features)
        upsampled = HaarIWT(name=f"decoder{stage + 1}_iwt")(sub_bands)
        features = keras.layers.Add(name=f"decoder{stage + 1}_skip")([upsampled, merged[stage]])
        for c in range(config.convs_per_stage):
            features = conv3x3(width, f"decoder{stage + 1}_conv{c + 1}", "relu")(features)

    with_reference = keras.layers.Concatenate(name="reference_concat")([features, inputs[REFERENCE_EXPOSURE]])
    output_conv = conv3x3(3, "output_conv", kernel_initializer="zeros")
    tonemapped = ClipToRange(0.0, 1.0, name="clip")(output_conv(with_reference))
    model = keras.Model(inputs, tonemapped, name="hdr_unet")
    kernel = np.zeros(output_conv.kernel.shape, np.float32)
    for channel in range(3):  # the reference exposure's tonemapped HDR-domain channels
        kernel[1, 1, config.channels + 3 + channel, channel] = 1.0
    output_conv.set_weights([kernel, np.zeros(3, np.float32)])
    return model

