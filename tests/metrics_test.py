import math

import numpy as np
import pytest

from mobile_sr.core.errors import MetricInputError
from mobile_sr.metrics import min_image_side, psnr, psnr_y, rgb_to_y, ssim, ssim_y, to_uint8


def test_identical_images():
    image = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    assert psnr_y(image, image, 3) == math.inf
    assert ssim_y(image, image, 3) == pytest.approx(1.0)


def test_known_psnr():
    a = np.zeros((8, 8))
    assert psnr(a, a + 1) == pytest.approx(10 * math.log10(255**2))  # MSE 1 -> 48.13 dB
    assert psnr(a, a + 255) == pytest.approx(0.0)


def test_bt601_luma_of_black_and_white():
    pixels = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0]]], np.uint8)
    np.testing.assert_array_equal(rgb_to_y(pixels), [[16, 235, 81]])


def test_ssim_drops_with_noise():
    rng = np.random.default_rng(1)
    clean = np.tile(np.linspace(100, 140, 64), (64, 1))
    assert ssim(clean, clean + rng.normal(0, 20, clean.shape)) < 0.8


def test_psnr_y_ignores_the_shaved_border():
    hr = np.full((20, 20, 3), 100, np.uint8)
    sr = hr.copy()
    sr[:2] = 0
    assert psnr_y(sr, hr, shave=2) == math.inf


@pytest.mark.parametrize(
    "sr,match",
    [
        (np.zeros((20, 20, 3), np.float32), "uint8"),
        (np.zeros((20, 20), np.uint8), "H x W x 3"),
        (np.zeros((20, 21, 3), np.uint8), "shapes differ"),
    ],
)
def test_bad_inputs_are_rejected(sr, match):
    with pytest.raises(MetricInputError, match=match):
        psnr_y(sr, np.zeros((20, 20, 3), np.uint8), 2)


def test_shave_larger_than_image():
    image = np.zeros((6, 6, 3), np.uint8)
    with pytest.raises(MetricInputError, match="shave"):
        psnr_y(image, image, 3)


def test_to_uint8_rounds_and_clips():
    np.testing.assert_array_equal(to_uint8(np.array([-3.0, 0.4, 0.5, 254.6, 300.0])), [0, 0, 0, 255, 255])


@pytest.mark.parametrize("shave", [2, 3, 4])
def test_smallest_measurable_image(shave):
    side = min_image_side(shave)
    image = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    assert ssim_y(image, image, shave) == pytest.approx(1.0)
    small = image[: side - 1]
    with pytest.raises(MetricInputError, match=f"at least {side}x{side}"):
        ssim_y(small, small, shave)
    tiny = image[:4, :4]
    with pytest.raises(MetricInputError, match=f"shave={shave} leaves nothing of a 4x4 image; .*at least {side}x{side}"):
        psnr_y(tiny, tiny, shave)


def test_metrics_work_through_large_images_in_strips(monkeypatch):
    """Strips of a few rows (as an 8000x8000 image gets) score as one whole-image pass does."""
    from mobile_sr import metrics

    rng = np.random.default_rng(2)
    hr = rng.integers(0, 256, (90, 70, 3), dtype=np.uint8)
    sr = np.clip(hr.astype(int) + rng.integers(-9, 10, hr.shape), 0, 255).astype(np.uint8)
    whole = psnr_y(sr, hr, 3), ssim_y(sr, hr, 3), rgb_to_y(hr)
    monkeypatch.setattr(metrics, "STRIP_VALUES", 1000)  # strips of 4 rows of RGB, 15 of Y
    assert psnr_y(sr, hr, 3) == pytest.approx(whole[0], abs=1e-12)
    assert ssim_y(sr, hr, 3) == pytest.approx(whole[1], abs=1e-12)
    np.testing.assert_array_equal(rgb_to_y(hr), whole[2])
    assert rgb_to_y(hr).dtype == np.uint8
