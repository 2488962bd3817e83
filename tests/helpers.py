"""Helpers the test modules share: synthetic images, running the CLI, and reading or changing a
run folder's raw config.json the way a user's editor would."""

from __future__ import annotations

import json
import signal
import struct
import zlib
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from mobile_sr.core.files import write_json
from mobile_sr.runs import CONFIG_FILE

# A few-kilobyte SCSRN x2 and its training recipe, small enough to train in a second.
TINY_SR = dict(model="scsrn", model_options={"scale": 2, "channels": 8, "feature_convs": 2}, batch_size=4,
               patch_size=16, warmup_steps=5, validations=2, l2_finetune_fraction=0.2)
TINY_UNET = {"channels": 4, "stages": 2, "convs_per_stage": 1, "skm_reduction": 2}


def textured_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth random RGB image with some structure (not plain noise), uint8."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    channels = [
        127 + 100 * np.sin(x / rng.uniform(3, 9) + rng.uniform(0, 6)) * np.cos(y / rng.uniform(3, 9))
        for _ in range(3)
    ]
    return np.clip(np.stack(channels, axis=2), 0, 255).astype(np.uint8)


def run_cli(*args):
    """``mobile-sr ARGS`` in-process; never a traceback."""
    from mobile_sr.cli import main

    result = CliRunner().invoke(main, list(map(str, args)))
    assert "Traceback" not in result.output
    return result


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(path: Path, side: int = 40000) -> Path:
    """A tiny PNG whose header declares ``side`` x ``side`` RGB pixels (a decompression bomb)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
                     + png_chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + png_chunk(b"IEND", b""))
    return path


def raw_run_config(run_dir: Path) -> dict:
    """A run's config.json as stored, to change by hand."""
    return json.loads((Path(run_dir) / CONFIG_FILE).read_text())


def write_raw_run_config(run_dir: Path, config: dict) -> None:
    write_json(Path(run_dir) / CONFIG_FILE, config)


def tiered(names, *, fast=()) -> list:
    """``names`` as pytest params, those not in ``fast`` marked ``large``: a registry-wide test
    keeps one case in the fast tier and the whole registry in the full suite."""
    import pytest

    return [pytest.param(name, marks=() if name in fast else pytest.mark.large) for name in names]


def default_sigint() -> None:
    """Give SIGINT its default action: a suite started in the background (``cmd &``) inherits it
    ignored, and Python and mobile-sr then leave Ctrl-C ignored too, as they should."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
