"""Merging users' exposure brackets into an HDR image with an exported HDR ``.tflite`` model."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from mobile_sr.core.errors import ImageError, OutputError
from mobile_sr.core.files import check_output_path
from mobile_sr.core.images import load_rgb_unit, save_png
from mobile_sr.metrics import mu_tonemap
from mobile_sr.tasks.hdr.data import MAX_EV_SPAN, RADIANCE_EXTENSIONS, HDRScene, write_radiance
from mobile_sr.tasks.hdr.protocol import EXPOSURES
from mobile_sr.tasks.hdr.runner import TFLiteMerger


def merge_exposures(*, tflite_path: Path, exposures: list[Path], stops: list[float], destination: Path,
                    preview: bool = True, threads: int | None = None) -> list[Path]:
    """Merge three exposures (any 8- or 16-bit images, short to long, one size) taken ``stops`` EV
    apart into linear HDR at ``destination`` (``.hdr`` or ``.exr``), aligned to the middle one;
    with ``preview`` also its mu-law tonemapped PNG. Returns the files written."""
    destination = Path(destination)
    if len(exposures) != EXPOSURES or len(stops) != EXPOSURES:
        raise ImageError(f"give {EXPOSURES} exposures and {EXPOSURES} EV stops, got {len(exposures)} and {len(stops)}")
    if destination.suffix.lower() not in RADIANCE_EXTENSIONS:
        raise ImageError(f"{destination}: write the HDR result as {' or '.join(RADIANCE_EXTENSIONS)}")
    if not np.isfinite(stops).all() or np.ptp(stops) > MAX_EV_SPAN:
        raise ImageError(f"EV stops must be finite numbers at most {MAX_EV_SPAN:g} apart, got {stops}; give the "
                         "exposures' real EV values, e.g. 0,2,4")
    if any(longer <= shorter for shorter, longer in itertools.pairwise(stops)):
        raise ImageError(f"exposures must go from short to long; their EV stops {stops} do not strictly increase")
    inputs = [Path(path).resolve() for path in exposures]
    if len(set(inputs)) != len(inputs):
        raise ImageError(f"the exposures {', '.join(map(str, exposures))} name the same file more than once; give three "
                         "different exposures, short to long")
    outputs = [destination] + ([destination.with_suffix(".png")] if preview else [])
    _check_outputs(outputs, inputs=inputs + [Path(tflite_path).resolve()])
    merger = TFLiteMerger(tflite_path, threads=threads)
    ldrs = tuple(load_rgb_unit(path) for path in exposures)
    if len({ldr.shape for ldr in ldrs}) != 1:
        raise ImageError(f"the exposures differ in size: {', '.join(f'{p.name} {l.shape[1]}x{l.shape[0]}' for p, l in zip(exposures, ldrs, strict=True))}")
    times = tuple(float(2.0 ** (stop - stops[0])) for stop in stops)
    hdr = merger(HDRScene(name=destination.stem, ldrs=ldrs, exposure_times=times))
    write_radiance(destination, hdr)
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
