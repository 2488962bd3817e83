"""Random aligned training patches of multi-exposure HDR scenes, through the shared pipeline of
:mod:`mobile_sr.data.pipeline`. Unlike SR images, the scenes stay in memory (synthetic scenes are
generated per run): their float32 network inputs and targets take 84 bytes per pixel, about
130 MB per 1.5-megapixel Kalantari scene."""

from __future__ import annotations

import numpy as np

from mobile_sr.core.errors import DatasetError
from mobile_sr.data.pipeline import PatchSource
from mobile_sr.metrics import mu_tonemap
from mobile_sr.tasks.hdr.scene import HDRScene, network_inputs


class HDRPatchSampler(PatchSource):
    """Patches of the three exposures' network inputs (``P x P x 18``, three exposures of 6
    channels) and of the tonemapped reference (``P x P x 3``), float32; scenes smaller than a patch
    are mirror-padded. Inputs and targets are computed once per scene, not per step."""

    def __init__(self, scenes: list[HDRScene], *, patch_size: int, batch_size: int, seed: int):
        if any(scene.hdr is None for scene in scenes):
            raise DatasetError("training needs scenes with an HDR reference (HDRImg.hdr)")
        super().__init__([scene.hdr.shape[:2] for scene in scenes], patch_size=patch_size, batch_size=batch_size,
                         seed=seed, item="scene")
        self.inputs = [np.concatenate(network_inputs(s.ldrs, s.exposure_times), axis=-1) for s in scenes]
        self.targets = [mu_tonemap(s.hdr).astype(np.float32) for s in scenes]

    def crop(self, index: int, top: int, left: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        window = np.s_[top : top + height, left : left + width]
        return self.inputs[index][window], self.targets[index][window]
