"""Reading images into uint8 RGB arrays, finding them in folders, and writing PNGs atomically.

Every decoder path ends in :func:`load_rgb`: PNG/JPEG/BMP/TIFF, 8- or 16-bit, gray, gray+alpha, RGB
or RGBA in; ``H x W x 3`` uint8 RGB out, turned upright as its EXIF orientation says. Decoding goes
through OpenCV (it keeps 16 bits and reads 16-bit RGB TIFFs); Pillow first reads the header, to
refuse a decompression bomb before anything is decoded and to read the EXIF orientation, and then
checks the file's integrity, because OpenCV silently fills a truncated JPEG with gray instead of
failing.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from mobile_sr.core.errors import DatasetError, ImageError
from mobile_sr.core.files import atomic_write_bytes

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
MAX_PIXELS_VARIABLE = "MOBILE_SR_MAX_IMAGE_PIXELS"
# Pillow's own limit: it raises DecompressionBombError above 2 x Image.MAX_IMAGE_PIXELS pixels.
DEFAULT_MAX_IMAGE_PIXELS = 178_956_970
_EXIF_ORIENTATION = 274
# EXIF orientation -> the transpose that makes an H x W (x C) array upright, as Pillow's
# ImageOps.exif_transpose does it (5-8 swap height and width).
_UPRIGHT: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda pixels: pixels[:, ::-1],
    3: lambda pixels: pixels[::-1, ::-1],
    4: lambda pixels: pixels[::-1],
    5: lambda pixels: pixels.swapaxes(0, 1),
    6: lambda pixels: np.rot90(pixels, -1),
    7: lambda pixels: pixels[::-1, ::-1].swapaxes(0, 1),
    8: lambda pixels: np.rot90(pixels, 1),
}
# Image.MAX_IMAGE_PIXELS is process-wide: one thread at a time switches Pillow's check off.
_PILLOW_LIMIT_LOCK = threading.Lock()


def max_image_pixels() -> int:
    """The most pixels an image may declare: ``$MOBILE_SR_MAX_IMAGE_PIXELS`` (read on every load,
    an empty value counts as unset), else Pillow's limit, :data:`DEFAULT_MAX_IMAGE_PIXELS`."""
    value = os.environ.get(MAX_PIXELS_VARIABLE, "").strip()
    if not value:
        return DEFAULT_MAX_IMAGE_PIXELS
    try:
        limit = int(value)
    except ValueError:
        limit = 0
    if limit <= 0:
        raise ImageError(f"{MAX_PIXELS_VARIABLE}={value!r}: expected a positive whole number of pixels "
                         f"(default {DEFAULT_MAX_IMAGE_PIXELS}), e.g. {MAX_PIXELS_VARIABLE}=400000000")
    return limit


@contextlib.contextmanager
def _without_pillow_size_check() -> Iterator[None]:
    """Pillow's decompression-bomb check switched off: :func:`_inspect` applies
    :func:`max_image_pixels` instead, which may be higher than Pillow's and names the file."""
    with _PILLOW_LIMIT_LOCK:
        previous, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = previous


def _inspect(path: Path) -> int:
    """Refuse a file that declares more than :func:`max_image_pixels` pixels (from its header,
    before anything is decoded), check that it decodes completely, and return its EXIF orientation
    (1, upright, when it has none or Pillow cannot read the file)."""
    limit = max_image_pixels()
    try:
        # A damaged TIFF makes Pillow warn before it fails; the error below says it in one line.
        with warnings.catch_warnings(), _without_pillow_size_check():
            warnings.filterwarnings("ignore", message="Corrupt EXIF data", category=UserWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > limit:
                    raise ImageError(
                        f"{path}: declares {width}x{height} = {width * height:,} pixels, more than the limit "
                        f"of {limit:,} that guards against decompression bombs; if the image is genuine, "
                        f"set {MAX_PIXELS_VARIABLE} to a larger number of pixels"
                    )
                image.load()
                orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
    except UnidentifiedImageError:
        return 1  # Pillow cannot read some TIFF variants OpenCV can; let OpenCV decide.
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(
            f"{path}: the file is damaged or truncated ({exc}); re-export or remove it"
        ) from exc
    return orientation


def _decode_rgb(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file into upright ``H x W x 3`` RGB in its own bit depth (uint8 or uint16)."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: empty file (0 bytes); re-copy or re-export it, or remove it")
    orientation = _inspect(path)
    try:
        # IMREAD_UNCHANGED keeps 16 bits and ignores the EXIF orientation, which is applied below.
        pixels = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:  # e.g. above OpenCV's own limit of 2**30 pixels
        reason = str(exc).strip().splitlines()[-1]
        raise ImageError(
            f"{path}: OpenCV cannot decode it ({reason}); for a genuine image above OpenCV's limit of "
            f"{2**30:,} pixels, also set OPENCV_IO_MAX_IMAGE_PIXELS before mobile-sr starts"
        ) from None
    if pixels is None or pixels.size == 0:
        raise ImageError(
            f"{path}: not a readable image (damaged, truncated or in another format); mobile-sr reads "
            f"{', '.join(IMAGE_EXTENSIONS)} files: re-export it or remove it"
        )
    if pixels.dtype not in (np.uint8, np.uint16):
        raise ImageError(
            f"{path}: {pixels.dtype} pixels are not supported; convert it to an 8- or 16-bit image"
        )
    upright = _UPRIGHT.get(orientation)
    if upright is not None:
        pixels = np.ascontiguousarray(upright(pixels))
    if pixels.ndim == 2:
        return np.repeat(pixels[:, :, None], 3, axis=2)
    channels = pixels.shape[2]
    if channels == 1:
        return np.repeat(pixels, 3, axis=2)
    if channels == 2:  # gray + alpha
        return np.repeat(pixels[:, :, :1], 3, axis=2)
    if channels in (3, 4):
        return np.ascontiguousarray(pixels[:, :, 2::-1])  # BGR(A) -> RGB
    raise ImageError(f"{path}: {channels}-channel images are not supported; save it as RGB")


def load_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as an ``H x W x 3`` uint8 RGB array.

    Gray is replicated to three channels, alpha is dropped, 16-bit values are rounded to 8 bits and
    the image is turned upright as its EXIF orientation says (as a phone's photo viewer shows it).
    """
    pixels = _decode_rgb(path)
    if pixels.dtype == np.uint16:
        return np.round(pixels.astype(np.float32) / 257.0).astype(np.uint8)
    return pixels


def load_rgb_unit(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as ``H x W x 3`` float32 RGB in [0, 1], keeping 16-bit precision (the
    LDR exposures of HDR datasets are 16-bit TIFFs)."""
    pixels = _decode_rgb(path)
    return pixels.astype(np.float32) / float(np.iinfo(pixels.dtype).max)


def save_png(path: str | os.PathLike, rgb: np.ndarray) -> None:
    """Write an ``H x W x 3`` uint8 RGB array as a PNG, atomically."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ImageError(f"save_png needs H x W x 3 uint8 RGB, got {rgb.dtype} {rgb.shape}")
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(rgb[:, :, ::-1]))
    if not ok:
        raise ImageError(f"{path}: PNG encoding failed")
    atomic_write_bytes(path, encoded.tobytes())


def find_images(folder: Path) -> list[Path]:
    """All image files below ``folder`` (recursively), sorted by path."""
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder; pass a folder of HR images")
    files = sorted(
        path for path in folder.rglob("*")
        if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file() and not path.name.startswith(".")
    )
    if not files:
        raise DatasetError(
            f"{folder}: no images found (looked for {', '.join(IMAGE_EXTENSIONS)} in it and its "
            "subfolders)"
        )
    return files


def pad_to_multiple(image: np.ndarray, multiple: int) -> np.ndarray:
    """``image`` (H x W x C) reflect-padded at the bottom and right to multiples of ``multiple``."""
    pad = ((0, -image.shape[0] % multiple), (0, -image.shape[1] % multiple), (0, 0))
    return np.pad(image, pad, mode="reflect") if pad[0][1] or pad[1][1] else image
