"""Where datasets live: the embedded default, named benchmark sets and user folders.

Named sets are looked up in ``$MOBILE_SR_DATA`` and then in ``../shared/datasets`` next to the
working directory or the source checkout; they are never downloaded.
"""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

import numpy as np

from mobile_sr.core.errors import DatasetError
from mobile_sr.core.images import load_rgb

DEFAULT_DATASET = "default"
# scikit-image's natural color photos (not the gray, microscopy or synthetic ones). The last two
# are held out for validation; motorcycle_left/right are a stereo pair and stay together.
DEFAULT_TRAIN_PHOTOS = (
    "astronaut.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "hubble_deep_field.jpg",
)
DEFAULT_VAL_PHOTOS = ("chelsea.png", "coffee.png")
# name -> path below the shared datasets folder
NAMED_SR_SETS = {
    "set5": "sr/test/Set5",
    "set14": "sr/test/Set14",
    "train291": "sr/train",
    "t91": "sr/train/T91",
    "bsd200": "sr/train/BSD200",
}
# ../shared/datasets next to the source checkout
_CHECKOUT_DATASETS = Path(__file__).resolve().parents[3] / "shared" / "datasets"


def default_photos(split: str) -> list[tuple[str, np.ndarray]]:
    """``(name, uint8 RGB)`` of the embedded default photos of ``split`` ("train" or "val")."""
    folder = importlib.resources.files("skimage.data")
    photos = []
    for name in {"train": DEFAULT_TRAIN_PHOTOS, "val": DEFAULT_VAL_PHOTOS}[split]:
        with importlib.resources.as_file(folder / name) as path:
            photos.append((Path(name).stem, load_rgb(path)))
    return photos


def printable_name(name: str) -> str:
    """``name`` (a file name as Python decodes it) with each byte that is not valid UTF-8 written
    as a ``\\xe9`` escape: the surrogates Python decodes such bytes to cannot be printed or encoded
    as UTF-8, while the escapes can and keep two such names distinct."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _shared_datasets_candidates() -> list[Path]:
    """Where the shared datasets folder may be, in order: ``$MOBILE_SR_DATA``, then
    ``../shared/datasets`` next to the working directory and next to the source checkout."""
    candidates = []
    if os.environ.get("MOBILE_SR_DATA"):
        candidates.append(Path(os.environ["MOBILE_SR_DATA"]))
    candidates.append(Path.cwd().parent / "shared" / "datasets")
    candidates.append(_CHECKOUT_DATASETS)
    return list(dict.fromkeys(candidates))


def shared_datasets_dir() -> Path | None:
    """The shared datasets folder (``$MOBILE_SR_DATA`` or ``../shared/datasets``), if present."""
    return next((candidate for candidate in _shared_datasets_candidates() if candidate.is_dir()), None)


def _named_set_not_found(name: str) -> DatasetError:
    """The error for a named set that is not where mobile-sr looks: the folder(s) searched, the
    sub-path expected, where the sets come from, and that any folder of HR images works too."""
    sub_path = NAMED_SR_SETS[name.lower()]
    variable = os.environ.get("MOBILE_SR_DATA")
    root = shared_datasets_dir()
    if root is not None:
        source = "MOBILE_SR_DATA" if variable and root == Path(variable) else "the shared datasets folder"
        searched = f"{root} ({source}) has no {sub_path}"
    else:
        tried = [str(path) for path in _shared_datasets_candidates() if not variable or path != Path(variable)]
        setting = f"MOBILE_SR_DATA={variable}" if variable else "MOBILE_SR_DATA is not set"
        searched = f"no shared datasets folder ({setting}; {' and '.join(tried)} do not exist)"
    return DatasetError(
        f"dataset '{name}' not found: {searched}; mobile-sr never downloads the named sets, which are public "
        "research sets (Set5 and Set14: the standard SR test sets; T91 and BSD200, the BSDS300 train split: "
        f"together the classic '291' training set): put a copy at {sub_path} below $MOBILE_SR_DATA or "
        "../shared/datasets (see the README, Named data sets), or pass a folder of HR images instead"
    )


def _local_path(name_or_path: str) -> Path | None:
    """The existing file or folder a dataset argument names; None for 'default' or a set's name."""
    if name_or_path.lower() == DEFAULT_DATASET:
        return None
    path = Path(name_or_path).expanduser()
    return path if path.exists() else None


def stored_dataset_argument(name_or_path: str | None) -> str | None:
    """A dataset argument as a run stores it: a local folder as an absolute path, so the run's
    config works from any folder; 'default' or a set's name as it is."""
    path = None if name_or_path is None else _local_path(name_or_path)
    return str(path.resolve()) if path is not None else name_or_path


def resolve_dataset(name_or_path: str) -> tuple[str, Path | None]:
    """Map a dataset argument to ``(display name, folder)``; the folder is None for the default.

    Accepts ``default`` (the photos embedded in scikit-image), a named set (``set5``, ``set14``,
    ``train291``, ``t91``, ``bsd200``) or any folder.
    """
    key = name_or_path.lower()
    if key == DEFAULT_DATASET:
        return DEFAULT_DATASET, None
    path = _local_path(name_or_path)
    if path is not None:
        return printable_name(path.name), path
    if key in NAMED_SR_SETS:
        root = shared_datasets_dir()
        if root is None or not (root / NAMED_SR_SETS[key]).is_dir():
            raise _named_set_not_found(name_or_path)
        return Path(NAMED_SR_SETS[key]).name, root / NAMED_SR_SETS[key]
    raise DatasetError(
        f"{name_or_path}: no such folder and not a dataset name; use a folder of HR images or one "
        f"of: {DEFAULT_DATASET}, {', '.join(NAMED_SR_SETS)}"
    )
