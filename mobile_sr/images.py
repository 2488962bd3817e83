"""Reading images into uint8 RGB arrays and writing PNGs atomically.

Every decoder path ends in :func:`load_rgb`: PNG/JPEG/BMP/TIFF, 8- or 16-bit, gray, gray+alpha, RGB
or RGBA in; ``H x W x 3`` uint8 RGB out. Decoding goes through OpenCV (it keeps 16 bits and reads
16-bit RGB TIFFs); Pillow first checks the file's integrity, because OpenCV silently fills a
truncated JPEG with gray instead of failing.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import tempfile
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from mobile_sr.errors import ImageError, OutputError

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


def _unwritable(path: Path, exc: OSError) -> OutputError:
    if exc.errno == errno.EISDIR:
        return OutputError(f"{path}: is a folder; give the path of a file to write")
    reason = exc.strerror or str(exc)
    if exc.filename is not None and Path(exc.filename) in path.parents:
        reason = f"cannot create the folder {exc.filename}: {reason}"
    return OutputError(f"{path}: cannot be written ({reason}); choose a path in a folder you can "
                       "write to, or fix that folder's permissions")


def check_output_path(path: str | os.PathLike) -> None:
    """Raise :class:`OutputError` now, before any expensive work, if a file could not be written
    at ``path``: create a throwaway file next to it (and any missing parent folders), then remove
    everything that was created."""
    path = Path(path)
    created = []
    try:
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
        missing = [folder for folder in path.parents if not folder.exists()]
        for folder in reversed(missing):
            with contextlib.suppress(FileExistsError):  # a path through "..", or made meanwhile
                folder.mkdir()
                created.append(folder)
        handle, probe = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        raise _unwritable(path, exc) from None
    finally:
        for folder in reversed(created):
            with contextlib.suppress(OSError):  # something else wrote there meanwhile: keep it
                folder.rmdir()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the complete new one.
    The file gets the permissions ``open()`` would give it (0o666 less the umask)."""
    path = Path(path)
    tmp_path = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Not mkstemp: it creates the file 0o600; os.open applies the umask as open() does.
        handle = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise _unwritable(path, exc) from None
    try:
        with os.fdopen(handle, "wb") as tmp:
            tmp.write(data)
        os.replace(tmp_path, path)
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        raise _unwritable(path, exc) from None
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def save_png(path: str | os.PathLike, rgb: np.ndarray) -> None:
    """Write an ``H x W x 3`` uint8 RGB array as a PNG, atomically."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ImageError(f"save_png needs H x W x 3 uint8 RGB, got {rgb.dtype} {rgb.shape}")
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(rgb[:, :, ::-1]))
    if not ok:
        raise ImageError(f"{path}: PNG encoding failed")
    atomic_write_bytes(path, encoded.tobytes())
