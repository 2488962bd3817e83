"""Reading and writing radiance maps: Radiance ``.hdr`` (OpenCV), OpenEXR ``.exr`` (OpenEXR) and
Portable Float Map ``.pfm`` (numpy), read as linear RGB in Rec.709/sRGB primaries."""

from __future__ import annotations

import os
import re
from pathlib import Path

import cv2
import numpy as np

from mobile_sr.core.errors import ImageError
from mobile_sr.core.files import atomic_write_bytes, check_output_path

RADIANCE_EXTENSIONS = (".hdr", ".exr", ".pfm")

# CIE xy of the red, green and blue primaries and of the white point (D65), in the order of
# OpenEXR's ``chromaticities`` attribute; OpenEXR files without that attribute are Rec.709.
REC709_CHROMATICITIES = (0.64, 0.33, 0.30, 0.60, 0.15, 0.06, 0.3127, 0.3290)
# Cone response matrix of the Bradford chromatic adaptation transform (XYZ -> LMS).
_BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])
_EXR_LAYOUTS = "R, G and B (alpha is ignored), Y alone (gray) or Y, RY and BY (luminance/chroma)"
# Type, width, height and scale, each followed by whitespace; the pixels start right after the
# single whitespace character that ends the scale.
_PFM_HEADER = re.compile(rb"(P[Ff])\s+(\d+)\s+(\d+)\s+(\S+)\s")


def read_radiance(path: str | os.PathLike) -> np.ndarray:
    """Read a radiance map as ``H x W x 3`` float32 linear RGB in Rec.709/sRGB primaries.

    ``.hdr`` is Radiance RGBE; ``.exr`` is OpenEXR with R, G, B (and A) channels, luminance Y alone
    (replicated to gray RGB) or luminance/chroma Y, RY, BY, in any pixel type, converted to Rec.709
    when its ``chromaticities`` attribute names other primaries; ``.pfm`` is a color (PF) or gray
    (Pf) Portable Float Map of either byte order. Values a radiance map cannot use are repaired rather
    than refused, so that a few bad pixels do not lose a whole scene: NaN becomes 0, +inf the largest
    finite value of the image, and negative values (-inf, and colors outside the Rec.709 gamut after
    a conversion) are clipped to 0. Every failure is an :class:`ImageError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: empty file (0 bytes); re-copy or re-export it, or remove it")
    reader = {".hdr": _read_rgbe, ".exr": _read_exr, ".pfm": _read_pfm}.get(path.suffix.lower())
    if reader is None:
        raise ImageError(f"{path}: radiance maps must be {' or '.join(RADIANCE_EXTENSIONS)} files")
    try:
        rgb = reader(path)
    except OSError as exc:
        raise ImageError(f"{path}: cannot be read ({exc.strerror or exc}); check that the file is readable") from exc
    # Repaired again after the conversion: float32 products of huge finite values can overflow.
    return np.ascontiguousarray(np.maximum(_finite(rgb), 0.0), dtype=np.float32)


def write_radiance(path: str | os.PathLike, rgb: np.ndarray) -> None:
    """Write ``H x W x 3`` linear RGB as ``.hdr``, ``.exr`` (float32) or ``.pfm`` (color, float32,
    little endian), atomically."""
    path = Path(path)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or not np.isfinite(rgb).all() or rgb.min() < 0:
        raise ImageError(f"{path}: radiance must be H x W x 3, finite and non-negative, got {rgb.shape}")
    suffix = path.suffix.lower()
    if suffix == ".hdr":
        ok, encoded = cv2.imencode(".hdr", np.ascontiguousarray(rgb[:, :, ::-1], dtype=np.float32))
        if not ok:
            raise ImageError(f"{path}: Radiance encoding failed")
        atomic_write_bytes(path, encoded.tobytes())
    elif suffix == ".pfm":
        # A negative scale means little endian; PFM stores the bottom row first.
        header = f"PF\n{rgb.shape[1]} {rgb.shape[0]}\n-1.0\n".encode()
        atomic_write_bytes(path, header + np.ascontiguousarray(rgb[::-1], dtype="<f4").tobytes())
    elif suffix == ".exr":
        import OpenEXR

        check_output_path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial.exr")
        header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
        try:
            with OpenEXR.File(header, {"RGB": np.ascontiguousarray(rgb, dtype=np.float32)}) as exr:
                exr.write(str(partial))
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
    else:
        raise ImageError(f"{path}: write radiance maps as {' or '.join(RADIANCE_EXTENSIONS)}")


def _finite(pixels: np.ndarray) -> np.ndarray:
    """``pixels`` as float32 with NaN replaced by 0, +inf by the largest finite value and -inf by 0."""
    pixels = np.asarray(pixels, dtype=np.float32)
    finite = np.isfinite(pixels)
    if finite.all():
        return pixels
    return np.nan_to_num(pixels, nan=0.0, posinf=float(pixels[finite].max(initial=0.0)), neginf=0.0)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _read_rgbe(path: Path) -> np.ndarray:
    try:
        pixels = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:  # OpenCV raises, rather than returning None, for absurd image sizes
        pixels = None
    if pixels is None or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ImageError(f"{path}: not a readable Radiance RGBE (.hdr) image (damaged, truncated or in "
                         "another format); re-export it or remove it")
    return pixels[:, :, ::-1]


def _read_pfm(path: Path) -> np.ndarray:
    data = path.read_bytes()
    header = _PFM_HEADER.match(data)
    if header is None:
        raise ImageError(f"{path}: not a Portable Float Map (it must start with PF or Pf, the width, the "
                         "height and the scale); re-export it or remove it")
    width, height = int(header[2]), int(header[3])
    try:
        scale = float(header[4])
    except ValueError:
        scale = float("nan")
    if width == 0 or height == 0 or scale == 0 or not np.isfinite(scale):
        raise ImageError(f"{path}: the Portable Float Map header gives a {width} x {height} image with scale "
                         f"{header[4][:20].decode(errors='replace')}; sizes and scale must be non-zero numbers: "
                         "re-export it")
    channels = 3 if header[1] == b"PF" else 1
    needed, found = width * height * channels * 4, len(data) - header.end()
    if found < needed:
        raise ImageError(f"{path}: truncated Portable Float Map: {width} x {height} x {channels} floats need "
                         f"{needed} bytes, the file holds {found}; re-copy or re-export it")
    # The sign of the scale gives the byte order; its magnitude (a unit for the values) is ignored.
    pixels = np.frombuffer(data, dtype="<f4" if scale < 0 else ">f4", count=needed // 4, offset=header.end())
    pixels = pixels.reshape(height, width, channels)[::-1].astype(np.float32)
    return np.repeat(pixels, 3, axis=2) if channels == 1 else pixels


def _read_exr(path: Path) -> np.ndarray:
    import OpenEXR

    try:
        # Separate channels: the grouped "RGB"/"RGBA" entries the package makes by default fail
        # when R, G and B have different pixel types.
        with OpenEXR.File(str(path), separate_channels=True) as exr:
            if not exr.parts:  # how the package reports pixel data it could not decode
                raise ImageError(f"{path}: the OpenEXR pixel data is damaged or truncated; re-copy or "
                                 "re-export it")
            # Copied inside the block: closing the file empties its header and channel dicts.
            header = dict(exr.header())
            planes = {name: (np.array(channel.pixels, dtype=np.float32), channel.xSampling, channel.ySampling)
                      for name, channel in exr.channels().items()}
    except (OSError, RuntimeError, ValueError, TypeError) as exc:
        raise ImageError(f"{path}: not a readable OpenEXR image ({_one_line(exc)}); re-copy or re-export "
                         "it") from exc
    low, high = header["dataWindow"]
    height, width = int(high[1] - low[1] + 1), int(high[0] - low[0] + 1)

    def plane(name: str) -> np.ndarray:
        """Channel ``name`` at full resolution; repaired first if subsampled, or the interpolation
        would spread NaN and inf to its neighbours."""
        pixels, x_sampling, y_sampling = planes[name]
        if (x_sampling, y_sampling) == (1, 1):
            return pixels
        return _upsample(_finite(pixels), x_sampling, y_sampling, height, width)

    chromaticities, to_xyz = _exr_color_space(path, header)
    if all(name in planes for name in "RGB"):
        rgb = np.stack([plane(name) for name in "RGB"], axis=-1)
    elif all(name in planes for name in ("Y", "RY", "BY")):
        rgb = _from_luminance_chroma(*(_finite(plane(name)) for name in ("Y", "RY", "BY")), to_xyz[1])
    elif "Y" in planes:
        rgb = np.repeat(plane("Y")[:, :, None], 3, axis=2)
    else:
        raise ImageError(f"{path}: the OpenEXR image has the channels {', '.join(sorted(planes))}; mobile-sr "
                         f"reads {_EXR_LAYOUTS}: re-export it with one of those layouts")
    rgb = _finite(rgb)  # before the conversion mixes channels, where inf - inf would become NaN
    if np.abs(chromaticities - REC709_CHROMATICITIES).max() > 1e-3:
        rgb = rgb @ _to_rec709(to_xyz).T.astype(np.float32)
    return rgb


def _upsample(pixels: np.ndarray, x_sampling: int, y_sampling: int, height: int, width: int) -> np.ndarray:
    """Bilinearly interpolate a subsampled EXR channel to ``height x width``. Sample ``(i, j)``
    lies on pixel ``(i * y_sampling, j * x_sampling)`` of the data window (OpenEXR requires the
    window's origin to be a multiple of the sampling), so the interpolation is anchored there rather
    than at pixel centers as ``cv2.resize`` would be, which would also misplace odd-sized windows."""
    for axis, sampling, size in ((0, y_sampling, height), (1, x_sampling, width)):
        if sampling == 1:
            continue
        position = np.arange(size) / sampling
        last = pixels.shape[axis] - 1
        below = np.minimum(position.astype(int), last)
        above = np.minimum(below + 1, last)
        weight = (position - below).astype(np.float32).reshape((-1, 1) if axis == 0 else (1, -1))
        pixels = np.take(pixels, below, axis=axis) * (1 - weight) + np.take(pixels, above, axis=axis) * weight
    return pixels


def _from_luminance_chroma(luminance: np.ndarray, red_chroma: np.ndarray, blue_chroma: np.ndarray,
                           weights: np.ndarray) -> np.ndarray:
    """RGB from OpenEXR's luminance/chroma channels, ``RY = (R - Y) / Y`` and ``BY = (B - Y) / Y``,
    and the luminance ``weights`` of the file's primaries (``Y = wR R + wG G + wB B``)."""
    red, blue = luminance * (red_chroma + 1), luminance * (blue_chroma + 1)
    green = (luminance - weights[0] * red - weights[2] * blue) / weights[1]
    return np.stack([red, green, blue], axis=-1).astype(np.float32)


def _exr_color_space(path: Path, header: dict) -> tuple[np.ndarray, np.ndarray]:
    """The file's ``chromaticities`` (red, green, blue and white CIE xy; Rec.709 when it has none)
    and the RGB -> XYZ matrix they define."""
    value = header.get("chromaticities", REC709_CHROMATICITIES)
    try:
        chromaticities = np.asarray(value, dtype=np.float64).reshape(8)
        to_xyz = _rgb_to_xyz(chromaticities) if chromaticities[7] > 0 else None
    except (TypeError, ValueError):  # not 8 numbers, or primaries on one line (LinAlgError)
        to_xyz = None
    if to_xyz is None or not np.isfinite(to_xyz).all():
        raise ImageError(f"{path}: the OpenEXR chromaticities {value!r} define no RGB color space; re-export "
                         "the file with valid chromaticities or without them")
    return chromaticities, to_xyz


def _rgb_to_xyz(chromaticities: np.ndarray) -> np.ndarray:
    """The RGB -> XYZ matrix of primaries and white point given as CIE xy, scaled so that RGB white
    ``(1, 1, 1)`` has luminance 1: its Y row holds the luminance weights of R, G and B (0.2126,
    0.7152 and 0.0722 for Rec.709). The primaries are kept as (x, y, z) columns, not divided by y,
    so that primaries with y = 0 (XYZ files) work."""
    xy = chromaticities.reshape(4, 2)
    xyz = np.column_stack([xy, 1 - xy.sum(axis=1)])
    return xyz[:3].T * np.linalg.solve(xyz[:3].T, xyz[3] / xyz[3, 1])


def _to_rec709(to_xyz: np.ndarray) -> np.ndarray:
    """The matrix from RGB with the XYZ matrix ``to_xyz`` to Rec.709 RGB: to XYZ, Bradford adaptation
    of the file's white to D65 (the identity when they agree), then to Rec.709."""
    rec709_to_xyz = _rgb_to_xyz(np.array(REC709_CHROMATICITIES))
    source_cone, target_cone = _BRADFORD @ to_xyz.sum(axis=1), _BRADFORD @ rec709_to_xyz.sum(axis=1)
    adaptation = np.linalg.inv(_BRADFORD) @ np.diag(target_cone / source_cone) @ _BRADFORD
    return np.linalg.inv(rec709_to_xyz) @ adaptation @ to_xyz
