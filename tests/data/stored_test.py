"""Images stored decoded on disk and read in row bands."""

import numpy as np
import pytest

from mobile_sr.core.errors import ImageError
from mobile_sr.data.stored import StoredImage, store_image
from tests.helpers import textured_image


def test_slices_read_from_disk_equal_the_array(tmp_path):
    pixels = textured_image(30, 41)
    stored = store_image(tmp_path / "image.npy", pixels)
    assert stored.shape == (30, 41, 3)
    np.testing.assert_array_equal(stored[5:17, 8:40], pixels[5:17, 8:40])
    np.testing.assert_array_equal(stored[25:], pixels[25:])
    np.testing.assert_array_equal(np.asarray(stored), pixels)
    np.testing.assert_array_equal(np.load(tmp_path / "image.npy"), pixels)  # a plain .npy file


def test_a_cropped_view_reads_only_its_part(tmp_path):
    pixels = textured_image(30, 41)
    view = store_image(tmp_path / "image.npy", pixels).cropped(27, 39)
    assert view.shape == (27, 39, 3)
    np.testing.assert_array_equal(np.asarray(view), pixels[:27, :39])
    np.testing.assert_array_equal(view[20:40, 30:], pixels[20:27, 30:39])
    with pytest.raises(ValueError, match="cannot crop"):
        view.cropped(28, 39)


def test_a_damaged_or_missing_file_says_it_is_made_again(tmp_path):
    path = tmp_path / "image.npy"
    store_image(path, textured_image(30, 41))
    path.write_bytes(path.read_bytes()[:-7])  # cut short
    with pytest.raises(ImageError, match="damaged stored image.*delete it and it is made again"):
        StoredImage(path)
    with pytest.raises(ImageError, match="not a readable stored image"):
        StoredImage(tmp_path / "missing.npy")


def test_only_row_and_column_slices(tmp_path):
    stored = store_image(tmp_path / "image.npy", textured_image(8, 8))
    with pytest.raises(TypeError, match="np.asarray"):
        stored[None]
    with pytest.raises(ValueError, match="step 1"):
        stored[::2]
