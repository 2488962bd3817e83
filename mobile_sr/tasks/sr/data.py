"""LR/HR image pairs for super-resolution.

Three sources:

* any folder (searched recursively) of HR images: LR is made with MATLAB-compatible bicubic
  downscaling of the modcropped HR image and cached as PNG, so later runs do not resize again;
* the DIV2K layout (``DIV2K_{train,valid}_HR`` + ``DIV2K_{train,valid}_LR_bicubic/X{s}``), using
  the given LR images;
* the embedded default: natural color photos that ship inside scikit-image.

Two ways to load them: :func:`load_sr_pairs` decodes every pair into memory (evaluation);
:func:`stored_sr_pairs` gives pairs whose images are read on demand from the training cache,
where each image is decoded once (training: memory does not grow with the data set).
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import math
import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from mobile_sr.core.errors import DatasetError, ImageError, OutputError
from mobile_sr.core.files import free_bytes
from mobile_sr.core.images import find_images, load_rgb, save_png
from mobile_sr.core.progress import Progress
from mobile_sr.data.locations import default_photos, printable_name, resolve_dataset
from mobile_sr.data.stored import StoredImage, store_image
from mobile_sr.metrics import min_image_side
from mobile_sr.tasks.sr.protocol import check_scale
from mobile_sr.tasks.sr.resize import bicubic_downscale, modcrop

Pixels = np.ndarray | StoredImage  # uint8 RGB, in memory or read on demand


@dataclass(frozen=True, eq=False)
class SRPair:
    """One training or test image: uint8 RGB ``lr`` and its modcropped ``hr`` (``scale`` x larger),
    arrays or :class:`StoredImage` s (see :meth:`in_memory`)."""

    name: str
    lr: Pixels
    hr: Pixels
    scale: int

    def __post_init__(self) -> None:
        expected = (self.lr.shape[0] * self.scale, self.lr.shape[1] * self.scale)
        if self.hr.shape[:2] != expected:
            raise DatasetError(
                f"{self.name}: LR {self.lr.shape[:2]} x{self.scale} does not match HR "
                f"{self.hr.shape[:2]}; LR images must be the bicubic x1/{self.scale} of the HR"
            )

    def in_memory(self) -> SRPair:
        """This pair with both images as arrays (stored ones are read)."""
        if isinstance(self.lr, np.ndarray) and isinstance(self.hr, np.ndarray):
            return self
        return SRPair(self.name, np.asarray(self.lr), np.asarray(self.hr), self.scale)


@dataclass(frozen=True)
class _SourceImage:
    """One HR image of a dataset and the LR image the dataset gives for it (DIV2K); without one
    (``lr_path`` None) the LR image is the bicubic downscale of the modcropped HR image."""

    name: str
    hr_path: Path
    lr_path: Path | None = None


def default_cache_dir() -> Path:
    # an empty value counts as unset, as XDG variables do: not the working directory
    return Path(os.environ.get("MOBILE_SR_CACHE") or Path.home() / ".cache" / "mobile-sr")


def _file_key(path: Path) -> str:
    """A cache key of the image file at ``path``, which changes when the file does."""
    stat = path.stat()
    # The path's own bytes: a name that is not valid UTF-8 holds surrogates that .encode() refuses.
    # "upright": LR cached before EXIF orientation was applied may match a flipped HR's shape.
    return hashlib.sha1(
        os.fsencode(path.resolve()) + f"|{stat.st_size}|{stat.st_mtime_ns}|upright".encode()
    ).hexdigest()


def _cached_bicubic_lr(path: Path, hr: np.ndarray, scale: int, cache_dir: Path | None) -> np.ndarray:
    if cache_dir is None:
        return bicubic_downscale(hr, scale)
    cached = cache_dir / "bicubic" / f"x{scale}" / f"{_file_key(path)}.png"
    if cached.is_file():
        lr = cv2.imread(str(cached), cv2.IMREAD_COLOR)
        if lr is not None and lr.shape[:2] == (hr.shape[0] // scale, hr.shape[1] // scale):
            return np.ascontiguousarray(lr[:, :, ::-1])
    lr = bicubic_downscale(hr, scale)
    try:
        save_png(cached, lr)
    except OutputError:
        pass  # a read-only cache only costs the resize next time
    return lr


def _check_evaluable(path: Path, hr: Pixels, scale: int) -> None:
    """Refuse an HR image (already cropped to a multiple of ``scale``) that PSNR/SSIM-Y cannot
    measure once evaluation has shaved ``scale`` border pixels."""
    if min(hr.shape[:2]) < min_image_side(scale):
        side = math.ceil(min_image_side(scale) / scale) * scale
        raise ImageError(f"{path}: {hr.shape[1]}x{hr.shape[0]} (cropped to a multiple of {scale}) is too small "
                         f"to evaluate at x{scale}; images must be at least {side}x{side} pixels: remove it or "
                         "use a larger image")


def _top_left(image: Pixels, height: int, width: int) -> Pixels:
    return image.cropped(height, width) if isinstance(image, StoredImage) else image[:height, :width]


def _pair(image: _SourceImage, lr: Pixels, hr: Pixels, scale: int) -> SRPair:
    """The pair of a dataset's given ``lr`` image and its ``hr`` image, cropped to match."""
    if hr.shape[0] < lr.shape[0] * scale or hr.shape[1] < lr.shape[1] * scale:
        raise DatasetError(f"{image.lr_path}: this {lr.shape[1]}x{lr.shape[0]} LR image is not the x1/{scale} of its "
                           f"{hr.shape[1]}x{hr.shape[0]} HR image {image.hr_path}; replace it with the official "
                           f"DIV2K x{scale} LR image")
    hr = _top_left(hr, lr.shape[0] * scale, lr.shape[1] * scale)
    _check_evaluable(image.hr_path, hr, scale)
    return SRPair(name=image.name, lr=lr, hr=hr, scale=scale)


def _folder_images(folder: Path) -> list[_SourceImage]:
    """The HR images below ``folder``, named by their path in it."""
    return [_SourceImage(printable_name(str(path.relative_to(folder).with_suffix(""))), path)
            for path in find_images(folder)]


def is_div2k_root(folder: Path) -> bool:
    return any((folder / f"DIV2K_{split}_HR").is_dir() for split in ("train", "valid"))


def _div2k_images(root: Path, scale: int, split: str) -> list[_SourceImage]:
    """DIV2K with its official bicubic LR images: ``DIV2K_<split>_LR_bicubic/X<s>/0001x<s>.png``."""
    hr_dir = root / f"DIV2K_{split}_HR"
    lr_dir = root / f"DIV2K_{split}_LR_bicubic" / f"X{scale}"
    if not hr_dir.is_dir():
        other = next((root / f"DIV2K_{s}_HR" for s in ("train", "valid") if (root / f"DIV2K_{s}_HR").is_dir()), None)
        alternative = f", or pass {other} itself to use its HR images with bicubic LR" if other else ""
        raise DatasetError(f"{root}: DIV2K root without {hr_dir.name}/, which its {split} split needs; add "
                           f"{hr_dir} (and {lr_dir}){alternative}")
    if not lr_dir.is_dir():
        raise DatasetError(
            f"{root}: {lr_dir.relative_to(root)} is missing; add the official x{scale} LR images "
            f"or pass {hr_dir} itself to degrade the HR images with bicubic"
        )
    images = []
    for hr_path in find_images(hr_dir):
        lr_path = lr_dir / f"{hr_path.stem}x{scale}{hr_path.suffix}"
        if not lr_path.is_file():
            raise DatasetError(f"{lr_path}: missing LR image for {hr_path.name}")
        images.append(_SourceImage(printable_name(hr_path.stem), hr_path, lr_path))
    return images


def _dataset_images(source: str | os.PathLike, scale: int, split: str) -> tuple[str, list[_SourceImage] | None]:
    """``(dataset name, its images)``; None for the embedded default photos."""
    check_scale(scale)
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    if not str(source).strip():
        raise DatasetError("the dataset is an empty string; pass a folder of HR images, a DIV2K root or 'default'")
    name, folder = resolve_dataset(str(source))
    if folder is None:
        return name, None
    if is_div2k_root(folder):
        return f"DIV2K-{split}", _div2k_images(folder, scale, "train" if split == "train" else "valid")
    if re.fullmatch(r"DIV2K_(train|valid)_LR_bicubic", folder.name):
        raise DatasetError(f"{folder}: pass the DIV2K root (the folder that holds {folder.name}/)")
    return name, _folder_images(folder)


def _load_pair(image: _SourceImage, scale: int, cache_dir: Path) -> SRPair:
    if image.lr_path is not None:
        return _pair(image, load_rgb(image.lr_path), load_rgb(image.hr_path), scale)
    hr = modcrop(load_rgb(image.hr_path), scale)
    _check_evaluable(image.hr_path, hr, scale)
    return SRPair(name=image.name, lr=_cached_bicubic_lr(image.hr_path, hr, scale, cache_dir), hr=hr, scale=scale)


def load_default_photos(scale: int, split: str) -> list[SRPair]:
    """The natural photos embedded in scikit-image, degraded with bicubic (no download)."""
    check_scale(scale)
    pairs = []
    for name, photo in default_photos(split):
        hr = modcrop(photo, scale)
        pairs.append(SRPair(name=name, lr=bicubic_downscale(hr, scale), hr=hr, scale=scale))
    return pairs


def load_sr_pairs(
    source: str | os.PathLike, scale: int, *, split: str = "train", cache_dir: Path | None = None
) -> tuple[str, list[SRPair]]:
    """Load ``(dataset name, pairs)`` from a dataset name or folder, every image in memory.

    ``split`` picks ``train`` or ``val`` for the default photos and DIV2K; a plain folder is
    returned whole (see :func:`mobile_sr.data.split.split_train_val`).
    """
    name, images = _dataset_images(source, scale, split)
    if images is None:
        return name, load_default_photos(scale, split)
    return name, [_load_pair(image, scale, cache_dir or default_cache_dir()) for image in images]


# --- the training cache: each image decoded once, then read on demand ------------------------

STORED_FOLDER = "stored"  # below the cache folder
# Images prepared at once: decoding and resizing release the GIL, so threads share the cores.
PREPARE_THREADS = min(4, os.cpu_count() or 1)


def _stored_files(image: _SourceImage, scale: int, store: Path) -> tuple[Path, Path]:
    """Where the decoded HR image (upright, whole: shared by all scales) and LR image are stored."""
    hr_key = _file_key(image.hr_path)
    lr_name = f"{hr_key}_x{scale}" if image.lr_path is None else _file_key(image.lr_path)
    return store / f"{hr_key}.npy", store / f"{lr_name}.npy"


def _stored_pair(image: _SourceImage, scale: int, store: Path) -> SRPair | None:
    """The pair as stored, or None when either image still has to be prepared."""
    hr_file, lr_file = _stored_files(image, scale, store)
    try:
        hr, lr = StoredImage(hr_file), StoredImage(lr_file)
    except ImageError:  # missing, or damaged (a write was cut off before the rename): prepare again
        return None
    if image.lr_path is not None:
        return _pair(image, lr, hr, scale)
    hr = _top_left(hr, hr.shape[0] - hr.shape[0] % scale, hr.shape[1] - hr.shape[1] % scale)
    _check_evaluable(image.hr_path, hr, scale)
    if lr.shape[:2] != (hr.shape[0] // scale, hr.shape[1] // scale):
        return None
    return SRPair(name=image.name, lr=lr, hr=hr, scale=scale)


def _prepare(image: _SourceImage, scale: int, cache_dir: Path) -> None:
    """Decode ``image`` (and make or decode its LR image) into the training cache."""
    hr_file, lr_file = _stored_files(image, scale, cache_dir / STORED_FOLDER)
    try:
        hr = np.asarray(StoredImage(hr_file))  # prepared at another scale already
    except ImageError:
        hr = load_rgb(image.hr_path)
        store_image(hr_file, hr)
    if image.lr_path is None:
        hr = modcrop(hr, scale)
        _check_evaluable(image.hr_path, hr, scale)
        lr = _cached_bicubic_lr(image.hr_path, hr, scale, cache_dir)
    else:
        lr = load_rgb(image.lr_path)
    store_image(lr_file, lr)


def _bytes_to_store(images: list[_SourceImage], scale: int, store: Path) -> int:
    """About how many bytes preparing ``images`` adds to ``store`` (from the image files' headers;
    nothing is decoded)."""
    total = 0
    for image in images:
        hr_stored = _stored_files(image, scale, store)[0].is_file()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(image.hr_path) as opened:
                    width, height = opened.size
        except (OSError, ValueError, Image.DecompressionBombError):  # preparing it names the problem
            continue
        total += 3 * ((0 if hr_stored else width * height) + (width // scale) * (height // scale))
    return total


def _prepare_all(images: list[_SourceImage], scale: int, cache_dir: Path, *, dataset: str,
                 log: Callable[[str], None]) -> None:
    store = cache_dir / STORED_FOLDER
    needed, free = _bytes_to_store(images, scale, store), free_bytes(cache_dir)
    if needed > free:
        raise OutputError(f"{store}: decoding {len(images)} images of {dataset} for training takes about "
                          f"{needed / 1e9:.1f} GB, but its disk has {free / 1e9:.1f} GB free; free space, or set "
                          "MOBILE_SR_CACHE to a folder on a larger disk")
    log(f"preparing {len(images)} images of {dataset} at x{scale} for training: decoded once into {store} "
        f"(about {needed / 1e9:.1f} GB), from where training reads the patches it needs")
    progress = Progress(len(images), "prepared", log)
    pool = concurrent.futures.ThreadPoolExecutor(PREPARE_THREADS)
    try:
        for done in concurrent.futures.as_completed([pool.submit(_prepare, image, scale, cache_dir) for image in images]):
            done.result()
            progress.advance()
    except OutputError as exc:
        raise OutputError(f"the training cache {store} cannot be written: {exc}. The images prepared so far are kept "
                          "and reused; or set MOBILE_SR_CACHE to a folder on another disk") from None
    finally:  # an error or Ctrl-C: finish the images being written, start no more
        pool.shutdown(cancel_futures=True)


def stored_sr_pairs(
    source: str | os.PathLike, scale: int, *, split: str = "train", cache_dir: Path | None = None,
    log: Callable[[str], None] = print,
) -> tuple[str, list[SRPair]]:
    """``(dataset name, pairs)`` as :func:`load_sr_pairs` gives them, but with images read on
    demand from the training cache (``cache_dir``, by default :func:`default_cache_dir`, in
    ``stored/``): images not there yet are decoded into it first, with progress through ``log``.
    Each file is written atomically, so an interrupted preparation resumes where it stopped. The
    default photos (a few megapixels) stay in memory."""
    name, images = _dataset_images(source, scale, split)
    if images is None:
        return name, load_default_photos(scale, split)
    cache_dir = cache_dir or default_cache_dir()
    store = cache_dir / STORED_FOLDER
    pairs = [_stored_pair(image, scale, store) for image in images]
    missing = [image for image, pair in zip(images, pairs, strict=True) if pair is None]
    if missing:
        _prepare_all(missing, scale, cache_dir, dataset=name, log=log)
        pairs = [pair or _stored_pair(image, scale, store) for image, pair in zip(images, pairs, strict=True)]
    return name, pairs


def describe_pairs(pairs: list[SRPair]) -> str:
    pixels = sum(pair.hr.shape[0] * pair.hr.shape[1] for pair in pairs)
    stored = any(isinstance(pair.hr, StoredImage) for pair in pairs)
    return f"{len(pairs)} images, {pixels / 1e6:.1f} MP of HR{' (in the training cache, read as needed)' if stored else ''}"
