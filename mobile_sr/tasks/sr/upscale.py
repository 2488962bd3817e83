"""Upscaling users' images with an exported .tflite model."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from mobile_sr.core.errors import ImageError
from mobile_sr.core.images import find_images, load_rgb, save_png
from mobile_sr.tasks.sr.runner import TFLiteUpscaler


def upscale_path(*, tflite_path: Path, source: Path, destination: Path, tile: bool = False,
                 threads: int | None = None, log: Callable[[str], None] | None = None) -> Iterator[Path]:
    """Upscale ``source`` (an image, or a folder searched recursively) into ``destination`` (a PNG
    path, or a folder mirroring the source tree). Yields each file written; ``log`` gets the
    progress of large images, which run in tiles (:class:`TFLiteUpscaler`). Refuses, before
    writing anything, to overwrite an input or to write two inputs to one file; with several
    inputs, every one is read first, so an unreadable one stops the run before any output."""
    source, destination = Path(source), Path(destination)
    if source.is_dir():
        if destination.suffix:
            raise ImageError(f"{destination}: give a folder to upscale the folder {source} into")
        if destination.resolve() == source.resolve():
            raise ImageError(f"{destination} is the folder being upscaled; give another destination folder, "
                             "so that the originals are kept")
        outputs = destination.resolve()
        # a destination inside the source holds earlier outputs, not inputs
        jobs = [(path, destination / path.relative_to(source).with_suffix(".png")) for path in find_images(source)
                if outputs not in path.resolve().parents]
    else:
        if destination.is_dir() or not destination.suffix:
            destination = destination / (source.stem + ".png")
        elif destination.suffix.lower() != ".png":
            raise ImageError(f"{destination}: upscaled images are written as PNG; use a .png name")
        jobs = [(source, destination)]
    _check_destinations(jobs)
    upscaler = TFLiteUpscaler(tflite_path, tile=tile, threads=threads, log=log)
    if len(jobs) > 1:
        for image_path, _ in jobs:
            load_rgb(image_path)  # one image at a time: decoding is cheap next to upscaling
    for image_path, out_path in jobs:
        save_png(out_path, upscaler(load_rgb(image_path)))
        yield out_path


def _check_destinations(jobs: list[tuple[Path, Path]]) -> None:
    """Refuse an output that is one of the inputs, or that two inputs would share."""
    inputs = {image_path.resolve() for image_path, _ in jobs}
    writers: dict[Path, Path] = {}
    for image_path, out_path in jobs:
        resolved = out_path.resolve()
        if resolved in inputs:
            raise ImageError(f"{out_path} is one of the input images: writing it would replace the original; "
                             "give another destination")
        if resolved in writers:
            raise ImageError(f"{writers[resolved]} and {image_path} would both be written to {out_path}; "
                             "rename one of them, or upscale them separately")
        writers[resolved] = image_path
