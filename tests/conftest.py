"""Shared fixtures: small synthetic image folders, tiny trained runs made once per session, and
the shared datasets when present. Session runs are shared: copy a run folder before changing it
(``run_copy``)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from mobile_sr.core.images import save_png
from mobile_sr.data import shared_datasets_dir
from tests.helpers import TINY_SR, TINY_UNET, textured_image


@dataclass(frozen=True)
class TinyRuns:
    """Runs trained once per session on ``data``: a float run, the QAT run fine-tuned from it (or
    None), the float run's training config and summary."""

    data: Path
    float_run: Path
    qat_run: Path | None
    config: object
    summary: dict


@pytest.fixture(scope="session")
def tiny_sr(tmp_path_factory) -> TinyRuns:
    """SCSRN x2 trained 24 steps on three 80x96 images, and 6 steps of QAT with weight clipping and
    the symmetric regularizer."""
    from mobile_sr.training import TrainConfig, train

    root = tmp_path_factory.mktemp("tiny_sr")
    for index in range(3):
        save_png(root / "data" / f"{index}.png", textured_image(80, 96, seed=index))
    config = TrainConfig(data=str(root / "data"), steps=24, **TINY_SR)
    float_run, qat_run = root / "runs" / "float", root / "runs" / "qat"
    summary = train(config, run_dir=float_run, log=lambda _: None)
    train(TrainConfig(data=str(root / "data"), steps=6, init_from=str(float_run), qat=True, clip_threshold=3.0,
                      symmetry_strength=1e-2, learning_rate=1e-4, **{**TINY_SR, "warmup_steps": 0, "validations": 1}),
          run_dir=qat_run, log=lambda _: None)
    return TinyRuns(root / "data", float_run, qat_run, config, summary)


@pytest.fixture(scope="session")
def tiny_hdr(tmp_path_factory) -> TinyRuns:
    """A tiny HDR U-Net trained 6 steps on synthetic exposures of two 64x80 photos."""
    from mobile_sr.training import TrainConfig, train

    root = tmp_path_factory.mktemp("tiny_hdr")
    for index in range(2):
        save_png(root / "data" / f"{index}.png", textured_image(64, 80, seed=index))
    config = TrainConfig.for_model("hdr_unet", data=str(root / "data"), steps=6, batch_size=2, patch_size=32,
                                   model_options=TINY_UNET, warmup_steps=2, validations=1)
    summary = train(config, run_dir=root / "runs" / "hdr_unet", log=lambda _: None)
    return TinyRuns(root / "data", root / "runs" / "hdr_unet", None, config, summary)


@pytest.fixture
def run_copy(tiny_sr, tmp_path) -> Path:
    """A copy of the tiny float SR run that a test may change or break."""
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_sr.float_run, run_dir)
    return run_dir


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
    from mobile_sr.core.backend import keras

    keras.utils.set_random_seed(0)


@pytest.fixture
def float64_models():
    """Keras layers built inside the test compute in float64 (the policy is restored after)."""
    from mobile_sr.core.backend import keras

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
