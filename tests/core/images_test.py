import os
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageFile, ImageOps

from mobile_sr.core.errors import ImageError, OutputError
from mobile_sr.core.files import atomic_write_bytes, check_output_path
from mobile_sr.core.images import DEFAULT_MAX_IMAGE_PIXELS, load_rgb, load_rgb_unit, save_png
from tests.helpers import bomb_png, png_chunk


def test_rgb_png_round_trip(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (7, 9, 3), dtype=np.uint8)
    save_png(tmp_path / "a.png", image)
    np.testing.assert_array_equal(load_rgb(tmp_path / "a.png"), image)
    assert not list(tmp_path.glob(".*tmp"))  # atomic write left no temporary file


def test_gray_becomes_rgb(tmp_path):
    Image.fromarray(np.arange(12, dtype=np.uint8).reshape(3, 4)).save(tmp_path / "g.png")
    rgb = load_rgb(tmp_path / "g.png")
    assert rgb.shape == (3, 4, 3)
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])


def test_rgba_drops_alpha(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 10
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    assert (load_rgb(tmp_path / "a.png") == [200, 0, 0]).all()


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_is_rounded_to_8_bit(tmp_path, suffix):
    deep = np.full((4, 5, 3), 257 * 100 + 128, np.uint16)
    deep[..., 2] = 65535  # cv2 writes BGR: this is red
    cv2.imwrite(str(tmp_path / f"d{suffix}"), deep)
    rgb = load_rgb(tmp_path / f"d{suffix}")
    assert rgb.dtype == np.uint8 and (rgb[..., 0] == 255).all() and (rgb[..., 1] == 100).all()


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_file_is_an_error(tmp_path, suffix):
    path = tmp_path / f"t{suffix}"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ImageError, match="truncated|damaged|not a readable"):
        load_rgb(path)


def test_not_an_image(tmp_path):
    (tmp_path / "x.png").write_text("hello")
    with pytest.raises(ImageError, match="not a readable image"):
        load_rgb(tmp_path / "x.png")


def test_missing_file():
    with pytest.raises(ImageError, match="no such file"):
        load_rgb(Path("/nonexistent/a.png"))


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_empty_file_is_named(tmp_path, suffix):
    (tmp_path / f"e{suffix}").write_bytes(b"")
    with pytest.raises(ImageError, match=f"e{suffix}: empty file"):
        load_rgb_unit(tmp_path / f"e{suffix}")


def test_truncated_tiff_fails_without_pillow_warnings(tmp_path):
    cv2.imwrite(str(tmp_path / "t.tif"), np.random.default_rng(0).integers(0, 65536, (64, 64, 3), dtype=np.uint16))
    (tmp_path / "t.tif").write_bytes((tmp_path / "t.tif").read_bytes()[:20000])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ImageError, match="t.tif: not a readable image"):
            load_rgb(tmp_path / "t.tif")
    assert not [w for w in caught if "EXIF" in str(w.message)]


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_written_files_get_the_umask_permissions(tmp_path, umask):
    previous = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "a.json", b"{}")
        save_png(tmp_path / "b.png", np.zeros((2, 2, 3), np.uint8))
    finally:
        os.umask(previous)
    for name in ("a.json", "b.png"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask


def test_unwritable_output_is_an_output_error(tmp_path):
    (tmp_path / "file").write_text("x")
    for path in (tmp_path / "file" / "sub" / "a.png", tmp_path / "file" / "a.png", tmp_path):
        with pytest.raises(OutputError, match=str(path)):
            check_output_path(path)
        with pytest.raises(OutputError, match=str(path)):
            atomic_write_bytes(path, b"x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_check_output_path_leaves_nothing_behind(tmp_path):
    check_output_path(tmp_path / "new" / "deeper" / "a.png")
    check_output_path(tmp_path / "b.png")
    assert not list(tmp_path.iterdir())


def _exif_orientation(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[274] = orientation
    return exif.tobytes()


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("suffix", [".jpg", ".png", ".tif"])
def test_exif_orientation_is_applied_as_pillow_does(tmp_path, suffix, orientation):
    stored = np.random.default_rng(orientation).integers(0, 256, (6, 10, 3), dtype=np.uint8)
    path = tmp_path / f"o{orientation}{suffix}"
    Image.fromarray(stored).save(path, exif=_exif_orientation(orientation))
    with Image.open(path) as image:
        assert image.getexif()[274] == orientation
        upright = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    rgb = load_rgb(path)
    assert rgb.shape == ((10, 6, 3) if orientation >= 5 else (6, 10, 3))
    # Pillow and OpenCV may bundle different JPEG decoders; a wrong transpose is off by far more
    np.testing.assert_allclose(rgb, upright, atol=2 if suffix == ".jpg" else 0)


def test_orientation_from_a_png_exif_chunk_keeps_16_bits(tmp_path):
    upright = np.random.default_rng(0).integers(0, 65536, (5, 8, 3), dtype=np.uint16)
    ok, encoded = cv2.imencode(".png", np.rot90(upright, -1)[:, :, ::-1])  # stored turned left (orientation 8)
    assert ok
    png = encoded.tobytes()
    iend = png.rindex(b"IEND") - 4
    (tmp_path / "deep.png").write_bytes(png[:iend] + png_chunk(b"eXIf", _exif_orientation(8)) + png[iend:])
    unit = load_rgb_unit(tmp_path / "deep.png")
    assert unit.shape == (5, 8, 3)
    np.testing.assert_array_equal(np.round(unit * 65535).astype(np.uint16), upright)


def test_decompression_bomb_is_refused_from_its_header(tmp_path, monkeypatch):
    path = bomb_png(tmp_path / "bomb.png")

    def must_not_decode(*args, **kwargs):
        raise AssertionError("a decompression bomb was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", must_not_decode)
    monkeypatch.setattr(cv2, "imdecode", must_not_decode)
    start = time.perf_counter()
    with pytest.raises(ImageError, match=r"bomb.png: declares 40000x40000 = 1,600,000,000 pixels, more than "
                                         r"the limit of 178,956,970 .* set MOBILE_SR_MAX_IMAGE_PIXELS"):
        load_rgb(path)
    assert time.perf_counter() - start < 1


def test_default_pixel_limit_is_pillows():
    assert DEFAULT_MAX_IMAGE_PIXELS == 2 * Image.MAX_IMAGE_PIXELS == 178_956_970


def test_pixel_limit_can_be_raised_or_lowered(tmp_path, monkeypatch):
    path = bomb_png(tmp_path / "bomb.png")
    monkeypatch.setenv("MOBILE_SR_MAX_IMAGE_PIXELS", "2000000000")
    with pytest.raises(ImageError, match="bomb.png: the file is damaged or truncated"):
        load_rgb(path)  # past the size check: this one only pretends to be large
    assert Image.MAX_IMAGE_PIXELS == DEFAULT_MAX_IMAGE_PIXELS // 2  # Pillow's own check is restored
    save_png(tmp_path / "small.png", np.zeros((10, 12, 3), np.uint8))
    monkeypatch.setenv("MOBILE_SR_MAX_IMAGE_PIXELS", "100")
    with pytest.raises(ImageError, match="small.png: declares 12x10 = 120 pixels, more than the limit of 100 "):
        load_rgb(tmp_path / "small.png")
    monkeypatch.setenv("MOBILE_SR_MAX_IMAGE_PIXELS", "120")
    assert load_rgb(tmp_path / "small.png").shape == (10, 12, 3)


@pytest.mark.parametrize("value", ["0", "-5", "lots", "1e9"])
def test_invalid_pixel_limit_says_what_is_expected(tmp_path, monkeypatch, value):
    save_png(tmp_path / "small.png", np.zeros((10, 12, 3), np.uint8))
    monkeypatch.setenv("MOBILE_SR_MAX_IMAGE_PIXELS", value)
    with pytest.raises(ImageError, match=f"MOBILE_SR_MAX_IMAGE_PIXELS='{value}': expected a positive whole number"):
        load_rgb(tmp_path / "small.png")
