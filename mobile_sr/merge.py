"""Merging users' exposure brackets into an HDR image with an exported HDR ``.tflite`` model."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mobile_sr.data.hdr import HDRScene, MAX_EV_SPAN, RADIANCE_EXTENSIONS, write_radiance
from mobile_sr.errors import ImageError
from mobile_sr.hdr_protocol import EXPOSURES
from mobile_sr.images import load_rgb_unit, save_png
from mobile_sr.metrics import mu_tonemap
from mobile_sr.tflite import TFLiteMerger


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
    if list(stops) != sorted(stops):
        raise ImageError(f"exposures must go from short to long; their EV stops {stops} do not increase")
    merger = TFLiteMerger(tflite_path, threads=threads)
    ldrs = tuple(load_rgb_unit(path) for path in exposures)
    if len({ldr.shape for ldr in ldrs}) != 1:
        raise ImageError(f"the exposures differ in size: {', '.join(f'{p.name} {l.shape[1]}x{l.shape[0]}' for p, l in zip(exposures, ldrs))}")
    times = tuple(float(2.0 ** (stop - stops[0])) for stop in stops)
    hdr = merger(HDRScene(name=destination.stem, ldrs=ldrs, exposure_times=times))
    write_radiance(destination, hdr)
    written = [destination]
    if preview:
        preview_path = destination.with_suffix(".png")
        save_png(preview_path, np.round(mu_tonemap(hdr) * 255).astype(np.uint8))
        written.append(preview_path)
    return written
