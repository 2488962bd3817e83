"""Random aligned LR/HR training patches with flips and 90-degree rotations, fed through tf.data.

Patches are cut in numpy from images already in memory (no decoding or resizing per step) by a
generator that ``tf.data`` runs ahead of training in a background thread (``prefetch``), so the
CPU pipeline stays ahead of the train step; ``benchmarks/float_training.py`` measures this.
"""

from __future__ import annotations

import numpy as np

from mobile_sr.data.sr import SRPair
from mobile_sr.errors import DatasetError


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


def patch_dataset(sampler, *, input_groups: int = 1):
    """An endless, prefetched ``tf.data.Dataset`` of float32 ``(inputs, target)`` batches from
    ``sampler.sample()`` (a :class:`PatchSampler`: LR and HR in [0, 255]; or an HDR sampler).
    ``input_groups > 1`` splits the inputs' channels into that many model inputs (the exposures)."""
    from mobile_sr.backend import tf

    first = sampler.sample()

    def generate():
        yield first
        while True:
            yield sampler.sample()

    dataset = tf.data.Dataset.from_generator(
        generate, output_signature=tuple(tf.TensorSpec(array.shape, tf.as_dtype(array.dtype)) for array in first)
    )

    def to_model(inputs, target):
        inputs, target = tf.cast(inputs, tf.float32), tf.cast(target, tf.float32)
        return (tuple(tf.split(inputs, input_groups, axis=-1)) if input_groups > 1 else inputs), target

    return dataset.map(to_model).prefetch(4)
