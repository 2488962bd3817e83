"""Attention SR (Mun & Yoon, Kookmin Univ.): SR as two tasks on one shared feature map. A feature
extractor conv feeds two SR branches, one restoring the *structure* (the smooth, piecewise-flat
part of the image, as a total-variation decomposition defines it) and one the *texture* (the
rest); the output is their sum. Each branch is residual-in-residual (as in RCAN): residual groups
of residual blocks, each block conv, LeakyReLU, conv, an attention module and a skip, then a
pixel-shuffle upsampler. The attention module is the paper's experiment: none, channel attention
(squeeze-and-excitation), a one-layer spatial map, or a four-layer spatial map (its best).

Training supervises each branch with its own L1 loss against the decomposed HR patch
(:mod:`mobile_sr.tasks.sr.decomposition`), balanced by GradNorm (:mod:`mobile_sr.objectives.gradnorm`). The
registry's contract is one output, so the branch outputs are layers with stable names
(:data:`STRUCTURE_OUTPUT`, :data:`TEXTURE_OUTPUT`) and :func:`branch_outputs_view` builds the
three-output view ``lr -> [sr, structure, texture]`` that shares the model's weights.

Departure from the paper, for mobile: the structure branch adds ABPN's anchor (the LR image
repeated s^2 times) before its depth-to-space, and both upsampler convs start at zero, so the
untrained net is nearest-neighbour upscaling (structure) plus zero texture. The paper's table
appears to mark local and global skips (the extracted text garbles the marks) without placing
the global one; the anchor is the cheapest global skip for int8.
"""

from __future__ import annotations

from dataclasses import dataclass

from mobile_sr.core.backend import keras
from mobile_sr.core.errors import ConfigError
from mobile_sr.models.config import ModelConfig
from mobile_sr.models.layers import ClipToRange, DepthToSpace, RepeatChannels, conv3x3, lr_input
from mobile_sr.models.registry import register_model
from mobile_sr.tasks.sr.protocol import check_scale

ATTENTIONS = ("none", "channel", "spatial", "multi_spatial")
BRANCHES = ("structure", "texture")
STRUCTURE_OUTPUT = "structure_output"
TEXTURE_OUTPUT = "texture_output"
# The last layer both branches share: GradNorm measures the task gradients on its weights.
SHARED_LAYER = "feature_conv"
LEAKY_SLOPE = 0.2
# The multi-layer spatial attention's kernel sizes; its widths halve from ``spatial_width``.
MULTI_SPATIAL_KERNELS = (7, 5, 3)


@dataclass(frozen=True)
class AttentionSRConfig(ModelConfig):
    """``channels`` feature channels; per branch ``groups`` residual groups of ``blocks`` residual
    blocks with ``attention`` in each block. Channel attention squeezes to channels / ``reduction``;
    the multi-layer spatial attention's convs have ``spatial_width``, half and a quarter of it
    channels (the paper: 32, 16, 8) before the 1-channel map. The paper's net is far larger (64
    channels, 3 groups of 20 blocks); this default is mobile-sized: about 112k parameters."""

    scale: int = 3
    channels: int = 16
    groups: int = 2
    blocks: int = 2
    attention: str = "multi_spatial"
    reduction: int = 4
    spatial_width: int = 8

    def validate(self) -> None:
        check_scale(self.scale)
        for field, low, high in (("channels", 1, 512), ("groups", 1, 16), ("blocks", 1, 64), ("spatial_width", 1, 256)):
            if not low <= getattr(self, field) <= high:
                raise ConfigError(f"{field} must be in [{low}, {high}], got {getattr(self, field)}")
        if self.attention not in ATTENTIONS:
            raise ConfigError(f"attention must be one of {', '.join(ATTENTIONS)}, got {self.attention!r}")
        if not 1 <= self.reduction <= self.channels:
            raise ConfigError(f"reduction must be in [1, channels={self.channels}], got {self.reduction}")


def _leaky_relu(name: str):
    return keras.layers.LeakyReLU(alpha=LEAKY_SLOPE, name=name)


def _scale_by(features, attention_logits, name: str):
    """Multiply ``features`` by sigmoid(logits), broadcast over the channels or the pixels. The
    sigmoid is its own layer: int8 TFLite quantizes the logits before LOGISTIC."""
    weights = keras.layers.Activation("sigmoid", name=f"{name}_sigmoid")(attention_logits)
    return keras.layers.Multiply(name=f"{name}_apply")([features, weights])


def _attention(features, config: AttentionSRConfig, name: str):
    """The block's attention module: reweights ``features`` per channel or per pixel."""
    if config.attention == "none":
        return features
    if config.attention == "channel":  # squeeze (global average), excite (two 1x1 "fc" convs)
        pooled = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(features)
        squeezed = keras.layers.Conv2D(max(1, config.channels // config.reduction), 1, name=f"{name}_reduce")(pooled)
        squeezed = _leaky_relu(f"{name}_reduce_lrelu")(squeezed)
        return _scale_by(features, keras.layers.Conv2D(config.channels, 1, name=f"{name}_expand")(squeezed), name)
    hidden = features
    if config.attention == "multi_spatial":  # neighbouring pixels inform the map, channels narrowing
        for index, kernel in enumerate(MULTI_SPATIAL_KERNELS):
            width = max(1, config.spatial_width >> index)
            hidden = keras.layers.Conv2D(width, kernel, padding="same", name=f"{name}_conv{index + 1}")(hidden)
            hidden = _leaky_relu(f"{name}_lrelu{index + 1}")(hidden)
    return _scale_by(features, keras.layers.Conv2D(1, 1, name=f"{name}_map")(hidden), name)


def _residual_block(features, config: AttentionSRConfig, name: str):
    hidden = _leaky_relu(f"{name}_lrelu")(conv3x3(config.channels, f"{name}_conv1")(features))
    hidden = _attention(conv3x3(config.channels, f"{name}_conv2")(hidden), config, f"{name}_attention")
    return keras.layers.Add(name=f"{name}_add")([features, hidden])


def _branch(features, lr, config: AttentionSRConfig, branch: str):
    """One SR branch: residual groups (blocks, a conv, the group's skip), then the upsampler."""
    for group in range(config.groups):
        name = f"{branch}_group{group + 1}"
        hidden = features
        for block in range(config.blocks):
            hidden = _residual_block(hidden, config, f"{name}_block{block + 1}")
        hidden = conv3x3(config.channels, f"{name}_conv")(hidden)
        features = keras.layers.Add(name=f"{name}_add")([features, hidden])
    upsampled = conv3x3(3 * config.scale**2, f"{branch}_upsample_conv", kernel_initializer="zeros")(features)
    if branch == "structure":
        anchor = RepeatChannels(config.scale**2, name="structure_anchor")(lr)
        upsampled = keras.layers.Add(name="structure_anchor_add")([upsampled, anchor])
    return DepthToSpace(config.scale, name=f"{branch}_output")(upsampled)


@register_model(
    "attention_sr",
    config_class=AttentionSRConfig,
    param_budget=120_000,
    tiny_config={"scale": 2, "channels": 4, "groups": 1, "blocks": 1, "reduction": 2, "spatial_width": 4},
    summary="structure + texture SR branches of residual groups with channel / spatial attention (Kookmin Univ.)",
)
def build_attention_sr(config: AttentionSRConfig):
    lr = lr_input()
    features = conv3x3(config.channels, SHARED_LAYER)(lr)
    structure, texture = (_branch(features, lr, config, branch) for branch in BRANCHES)
    hr = keras.layers.Add(name="structure_texture_sum")([structure, texture])
    hr = ClipToRange(0.0, 255.0, name="clip")(hr)
    return keras.Model(lr, hr, name="attention_sr")


def _layer(model, name: str):
    """``name``, or its QAT wrapper (tfmot prefixes the wrapped layer's name with ``quant_``)."""
    for candidate in (name, f"quant_{name}"):
        if any(layer.name == candidate for layer in model.layers):
            return model.get_layer(candidate)
    raise ValueError(f"model '{model.name}' has no layer '{name}'; build it with build_model('attention_sr', ...)")


def branch_outputs_view(model):
    """``lr -> [sr, structure, texture]`` on ``model``'s layers and weights (float or QAT): the
    clipped SR image and the unclipped branch outputs (sr = clip(structure + texture)), for the
    per-branch L1 losses."""
    outputs = [model.output] + [_layer(model, name).output for name in (STRUCTURE_OUTPUT, TEXTURE_OUTPUT)]
    return keras.Model(model.input, outputs, name=f"{model.name}_branches")


def shared_variables(model) -> list:
    """The weights of the last layer the branches share (:data:`SHARED_LAYER`), where GradNorm
    compares the tasks' gradient norms."""
    return _layer(model, SHARED_LAYER).trainable_weights
