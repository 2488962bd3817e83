import numpy as np
import pytest

from mobile_sr.tasks.sr.data import load_sr_pairs
from mobile_sr.tasks.sr.evaluation import bicubic_upscaler, evaluate_pairs
from mobile_sr.tasks.sr.resize import _resize_matrix, bicubic_downscale, imresize, modcrop

# ../shared/datasets/README.md: MATLAB bicubic, PSNR on rounded Y with `scale` pixels shaved.
REFERENCE_BICUBIC_PSNR = {
    ("Set5", 2): 33.65, ("Set5", 3): 30.39, ("Set5", 4): 28.42,
    ("Set14", 2): 30.32, ("Set14", 3): 27.63, ("Set14", 4): 26.09,
}


@pytest.mark.parametrize("scale", [1 / 4, 1 / 3, 1 / 2, 2.0, 3.0])
def test_resize_weights_sum_to_one(scale):
    matrix = _resize_matrix(24, int(np.ceil(24 * scale)), scale)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0)


def test_constant_image_stays_constant():
    image = np.full((30, 33, 3), 77, np.uint8)
    assert (imresize(image, 1 / 3, out_shape=(10, 11)) == 77).all()
    assert (imresize(image, 3.0) == 77).all()


def test_output_sizes():
    image = np.zeros((255, 300, 3), np.uint8)
    assert bicubic_downscale(image, 3).shape == (85, 100, 3)
    assert imresize(image[:85, :100], 3.0).shape == (255, 300, 3)
    assert modcrop(np.zeros((101, 99, 3)), 4).shape == (100, 96, 3)


def test_downscale_needs_modcrop():
    with pytest.raises(ValueError, match="modcrop"):
        bicubic_downscale(np.zeros((10, 10, 3), np.uint8), 3)


def test_antialiasing_removes_a_pixel_checkerboard():
    checker = (np.indices((60, 60)).sum(axis=0) % 2 * 255).astype(np.uint8)
    small = bicubic_downscale(checker, 2)
    assert abs(small[5:-5, 5:-5].astype(float) - 127.5).max() < 2


@pytest.mark.parametrize("test_set,scale", sorted(REFERENCE_BICUBIC_PSNR))
def test_bicubic_reproduces_reference_table(shared_datasets, test_set, scale):
    _, pairs = load_sr_pairs(shared_datasets / "sr/test" / test_set, scale, split="val", cache_dir=None)
    report = evaluate_pairs(bicubic_upscaler(scale), pairs, model="bicubic", dataset=test_set, scale=scale)
    assert report.mean_psnr_y == pytest.approx(REFERENCE_BICUBIC_PSNR[test_set, scale], abs=0.02)


@pytest.mark.parametrize("scale,out_shape", [(3.0, None), (1 / 3, (33, 40))])
def test_resize_in_strips_equals_one_pass(monkeypatch, scale, out_shape):
    """Large images are resized a few rows at a time (bounded float64 temporaries), to the same pixels."""
    from mobile_sr.tasks.sr import resize

    image = np.random.default_rng(3).integers(0, 256, (99, 120, 3), dtype=np.uint8)
    whole, whole_float = imresize(image, scale, out_shape), imresize(image.astype(np.float32), scale, out_shape)
    monkeypatch.setattr(resize, "STRIP_VALUES", 2000)  # strips of a few output rows
    np.testing.assert_array_equal(imresize(image, scale, out_shape), whole)
    np.testing.assert_allclose(imresize(image.astype(np.float32), scale, out_shape), whole_float, rtol=0, atol=1e-9)
