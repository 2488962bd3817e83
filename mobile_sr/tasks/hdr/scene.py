"""A multi-exposure HDR scene, and the HDR networks' encoding of its exposures (conventions in
:mod:`mobile_sr.tasks.hdr.protocol`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mobile_sr.core.errors import DatasetError
from mobile_sr.metrics import mu_tonemap
from mobile_sr.tasks.hdr.protocol import EXPOSURES, GAMMA

MAX_EV_SPAN = 20.0  # wider than any real bracket; keeps the exposure times 2^EV finite


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
    """The HDR networks' three ``... x 6`` inputs: each exposure next to its mu-law tonemapped
    HDR-domain version."""
    return [np.concatenate([ldr, mu_tonemap(hdr_domain(ldr, t))], axis=-1).astype(np.float32)
            for ldr, t in zip(ldrs, exposure_times, strict=True)]
