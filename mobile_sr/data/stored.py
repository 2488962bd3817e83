"""Decoded images stored uncompressed on disk and read in row bands on demand, so that training
samples patches of a data set larger than memory: a patch costs one file read of the rows it
spans (no decoding), and the pages read live in the OS page cache, not in the process.

Each image is one ``.npy`` file (uint8 ``H x W x C``, C order): a standard format that
``np.load`` opens too. Files are written atomically, so a crash never leaves a half-written image
that a later run would read.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np

from mobile_sr.core.errors import ImageError
from mobile_sr.core.files import atomic_write_bytes


class StoredImage:
    """A uint8 image stored by :func:`store_image` (or its top-left part: :meth:`cropped`).

    Behaves as a read-only array where training needs one: ``shape``, ``image[rows, cols]``
    (slices with step 1; reads only those rows) and ``np.asarray(image)`` (reads it whole).
    Raises :class:`ImageError` for a missing, damaged or truncated file."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            with open(self.path, "rb") as file:
                version = np.lib.format.read_magic(file)
                read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                stored_shape, fortran_order, dtype = read_header(file)
                self._offset = file.tell()
                file_size = os.fstat(file.fileno()).st_size
        except (OSError, ValueError) as exc:
            raise ImageError(f"{self.path}: not a readable stored image ({exc}); delete it and it is made again") from None
        if dtype != np.uint8 or fortran_order or len(stored_shape) != 3 or file_size != self._offset + math.prod(stored_shape):
            raise ImageError(f"{self.path}: a damaged stored image (expected uint8 H x W x C in C order, "
                             f"{math.prod(stored_shape)} bytes of pixels); delete it and it is made again")
        self._stored_shape = self.shape = stored_shape

    def cropped(self, height: int, width: int) -> StoredImage:
        """The top-left ``height x width`` of this image (nothing is read)."""
        if height > self.shape[0] or width > self.shape[1]:
            raise ValueError(f"{self.path}: cannot crop {height}x{width} of a {self.shape[0]}x{self.shape[1]} image")
        view = object.__new__(StoredImage)
        view.__dict__.update(self.__dict__, shape=(height, width, self.shape[2]))
        return view

    def __getitem__(self, key) -> np.ndarray:
        rows, columns = key if isinstance(key, tuple) else (key, slice(None))
        if not (isinstance(rows, slice) and isinstance(columns, slice)):
            raise TypeError(f"a stored image reads [rows, columns] slices, not {key!r}; np.asarray() reads it whole")
        top, bottom, row_step = rows.indices(self.shape[0])
        left, right, column_step = columns.indices(self.shape[1])
        if row_step != 1 or column_step != 1:
            raise ValueError("a stored image reads slices with step 1 only")
        row_bytes = self._stored_shape[1] * self._stored_shape[2]
        band = np.empty((max(bottom - top, 0), *self._stored_shape[1:]), np.uint8)
        with open(self.path, "rb", buffering=0) as file:
            file.seek(self._offset + top * row_bytes)
            read = file.readinto(band)
        if read != band.nbytes:
            raise ImageError(f"{self.path}: truncated while training read it; delete it and it is made again")
        pixels = band[:, left:right]
        return pixels if pixels.flags.c_contiguous else np.ascontiguousarray(pixels)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        pixels = self[:, :]
        return pixels if dtype is None else pixels.astype(dtype)

    def __repr__(self) -> str:
        return f"StoredImage({str(self.path)!r}, shape={self.shape})"


def store_image(path: str | os.PathLike, pixels: np.ndarray) -> StoredImage:
    """Write uint8 ``H x W x C`` ``pixels`` to ``path`` atomically and return it as stored."""
    if pixels.dtype != np.uint8 or pixels.ndim != 3:
        raise ValueError(f"store_image needs uint8 H x W x C pixels, got {pixels.dtype} {pixels.shape}")
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(pixels), allow_pickle=False)
    atomic_write_bytes(path, buffer.getbuffer())
    return StoredImage(path)
