"""LR/HR image pairs for super-resolution.

Three sources, all giving :class:`SRPair` lists held in memory:

* any folder (searched recursively) of HR images: LR is made with MATLAB-compatible bicubic
  downscaling of the modcropped HR image and cached as PNG, so later runs do not resize again;
* the DIV2K layout (``DIV2K_{train,valid}_HR`` + ``DIV2K_{train,valid}_LR_bicubic/X{s}``), using
  the given LR images;
* the embedded default: natural color photos that ship inside scikit-image.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mobile_sr.core.errors import DatasetError, ImageError, OutputError
from mobile_sr.core.images import find_images, load_rgb, save_png
from mobile_sr.data.locations import default_photos, resolve_dataset
from mobile_sr.metrics import min_image_side
from mobile_sr.tasks.sr.protocol import check_scale
from mobile_sr.tasks.sr.resize import bicubic_downscale, modcrop


@dataclass(frozen=True, eq=False)
class SRPair:
    """One training or test image: uint8 RGB ``lr`` and its modcropped ``hr`` (``scale`` x larger)."""

    name: str
    lr: np.ndarray
    hr: np.ndarray
    scale: int

    def __post_init__(self) -> None:
        expected = (self.lr.shape[0] * self.scale, self.lr.shape[1] * self.scale)
        if self.hr.shape[:2] != expected:
            raise DatasetError(
                f"{self.name}: LR {self.lr.shape[:2]} x{self.scale} does not match HR "
                f"{self.hr.shape[:2]}; LR images must be the bicubic x1/{self.scale} of the HR"
            )


def default_cache_dir() -> Path:
    # an empty value counts as unset, as XDG variables do: not the working directory
    return Path(os.environ.get("MOBILE_SR_CACHE") or Path.home() / ".cache" / "mobile-sr")


def _cached_bicubic_lr(path: Path, hr: np.ndarray, scale: int, cache_dir: Path | None) -> np.ndarray:
    if cache_dir is None:
        return bicubic_downscale(hr, scale)
    stat = path.stat()
    key = hashlib.sha1(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
    cached = cache_dir / "bicubic" / f"x{scale}" / f"{key}.png"
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


def _check_evaluable(path: Path, hr: np.ndarray, scale: int) -> None:
    """Refuse an HR image (already cropped to a multiple of ``scale``) that PSNR/SSIM-Y cannot
    measure once evaluation has shaved ``scale`` border pixels."""
    if min(hr.shape[:2]) < min_image_side(scale):
        side = math.ceil(min_image_side(scale) / scale) * scale
        raise ImageError(f"{path}: {hr.shape[1]}x{hr.shape[0]} (cropped to a multiple of {scale}) is too small "
                         f"to evaluate at x{scale}; images must be at least {side}x{side} pixels: remove it or "
                         "use a larger image")


def load_hr_folder(folder: Path, scale: int, cache_dir: Path | None = None) -> list[SRPair]:
    """HR images below ``folder`` with bicubic LR (cached in ``cache_dir`` when given)."""
    check_scale(scale)
    pairs = []
    for path in find_images(folder):
        hr = modcrop(load_rgb(path), scale)
        _check_evaluable(path, hr, scale)
        lr = _cached_bicubic_lr(path, hr, scale, cache_dir)
        name = str(path.relative_to(folder).with_suffix(""))
        pairs.append(SRPair(name=name, lr=lr, hr=hr, scale=scale))
    return pairs


def is_div2k_root(folder: Path) -> bool:
    return any((folder / f"DIV2K_{split}_HR").is_dir() for split in ("train", "valid"))


def load_div2k(root: Path, scale: int, split: str = "train") -> list[SRPair]:
    """DIV2K with its official bicubic LR images: ``DIV2K_<split>_LR_bicubic/X<s>/0001x<s>.png``."""
    check_scale(scale)
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
    pairs = []
    for hr_path in find_images(hr_dir):
        lr_path = lr_dir / f"{hr_path.stem}x{scale}{hr_path.suffix}"
        if not lr_path.is_file():
            raise DatasetError(f"{lr_path}: missing LR image for {hr_path.name}")
        lr = load_rgb(lr_path)
        hr = load_rgb(hr_path)
        if hr.shape[0] < lr.shape[0] * scale or hr.shape[1] < lr.shape[1] * scale:
            raise DatasetError(f"{lr_path}: this {lr.shape[1]}x{lr.shape[0]} LR image is not the x1/{scale} of its "
                               f"{hr.shape[1]}x{hr.shape[0]} HR image {hr_path}; replace it with the official "
                               f"DIV2K x{scale} LR image")
        hr = hr[: lr.shape[0] * scale, : lr.shape[1] * scale]
        _check_evaluable(hr_path, hr, scale)
        pairs.append(SRPair(name=hr_path.stem, lr=lr, hr=hr, scale=scale))
    return pairs


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
    """Load ``(dataset name, pairs)`` from a dataset name or folder.

    ``split`` picks ``train`` or ``val`` for the default photos and DIV2K; a plain folder is
    returned whole (see :func:`mobile_sr.data.split.split_train_val`).
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    if not str(source).strip():
        raise DatasetError("the dataset is an empty string; pass a folder of HR images, a DIV2K root or 'default'")
    name, folder = resolve_dataset(str(source))
    if folder is None:
        return name, load_default_photos(scale, split)
    if is_div2k_root(folder):
        return f"DIV2K-{split}", load_div2k(folder, scale, "train" if split == "train" else "valid")
    if re.fullmatch(r"DIV2K_(train|valid)_LR_bicubic", folder.name):
        raise DatasetError(f"{folder}: pass the DIV2K root (the folder that holds {folder.name}/)")
    return name, load_hr_folder(folder, scale, cache_dir=cache_dir or default_cache_dir())


def describe_pairs(pairs: list[SRPair]) -> str:
    pixels = sum(pair.hr.shape[0] * pair.hr.shape[1] for pair in pairs)
    return f"{len(pairs)} images, {pixels / 1e6:.1f} MP of HR"
