"""SRCNN (Dong et al., ECCV 2014 / TPAMI 2016): three convs read as sparse coding: patch extraction
(9x9, 64 filters, ReLU), non-linear mapping (1x1 or 5x5, 32 filters, ReLU) and reconstruction
(5x5). No residual learning: the net predicts the pixels themselves.

SRCNN reconstructs on the bicubic-upscaled image. Here the three convs run on the LR image and the
reconstruction conv writes ``3 * scale^2`` channels that a depth-to-space arranges into the HR
image (as FSRCNN and ESPCN later did): there is no resize to quantize and every conv runs on
``scale^2`` times fewer pixels, while the receptive field spans ``scale`` times more HR pixels.
The input is normalised by subtracting the DIV2K mean (:class:`MeanShift`), which the
reconstruction conv's initial bias adds back. The default is the 9-1-5 net (``mapping_kernel=5``
gives the stronger 9-5-5).

With ``deconvolution`` all three convs read network-deconvolved patches
(:mod:`mobile_sr.models.deconvolution`): in the SR paper this non-residual net, unlike EDSR,
converged faster and better with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mobile_sr.core.backend import keras
from mobile_sr.core.errors import ConfigError
from mobile_sr.models.deconvolution import DeconvolutionConfig, conv_with_deconvolution, deploy_deconvolution
from mobile_sr.models.layers import DIV2K_RGB_MEAN, ClipToRange, DepthToSpace, MeanShift, lr_input
from mobile_sr.models.registry import register_model
from mobile_sr.tasks.sr.protocol import check_scale


@dataclass(frozen=True)
class SRCNNConfig(DeconvolutionConfig):
    scale: int = 3
    channels: int = 64  # filters of the patch-extraction conv
    mapping_channels: int = 32
    extraction_kernel: int = 9
    mapping_kernel: int = 1
    reconstruction_kernel: int = 5

    def validate(self) -> None:
        super().validate()
        check_scale(self.scale)
        for name in ("channels", "mapping_channels"):
            if not 1 <= getattr(self, name) <= 512:
                raise ConfigError(f"{name} must be in [1, 512], got {getattr(self, name)}")
        for name in ("extraction_kernel", "mapping_kernel", "reconstruction_kernel"):
            size = getattr(self, name)
            if size not in (1, 3, 5, 7, 9, 11):
                raise ConfigError(f"{name} must be an odd size in [1, 11] (SRCNN: 9, 1 or 5, 5), got {size}")


@register_model(
    "srcnn",
    config_class=SRCNNConfig,
    param_budget=40_000,
    tiny_config={"scale": 2, "channels": 8, "mapping_channels": 4, "extraction_kernel": 5, "reconstruction_kernel": 3},
    deploy=deploy_deconvolution,
    summary="SRCNN 9-1-5 on the LR image with depth-to-space; optional network deconvolution (fold before export)",
)
def build_srcnn(config: SRCNNConfig):
    lr = lr_input()
    features = MeanShift(DIV2K_RGB_MEAN, name="mean_shift")(lr)
    features = conv_with_deconvolution(config, config.channels, config.extraction_kernel, "extraction_conv",
                                       activation="relu")(features)
    features = conv_with_deconvolution(config, config.mapping_channels, config.mapping_kernel, "mapping_conv",
                                       activation="relu")(features)
    # A tiny kernel (SRCNN's N(0, 0.001)) and the mean as bias: the net starts near flat grey, inside
    # the clip's range, so no gradient is lost to clipped pixels, and the DIV2K mean is restored.
    # Not a zero kernel: int8 conversion scales the bias by the kernel's scale, which would be zero.
    pixels = conv_with_deconvolution(
        config, 3 * config.scale**2, config.reconstruction_kernel, "reconstruction_conv",
        kernel_initializer=keras.initializers.RandomNormal(stddev=1e-3),
    )(features)
    hr = DepthToSpace(config.scale, name="depth_to_space")(pixels)
    hr = ClipToRange(0.0, 255.0, name="clip")(hr)
    model = keras.Model(lr, hr, name="srcnn")
    model.get_layer("reconstruction_conv").bias.assign(np.tile(np.float32(DIV2K_RGB_MEAN), config.scale**2))
    return model
