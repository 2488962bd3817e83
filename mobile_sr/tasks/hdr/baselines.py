"""Classical multi-exposure merges from OpenCV, the baselines every HDR network is judged against:
Debevec's and Robertson's radiance merges (camera response known or calibrated from the
exposures) and Mertens' exposure fusion (an LDR picture, shown but not scored: it has no radiance).
None of them aligns the exposures, so moving scenes ghost."""

from __future__ import annotations

import cv2
import numpy as np

from mobile_sr.core.errors import ConfigError
from mobile_sr.tasks.hdr.protocol import GAMMA

RESPONSES = ("known", "calibrated")


def _to_uint8(ldrs) -> list[np.ndarray]:
    return [np.round(np.clip(ldr, 0.0, 1.0) * 255.0).astype(np.uint8) for ldr in ldrs]


def gamma_response() -> np.ndarray:
    """The gamma-2.2 camera response as OpenCV wants it: 256 x 1 x 3, pixel value -> exposure."""
    exposure = np.power(np.arange(256, dtype=np.float32) / 255.0, GAMMA)
    exposure[0] = exposure[1] / 2  # OpenCV takes its log; the weights ignore this end anyway
    return np.repeat(exposure[:, None, None], 3, axis=2).astype(np.float32)


def _response(method: str, images, times: np.ndarray, response: str) -> np.ndarray:
    if response == "known":
        return gamma_response()
    if response == "calibrated":
        calibrate = cv2.createCalibrateDebevec() if method == "debevec" else cv2.createCalibrateRobertson()
        curve = calibrate.process(images, times)
        # The calibrated curve has an arbitrary scale: pin it so that mid-gray maps as gamma 2.2 does.
        return (curve * (gamma_response()[128] / np.maximum(curve[128], 1e-12))).astype(np.float32)
    raise ConfigError(f"response must be one of {RESPONSES}, got '{response}'")


def merge_radiance(ldrs, exposure_times, *, method: str = "debevec", response: str = "known") -> np.ndarray:
    """Merge LDR exposures (float RGB in [0, 1], quantised to 8 bits here as OpenCV needs) into
    linear radiance in the exposures' time units, with Debevec's or Robertson's method."""
    if method not in ("debevec", "robertson"):
        raise ConfigError(f"method must be 'debevec' or 'robertson', got '{method}'")
    images = _to_uint8(ldrs)
    times = np.asarray(exposure_times, dtype=np.float32)
    curve = _response(method, images, times, response)
    merge = cv2.createMergeDebevec() if method == "debevec" else cv2.createMergeRobertson()
    radiance = merge.process(images, times, curve)
    return np.nan_to_num(radiance, nan=0.0, posinf=0.0).clip(min=0.0).astype(np.float32)


def mertens_fusion(ldrs) -> np.ndarray:
    """Mertens' exposure fusion: a well-exposed LDR picture (float RGB in [0, 1]), no radiance."""
    return np.clip(cv2.createMergeMertens().process(_to_uint8(ldrs)), 0.0, 1.0).astype(np.float32)
