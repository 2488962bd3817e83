"""Reading images into uint8 RGB arrays, finding them in folders, and writing PNGs atomically.

Every decoder path ends in :func:`load_rgb`: PNG/JPEG/BMP/TIFF, 8- or 16-bit, gray, gray+alpha, RGB
or RGBA in; ``H x W x 3`` uint8 RGB out. Decoding goes through OpenCV (it keeps 16 bits and reads
16-bit RGB TIFFs); Pillow first checks the file's integrity, because OpenCV silently fills a
truncated JPEG with gray instead of failing.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from mobile_sr.core.errors import DatasetError, ImageError
from mobile_sr.core.files import atomic_write_bytes

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def _check_integrity(path: Path) -> None:
    try:
        # A damaged TIFF makes Pillow warn before it fails; the error below says it in one line.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Corrupt EXIF data", category=UserWarning)
            with Image.open(path) as image:
                image.load()
    except UnidentifiedImageError:
        return  # Pillow cannot read some TIFF variants OpenCV can; let OpenCV decide.
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(
            f"{path}: the file is damaged or truncated ({exc}); re-export or remove it"
        ) from exc


def _decode_rgb(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file into ``H x W x 3`` RGB in its own bit depth (uint8 or uint16)."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: empty file (0 bytes); re-copy or re-export it, or remove it")
    _check_integrity(path)
    pixels = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None or pixels.size == 0:
        raise ImageError(
            f"{path}: not a readable image (damaged, truncated or in another format); mobile-sr reads "
            f"{', '.join(IMAGE_EXTENSIONS)} files: re-export it or remove it"
        )
    if pixels.dtype not in (np.uint8, np.uint16):
        raise ImageError(
            f"{path}: {pixels.dtype} pixels are not supported; convert it to an 8- or 16-bit image"
        )
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

    Gray is replicated to three channels, alpha is dropped and 16-bit values are rounded to 8 bits.
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
