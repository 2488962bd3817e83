"""Where datasets live: the embedded default, named benchmark sets and user folders.

Named sets are looked up in ``$MOBILE_SR_DATA`` and then in ``../shared/datasets`` next to the
working directory or the source checkout; they are never downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path

from mobile_sr.errors import DatasetError

DEFAULT_DATASET = "default"
# name -> path below the shared datasets folder
NAMED_SR_SETS = {
    "set5": "sr/test/Set5",
    "set14": "sr/test/Set14",
    "train291": "sr/train",
    "t91": "sr/train/T91",
    "bsd200": "sr/train/BSD200",
}


def shared_datasets_dir() -> Path | None:
    """The shared datasets folder (``$MOBILE_SR_DATA`` or ``../shared/datasets``), if present."""
    candidates = []
    if os.environ.get("MOBILE_SR_DATA"):
        candidates.append(Path(os.environ["MOBILE_SR_DATA"]))
    candidates.append(Path.cwd().parent / "shared" / "datasets")
    candidates.append(Path(__file__).resolve().parents[3] / "shared" / "datasets")
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return None


def resolve_dataset(name_or_path: str) -> tuple[str, Path | None]:
    """Map a dataset argument to ``(display name, folder)``; the folder is None for the default.

    Accepts ``default`` (the photos embedded in scikit-image), a named set (``set5``, ``set14``,
    ``train291``, ``t91``, ``bsd200``) or any folder.
    """
    key = name_or_path.lower()
    if key == DEFAULT_DATASET:
        return DEFAULT_DATASET, None
    path = Path(name_or_path).expanduser()
    if path.exists():
        return path.name, path
    if key in NAMED_SR_SETS:
        root = shared_datasets_dir()
        if root is None or not (root / NAMED_SR_SETS[key]).is_dir():
            raise DatasetError(
                f"dataset '{name_or_path}' not found: set MOBILE_SR_DATA to the folder that holds "
                f"{NAMED_SR_SETS[key]}, or pass the image folder itself"
            )
        return Path(NAMED_SR_SETS[key]).name, root / NAMED_SR_SETS[key]
    raise DatasetError(
        f"{name_or_path}: no such folder and not a dataset name; use a folder of HR images or one "
        f"of: {DEFAULT_DATASET}, {', '.join(NAMED_SR_SETS)}"
    )
