"""read_radiance on every OpenEXR channel layout, foreign primaries, PFM, broken files and non-finite values."""

from __future__ import annotations

import numpy as np
import OpenEXR
import pytest

from mobile_sr.core.errors import ImageError
from mobile_sr.tasks.hdr.radiance import RADIANCE_EXTENSIONS, read_radiance, write_radiance

AP0 = (0.7347, 0.2653, 0.0, 1.0, 0.0001, -0.077, 0.32168, 0.33767)  # ACES2065-1, white ~D60
# ACES2065-1 -> linear Rec.709 with Bradford adaptation, as published in OpenColorIO's ACES configs.
AP0_TO_REC709 = np.array([[2.52168618674388, -1.13413098823972, -0.387555198504164],
                          [-0.276479914229922, 1.37271908766826, -0.096239173438334],
                          [-0.0153780649660342, -0.152975335867399, 1.16835340083343]])
REC709 = (0.64, 0.33, 0.30, 0.60, 0.15, 0.06, 0.3127, 0.3290)


def _write_exr(path, channels, **header):
    # A fresh header each time: OpenEXR.File adds the data window to the dict it is given. Arrays
    # are made contiguous: the package writes the memory of a strided view as if it were contiguous.
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage, **header}
    channels = {name: np.ascontiguousarray(pixels) if isinstance(pixels, np.ndarray) else pixels
                for name, pixels in channels.items()}
    OpenEXR.File(header, channels).write(str(path))
    return path


def _pfm_bytes(pixels, little_endian):
    """A PFM file written by hand: PF or Pf, the size, the scale whose sign gives the byte order,
    then the rows from bottom to top."""
    kind = "PF" if pixels.ndim == 3 else "Pf"
    header = f"{kind}\n{pixels.shape[1]} {pixels.shape[0]}\n{-1.0 if little_endian else 1.0}\n".encode()
    return header + np.ascontiguousarray(pixels[::-1], dtype="<f4" if little_endian else ">f4").tobytes()


def _rgb(seed, height=4, width=6):
    return np.random.default_rng(seed).uniform(0.0, 8.0, (height, width, 3)).astype(np.float32)


def test_exr_rgba_loses_its_alpha(tmp_path):
    rgba = np.random.default_rng(0).uniform(0.0, 8.0, (4, 6, 4)).astype(np.float16)
    radiance = read_radiance(_write_exr(tmp_path / "rgba.exr", {"RGBA": rgba}))
    assert radiance.dtype == np.float32
    np.testing.assert_array_equal(radiance, rgba[:, :, :3].astype(np.float32))


def test_exr_separate_channels_of_every_pixel_type(tmp_path):
    # Mixed types are what the package's default grouping of R, G, B into "RGBA" refuses to read.
    red = np.arange(24, dtype=np.uint32).reshape(4, 6)
    green, blue = _rgb(1)[:, :, 0], _rgb(2)[:, :, 0].astype(np.float16)
    channels = {"R": red, "G": green, "B": blue, "A": np.ones((4, 6), np.float16)}
    radiance = read_radiance(_write_exr(tmp_path / "separate.exr", channels))
    expected = np.stack([red.astype(np.float32), green, blue.astype(np.float32)], axis=-1)
    np.testing.assert_array_equal(radiance, expected)


def test_exr_luminance_alone_reads_as_gray(tmp_path):
    luminance = _rgb(3)[:, :, 0]
    radiance = read_radiance(_write_exr(tmp_path / "y.exr", {"Y": luminance}))
    np.testing.assert_array_equal(radiance, np.repeat(luminance[:, :, None], 3, axis=2))


def test_exr_luminance_chroma_with_subsampled_chroma(tmp_path):
    luminance = np.full((6, 8), 2.0, np.float32)
    # The package takes full-size arrays for subsampled channels and stores a quarter of them.
    chroma = {"RY": OpenEXR.Channel(np.full((6, 8), 0.5, np.float32), 2, 2),
              "BY": OpenEXR.Channel(np.full((6, 8), -0.25, np.float32), 2, 2)}
    path = _write_exr(tmp_path / "yc.exr", {"Y": luminance, **chroma})
    with OpenEXR.File(str(path)) as exr:
        assert exr.channels()["RY"].pixels.shape == (3, 4)
    red, blue = 2.0 * 1.5, 2.0 * 0.75  # R = Y (RY + 1), B = Y (BY + 1)
    green = (2.0 - 0.2126 * red - 0.0722 * blue) / 0.7152  # Y = 0.2126 R + 0.7152 G + 0.0722 B
    np.testing.assert_allclose(read_radiance(path), np.broadcast_to([red, green, blue], (6, 8, 3)), rtol=1e-3)


def test_exr_subsampled_chroma_is_interpolated_between_its_samples(tmp_path):
    luminance = np.ones((6, 8), np.float32)
    ramp = np.linspace(0.0, 1.0, 48, dtype=np.float32).reshape(6, 8)
    chroma = {"RY": OpenEXR.Channel(ramp, 2, 2), "BY": OpenEXR.Channel(np.ascontiguousarray(ramp[::-1]), 2, 2)}
    path = _write_exr(tmp_path / "yc.exr", {"Y": luminance, **chroma})
    with OpenEXR.File(str(path)) as exr:
        stored = exr.channels()["RY"].pixels.astype(np.float32)
    red = read_radiance(path)[:, :, 0] - 1.0  # Y = 1, so R - 1 is the interpolated RY
    # Sample (i, j) lies on pixel (2i, 2j); pixels between samples get their mean; the last row
    # and column, beyond the last sample, repeat it.
    np.testing.assert_allclose(red[::2, ::2], stored, atol=1e-6)
    np.testing.assert_allclose(red[::2, 1:-1:2], (stored[:, :-1] + stored[:, 1:]) / 2, atol=1e-6)
    np.testing.assert_allclose(red[1:-1:2, ::2], (stored[:-1] + stored[1:]) / 2, atol=1e-6)
    np.testing.assert_allclose(red[:, -1], red[:, -2], atol=1e-6)
    np.testing.assert_allclose(red[-1], red[-2], atol=1e-6)


@pytest.mark.parametrize("channels, listed", [({"Z": np.ones((2, 2), np.float32)}, "channels Z;"),
                                              ({f"diffuse.{c}": np.ones((2, 2), np.float32) for c in "RGB"},
                                               "channels diffuse.B, diffuse.G, diffuse.R;")])
def test_exr_without_a_color_layout_is_refused(tmp_path, channels, listed):
    path = _write_exr(tmp_path / "other.exr", channels)
    with pytest.raises(ImageError, match=r"other\.exr: the OpenEXR image has the ") as error:
        read_radiance(path)
    assert listed in str(error.value) and "Y, RY and BY" in str(error.value)


def test_exr_aces_primaries_are_converted_to_rec709(tmp_path):
    aces = np.array([[[1.0, 0.0, 0.0], [0.5, 0.4, 0.3], [0.18, 0.18, 0.18], [0.2, 0.6, 0.9]]], np.float32)
    radiance = read_radiance(_write_exr(tmp_path / "aces.exr", {"RGB": aces}, chromaticities=AP0))
    np.testing.assert_allclose(radiance, np.clip(aces @ AP0_TO_REC709.T, 0, None), rtol=1e-4, atol=1e-5)
    assert radiance[0, 0, 1] == radiance[0, 0, 2] == 0  # pure AP0 red lies outside Rec.709: clipped


def test_exr_gray_stays_gray_under_another_white_point(tmp_path):
    # The ILM Tree.exr primaries: Bradford adaptation maps its white to D65, so gray stays gray.
    tree = (0.62955, 0.341, 0.2867, 0.6108, 0.1489, 0.07125, 0.3155, 0.33165)
    gray = np.full((2, 3, 3), 0.75, np.float32)
    radiance = read_radiance(_write_exr(tmp_path / "tree.exr", {"RGB": gray}, chromaticities=tree))
    np.testing.assert_allclose(radiance, gray, rtol=1e-5)


def test_exr_with_explicit_rec709_chromaticities_is_unchanged(tmp_path):
    rgb = _rgb(4)
    radiance = read_radiance(_write_exr(tmp_path / "rec709.exr", {"RGB": rgb}, chromaticities=REC709))
    np.testing.assert_array_equal(radiance, rgb)


@pytest.mark.parametrize("gray", [False, True])
@pytest.mark.parametrize("little_endian", [True, False])
def test_pfm_reads_both_kinds_and_byte_orders(tmp_path, gray, little_endian):
    pixels = _rgb(5, height=3, width=5)  # not square and not symmetric: catches swapped or flipped axes
    pixels = pixels[:, :, 0] if gray else pixels
    (tmp_path / "map.pfm").write_bytes(_pfm_bytes(pixels, little_endian))
    expected = np.repeat(pixels[:, :, None], 3, axis=2) if gray else pixels
    np.testing.assert_array_equal(read_radiance(tmp_path / "map.pfm"), expected)


def test_pfm_round_trip(tmp_path):
    assert ".pfm" in RADIANCE_EXTENSIONS
    rgb = _rgb(6, height=5, width=7)
    write_radiance(tmp_path / "scene.pfm", rgb)
    assert (tmp_path / "scene.pfm").read_bytes() == _pfm_bytes(rgb, little_endian=True)
    np.testing.assert_array_equal(read_radiance(tmp_path / "scene.pfm"), rgb)
    assert [p.name for p in tmp_path.iterdir()] == ["scene.pfm"]  # no temporary file left


@pytest.mark.parametrize("suffix", [".exr", ".pfm"])
def test_non_finite_and_negative_values_are_repaired(tmp_path, suffix):
    rgb = np.array([[[np.nan, 1.0, 2.0], [np.inf, 3.0, -np.inf]], [[-0.5, 4.0, 0.25], [5.0, 6.0, 7.0]]],
                   np.float32)
    path = tmp_path / f"bad{suffix}"
    if suffix == ".exr":
        _write_exr(path, {"RGB": rgb})
    else:
        path.write_bytes(_pfm_bytes(rgb, little_endian=True))
    expected = np.array([[[0.0, 1.0, 2.0], [7.0, 3.0, 0.0]], [[0.0, 4.0, 0.25], [5.0, 6.0, 7.0]]], np.float32)
    np.testing.assert_array_equal(read_radiance(path), expected)


def test_non_finite_values_do_not_spread_through_a_conversion(tmp_path):
    rgb = np.array([[[np.inf, 0.5, 0.5], [np.nan, 0.5, 0.5], [1.0, 1.0, 1.0]]], np.float32)
    radiance = read_radiance(_write_exr(tmp_path / "aces.exr", {"RGB": rgb}, chromaticities=AP0))
    repaired = np.array([[[1.0, 0.5, 0.5], [0.0, 0.5, 0.5], [1.0, 1.0, 1.0]]])
    np.testing.assert_allclose(radiance, np.clip(repaired @ AP0_TO_REC709.T, 0, None), rtol=1e-4, atol=1e-5)


def test_broken_files_are_image_errors(tmp_path):
    _write_exr(tmp_path / "whole.exr", {"RGB": np.random.default_rng(7).uniform(0, 1, (64, 64, 3)).astype(np.float32)})
    data = (tmp_path / "whole.exr").read_bytes()
    rgb = np.ones((2, 2, 3), np.float32)
    cases = {
        "garbage.exr": (b"not an EXR file at all", "not a readable OpenEXR image"),
        "header.exr": (data[:40], "not a readable OpenEXR image"),
        "pixels.exr": (data[:-300], "damaged or truncated"),
        "garbage.pfm": (b"P6\n2 2\n255\n" + bytes(12), "not a Portable Float Map"),
        "zero.pfm": (b"PF\n0 2\n-1.0\n", "a 0 x 2 image"),
        "scale.pfm": (b"PF\n1 1\nabc\n" + bytes(12), "scale abc"),
        "short.pfm": (_pfm_bytes(rgb, little_endian=True)[:-4], "truncated Portable Float Map"),
        "huge.hdr": (b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 1000000 +X 1000000\n" + bytes(16),
                     "not a readable Radiance RGBE"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ImageError, match=message) as error:
            read_radiance(tmp_path / name)
        assert str(error.value).startswith(f"{tmp_path / name}: ") and "\n" not in str(error.value)
    collinear = (0.3, 0.3, 0.4, 0.4, 0.5, 0.5, 0.3127, 0.329)
    _write_exr(tmp_path / "collinear.exr", {"RGB": rgb}, chromaticities=collinear)
    with pytest.raises(ImageError, match="define no RGB color space"):
        read_radiance(tmp_path / "collinear.exr")


def test_shared_radiance_files_read_as_rec709_rgb(shared_datasets):
    folder = shared_datasets / "hdr" / "radiance"
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in RADIANCE_EXTENSIONS)
    assert paths, f"no radiance files in {folder}"
    for path in paths:
        radiance = read_radiance(path)
        assert radiance.dtype == np.float32 and radiance.ndim == 3 and radiance.shape[2] == 3, path
        assert np.isfinite(radiance).all() and radiance.min() >= 0 and radiance.max() > 0, path
