"""Random aligned LR/HR training patches with flips and 90-degree rotations, cut in numpy from
images already in memory (no decoding or resizing per step); :mod:`mobile_sr.data.pipeline`
feeds them to training."""

from __future__ import annotations

import numpy as np

from mobile_sr.core.errors import DatasetError
from mobile_sr.tasks.sr.data import SRPair


class PatchSampler:
    """Samples batches of random ``patch_size`` LR patches and the matching HR patches.

    Images are picked with probability proportional to their area, so every region of the data
    is equally likely; images smaller than a patch are skipped (``skipped`` counts them).
    """

    def __init__(
        self, pairs: list[SRPair], *, patch_size: int, batch_size: int, seed: int, augment: bool = True
    ) -> None:
        if patch_size < 4 or batch_size < 1:
            raise DatasetError(f"patch size {patch_size} and batch size {batch_size} must be >= 4 and >= 1")
        self.pairs = [pair for pair in pairs if min(pair.lr.shape[:2]) >= patch_size]
        self.skipped = len(pairs) - len(self.pairs)
        if not self.pairs:
            largest = max((min(pair.lr.shape[:2]) for pair in pairs), default=0)
            raise DatasetError(
                f"no training image is large enough for {patch_size}x{patch_size} LR patches (the "
                f"largest LR side is {largest} px); use --patch-size {max(4, largest)} or less"
            )
        areas = np.array([pair.lr.shape[0] * pair.lr.shape[1] for pair in self.pairs], dtype=np.float64)
        self.probabilities = areas / areas.sum()
        self.patch_size = patch_size
        self.batch_size = batch_size
        self.augment = augment
        self.scale = self.pairs[0].scale
        self.rng = np.random.default_rng(seed)

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        size, scale = self.patch_size, self.scale
        lr_batch = np.empty((self.batch_size, size, size, 3), np.uint8)
        hr_batch = np.empty((self.batch_size, size * scale, size * scale, 3), np.uint8)
        for i, index in enumerate(self.rng.choice(len(self.pairs), self.batch_size, p=self.probabilities)):
            pair = self.pairs[index]
            top = self.rng.integers(0, pair.lr.shape[0] - size + 1)
            left = self.rng.integers(0, pair.lr.shape[1] - size + 1)
            lr = pair.lr[top : top + size, left : left + size]
            hr = pair.hr[top * scale : (top + size) * scale, left * scale : (left + size) * scale]
            if self.augment:
                turns = self.rng.integers(4)
                lr, hr = np.rot90(lr, turns), np.rot90(hr, turns)
                if self.rng.integers(2):
                    lr, hr = lr[:, ::-1], hr[:, ::-1]
            lr_batch[i] = lr
            hr_batch[i] = hr
        return lr_batch, hr_batch
