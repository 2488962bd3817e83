"""Random aligned LR/HR training patches: cut from the LR/HR pairs as stored (read on demand,
:mod:`mobile_sr.data.stored`) or held in memory, by the shared pipeline of
:mod:`mobile_sr.data.pipeline` (area-proportional picks, flips and 90-degree rotations)."""

from __future__ import annotations

import numpy as np

from mobile_sr.data.pipeline import PatchSource
from mobile_sr.tasks.sr.data import SRPair


class PatchSampler(PatchSource):
    """``patch_size`` LR patches (of images smaller than that: mirror-padded) and the matching HR
    patches, ``scale`` times larger, in batches of ``batch_size``."""

    def __init__(self, pairs: list[SRPair], *, patch_size: int, batch_size: int, seed: int) -> None:
        super().__init__([pair.lr.shape[:2] for pair in pairs], patch_size=patch_size, batch_size=batch_size,
                         seed=seed, target_scale=pairs[0].scale if pairs else 1, item="LR image")
        self.pairs = pairs

    def crop(self, index: int, top: int, left: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        pair, scale = self.pairs[index], self.target_scale
        return (pair.lr[top : top + height, left : left + width],
                pair.hr[top * scale : (top + height) * scale, left * scale : (left + width) * scale])
