"""Shared fixtures: small synthetic image folders, and the shared datasets when present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mobile_sr.data import shared_datasets_dir
from mobile_sr.images import save_png


def textured_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth random RGB image with some structure (not plain noise), uint8."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    channels = [
        127 + 100 * np.sin(x / rng.uniform(3, 9) + rng.uniform(0, 6)) * np.cos(y / rng.uniform(3, 9))
        for _ in range(3)
    ]
    return np.clip(np.stack(channels, axis=2), 0, 255).astype(np.uint8)


@pytest.fixture
def hr_folder(tmp_path: Path) -> Path:
    """Four 96x120 HR PNGs, one of them in a subfolder."""
    folder = tmp_path / "hr"
    for index in range(4):
        sub = folder / "nested" if index == 3 else folder
        save_png(sub / f"img{index}.png", textured_image(96, 120, seed=index))
    return folder


@pytest.fixture(autouse=True)
def seeded_initializers():
    """Keras initializers draw from the global seed: seed it so every test sees the same weights."""
    from mobile_sr.backend import keras

    keras.utils.set_random_seed(0)


@pytest.fixture
def float64_models():
    """Keras layers built inside the test compute in float64 (the policy is restored after)."""
    from mobile_sr.backend import keras

    keras.mixed_precision.set_global_policy("float64")
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("MOBILE_SR_CACHE", str(cache))
    return cache


@pytest.fixture
def shared_datasets() -> Path:
    root = shared_datasets_dir()
    if root is None:
        pytest.skip("shared datasets not found: set MOBILE_SR_DATA or place them at ../shared/datasets")
    return root
