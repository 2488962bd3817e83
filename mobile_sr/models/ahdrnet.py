"""AHDRNet (Yan et al., CVPR 2019), the heavier multi-exposure HDR baseline: per-exposure features
from one shared conv; attention maps, computed from each non-reference exposure's features next to
the reference's, suppress misaligned or saturated regions; three dilated residual dense blocks
(DRDB) merge the result, with global feature fusion and a residual to the reference features.

As published, but its output is read as the mu-law tonemapped HDR image (the quantity the loss is
computed on), like ``hdr_unet``'s, so both train, evaluate and export through one path.
"""

from __future__ import annotations

from dataclasses import dataclass

from mobile_sr.core.backend import keras
from mobile_sr.core.errors import ConfigError
from mobile_sr.models.config import HDRConfig
from mobile_sr.models.layers import conv3x3, exposure_inputs
from mobile_sr.models.registry import register_model
from mobile_sr.tasks.hdr.protocol import REFERENCE_EXPOSURE


@dataclass(frozen=True)
class AHDRNetConfig(HDRConfig):
    """Published defaults: 64 channels, 3 DRDBs of 6 dilated (rate 2) dense layers, growth 32."""

    channels: int = 64
    dense_blocks: int = 3
    dense_layers: int = 6
    growth: int = 32
    dilation: int = 2

    def validate(self) -> None:
        super().validate()
        for field, low, high in (("dense_blocks", 1, 16), ("dense_layers", 1, 16), ("growth", 1, 256), ("dilation", 1, 8)):
            if not low <= getattr(self, field) <= high:
                raise ConfigError(f"{field} must be in [{low}, {high}], got {getattr(self, field)}")


def _dilated_residual_dense_block(features, config: AHDRNetConfig, name: str):
    dense = features
    for index in range(config.dense_layers):
        grown = keras.layers.Conv2D(
            config.growth, 3, padding="same", dilation_rate=config.dilation, activation="relu",
            kernel_initializer="he_normal", name=f"{name}_dense{index + 1}",
        )(dense)
        dense = keras.layers.Concatenate(name=f"{name}_concat{index + 1}")([dense, grown])
    fused = keras.layers.Conv2D(config.channels, 1, name=f"{name}_fuse")(dense)
    return keras.layers.Add(name=f"{name}_residual")([fused, features])


@register_model(
    "ahdrnet",
    config_class=AHDRNetConfig,
    param_budget=1_500_000,
    task="hdr",
    tiny_config={"channels": 4, "dense_blocks": 1, "dense_layers": 2, "growth": 4},
    summary="AHDRNet: attention-guided multi-exposure HDR with dilated residual dense blocks (CVPR 2019)",
)
def build_ahdrnet(config: AHDRNetConfig):
    inputs = exposure_inputs()
    extract = conv3x3(config.channels, "extract", "relu")
    features = [extract(x) for x in inputs]
    reference = features[REFERENCE_EXPOSURE]
    aligned = []
    for index, feature in enumerate(features):
        if index == REFERENCE_EXPOSURE:
            aligned.append(feature)
            continue
        name = f"attention{index + 1}"
        pair = keras.layers.Concatenate(name=f"{name}_pair")([feature, reference])
        hidden = conv3x3(2 * config.channels, f"{name}_conv1", "relu")(pair)
        # sigmoids as their own layers: int8 TFLite quantizes the conv output before LOGISTIC
        attention = keras.layers.Activation("sigmoid", name=f"{name}_sigmoid")(conv3x3(config.channels, f"{name}_conv2")(hidden))
        aligned.append(keras.layers.Multiply(name=f"{name}_apply")([feature, attention]))

    merged = conv3x3(config.channels, "merge")(keras.layers.Concatenate(name="aligned_concat")(aligned))
    block_outputs = []
    for index in range(config.dense_blocks):
        merged = _dilated_residual_dense_block(merged, config, f"drdb{index + 1}")
        block_outputs.append(merged)
    fused = block_outputs[0] if len(block_outputs) == 1 else keras.layers.Concatenate(name="global_concat")(block_outputs)
    fused = keras.layers.Conv2D(config.channels, 1, name="global_fuse_1x1")(fused)
    fused = conv3x3(config.channels, "global_fuse_3x3")(fused)
    fused = keras.layers.Add(name="reference_residual")([fused, reference])
    upsampled = conv3x3(config.channels, "conv_up")(fused)
    tonemapped = keras.layers.Activation("sigmoid", name="output_sigmoid")(conv3x3(3, "output_conv")(upsampled))
    return keras.Model(inputs, tonemapped, name="ahdrnet")
