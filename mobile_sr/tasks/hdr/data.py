"""Multi-exposure HDR data: radiance-map files, the Kalantari scene layout, bracketed exposure
stacks, a synthetic multi-exposure generator, and the network input encoding (conventions in
:mod:`mobile_sr.tasks.hdr.protocol`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mobile_sr.core.errors import DatasetError, ImageError
from mobile_sr.core.files import atomic_write_bytes, check_output_path
from mobile_sr.core.images import find_images, load_rgb, load_rgb_unit
from mobile_sr.data.locations import default_photos, resolve_dataset
from mobile_sr.tasks.hdr.protocol import EXPOSURES, GAMMA, REFERENCE_EXPOSURE

RADIANCE_EXTENSIONS = (".hdr", ".exr")
LDR_EXTENSIONS = (".tif", ".tiff", ".png")
MAX_EV_SPAN = 20.0  # wider than any real bracket; keeps the exposure times 2^EV finite


def read_radiance(path: str | os.PathLike) -> np.ndarray:
    """Read a Radiance ``.hdr`` (OpenCV) or OpenEXR ``.exr`` (OpenEXR) file as ``H x W x 3``
    float32 linear RGB."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: empty file (0 bytes); re-copy or re-export it, or remove it")
    suffix = path.suffix.lower()
    if suffix == ".hdr":
        pixels = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
        if pixels is None or pixels.ndim != 3 or pixels.shape[2] != 3:
            raise ImageError(f"{path}: not a readable Radiance RGBE (.hdr) image")
        return np.ascontiguousarray(pixels[:, :, ::-1], dtype=np.float32)
    if suffix == ".exr":
        import OpenEXR

        try:
            with OpenEXR.File(str(path)) as exr:
                channels = exr.channels()
                if "RGB" in channels:
                    pixels = channels["RGB"].pixels
                elif all(c in channels for c in "RGB"):
                    pixels = np.stack([channels[c].pixels for c in "RGB"], axis=-1)
                else:
                    raise ImageError(f"{path}: the EXR has channels {sorted(channels)}, not R, G and B")
        except (OSError, RuntimeError) as exc:
            raise ImageError(f"{path}: not a readable OpenEXR image ({exc})") from exc
        return np.ascontiguousarray(pixels, dtype=np.float32)
    raise ImageError(f"{path}: radiance maps must be {' or '.join(RADIANCE_EXTENSIONS)} files")


def write_radiance(path: str | os.PathLike, rgb: np.ndarray) -> None:
    """Write ``H x W x 3`` linear RGB as ``.hdr`` or ``.exr`` (float32), atomically."""
    path = Path(path)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or not np.isfinite(rgb).all() or rgb.min() < 0:
        raise ImageError(f"{path}: radiance must be H x W x 3, finite and non-negative, got {rgb.shape}")
    suffix = path.suffix.lower()
    if suffix == ".hdr":
        ok, encoded = cv2.imencode(".hdr", np.ascontiguousarray(rgb[:, :, ::-1], dtype=np.float32))
        if not ok:
            raise ImageError(f"{path}: Radiance encoding failed")
        atomic_write_bytes(path, encoded.tobytes())
    elif suffix == ".exr":
        import OpenEXR

        check_output_path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial.exr")
        header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
        try:
            with OpenEXR.File(header, {"RGB": np.ascontiguousarray(rgb, dtype=np.float32)}) as exr:
                exr.write(str(partial))
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
    else:
        raise ImageError(f"{path}: write radiance maps as {' or '.join(RADIANCE_EXTENSIONS)}")


@dataclass(frozen=True, eq=False)
class HDRScene:
    """Three LDR exposures (float32 RGB in [0, 1], short to long), their exposure times relative to
    the shortest, and the HDR reference aligned to the middle exposure (None if unknown)."""

    name: str
    ldrs: tuple[np.ndarray, ...]
    exposure_times: tuple[float, ...]
    hdr: np.ndarray | None = None

    def __post_init__(self) -> None:
        if len(self.ldrs) != EXPOSURES or len(self.exposure_times) != EXPOSURES:
            raise DatasetError(f"{self.name}: a scene needs {EXPOSURES} exposures and times, "
                               f"got {len(self.ldrs)} and {len(self.exposure_times)}")
        shapes = {ldr.shape for ldr in self.ldrs} | ({self.hdr.shape} if self.hdr is not None else set())
        if len(shapes) != 1 or next(iter(shapes))[2:] != (3,):
            raise DatasetError(f"{self.name}: exposures and reference must share one H x W x 3 size, got {sorted(shapes)}")
        if (not np.isfinite(self.exposure_times).all() or list(self.exposure_times) != sorted(self.exposure_times)
                or min(self.exposure_times) <= 0):
            raise DatasetError(f"{self.name}: exposure times must be finite, positive and ordered short to long, "
                               f"got {self.exposure_times}")


def hdr_domain(ldr: np.ndarray, exposure_time: float) -> np.ndarray:
    """An exposure mapped to linear radiance with the gamma-2.2 response: L^2.2 / t."""
    return np.power(ldr, GAMMA) / exposure_time


def network_inputs(ldrs, exposure_times) -> list[np.ndarray]:
    """The HDR networks' three ``... x 6`` inputs: each exposure next to its HDR-domain version."""
    return [np.concatenate([ldr, hdr_domain(ldr, t)], axis=-1).astype(np.float32)
            for ldr, t in zip(ldrs, exposure_times, strict=True)]


def _read_exposure_values(path: Path) -> list[float]:
    try:
        values = [float(token) for token in path.read_text().split()]
    except ValueError:
        raise DatasetError(f"{path}: expected {EXPOSURES} exposure values in EV stops, one per line") from None
    if len(values) != EXPOSURES:
        raise DatasetError(f"{path}: expected {EXPOSURES} exposure values in EV stops, found {len(values)}")
    if not np.isfinite(values).all() or np.ptp(values) > MAX_EV_SPAN:
        raise DatasetError(f"{path}: exposure values must be finite EV stops at most {MAX_EV_SPAN:g} apart, got "
                           f"{' '.join(map(str, values))}; write the exposures' real EV values, one per line")
    return values


def load_kalantari_scene(folder: str | os.PathLike, *, require_reference: bool = True) -> HDRScene:
    """One scene of the Kalantari layout: three 16-bit TIFF exposures (name order = short to long),
    ``exposure.txt`` with their EV stops, and the reference ``HDRImg.hdr``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such scene folder")
    exposure_file = folder / "exposure.txt"
    if not exposure_file.is_file():
        raise DatasetError(f"{folder}: no exposure.txt; a Kalantari scene holds three exposures, "
                           "exposure.txt (EV stops) and HDRImg.hdr")
    stops = _read_exposure_values(exposure_file)
    ldr_paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in LDR_EXTENSIONS and p.is_file())
    if len(ldr_paths) != EXPOSURES:
        raise DatasetError(f"{folder}: expected {EXPOSURES} exposure images ({', '.join(LDR_EXTENSIONS)}), "
                           f"found {len(ldr_paths)}: {', '.join(p.name for p in ldr_paths) or 'none'}")
    reference_path = folder / "HDRImg.hdr"
    if require_reference and not reference_path.is_file():
        raise DatasetError(f"{folder}: no HDRImg.hdr; scoring or training on a Kalantari scene needs its reference "
                           f"radiance map at {reference_path}. To merge exposures that have no reference, use "
                           "'mobile-sr merge' (from Python: require_reference=False)")
    times = tuple(float(2.0 ** (stop - min(stops))) for stop in stops)
    return HDRScene(
        name=folder.name,
        ldrs=tuple(load_rgb_unit(path) for path in ldr_paths),
        exposure_times=times,
        hdr=read_radiance(reference_path) if reference_path.is_file() else None,
    )


def load_kalantari(root: str | os.PathLike, *, require_reference: bool = True) -> list[HDRScene]:
    """Every scene below ``root`` (a folder holding ``exposure.txt`` is a scene), sorted by path."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    scene_dirs = sorted({path.parent for path in root.rglob("exposure.txt")})
    if not scene_dirs:
        raise DatasetError(f"{root}: no Kalantari scenes (folders with exposure.txt, three TIFF exposures "
                           "and HDRImg.hdr) below it")
    return [load_kalantari_scene(folder, require_reference=require_reference) for folder in scene_dirs]


def load_exposure_stack(folder: str | os.PathLike) -> tuple[list[np.ndarray], list[float]]:
    """A bracketed capture: every image of ``folder`` (uint8 RGB, name order) and its shutter time
    in seconds from ``shutter_times.txt`` (one per line, e.g. ``1/1024``), longest first as
    Debevec's Memorial stack is stored."""
    folder = Path(folder)
    times_file = folder / "shutter_times.txt"
    if not times_file.is_file():
        raise DatasetError(f"{folder}: no shutter_times.txt (one shutter time in seconds per image, in name order)")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in LDR_EXTENSIONS + (".jpg", ".jpeg"))
    entries = times_file.read_text().split()
    if len(entries) != len(paths):
        raise DatasetError(f"{times_file}: {len(entries)} shutter times for {len(paths)} images")
    times = []
    for entry in entries:
        numerator, _, denominator = entry.partition("/")
        try:
            times.append(float(numerator) / float(denominator or 1))
        except (ValueError, ZeroDivisionError):
            raise DatasetError(f"{times_file}: '{entry}' is not a shutter time in seconds (e.g. 2 or 1/1024)") from None
    return [load_rgb(path) for path in paths], times


@dataclass(frozen=True)
class ExposureSettings:
    """How the synthetic generator exposes a radiance map.

    ``stops``: the exposures' EV relative to the shortest (0/+2/+4 or 0/+3/+6 as in Kalantari's
    set). ``read_noise`` and ``shot_noise``: sensor noise in linear units before the response
    curve (std = sqrt(shot_noise * signal + read_noise^2)). ``max_shift`` (fraction of the size) and
    ``max_rotation`` (degrees): the camera motion of the non-reference exposures;
    ``moving_objects``: rectangles of the scene that move between the exposures.
    """

    stops: tuple[float, float, float] = (0.0, 2.0, 4.0)
    read_noise: float = 0.002
    shot_noise: float = 0.0005
    max_shift: float = 0.02
    max_rotation: float = 2.0
    moving_objects: int = 2

    def __post_init__(self) -> None:
        if (len(self.stops) != EXPOSURES or not np.isfinite(self.stops).all() or list(self.stops) != sorted(self.stops)
                or self.stops[0] != 0):
            raise DatasetError(f"stops must be {EXPOSURES} increasing EV values starting at 0, got {self.stops}")
        if min(self.read_noise, self.shot_noise, self.max_shift, self.max_rotation, self.moving_objects) < 0:
            raise DatasetError("noise, motion and moving_objects must be non-negative")


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


def _random_motion(shape, settings: ExposureSettings, rng: np.random.Generator) -> np.ndarray:
    height, width = shape[:2]
    angle = rng.uniform(-settings.max_rotation, settings.max_rotation)
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
    matrix[:, 2] += rng.uniform(-settings.max_shift, settings.max_shift, 2) * (width, height)
    return matrix


def _move_objects(radiance: np.ndarray, settings: ExposureSettings, rng: np.random.Generator) -> np.ndarray:
    """Copy ``moving_objects`` random rectangles of the scene to shifted places (objects that moved)."""
    moved = radiance.copy()
    height, width = radiance.shape[:2]
    for _ in range(settings.moving_objects):
        box_h, box_w = int(height * rng.uniform(0.1, 0.25)), int(width * rng.uniform(0.1, 0.25))
        top, left = rng.integers(0, height - box_h + 1), rng.integers(0, width - box_w + 1)
        dy, dx = (rng.uniform(-0.1, 0.1, 2) * (height, width)).astype(int)
        new_top, new_left = np.clip(top + dy, 0, height - box_h), np.clip(left + dx, 0, width - box_w)
        moved[new_top:new_top + box_h, new_left:new_left + box_w] = radiance[top:top + box_h, left:left + box_w]
    return moved


def expose(radiance: np.ndarray, exposure_time: float, settings: ExposureSettings, rng: np.random.Generator) -> np.ndarray:
    """Capture one 8-bit exposure of a radiance map: scale by the time, add sensor noise, clip,
    apply the gamma response and quantise to 8 bits. Returns float32 RGB in [0, 1]."""
    signal = radiance * exposure_time
    noise_std = np.sqrt(settings.shot_noise * signal + settings.read_noise**2)
    sensed = np.clip(signal + rng.normal(size=signal.shape).astype(np.float32) * noise_std, 0.0, 1.0)
    return np.round(np.power(sensed, 1.0 / GAMMA) * 255.0).astype(np.float32) / 255.0


def synthesize_scene(
    name: str, radiance: np.ndarray, settings: ExposureSettings, rng: np.random.Generator
) -> HDRScene:
    """Three exposures of ``radiance`` (the scene as the reference exposure saw it): the short and
    long exposures see it after camera motion and moving objects, so merging them naively ghosts.
    The reference HDR is ``radiance`` itself."""
    times = tuple(float(2.0**stop) for stop in settings.stops)
    height, width = radiance.shape[:2]
    ldrs = []
    for index, time in enumerate(times):
        scene = radiance
        if index != REFERENCE_EXPOSURE:
            scene = _move_objects(radiance, settings, rng)
            scene = cv2.warpAffine(scene, _random_motion(radiance.shape, settings, rng), (width, height),
                                   flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        ldrs.append(expose(scene, time, settings, rng))
    return HDRScene(name=name, ldrs=tuple(ldrs), exposure_times=times, hdr=radiance.astype(np.float32))


def synthetic_scenes(
    photos: list[tuple[str, np.ndarray]], *, count: int, size: tuple[int, int] | None, seed: int,
    settings: ExposureSettings = ExposureSettings(),
) -> list[HDRScene]:
    """``count`` synthetic scenes from ``photos`` (``(name, uint8 RGB)``), cycling through them with
    a random crop (half to all of each side) resized to ``size`` (H, W; None keeps the crop), a
    random flip, and a random highlight expansion of 2-5 EV. Deterministic for a ``seed``."""
    if not photos:
        raise DatasetError("the synthetic HDR generator needs at least one photo")
    rng = np.random.default_rng(seed)
    scenes = []
    for index in range(count):
        name, photo = photos[index % len(photos)]
        height, width = photo.shape[:2]
        crop_h, crop_w = int(height * rng.uniform(0.5, 1.0)), int(width * rng.uniform(0.5, 1.0))
        top, left = rng.integers(0, height - crop_h + 1), rng.integers(0, width - crop_w + 1)
        crop = photo[top:top + crop_h, left:left + crop_w]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        if size is not None:
            crop = cv2.resize(np.ascontiguousarray(crop), (size[1], size[0]), interpolation=cv2.INTER_CUBIC)
        radiance = photo_to_radiance(crop, highlight_stops=rng.uniform(2.0, 5.0))
        scenes.append(synthesize_scene(f"{name}_{index:03d}", radiance, settings, rng))
    return scenes


DEFAULT_SCENES = {"train": 24, "val": 4}
MAX_TRAIN_SCENES = 96  # a folder of many photos gives one training scene per photo, up to this
DEFAULT_VAL_SIZE = (192, 288)


def _radiance_photos(folder: Path) -> list[tuple[str, np.ndarray]]:
    """Radiance maps of a folder, tonemapped to 8-bit "photos" with gamma 2.2 after normalising
    each to its 99.5th percentile, so that the generator expands them like any photo."""
    photos = []
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in RADIANCE_EXTENSIONS):
        radiance = read_radiance(path)
        radiance = radiance / max(float(np.percentile(radiance, 99.5)), 1e-6)
        photos.append((path.stem, np.round(np.clip(radiance, 0, 1) ** (1 / GAMMA) * 255).astype(np.uint8)))
    return photos


def load_hdr_scenes(source: str | os.PathLike, split: str, *, seed: int = 0) -> tuple[str, list[HDRScene]]:
    """``(dataset name, scenes)`` from ``default`` (synthetic scenes from the photos inside
    scikit-image: ``split`` picks the train or val photos), a Kalantari root (any folder with
    ``exposure.txt`` files below it; returned whole), or any folder of photos or ``.hdr``/``.exr``
    radiance maps (synthetic scenes with motion: ``DEFAULT_SCENES[split]`` of them, for training
    at least one per photo up to ``MAX_TRAIN_SCENES``)."""
    if split not in DEFAULT_SCENES:
        raise ValueError(f"split must be one of {sorted(DEFAULT_SCENES)}, got {split!r}")
    if not str(source).strip():
        raise DatasetError("the dataset is an empty string; pass a Kalantari root, a folder of photos or radiance "
                           "maps, or 'default'")
    name, folder = resolve_dataset(str(source))
    size = DEFAULT_VAL_SIZE if split == "val" else None
    seed = seed + (1000 if split == "val" else 0)
    if folder is None:
        return f"synthetic-{name}-{split}", synthetic_scenes(default_photos(split), count=DEFAULT_SCENES[split], size=size, seed=seed)
    if any(folder.rglob("exposure.txt")):
        return name, load_kalantari(folder)
    photos = _radiance_photos(folder)
    if not photos:
        photos = [(path.stem, load_rgb(path)) for path in find_images(folder)]
    count = DEFAULT_SCENES[split] if split == "val" else min(MAX_TRAIN_SCENES, max(DEFAULT_SCENES[split], len(photos)))
    return f"synthetic-{name}", synthetic_scenes(photos, count=count, size=size, seed=seed)
