"""RT4KSR (Zamfir et al., "Towards Real-Time 4K Image Super-Resolution", CVPRW 2023): a small net
that works at half the LR resolution. The LR image is pixel-unshuffled by 2 (4x the channels, a
quarter of the pixels), so every conv costs a quarter of its full-resolution price, and the
output conv returns to full size with one depth-to-space by 2 * scale.

Two branches start from the unshuffled input: the deep-feature branch (a head conv, then
``blocks`` reparameterizable residual blocks) and the high-frequency branch, which sees only
what a Gaussian blur removes from the input (input minus its blur: edges and texture, which the
paper finds a downscaled feature map loses first), through its own head and one block. Their
sum feeds the output conv.

A reparameterizable residual block trains as a 1x1 conv widening C to 2C channels, a 3x3 conv
at 2C and a 1x1 conv back to C, plus the identity; all four are linear, so for inference they
collapse into one C -> C 3x3 conv (:func:`fold_reparameterized`). The ReLU follows the sum,
outside the folded part. The wide form trains better; the folded one costs a plain conv.

Our departures from the paper, for int8 mobile inference: ReLU instead of GELU, no channel
attention or normalization, separate head convs for the two branches (their activations span
different ranges, and each gets its own int8 scale), and the widening 1x1 conv has no bias
(a bias there would make the 3x3 conv's zero padding differ from the folded conv's). The net
starts as nearest-neighbour upscaling, as ABPN and SCSRN do: the first 12 feature channels
carry the unshuffled LR pixels through the blocks to the output conv.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from mobile_sr.core.backend import keras
from mobile_sr.core.errors import ConfigError
from mobile_sr.models.config import ModelConfig
from mobile_sr.models.layers import (
    ClipToRange,
    CropToScaledInput,
    DepthToSpace,
    HighPassFilter,
    PadToMultiple,
    SpaceToDepth,
    conv3x3,
    lr_input,
)
from mobile_sr.models.registry import register_model
from mobile_sr.tasks.sr.protocol import check_scale

UNSHUFFLE = 2  # the LR input is processed at half its resolution
PIXEL_CHANNELS = 3 * UNSHUFFLE**2  # the unshuffled RGB input


@dataclass(frozen=True)
class RT4KSRConfig(ModelConfig):
    """``channels`` features at half the LR resolution; ``blocks`` residual blocks in the deep
    branch; the high-frequency branch on the input minus its ``blur_kernel_size`` x
    ``blur_kernel_size`` Gaussian blur of ``blur_sigma`` LR pixels. ``reparameterized``: each
    block as one 3x3 conv (the inference form :func:`fold_reparameterized` makes) instead of
    the 1x1 -> 3x3 -> 1x1 + identity training form."""

    scale: int = 3
    channels: int = 24
    blocks: int = 4
    high_frequency_branch: bool = True
    reparameterized: bool = False
    blur_sigma: float = 1.0
    blur_kernel_size: int = 5

    def validate(self) -> None:
        check_scale(self.scale)
        if not PIXEL_CHANNELS <= self.channels <= 512:
            raise ConfigError(
                f"channels must be in [{PIXEL_CHANNELS}, 512] (the first {PIXEL_CHANNELS} carry the unshuffled "
                f"LR pixels at initialisation), got {self.channels}"
            )
        if not 1 <= self.blocks <= 64:
            raise ConfigError(f"blocks must be in [1, 64], got {self.blocks}")
        for name in ("high_frequency_branch", "reparameterized"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if isinstance(self.blur_sigma, bool) or not isinstance(self.blur_sigma, (int, float)) \
                or not 0.1 <= self.blur_sigma <= 10.0:
            raise ConfigError(f"blur_sigma must be a number in [0.1, 10] (LR pixels), got {self.blur_sigma!r}")
        if self.blur_kernel_size % 2 == 0 or not 3 <= self.blur_kernel_size <= 15:
            raise ConfigError(f"blur_kernel_size must be odd and in [3, 15], got {self.blur_kernel_size}")

    @property
    def size_multiple(self) -> int:
        """The Keras model pads any size itself; a fixed-size .tflite resized at run time needs
        inputs of this multiple (its pixel unshuffle)."""
        return UNSHUFFLE

    def objective_options(self, objective: str) -> dict:
        """The high-frequency loss blurs as the high-frequency branch does."""
        if objective == "high_frequency":
            return {"kernel_size": self.blur_kernel_size, "sigma": self.blur_sigma}
        return {}


def _residual_block(features, config: RT4KSRConfig, name: str):
    """One reparameterizable residual block and its ReLU: the training form (layers
    ``{name}_expand``, ``{name}_conv``, ``{name}_reduce``, ``{name}_add``) or, reparameterized,
    the single 3x3 conv ``name``."""
    channels = config.channels
    if config.reparameterized:
        return conv3x3(channels, name, "relu")(features)
    # no bias: the 3x3 conv zero-pads the expanded features, which the folded conv sees as W1 * 0
    expanded = keras.layers.Conv2D(2 * channels, 1, use_bias=False, name=f"{name}_expand")(features)
    mixed = conv3x3(2 * channels, f"{name}_conv")(expanded)
    # zero: the block starts as the identity
    reduced = keras.layers.Conv2D(channels, 1, kernel_initializer="zeros", name=f"{name}_reduce")(mixed)
    summed = keras.layers.Add(name=f"{name}_add")([features, reduced])
    return keras.layers.ReLU(name=f"{name}_relu")(summed)


def _block_names(config: RT4KSRConfig) -> list[str]:
    names = [f"block{index + 1}" for index in range(config.blocks)]
    return names + (["hf_block"] if config.high_frequency_branch else [])


def _start_as_nearest_neighbour(model, config: RT4KSRConfig) -> None:
    """Set the weights so that the untrained net is nearest-neighbour upscaling: the deep head
    copies the unshuffled pixels into the first 12 channels, the blocks pass them on (the
    pixels are >= 0, so the ReLUs too), the high-frequency head leaves those 12 channels at 0,
    and the output conv puts every LR pixel on its scale x scale output block. The other
    channels keep their random start, and the output conv ignores them until it learns to."""
    centre = 1  # of a 3x3 kernel
    head = model.get_layer("head")
    kernel, bias = head.get_weights()
    kernel[..., :PIXEL_CHANNELS] = 0.0
    kernel[centre, centre, :, :PIXEL_CHANNELS] = np.eye(PIXEL_CHANNELS)
    bias[:PIXEL_CHANNELS] = 0.0
    head.set_weights([kernel, bias])
    if config.high_frequency_branch:
        hf_head = model.get_layer("hf_head")
        kernel, bias = hf_head.get_weights()
        kernel[..., :PIXEL_CHANNELS] = 0.0
        bias[:PIXEL_CHANNELS] = 0.0
        hf_head.set_weights([kernel, bias])
    if config.reparameterized:
        for name in _block_names(config):
            identity = np.zeros((3, 3, config.channels, config.channels), np.float32)
            identity[centre, centre] = np.eye(config.channels)
            model.get_layer(name).set_weights([identity, np.zeros(config.channels, np.float32)])
    tail = model.get_layer("tail")
    kernel = np.zeros(tail.kernel.shape, np.float32)
    block = UNSHUFFLE * config.scale  # the output block of one unshuffled position
    for row in range(block):
        for column in range(block):
            # the LR pixel (row // scale, column // scale) of the 2 x 2 unshuffled block
            source = (row // config.scale) * UNSHUFFLE + column // config.scale
            for colour in range(3):
                kernel[centre, centre, 3 * source + colour, 3 * (row * block + column) + colour] = 1.0
    tail.set_weights([kernel, np.zeros(tail.bias.shape, np.float32)])


def deploy_rt4ksr(model, config: RT4KSRConfig):
    """The registry's inference form: the blocks folded (:func:`fold_reparameterized`)."""
    if config.reparameterized:
        return model, config
    return fold_reparameterized(model, config), dataclasses.replace(config, reparameterized=True)


@register_model(
    "rt4ksr",
    config_class=RT4KSRConfig,
    # the training form (default); reparameterized, the default config has 55k parameters
    param_budget=150_000,
    tiny_config={"scale": 2, "channels": 12, "blocks": 1},
    deploy=deploy_rt4ksr,
    summary="RT4KSR: half-resolution net (pixel unshuffle), high-frequency branch, foldable residual blocks (CVPRW 2023)",
)
def build_rt4ksr(config: RT4KSRConfig):
    lr = lr_input()
    padded = PadToMultiple(UNSHUFFLE, name="pad")(lr)
    features = conv3x3(config.channels, "head")(SpaceToDepth(UNSHUFFLE, name="unshuffle")(padded))
    for index in range(config.blocks):
        features = _residual_block(features, config, f"block{index + 1}")
    if config.high_frequency_branch:
        high = HighPassFilter(config.blur_kernel_size, config.blur_sigma, name="high_pass")(padded)
        high = conv3x3(config.channels, "hf_head")(SpaceToDepth(UNSHUFFLE, name="hf_unshuffle")(high))
        high = _residual_block(high, config, "hf_block")
        features = keras.layers.Add(name="merge")([features, high])
    tail = conv3x3(3 * (UNSHUFFLE * config.scale) ** 2, "tail")(features)
    hr = DepthToSpace(UNSHUFFLE * config.scale, name="depth_to_space")(tail)
    hr = CropToScaledInput(config.scale, name="crop")([hr, lr])
    hr = ClipToRange(0.0, 255.0, name="clip")(hr)
    model = keras.Model(lr, hr, name="rt4ksr")
    _start_as_nearest_neighbour(model, config)
    return model


def folded_block_weights(expand_kernel, conv_kernel, conv_bias, reduce_kernel, reduce_bias):
    """The kernel and bias of the one 3x3 conv equal to ``reduce(conv(expand(x))) + x``
    (in float64; ``set_weights`` rounds them to the layer's precision): the 1x1 kernels are
    matrices, so the composite kernel at each tap is ``expand @ conv[tap] @ reduce``, the
    identity adds 1 to the centre tap's diagonal, and the bias is ``conv_bias @ reduce + reduce_bias``."""
    expand = np.asarray(expand_kernel, np.float64)[0, 0]  # C x 2C
    reduce = np.asarray(reduce_kernel, np.float64)[0, 0]  # 2C x C
    conv = np.asarray(conv_kernel, np.float64)  # 3 x 3 x 2C x 2C
    kernel = np.einsum("im,uvmn,no->uvio", expand, conv, reduce)
    centre = conv.shape[0] // 2
    kernel[centre, centre] += np.eye(expand.shape[0])
    bias = np.asarray(conv_bias, np.float64) @ reduce + np.asarray(reduce_bias, np.float64)
    return kernel, bias


def fold_reparameterized(model, config: RT4KSRConfig):
    """The inference form of a training-form RT4KSR ``model`` built from ``config``: a new
    model of ``config`` with ``reparameterized=True`` computing the same function, each block
    one 3x3 conv (:func:`folded_block_weights`), the other layers' weights copied. Fold a
    float model before quantization-aware training or int8 conversion."""
    if config.reparameterized:
        raise ConfigError("fold_reparameterized needs the training form; this config has reparameterized=True already")
    folded = build_rt4ksr(dataclasses.replace(config, reparameterized=True))
    blocks = set(_block_names(config))
    for layer in folded.layers:
        if layer.name in blocks:
            (expand_kernel,) = model.get_layer(f"{layer.name}_expand").get_weights()
            layer.set_weights(folded_block_weights(
                expand_kernel,
                *model.get_layer(f"{layer.name}_conv").get_weights(),
                *model.get_layer(f"{layer.name}_reduce").get_weights(),
            ))
        elif layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    return folded
