"""Feeding a task's training patches to training through ``tf.data``.

A task's sampler is a :class:`PatchSource`: it knows its items' sizes and cuts one aligned
``(inputs, target)`` patch of an item (SR: from images stored on disk, read on demand; HDR: from
scenes in memory). The pipeline around it is shared: patch number ``n`` of a run is drawn by
stateless random ops seeded with ``(seed, n)`` (the item, with probability proportional to its
area; the crop position; a 90-degree rotation and a flip), and a batch's patches are cut, padded
and augmented together by ``map(num_parallel_calls=AUTOTUNE, deterministic=True)``, so the same
seed gives the same batches however many threads read them, and shards of one stream (one per
worker of a multi-worker strategy) are disjoint. ``benchmarks/data_pipeline.py`` measures its speed
against a cached batch and the memory of training on it.
"""

from __future__ import annotations

import abc

import numpy as np

from mobile_sr.core.errors import DatasetError

# Batches made ahead of the train step (each SR batch of 16 x 64x64 LR patches at x3 takes 8 MB as float32).
PREFETCH_BATCHES = 4


class PatchSource(abc.ABC):
    """Aligned training patches of ``items`` of the given ``sizes`` (``(height, width)`` of each
    item's input grid, e.g. an SR pair's LR image): ``patch_size`` squares of the inputs and the
    matching ``target_scale`` times larger squares of the targets.

    Items are picked with probability proportional to their area, so every region of the data is
    equally likely. An item smaller than a patch is mirror-padded up to it (symmetric padding, as
    MATLAB's imresize pads its borders, so an SR pair stays a bicubic pair); :attr:`padded` counts
    them. Subclasses cut the patches: :meth:`crop`."""

    def __init__(self, sizes: list[tuple[int, int]], *, patch_size: int, batch_size: int, seed: int,
                 target_scale: int = 1, item: str = "training image"):
        if patch_size < 4 or batch_size < 1:
            raise DatasetError(f"patch size {patch_size} and batch size {batch_size} must be >= 4 and >= 1")
        if not sizes:
            raise DatasetError(f"no {item}s to train on; add some to the training data")
        self.sizes = np.asarray(sizes, np.int64).reshape(-1, 2)
        largest = int(self.sizes.min(axis=1).max())
        if largest < patch_size:  # every patch would be partly mirrored: a smaller patch learns more
            raise DatasetError(f"no {item} holds a whole {patch_size}x{patch_size} patch (the largest {item} side is "
                               f"{largest} px); use --patch-size {max(4, largest)} or less")
        self.padded = int((self.sizes < patch_size).any(axis=1).sum())
        areas = self.sizes.prod(axis=1).astype(np.float64)
        self.cumulative_probabilities = np.cumsum(areas) / areas.sum()
        self.patch_size, self.batch_size, self.seed, self.target_scale, self.item = (
            patch_size, batch_size, seed, target_scale, item)

    @abc.abstractmethod
    def crop(self, index: int, top: int, left: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """``(inputs, target)`` of item ``index``: its ``height x width`` inputs at ``(top, left)``
        (inside the item) and the target region they map to, ``target_scale`` times larger."""

    @property
    def padding_note(self) -> str | None:
        """What training logs about items smaller than a patch, if any."""
        if not self.padded:
            return None
        return (f"{self.padded} of {len(self.sizes)} {self.item}s are smaller than a {self.patch_size}x{self.patch_size} "
                "patch: they are used, their patches mirror-padded to that size")

    def patch(self, index: int, top: int, left: int, turns: int = 0, flip: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The patch of item ``index`` at ``(top, left)``, mirror-padded at the bottom and right
        where the item is smaller than a patch, rotated by ``turns`` quarter turns and, with
        ``flip``, mirrored left to right. (In numpy: TensorFlow's transpose of uint8 logs an error
        line on oneDNN builds.)"""
        size, scale = self.patch_size, self.target_scale
        height, width = (min(size, int(side)) for side in self.sizes[index])
        inputs, target = self.crop(int(index), int(top), int(left), height, width)
        if (height, width) != (size, size):
            inputs = np.pad(inputs, ((0, size - height), (0, size - width), (0, 0)), mode="symmetric")
            target = np.pad(target, ((0, (size - height) * scale), (0, (size - width) * scale), (0, 0)), mode="symmetric")
        inputs, target = np.rot90(inputs, turns), np.rot90(target, turns)
        if flip:
            inputs, target = inputs[:, ::-1], target[:, ::-1]
        return np.ascontiguousarray(inputs), np.ascontiguousarray(target)

    def batches(self, *, shard_index: int = 0, shard_count: int = 1):
        """An endless ``tf.data.Dataset`` of ``(inputs, target)`` batches, in the items' dtypes.

        With ``shard_count`` > 1 it is shard ``shard_index`` of the stream: its ``k``-th batch is
        batch ``k * shard_count + shard_index`` of the unsharded stream, so the shards' batches of
        one step together are the unsharded stream's batches of ``shard_count`` steps, and no two
        shards draw the same patch."""
        from mobile_sr.core.backend import tf

        if not 0 <= shard_index < shard_count:
            raise ValueError(f"shard_index must be in [0, {shard_count}), got {shard_index}")
        first_inputs, first_target = self.patch(0, 0, 0)  # the patches' shapes and dtypes
        size, batch = self.patch_size, self.batch_size
        cumulative = tf.constant(self.cumulative_probabilities, tf.float64)
        sizes = tf.constant(self.sizes, tf.int64)
        last_item = len(self.sizes) - 1

        def draw(position):
            """Item, crop and augmentation of this shard's ``position``-th patch."""
            number = (position // batch * shard_count + shard_index) * batch + position % batch  # in the whole stream
            uniform = tf.random.stateless_uniform([5], seed=tf.stack([tf.constant(self.seed, tf.int64), number]),
                                                  dtype=tf.float64)
            index = tf.minimum(tf.searchsorted(cumulative, uniform[:1], side="right")[0], last_item)
            positions = tf.cast(tf.maximum(sizes[index] - size + 1, 1), tf.float64)  # per axis; 1 for a padded item
            top_left = tf.cast(uniform[1:3] * positions, tf.int64)
            return index, top_left[0], top_left[1], tf.cast(uniform[3] * 4, tf.int64), uniform[4] < 0.5

        def cut_batch(*draws):
            patches = [self.patch(*patch_draw) for patch_draw in zip(*draws, strict=True)]
            return np.stack([inputs for inputs, _ in patches]), np.stack([target for _, target in patches])

        def read(index, top, left, turns, flip):
            # One Python call per batch, not per patch: about a third less CPU per batch.
            inputs, target = tf.numpy_function(cut_batch, [index, top, left, turns, flip],
                                               [tf.as_dtype(first_inputs.dtype), tf.as_dtype(first_target.dtype)],
                                               stateful=False)
            inputs.set_shape((batch, *first_inputs.shape))
            target.set_shape((batch, *first_target.shape))
            return inputs, target

        dataset = (tf.data.Dataset.counter().map(draw).batch(batch, drop_remainder=True)
                   .map(read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True))
        if shard_count > 1:  # sharded here: a distribution strategy must not shard it again
            options = tf.data.Options()
            options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
            dataset = dataset.with_options(options)
        return dataset

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        """The first batch of the stream as numpy arrays (e.g. to calibrate quantization on)."""
        inputs, target = next(iter(self.batches()))
        return inputs.numpy(), target.numpy()


def patch_dataset(source: PatchSource, *, input_channels: tuple[int, ...] = (3,), shard_index: int = 0,
                  shard_count: int = 1):
    """An endless, prefetched ``tf.data.Dataset`` of float32 ``(inputs, target)`` batches of
    ``source`` (shard ``shard_index`` of ``shard_count``: see :meth:`PatchSource.batches`). With
    several ``input_channels`` the inputs' channels are split into that many model inputs (an HDR
    model's exposures)."""
    from mobile_sr.core.backend import tf

    def to_model(inputs, target):
        inputs, target = tf.cast(inputs, tf.float32), tf.cast(target, tf.float32)
        return (tuple(tf.split(inputs, list(input_channels), axis=-1)) if len(input_channels) > 1 else inputs), target

    return source.batches(shard_index=shard_index, shard_count=shard_count).map(to_model).prefetch(PREFETCH_BATCHES)
