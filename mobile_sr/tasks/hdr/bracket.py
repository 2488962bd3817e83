"""Real exposure brackets as HDR networks need them: the exposures read from EXIF (or given in EV
stops), in any order, a handheld bracket aligned to its middle exposure, and the camera's own
response mapped into the gamma-2.2 domain the networks are trained in."""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from mobile_sr.core.errors import ImageError
from mobile_sr.core.images import load_rgb_unit
from mobile_sr.tasks.hdr.protocol import EXPOSURES, REFERENCE_EXPOSURE
from mobile_sr.tasks.hdr.response import estimate_response, to_network_domain
from mobile_sr.tasks.hdr.scene import MAX_EV_SPAN, HDRScene

ALIGNMENTS = ("mtb", "none")
MAX_ALIGNMENT_LEVELS = 6  # pyramid levels of the alignment search: shifts up to 2^6 = 64 pixels
# EXIF tags (in the Exif IFD): shutter time in seconds, f-number, ISO
_EXIF_IFD, _EXPOSURE_TIME, _F_NUMBER, _ISO = 0x8769, 33434, 33437, 34855


@dataclass(frozen=True)
class ExifExposure:
    seconds: float
    f_number: float | None
    iso: float | None


@dataclass(frozen=True, eq=False)
class Bracket:
    """Exposures of one scene, short to long: float RGB in [0, 1], their exposures relative to the
    shortest (1), and the shortest one's shutter time when EXIF gives it (for radiance in absolute
    units)."""

    names: tuple[str, ...]
    images: tuple[np.ndarray, ...]
    exposures: tuple[float, ...]
    shortest_seconds: float | None = None

    def __post_init__(self) -> None:
        if len({image.shape for image in self.images}) != 1:
            sizes = ", ".join(f"{name} {image.shape[1]}x{image.shape[0]}" for name, image in
                              zip(self.names, self.images, strict=True))
            raise ImageError(f"the exposures differ in size: {sizes}")


def exif_exposure(path: str | os.PathLike) -> ExifExposure | None:
    """The shutter time, f-number and ISO a camera wrote into ``path``'s EXIF; None without a
    shutter time."""
    try:
        with warnings.catch_warnings():  # the size is checked where the pixels are loaded
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                tags = image.getexif().get_ifd(_EXIF_IFD)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None

    def number(tag: int) -> float | None:
        value = tags.get(tag)
        if isinstance(value, (tuple, list)):
            value = value[0] if value else None
        try:
            value = float(value)
        except (TypeError, ValueError, ZeroDivisionError):
            return None
        return value if math.isfinite(value) and value > 0 else None

    seconds = number(_EXPOSURE_TIME)
    return None if seconds is None else ExifExposure(seconds, number(_F_NUMBER), number(_ISO))


def _exif_exposures(paths: list[Path]) -> tuple[list[float], float]:
    """Relative exposures (shutter time x ISO / f-number^2, equal where a tag is missing from all)
    and the shortest exposure's shutter time."""
    exifs = [exif_exposure(path) for path in paths]
    missing = [path.name for path, exif in zip(paths, exifs, strict=True) if exif is None]
    if missing:
        raise ImageError(f"{', '.join(missing)}: no EXIF exposure time; give the exposures' EV stops with --exposures, "
                         "e.g. 0,2,4")

    def factor(values: list[float | None], power: float) -> list[float]:
        return [1.0] * len(values) if None in values else [value**power for value in values]

    isos = factor([exif.iso for exif in exifs], 1.0)
    apertures = factor([exif.f_number for exif in exifs], -2.0)
    exposures = [exif.seconds * iso * aperture for exif, iso, aperture in zip(exifs, isos, apertures, strict=True)]
    shortest = int(np.argmin(exposures))
    return exposures, exifs[shortest].seconds


def read_bracket(paths: list[str | os.PathLike], *, stops: list[float] | None = None) -> Bracket:
    """Read ``EXPOSURES`` exposures of one scene, in any order: their exposures from ``stops`` (EV,
    one per file) or, without them, from EXIF. Returned short to long."""
    paths = [Path(path) for path in paths]
    if len(paths) != EXPOSURES:
        raise ImageError(f"give {EXPOSURES} exposures of the scene, got {len(paths)}")
    if len({path.resolve() for path in paths}) != len(paths):
        raise ImageError(f"the exposures {', '.join(map(str, paths))} name the same file more than once; give "
                         f"{EXPOSURES} different exposures")
    if stops is None:
        exposures, shortest_seconds = _exif_exposures(paths)
    else:
        if len(stops) != len(paths):
            raise ImageError(f"give one EV stop per exposure ({len(paths)}), got {len(stops)}")
        if not np.isfinite(stops).all() or np.ptp(stops) > MAX_EV_SPAN:
            raise ImageError(f"EV stops must be finite numbers at most {MAX_EV_SPAN:g} apart, got {stops}; give the "
                             "exposures' real EV values, e.g. 0,2,4")
        exposures, shortest_seconds = [2.0 ** stop for stop in stops], None
    order = np.argsort(exposures, kind="stable")
    ordered = [exposures[i] for i in order]
    if any(longer <= shorter * (1 + 1e-6) for shorter, longer in zip(ordered, ordered[1:], strict=False)):
        raise ImageError("two exposures of the bracket are equally long; give exposures taken at different exposure "
                         "settings (e.g. EV -2, 0, +2)")
    images = tuple(load_rgb_unit(paths[i]) for i in order)
    return Bracket(tuple(paths[i].stem for i in order), images, tuple(e / ordered[0] for e in ordered), shortest_seconds)


def align_to_reference(images: list[np.ndarray], reference: int = REFERENCE_EXPOSURE) -> list[np.ndarray]:
    """Exposures shifted onto the reference one by OpenCV's median threshold bitmap alignment,
    which compares exposures without knowing the camera response; it searches shifts of up to
    1/8 of the shorter side (at most 64 pixels). The reference is untouched."""
    levels = min(MAX_ALIGNMENT_LEVELS, int(math.log2(min(images[reference].shape[:2]))) - 3)
    if levels < 1:  # too small to search any shift
        return list(images)
    align = cv2.createAlignMTB(max_bits=levels)
    target = _gray(images[reference])
    aligned = []
    for index, image in enumerate(images):
        if index == reference:
            aligned.append(image)
            continue
        dx, dy = (int(v) for v in align.calculateShift(target, _gray(image)))
        if dx == dy == 0:
            aligned.append(image)
            continue
        matrix = np.float32([[1, 0, dx], [0, 1, dy]])
        aligned.append(cv2.warpAffine(image, matrix, (image.shape[1], image.shape[0]), flags=cv2.INTER_NEAREST,
                                      borderMode=cv2.BORDER_REPLICATE))
    return aligned


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(_to_uint8(image), cv2.COLOR_RGB2GRAY)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


@dataclass(frozen=True, eq=False)
class PreparedBracket:
    """A bracket ready for an HDR model: the scene in the network domain, the response it was
    mapped with, and the factor that turns the model's radiance (1 where the shortest exposure
    saturates) into absolute units (per second of the shortest exposure's shutter time)."""

    scene: HDRScene
    response: object
    radiance_factor: float


def prepare_bracket(bracket: Bracket, *, response=None, align: str = "mtb") -> PreparedBracket:
    """Align the bracket (``align``: mtb or none), linearise it with ``response`` (None: estimated
    from the bracket, :func:`~mobile_sr.tasks.hdr.response.estimate_response`) and re-encode it in
    the networks' gamma-2.2 domain."""
    if align not in ALIGNMENTS:
        raise ImageError(f"alignment must be one of {', '.join(ALIGNMENTS)}, got {align!r}")
    images = align_to_reference(list(bracket.images)) if align == "mtb" else list(bracket.images)
    if response is None:
        response = estimate_response([_to_uint8(image) for image in images], list(bracket.exposures))
    scene = HDRScene(name="-".join(bracket.names), ldrs=tuple(to_network_domain(images, response)),
                     exposure_times=bracket.exposures)
    factor = 1.0 / bracket.shortest_seconds if bracket.shortest_seconds else 1.0
    return PreparedBracket(scene, response, factor)
