"""The structure-texture decomposition: exact split, smoother structure, skimage's TV denoiser, and
the numpy and TensorFlow versions agree."""

import numpy as np
import pytest
from skimage.restoration import denoise_tv_chambolle

from mobile_sr.core.errors import ImageError
from mobile_sr.tasks.sr.decomposition import structure_texture, structure_texture_tf
from tests.helpers import textured_image


def _patches(seed=0):
    rng = np.random.default_rng(seed)
    smooth = np.stack([textured_image(24, 20, seed=seed + i) for i in range(3)]).astype(np.int16)
    return np.clip(smooth + rng.integers(-20, 21, smooth.shape), 0, 255).astype(np.uint8)  # photo-like plus fine texture


def _total_variation(images):
    return np.abs(np.diff(images, axis=1)).sum() + np.abs(np.diff(images, axis=2)).sum()


def test_structure_plus_texture_is_the_image_exactly_and_structure_is_smoother():
    images = _patches()
    structure, texture = structure_texture(images)
    assert structure.dtype == texture.dtype == np.float32 and structure.shape == images.shape
    np.testing.assert_array_equal(structure + texture, images.astype(np.float32))
    for image, smooth in zip(images.astype(np.float32), structure, strict=True):
        assert _total_variation(smooth[None]) < 0.7 * _total_variation(image[None])
    assert 1.0 < np.abs(texture).mean() < 20.0


def test_each_image_and_channel_is_denoised_like_skimage_does():
    images = _patches(seed=3)
    structure, _ = structure_texture(images, weight=0.1, iterations=30)
    for image, smooth in zip(images, structure, strict=True):
        expected = denoise_tv_chambolle(image.astype(np.float32) / 255, weight=0.1, eps=-1.0, max_num_iter=30,
                                        channel_axis=-1)
        np.testing.assert_allclose(smooth, expected * 255, atol=2e-3)


def test_tensorflow_version_matches_numpy():
    images = _patches(seed=5)
    structure, texture = structure_texture(images)
    structure_tf, texture_tf = structure_texture_tf(images.astype(np.float32))
    np.testing.assert_allclose(structure_tf.numpy(), structure, atol=2e-3)
    np.testing.assert_array_equal(structure_tf.numpy() + texture_tf.numpy(), images.astype(np.float32))


def test_a_single_image_needs_a_batch_axis():
    with pytest.raises(ImageError, match="add a batch axis"):
        structure_texture(np.zeros((8, 8, 3), np.uint8))
