"""Random aligned training patches of multi-exposure HDR scenes."""

from __future__ import annotations

import numpy as np

from mobile_sr.core.errors import DatasetError
from mobile_sr.metrics import mu_tonemap
from mobile_sr.tasks.hdr.data import HDRScene, network_inputs


class HDRPatchSampler:
    """Random aligned patches of the three exposures' network inputs and of the tonemapped
    reference, with flips and 90-degree rotations; scenes picked with probability proportional
    to their area. Inputs and targets are computed once per scene, not per step."""

    def __init__(self, scenes: list[HDRScene], *, patch_size: int, batch_size: int, seed: int, augment: bool = True):
        if batch_size < 1 or patch_size < 4:
            raise DatasetError(f"patch size {patch_size} and batch size {batch_size} must be >= 4 and >= 1")
        if any(scene.hdr is None for scene in scenes):
            raise DatasetError("training needs scenes with an HDR reference (HDRImg.hdr)")
        usable = [scene for scene in scenes if min(scene.hdr.shape[:2]) >= patch_size]
        self.skipped = len(scenes) - len(usable)
        if not usable:
            largest = max((min(scene.hdr.shape[:2]) for scene in scenes), default=0)
            raise DatasetError(f"no scene is large enough for {patch_size}x{patch_size} patches (the largest "
                               f"side is {largest} px); use --patch-size {largest} or less")
        self.inputs = [np.concatenate(network_inputs(s.ldrs, s.exposure_times), axis=-1) for s in usable]
        self.targets = [mu_tonemap(s.hdr).astype(np.float32) for s in usable]
        areas = np.array([t.shape[0] * t.shape[1] for t in self.targets], np.float64)
        self.probabilities = areas / areas.sum()
        self.patch_size, self.batch_size, self.augment = patch_size, batch_size, augment
        self.rng = np.random.default_rng(seed)

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        """``(inputs, target)``: ``B x P x P x 18`` (three exposures of 6 channels) and ``B x P x P x 3``."""
        size = self.patch_size
        inputs = np.empty((self.batch_size, size, size, self.inputs[0].shape[-1]), np.float32)
        targets = np.empty((self.batch_size, size, size, 3), np.float32)
        for i, index in enumerate(self.rng.choice(len(self.targets), self.batch_size, p=self.probabilities)):
            height, width = self.targets[index].shape[:2]
            top, left = self.rng.integers(0, height - size + 1), self.rng.integers(0, width - size + 1)
            x = self.inputs[index][top:top + size, left:left + size]
            y = self.targets[index][top:top + size, left:left + size]
            if self.augment:
                turns = self.rng.integers(4)
                x, y = np.rot90(x, turns), np.rot90(y, turns)
                if self.rng.integers(2):
                    x, y = x[:, ::-1], y[:, ::-1]
            inputs[i], targets[i] = x, y
        return inputs, targets
