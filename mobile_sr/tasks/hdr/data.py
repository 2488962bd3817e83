"""Multi-exposure HDR data: the Kalantari scene layout, exposure stacks, real brackets, and
folders of radiance maps or photos for the synthetic camera (:mod:`mobile_sr.tasks.hdr.camera`)."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import cv2
import numpy as np

from mobile_sr.core.errors import DatasetError
from mobile_sr.core.images import IMAGE_EXTENSIONS, find_images, load_rgb, load_rgb_unit
from mobile_sr.data.locations import default_photos, resolve_dataset
from mobile_sr.tasks.hdr.protocol import EXPOSURES, REFERENCE_EXPOSURE
from mobile_sr.tasks.hdr.radiance import RADIANCE_EXTENSIONS, read_radiance
from mobile_sr.tasks.hdr.scene import MAX_EV_SPAN, HDRScene, hdr_domain

LDR_EXTENSIONS = (".tif", ".tiff", ".png")


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


STACK_GAPS = (1, 2, 3)  # the EV gaps of the three-exposure subsets an exposure stack is scored at


def stack_scenes(folder: str | os.PathLike, gaps: tuple[int, ...] = STACK_GAPS, *, response=None,
                 middle_seconds: float | None = None) -> list[HDRScene]:
    """Scenes of a tripod exposure stack (:func:`load_exposure_stack`, e.g. Debevec's Memorial
    church): for each EV gap, the three exposures that gap apart around the middle exposure (the
    one nearest ``middle_seconds``, by default the stack's middle one), prepared as a real bracket is (no alignment; ``response``, by default estimated
    from those three), and as reference Debevec's merge of every exposure of the stack
    (calibrated response), scaled to the prepared middle exposure (median ratio over its
    well-exposed pixels: the merges compare in one scale). With ``PowerResponse(2.2)`` the
    exposures stay as they are: the protocol of the first Memorial figures."""
    from mobile_sr.tasks.hdr.bracket import Bracket, prepare_bracket

    folder = Path(folder)
    images, times = load_exposure_stack(folder)
    stops = np.log2(times)
    if len(images) < EXPOSURES or np.ptp(stops) < 2:
        raise DatasetError(f"{folder}: an exposure stack needs {EXPOSURES} or more exposures spanning 2 EV or more")
    bgr = [np.ascontiguousarray(image[:, :, ::-1]) for image in images]
    seconds = np.asarray(times, np.float32)
    calibration = cv2.createCalibrateDebevec().process(bgr, seconds)
    reference = np.nan_to_num(cv2.createMergeDebevec().process(bgr, seconds, calibration)[:, :, ::-1], posinf=0.0).clip(0, None)
    centre = np.median(stops) if middle_seconds is None else np.log2(middle_seconds)
    middle = int(np.argmin(np.abs(stops - centre)))
    scenes = []
    for gap in gaps:
        chosen = [int(np.argmin(np.abs(stops - (stops[middle] + offset * gap)))) for offset in (-1, 0, 1)]
        if any(abs(stops[index] - (stops[middle] + offset * gap)) > 0.1 for index, offset in zip(chosen, (-1, 0, 1), strict=True)):
            continue  # the stack holds no exposure that far from its middle one
        bracket = Bracket(tuple(f"t={times[i]:g}s" for i in chosen), tuple(images[i].astype(np.float32) / 255.0 for i in chosen),
                          tuple(times[i] / times[chosen[0]] for i in chosen))
        scene = prepare_bracket(bracket, response=response, align="none").scene
        middle_ldr, middle_time = scene.ldrs[REFERENCE_EXPOSURE], scene.exposure_times[REFERENCE_EXPOSURE]
        well = (middle_ldr > 0.1) & (middle_ldr < 0.9) & (reference > 0)
        factor = float(np.median(hdr_domain(middle_ldr, middle_time)[well] / reference[well]))
        scenes.append(HDRScene(f"{folder.name}-{gap}stop", scene.ldrs, scene.exposure_times,
                               (reference * factor).astype(np.float32)))
    if not scenes:
        raise DatasetError(f"{folder}: the stack holds no three exposures {', '.join(map(str, gaps))} EV apart")
    return scenes


def bracket_folder_scene(folder: str | os.PathLike) -> HDRScene:
    """The one scene of a folder holding a real bracket without a reference (three images; their
    exposures from EXIF, else from ``ev.txt``, EV stops in name order), prepared as ``merge``
    prepares it (aligned, the response estimated)."""
    from mobile_sr.tasks.hdr.bracket import exif_exposure, prepare_bracket, read_bracket

    folder = Path(folder)
    paths = find_images(folder)
    if len(paths) != EXPOSURES:
        raise DatasetError(f"{folder}: a bracket folder holds {EXPOSURES} exposures, found {len(paths)}")
    stops = None
    if any(exif_exposure(path) is None for path in paths):
        ev_file = folder / "ev.txt"
        if not ev_file.is_file():
            raise DatasetError(f"{folder}: the exposures have no EXIF exposure times and there is no ev.txt (their EV "
                               "stops, one per line, in name order)")
        stops = _read_exposure_values(ev_file)
    scene = prepare_bracket(read_bracket(paths, stops=stops)).scene
    return HDRScene(folder.name, scene.ldrs, scene.exposure_times)


def _is_bracket_folder(folder: Path) -> bool:
    images = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    return len(images) == EXPOSURES and not any(p.is_dir() for p in folder.iterdir()) and (
        (folder / "ev.txt").is_file() or all(_has_exif_time(p) for p in images))


def _has_exif_time(path: Path) -> bool:
    from mobile_sr.tasks.hdr.bracket import exif_exposure

    return exif_exposure(path) is not None


DEFAULT_SCENES = {"train": 24, "val": 4}
MAX_TRAIN_SCENES = 96  # a folder of many photos gives one training scene per photo, up to this
DEFAULT_VAL_SIZE = (192, 288)


def _sources(folder: Path) -> list[tuple[str, np.ndarray]]:
    """A folder's radiance maps (float) and photos (uint8), for the synthetic camera. With both,
    they alternate, so that a few real radiance maps give half the scenes next to many photos."""
    maps = [(path.stem, read_radiance(path)) for path in
            sorted(p for p in folder.rglob("*") if p.suffix.lower() in RADIANCE_EXTENSIONS and p.is_file())]
    photos = [(path.stem, load_rgb(path)) for path in find_images(folder)] if any(
        p.suffix.lower() in IMAGE_EXTENSIONS for p in folder.rglob("*") if p.is_file()) or not maps else []
    if not maps or not photos:
        return maps or photos
    return [source for pair in zip(photos, itertools.cycle(maps), strict=False) for source in pair]


def load_hdr_scenes(source: str | os.PathLike, split: str, *, seed: int = 0) -> tuple[str, list[HDRScene]]:
    """``(dataset name, scenes)`` of ``source``:

    * ``default``: synthetic scenes of the photos inside scikit-image (``split`` picks the train
      or val photos);
    * a Kalantari root (any folder with ``exposure.txt`` files below it), returned whole;
    * an exposure stack (a folder with ``shutter_times.txt``): its three-exposure subsets at 1, 2
      and 3 EV gaps, scored against the merge of the whole stack (:func:`stack_scenes`);
      evaluation only;
    * a real bracket without a reference (three images with EXIF exposure times or ``ev.txt``):
      one scene to look at, not to score (:func:`bracket_folder_scene`); evaluation only;
    * any other folder of ``.hdr``/``.exr``/``.pfm`` radiance maps (else of photos): synthetic
      scenes with motion, ``DEFAULT_SCENES[split]`` of them (for training at least one per source
      up to ``MAX_TRAIN_SCENES``).

    Synthetic training scenes come from ``REAL_CAMERA``; validation scenes from
    ``HELD_OUT_CAMERA``, whose response curve no training camera has."""
    from mobile_sr.tasks.hdr.camera import HELD_OUT_CAMERA, REAL_CAMERA, synthetic_scenes

    if split not in DEFAULT_SCENES:
        raise ValueError(f"split must be one of {sorted(DEFAULT_SCENES)}, got {split!r}")
    if not str(source).strip():
        raise DatasetError("the dataset is an empty string; pass a Kalantari root, a folder of photos or radiance "
                           "maps, an exposure stack or bracket, or 'default'")
    name, folder = resolve_dataset(str(source))
    size = DEFAULT_VAL_SIZE if split == "val" else None
    camera = HELD_OUT_CAMERA if split == "val" else REAL_CAMERA
    seed = seed + (1000 if split == "val" else 0)
    if folder is None:
        scenes = synthetic_scenes(default_photos(split), count=DEFAULT_SCENES[split], size=size, seed=seed, camera=camera)
        return f"synthetic-{name}-{split}", scenes
    if any(folder.rglob("exposure.txt")):
        return name, load_kalantari(folder)
    if (folder / "shutter_times.txt").is_file() or _is_bracket_folder(folder):
        if split == "train":
            raise DatasetError(f"{folder}: an exposure stack or bracket has no reference to train on; train on "
                               "radiance maps, photos or a Kalantari root, and evaluate on it")
        return name, stack_scenes(folder) if (folder / "shutter_times.txt").is_file() else [bracket_folder_scene(folder)]
    sources = _sources(folder)
    count = DEFAULT_SCENES[split] if split == "val" else min(MAX_TRAIN_SCENES, max(DEFAULT_SCENES[split], len(sources)))
    return f"synthetic-{name}", synthetic_scenes(sources, count=count, size=size, seed=seed, camera=camera)
