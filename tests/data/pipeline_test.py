"""The shared tf.data patch pipeline: deterministic for a seed, shardable, area-proportional,
augmented; SR and HDR samplers on it."""

import numpy as np

from mobile_sr.data.pipeline import patch_dataset
from mobile_sr.tasks.hdr.patches import HDRPatchSampler
from mobile_sr.tasks.hdr.scene import HDRScene
from mobile_sr.tasks.sr.data import SRPair
from mobile_sr.tasks.sr.patches import PatchSampler
from tests.helpers import textured_image


def _pair(height: int, width: int, *, seed: int = 0, value: int | None = None, scale: int = 2) -> SRPair:
    lr = textured_image(height, width, seed=seed) if value is None else np.full((height, width, 3), value, np.uint8)
    return SRPair(name=str(seed), lr=lr, hr=lr.repeat(scale, 0).repeat(scale, 1), scale=scale)


def _first_batches(sampler, count: int, **shard) -> list[tuple[np.ndarray, np.ndarray]]:
    batches = iter(patch_dataset(sampler, **shard))
    return [tuple(tensor.numpy() for tensor in next(batches)) for _ in range(count)]


def test_same_seed_gives_identical_batches_another_seed_different_ones():
    pairs = [_pair(30, 40, seed=0), _pair(24, 50, seed=1), _pair(40, 33, seed=2)]

    def batches(seed):
        return _first_batches(PatchSampler(pairs, patch_size=8, batch_size=6, seed=seed), 3)

    first, again, other = batches(7), batches(7), batches(8)
    for (lr, hr), (lr_again, hr_again), (lr_other, _) in zip(first, again, other, strict=True):
        np.testing.assert_array_equal(lr, lr_again)
        np.testing.assert_array_equal(hr, hr_again)
        assert not np.array_equal(lr, lr_other)


def test_shards_split_one_stream_without_overlap():
    pairs = [_pair(30, 40, seed=0), _pair(24, 50, seed=1)]
    whole = _first_batches(PatchSampler(pairs, patch_size=8, batch_size=8, seed=3), 2)
    shards = [_first_batches(PatchSampler(pairs, patch_size=8, batch_size=4, seed=3), 2, shard_index=index,
                             shard_count=2) for index in range(2)]
    for step, (lr, hr) in enumerate(whole):
        np.testing.assert_array_equal(lr, np.concatenate([shards[0][step][0], shards[1][step][0]]))
        np.testing.assert_array_equal(hr, np.concatenate([shards[0][step][1], shards[1][step][1]]))


def test_images_are_picked_in_proportion_to_their_area():
    small, large = _pair(16, 16, value=0), _pair(32, 24, value=255)  # 1 : 3
    lr, _ = PatchSampler([small, large], patch_size=8, batch_size=800, seed=0).sample()
    assert abs((lr[:, 0, 0, 0] == 0).mean() - 0.25) < 0.05


def test_patches_are_rotated_and_flipped_all_eight_ways():
    pair = _pair(8, 8)  # one crop position: the patches differ only by augmentation
    lr, hr = PatchSampler([pair], patch_size=8, batch_size=64, seed=0).sample()
    variants = {patch.tobytes() for patch in lr}
    assert len(variants) == 8
    np.testing.assert_array_equal(hr, lr.repeat(2, 1).repeat(2, 2))


def test_hdr_scenes_feed_the_same_pipeline():
    rng = np.random.default_rng(0)

    def scene(height):
        ldrs = tuple(rng.uniform(0, 1, (height, 36, 3)).astype(np.float32) for _ in range(3))
        return HDRScene(str(height), ldrs, (1.0, 4.0, 16.0), rng.uniform(0, 4, (height, 36, 3)).astype(np.float32))

    sampler = HDRPatchSampler([scene(32), scene(20)], patch_size=24, batch_size=2, seed=0)
    assert sampler.padded == 1 and "1 of 2 scenes" in sampler.padding_note
    inputs, target = next(iter(patch_dataset(sampler, input_channels=(6, 6, 6))))
    assert [tuple(part.shape) for part in inputs] == [(2, 24, 24, 6)] * 3 and tuple(target.shape) == (2, 24, 24, 3)
