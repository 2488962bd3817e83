"""Merging users' exposure brackets into an HDR image with an exported HDR ``.tflite`` model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from mobile_sr.core.errors import ImageError, OutputError
from mobile_sr.core.files import check_output_path
from mobile_sr.core.images import save_png
from mobile_sr.metrics import mu_tonemap
from mobile_sr.tasks.hdr.bracket import prepare_bracket, read_bracket
from mobile_sr.tasks.hdr.radiance import RADIANCE_EXTENSIONS, write_radiance
from mobile_sr.tasks.hdr.runner import TFLiteMerger


def merge_exposures(*, tflite_path: Path, exposures: list[Path], destination: Path, stops: list[float] | None = None,
                    response=None, align: str = "mtb", preview: bool = True, threads: int | None = None,
                    log: Callable[[str], None] = print) -> list[Path]:
    """Merge three exposures of a scene (any 8- or 16-bit images of one size, in any order) into
    linear HDR at ``destination`` (``.hdr``, ``.exr`` or ``.pfm``), aligned to the middle one; with
    ``preview`` also its mu-law tonemapped PNG. Returns the files written.

    The exposures come from ``stops`` (EV, one per file) or from EXIF; a handheld bracket is
    aligned (``align``: mtb or none); the camera's response (None: estimated from the bracket)
    maps the images into the model's domain. The radiance is per second of the shortest
    exposure's shutter time when EXIF gives it, else relative to the shortest exposure."""
    destination = Path(destination)
    if destination.suffix.lower() not in RADIANCE_EXTENSIONS:
        raise ImageError(f"{destination}: write the HDR result as {' or '.join(RADIANCE_EXTENSIONS)}")
    inputs = [Path(path).resolve() for path in exposures]
    outputs = [destination] + ([destination.with_suffix(".png")] if preview else [])
    _check_outputs(outputs, inputs=inputs + [Path(tflite_path).resolve()])
    bracket = read_bracket(exposures, stops=stops)
    merger = TFLiteMerger(tflite_path, threads=threads, log=log)
    prepared = prepare_bracket(bracket, response=response, align=align)
    source = "EV stops" if stops is not None else "EXIF"
    log(f"{', '.join(bracket.names)}: exposures x{', x'.join(f'{e:.3g}' for e in bracket.exposures)} ({source}); "
        f"response {prepared.response.describe()}{' (estimated)' if response is None else ''}; "
        f"{'aligned to ' + bracket.names[1] if align == 'mtb' else 'not aligned'}")
    hdr = merger(prepared.scene)
    write_radiance(destination, hdr * np.float32(prepared.radiance_factor))
    written = [destination]
    if preview:
        save_png(outputs[1], np.round(mu_tonemap(hdr) * 255).astype(np.uint8))
        written.append(outputs[1])
    return written


def _check_outputs(outputs: list[Path], *, inputs: list[Path]) -> None:
    """Refuse, before any work, an output that would replace an input or could not be written."""
    for index, path in enumerate(outputs):
        if path.resolve() in inputs:
            what = "the destination" if index == 0 else "the tonemapped preview written next to the destination"
            raise OutputError(f"{path} is one of the inputs: {what} would replace it; give another destination"
                              + ("" if index == 0 else " name, or pass --no-preview"))
        check_output_path(path)
