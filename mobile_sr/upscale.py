"""Upscaling users' images with an exported .tflite model."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from mobile_sr.data.sr import find_images
from mobile_sr.errors import ImageError
from mobile_sr.images import load_rgb, save_png
from mobile_sr.tflite import TFLiteUpscaler


def upscale_path(*, tflite_path: Path, source: Path, destination: Path, tile: bool = False,
                 threads: int | None = None) -> Iterator[Path]:
    """Upscale ``source`` (an image, or a folder searched recursively) into ``destination`` (a PNG
    path, or a folder mirroring the source tree). Yields each file written."""
    upscaler = TFLiteUpscaler(tflite_path, tile=tile, threads=threads)
    source, destination = Path(source), Path(destination)
    if source.is_dir():
        if destination.suffix:
            raise ImageError(f"{destination}: give a folder to upscale the folder {source} into")
        jobs = [(path, destination / path.relative_to(source).with_suffix(".png")) for path in find_images(source)]
    else:
        if destination.is_dir() or not destination.suffix:
            destination = destination / (source.stem + ".png")
        elif destination.suffix.lower() != ".png":
            raise ImageError(f"{destination}: upscaled images are written as PNG; use a .png name")
        jobs = [(source, destination)]
    for image_path, out_path in jobs:
        save_png(out_path, upscaler(load_rgb(image_path)))
        yield out_path
