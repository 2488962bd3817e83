"""The synthetic camera: exposure brackets of radiance maps (real ones, or photos whose highlights
are expanded) through a camera model, with the exposures' reference HDR.

The camera scales the scene by each exposure time, adds shot and read noise, clips, applies its
response curve and quantises to 8 bits, optionally through JPEG; its white balance is off by a
few percent per channel; the short and long exposures see the scene after camera motion and
moving objects. ``ISSUE5_CAMERA`` (the defaults) is the fixed camera of the synthetic test set:
gamma 2.2, 0/+2/+4 EV, fixed noise. ``REAL_CAMERA`` varies what real cameras vary, and its
brackets are mapped as :func:`~mobile_sr.tasks.hdr.merge.merge_exposures` maps a real one (an
estimated response, the network's gamma-2.2 domain), so that a network trained on them sees real
brackets as it saw its training data. They are not aligned: the network learns to undo camera
motion, of which ``merge``'s alignment then leaves less. ``HELD_OUT_CAMERA`` is ``REAL_CAMERA`` with
a response curve no training camera has (sRGB).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np

from mobile_sr.core.errors import DatasetError
from mobile_sr.tasks.hdr.protocol import EXPOSURES, GAMMA, REFERENCE_EXPOSURE
from mobile_sr.tasks.hdr.response import PowerResponse, SRGBResponse, training_response
from mobile_sr.tasks.hdr.scene import HDRScene

RESPONSES = ("gamma", "varied", "srgb")


def _range(value) -> tuple[float, float]:
    return (float(value), float(value)) if np.isscalar(value) else (float(value[0]), float(value[1]))


@dataclass(frozen=True)
class CameraModel:
    """How the synthetic camera captures a radiance map.

    ``stops``: the exposures' EV relative to the shortest, or with ``ev_gaps`` a gap between
    neighbouring exposures drawn per scene from that range. ``response``: "gamma" (2.2), "varied"
    (power and filmic curves, :func:`~mobile_sr.tasks.hdr.response.training_response`) or "srgb".
    ``read_noise`` and ``shot_noise``: sensor noise in linear units before the response (std =
    sqrt(shot_noise * signal + read_noise^2)), each a number or a range drawn per scene.
    ``jpeg_probability`` of an exposure being JPEG-compressed at a quality drawn from
    ``jpeg_quality``. ``white_balance_jitter``: the relative error of each channel's gain (the
    reference HDR is what the sensor saw). ``max_shift`` (fraction of the size), ``max_rotation``
    (degrees): the camera motion of the non-reference exposures; ``moving_objects``: rectangles of
    the scene that move between the exposures; ``static_probability`` of a scene with neither (a
    tripod shot). ``exposure_level_stops``: the scene darkened by a number of EV drawn from this
    range, so that brackets whose shortest exposure is far from saturating (a dim interior, whose
    detail only the long exposure holds) are seen too. ``real_pipeline``: estimate the bracket's
    response and map it into the gamma-2.2 domain, as a real bracket is.
    """

    stops: tuple[float, float, float] = (0.0, 2.0, 4.0)
    ev_gaps: tuple[float, float] | None = None
    response: str = "gamma"
    read_noise: float | tuple[float, float] = 0.002
    shot_noise: float | tuple[float, float] = 0.0005
    jpeg_probability: float = 0.0
    jpeg_quality: tuple[int, int] = (75, 95)
    white_balance_jitter: float = 0.0
    max_shift: float = 0.02
    max_rotation: float = 2.0
    moving_objects: int = 2
    static_probability: float = 0.0
    exposure_level_stops: tuple[float, float] = (0.0, 0.0)
    real_pipeline: bool = False

    def __post_init__(self) -> None:
        if (len(self.stops) != EXPOSURES or not np.isfinite(self.stops).all() or list(self.stops) != sorted(self.stops)
                or self.stops[0] != 0):
            raise DatasetError(f"stops must be {EXPOSURES} increasing EV values starting at 0, got {self.stops}")
        if self.ev_gaps is not None and not 0 < self.ev_gaps[0] <= self.ev_gaps[1] <= 10:
            raise DatasetError(f"ev_gaps must be a range of EV gaps in (0, 10], got {self.ev_gaps}")
        if self.response not in RESPONSES:
            raise DatasetError(f"response must be one of {', '.join(RESPONSES)}, got {self.response!r}")
        noise = [*_range(self.read_noise), *_range(self.shot_noise)]
        if min(*noise, self.max_shift, self.max_rotation, self.moving_objects, self.white_balance_jitter) < 0:
            raise DatasetError("noise, motion, moving_objects and white_balance_jitter must be non-negative")
        if not 0 <= self.static_probability <= 1 or not 0 <= self.exposure_level_stops[0] <= self.exposure_level_stops[1]:
            raise DatasetError("static_probability must be in [0, 1] and exposure_level_stops a range of EV >= 0")
        if not 0 <= self.jpeg_probability <= 1 or not 1 <= self.jpeg_quality[0] <= self.jpeg_quality[1] <= 100:
            raise DatasetError("jpeg_probability must be in [0, 1] and jpeg_quality a range within [1, 100]")


ISSUE5_CAMERA = CameraModel()
REAL_CAMERA = CameraModel(ev_gaps=(1.0, 3.0), response="varied", read_noise=(0.0005, 0.004),
                          shot_noise=(0.0002, 0.002), jpeg_probability=0.5, white_balance_jitter=0.1,
                          static_probability=0.25, exposure_level_stops=(0.0, 5.0), real_pipeline=True)
HELD_OUT_CAMERA = dataclasses.replace(REAL_CAMERA, response="srgb")


def photo_to_radiance(photo: np.ndarray, *, highlight_stops: float = 4.0) -> np.ndarray:
    """A plausible linear radiance map in [0, 1] from an 8-bit photo: undo the gamma, then expand
    the highlights (where the photo's camera clipped) by up to ``highlight_stops`` EV, so that the
    scene needs more than one exposure."""
    linear = np.power(photo.astype(np.float32) / 255.0, GAMMA)
    luminance = linear @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    brightness = np.clip((luminance - 0.3) / 0.7, 0.0, 1.0)
    boost = np.exp2(highlight_stops * brightness * brightness * (3.0 - 2.0 * brightness))  # smoothstep
    radiance = linear * boost[:, :, None]
    return radiance / max(float(radiance.max()), 1e-6)


def _random_motion(shape, camera: CameraModel, rng: np.random.Generator) -> np.ndarray:
    height, width = shape[:2]
    angle = rng.uniform(-camera.max_rotation, camera.max_rotation)
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
    matrix[:, 2] += rng.uniform(-camera.max_shift, camera.max_shift, 2) * (width, height)
    return matrix


def _move_objects(radiance: np.ndarray, camera: CameraModel, rng: np.random.Generator) -> np.ndarray:
    """Copy ``moving_objects`` random rectangles of the scene to shifted places (objects that moved)."""
    moved = radiance.copy()
    height, width = radiance.shape[:2]
    for _ in range(camera.moving_objects):
        box_h, box_w = int(height * rng.uniform(0.1, 0.25)), int(width * rng.uniform(0.1, 0.25))
        top, left = rng.integers(0, height - box_h + 1), rng.integers(0, width - box_w + 1)
        dy, dx = (rng.uniform(-0.1, 0.1, 2) * (height, width)).astype(int)
        new_top, new_left = np.clip(top + dy, 0, height - box_h), np.clip(left + dx, 0, width - box_w)
        moved[new_top:new_top + box_h, new_left:new_left + box_w] = radiance[top:top + box_h, left:left + box_w]
    return moved


def expose(radiance: np.ndarray, exposure_time: float, rng: np.random.Generator, *, response=None,
           read_noise: float = 0.002, shot_noise: float = 0.0005) -> np.ndarray:
    """Capture one 8-bit exposure of a radiance map: scale by the time, add sensor noise, clip,
    apply the response (None: gamma 2.2) and quantise to 8 bits. Returns float32 RGB in [0, 1]."""
    response = response or PowerResponse(GAMMA)
    signal = radiance * exposure_time
    noise_std = np.sqrt(shot_noise * signal + read_noise**2)
    sensed = np.clip(signal + rng.normal(size=signal.shape).astype(np.float32) * noise_std, 0.0, 1.0)
    return np.round(response.apply(sensed) * 255.0).astype(np.float32) / 255.0


def _jpeg(ldr: np.ndarray, quality: int) -> np.ndarray:
    pixels = np.round(ldr * 255.0).astype(np.uint8)[:, :, ::-1]
    _, encoded = cv2.imencode(".jpg", np.ascontiguousarray(pixels), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR)[:, :, ::-1].astype(np.float32) / 255.0


def synthesize_scene(name: str, radiance: np.ndarray, camera: CameraModel, rng: np.random.Generator) -> HDRScene:
    """Three exposures of ``radiance`` (the scene as the reference exposure saw it) by ``camera``:
    the short and long exposures see it after camera motion and moving objects, so merging them
    naively ghosts. The reference HDR is what the sensor saw of ``radiance`` (white balance
    included), the shortest exposure saturating at 1."""
    if camera.ev_gaps is None:
        stops = camera.stops
    else:
        gap = rng.uniform(*camera.ev_gaps)
        stops = (0.0, gap, 2.0 * gap)
    times = tuple(float(2.0**stop) for stop in stops)
    response = {"gamma": lambda: PowerResponse(GAMMA), "varied": lambda: training_response(rng),
                "srgb": SRGBResponse}[camera.response]()
    read_noise, shot_noise = (rng.uniform(*_range(v)) if not np.isscalar(v) else v
                              for v in (camera.read_noise, camera.shot_noise))
    if camera.white_balance_jitter:
        radiance = radiance * (1.0 + rng.uniform(-camera.white_balance_jitter, camera.white_balance_jitter, 3)).astype(np.float32)
    # drawn only when configured, so that the issue-5 camera's scenes stay as they were
    if camera.exposure_level_stops[1] > 0:
        radiance = radiance * np.float32(2.0 ** -rng.uniform(*camera.exposure_level_stops))
    static = camera.static_probability > 0 and rng.random() < camera.static_probability
    height, width = radiance.shape[:2]
    ldrs = []
    for index, time in enumerate(times):
        scene = radiance
        if index != REFERENCE_EXPOSURE and not static:
            scene = _move_objects(radiance, camera, rng)
            scene = cv2.warpAffine(scene, _random_motion(radiance.shape, camera, rng), (width, height),
                                   flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        ldr = expose(scene, time, rng, response=response, read_noise=read_noise, shot_noise=shot_noise)
        if camera.jpeg_probability and rng.random() < camera.jpeg_probability:
            ldr = _jpeg(ldr, rng.integers(camera.jpeg_quality[0], camera.jpeg_quality[1] + 1))
        ldrs.append(ldr)
    if camera.real_pipeline:
        from mobile_sr.tasks.hdr.bracket import Bracket, prepare_bracket

        prepared = prepare_bracket(Bracket((name,) * EXPOSURES, tuple(ldrs), times), align="none")
        ldrs = list(prepared.scene.ldrs)
    return HDRScene(name=name, ldrs=tuple(ldrs), exposure_times=times, hdr=radiance.astype(np.float32))


def _normalised_radiance(radiance: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A real radiance map scaled so that the shortest exposure saturates only at its brightest
    0.1 to 1% of pixels (the scene's brightest highlights stay clipped, as in a real bracket)."""
    luminance = radiance @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    level = float(np.percentile(luminance, rng.uniform(99.0, 99.9)))
    return (radiance / max(level, 1e-6)).astype(np.float32)


def synthetic_scenes(sources: list[tuple[str, np.ndarray]], *, count: int, size: tuple[int, int] | None, seed: int,
                     camera: CameraModel = ISSUE5_CAMERA) -> list[HDRScene]:
    """``count`` synthetic scenes of ``sources`` (``(name, image)``: uint8 RGB photos, or float
    radiance maps), cycling through them with a random crop (half to all of each side) resized
    to ``size`` (H, W; None keeps the crop) and a random flip. A photo's highlights are expanded
    by 2-5 EV; a radiance map keeps its own range. Deterministic for a ``seed``."""
    if not sources:
        raise DatasetError("the synthetic HDR generator needs at least one photo or radiance map")
    rng = np.random.default_rng(seed)
    scenes = []
    for index in range(count):
        name, source = sources[index % len(sources)]
        height, width = source.shape[:2]
        crop_h, crop_w = int(height * rng.uniform(0.5, 1.0)), int(width * rng.uniform(0.5, 1.0))
        top, left = rng.integers(0, height - crop_h + 1), rng.integers(0, width - crop_w + 1)
        crop = source[top:top + crop_h, left:left + crop_w]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        if size is not None:
            crop = cv2.resize(np.ascontiguousarray(crop), (size[1], size[0]),
                              interpolation=cv2.INTER_CUBIC if source.dtype == np.uint8 else cv2.INTER_AREA)
        if source.dtype == np.uint8:
            radiance = photo_to_radiance(crop, highlight_stops=rng.uniform(2.0, 5.0))
        else:
            radiance = _normalised_radiance(np.ascontiguousarray(crop, dtype=np.float32).clip(0, None), rng)
        scenes.append(synthesize_scene(f"{name}_{index:03d}", radiance, camera, rng))
    return scenes
