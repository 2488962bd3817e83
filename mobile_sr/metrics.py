"""Image-quality metrics, shared by training, evaluation and benchmarks: the standard SR protocol
and the multi-exposure HDR protocol.

PSNR and SSIM are measured on the Y channel of ITU-R BT.601 YCbCr computed from uint8 RGB and
rounded to integers, as MATLAB's ``rgb2ycbcr`` does for uint8 input, with ``shave`` border pixels
removed. SSIM follows Wang et al. (11x11 Gaussian window, sigma 1.5, K1=0.01, K2=0.03, 'valid'
filtering), as the reference MATLAB ``ssim_index`` does.

HDR images are linear radiance normalised to [0, 1] (see :mod:`mobile_sr.tasks.hdr.protocol`). PSNR-l compares them directly, PSNR-mu and SSIM-mu after the mu-law tonemap
T(H) = log(1 + mu H) / log(1 + mu), mu = 5000, the curve HDR networks are trained and judged on.
"""

from __future__ import annotations

import cv2
import numpy as np

from mobile_sr.core.errors import MetricInputError

_Y_WEIGHTS = np.array([65.481, 128.553, 24.966]) / 255.0
SSIM_WINDOW = 11
# The metrics work through an image in strips of about this many values, so that their float64
# temporaries (a dozen for SSIM) take tens of MB: one float64 copy of an 8000x8000 RGB image is 1.5 GB.
STRIP_VALUES = 1 << 20


def _rows_per_strip(row_values: int) -> int:
    return max(1, STRIP_VALUES // max(row_values, 1))


def min_image_side(shave: int) -> int:
    """The shortest image side PSNR-Y and SSIM-Y can measure: ``shave`` pixels off both borders
    leave SSIM's window."""
    return 2 * shave + SSIM_WINDOW


def _check_rgb_uint8(name: str, image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise MetricInputError(
            f"{name} must be a uint8 numpy array in [0, 255] (round and clip model outputs first), "
            f"got {type(image).__name__} {getattr(image, 'dtype', '')}"
        )
    if image.ndim != 3 or image.shape[2] != 3:
        raise MetricInputError(f"{name} must be H x W x 3 RGB, got shape {image.shape}")


def _check_pair(sr: np.ndarray, hr: np.ndarray, shave: int) -> None:
    _check_rgb_uint8("sr", sr)
    _check_rgb_uint8("hr", hr)
    if sr.shape != hr.shape:
        raise MetricInputError(
            f"sr and hr shapes differ: {sr.shape} vs {hr.shape}; modcrop HR to a multiple of the scale"
        )
    if shave < 0:
        raise MetricInputError(f"shave must be >= 0, got {shave}")
    if 2 * shave >= min(hr.shape[:2]):
        raise MetricInputError(
            f"shave={shave} leaves nothing of a {hr.shape[1]}x{hr.shape[0]} image; evaluate images of at least "
            f"{min_image_side(shave)}x{min_image_side(shave)} pixels"
        )


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of uint8 RGB, ``16 + (65.481 R + 128.553 G + 24.966 B) / 255``, rounded: computed
    in float64 strip by strip, returned as uint8 (the values, 16 to 235, are whole)."""
    _check_rgb_uint8("rgb", rgb)
    luma = np.empty(rgb.shape[:2], np.uint8)
    rows = _rows_per_strip(rgb[0].size)
    for top in range(0, rgb.shape[0], rows):
        luma[top : top + rows] = np.round(rgb[top : top + rows].astype(np.float64) @ _Y_WEIGHTS + 16.0)
    return luma


def _shave(image: np.ndarray, shave: int) -> np.ndarray:
    return image[shave:-shave, shave:-shave] if shave else image


def psnr(a: np.ndarray, b: np.ndarray, max_value: float = 255.0) -> float:
    """PSNR in dB between two same-shaped arrays; ``inf`` when they are identical."""
    if a.shape != b.shape:
        raise MetricInputError(f"shapes differ: {a.shape} vs {b.shape}")
    rows = _rows_per_strip(a[0].size)
    squared = sum(float(np.sum((a[top : top + rows].astype(np.float64) - b[top : top + rows]) ** 2))
                  for top in range(0, len(a), rows))
    mse = squared / a.size
    return float("inf") if mse == 0 else float(10.0 * np.log10(max_value**2 / mse))


def ssim(a: np.ndarray, b: np.ndarray, max_value: float = 255.0) -> float:
    """SSIM of two single-channel images (Wang et al., 'valid' Gaussian filtering)."""
    if a.shape != b.shape or a.ndim != 2:
        raise MetricInputError(f"ssim needs two same-shaped 2-D arrays, got {a.shape} and {b.shape}")
    if min(a.shape) < SSIM_WINDOW:
        raise MetricInputError(f"ssim needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels (after any "
                               f"shave), got {a.shape[1]}x{a.shape[0]}; evaluate larger images")
    c1 = (0.01 * max_value) ** 2
    c2 = (0.03 * max_value) ** 2
    window = cv2.getGaussianKernel(SSIM_WINDOW, 1.5)
    window = window @ window.T
    edge = SSIM_WINDOW // 2

    def filtered(x: np.ndarray) -> np.ndarray:
        return cv2.filter2D(x, -1, window)[edge:-edge, edge:-edge]

    def ssim_sum(a: np.ndarray, b: np.ndarray) -> float:
        a = a.astype(np.float64)
        b = b.astype(np.float64)
        mu_a, mu_b = filtered(a), filtered(b)
        var_a = filtered(a * a) - mu_a**2
        var_b = filtered(b * b) - mu_b**2
        cov = filtered(a * b) - mu_a * mu_b
        ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
            (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
        )
        return float(ssim_map.sum())

    # strips of the map's rows, each read with the window's rows above and below it
    height, width = (side - SSIM_WINDOW + 1 for side in a.shape)
    rows = _rows_per_strip(a.shape[1])
    total = sum(ssim_sum(a[top : min(top + rows, height) + 2 * edge], b[top : min(top + rows, height) + 2 * edge])
                for top in range(0, height, rows))
    return total / (height * width)


def psnr_y(sr: np.ndarray, hr: np.ndarray, shave: int) -> float:
    """PSNR on rounded BT.601 Y with ``shave`` border pixels removed (uint8 RGB inputs)."""
    _check_pair(sr, hr, shave)
    return psnr(_shave(rgb_to_y(sr), shave), _shave(rgb_to_y(hr), shave))


def ssim_y(sr: np.ndarray, hr: np.ndarray, shave: int) -> float:
    """SSIM on rounded BT.601 Y with ``shave`` border pixels removed (uint8 RGB inputs)."""
    _check_pair(sr, hr, shave)
    if min(hr.shape[:2]) < min_image_side(shave):
        raise MetricInputError(f"SSIM with shave={shave} needs images of at least {min_image_side(shave)}x"
                               f"{min_image_side(shave)} pixels, got {hr.shape[1]}x{hr.shape[0]}; evaluate larger images")
    return ssim(_shave(rgb_to_y(sr), shave), _shave(rgb_to_y(hr), shave))


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Round and clip a float image in [0, 255] to uint8, as saving it to a PNG would."""
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


MU = 5000.0


def mu_tonemap(hdr: np.ndarray, mu: float = MU) -> np.ndarray:
    """The mu-law tonemap of linear HDR values in [0, 1] (values outside are clipped)."""
    return np.log1p(mu * np.clip(hdr, 0.0, 1.0)) / np.log1p(mu)


def inverse_mu_tonemap(tonemapped: np.ndarray, mu: float = MU) -> np.ndarray:
    """Linear HDR values from mu-law tonemapped ones in [0, 1]."""
    return np.expm1(np.clip(tonemapped, 0.0, 1.0) * np.log1p(mu)) / mu


def _check_hdr_pair(output: np.ndarray, reference: np.ndarray) -> None:
    for name, image in (("output", output), ("reference", reference)):
        if not isinstance(image, np.ndarray) or not np.issubdtype(image.dtype, np.floating):
            raise MetricInputError(f"HDR {name} must be a float numpy array of linear radiance in [0, 1], "
                                   f"got {type(image).__name__} {getattr(image, 'dtype', '')}")
        if image.ndim != 3 or image.shape[2] != 3:
            raise MetricInputError(f"HDR {name} must be H x W x 3 RGB, got shape {image.shape}")
        if not np.isfinite(image).all() or image.min() < 0:
            raise MetricInputError(f"HDR {name} holds negative, NaN or infinite values; "
                                   "normalise radiance to [0, 1] first")
    if output.shape != reference.shape:
        raise MetricInputError(f"HDR output and reference shapes differ: {output.shape} vs {reference.shape}")


def psnr_l(output: np.ndarray, reference: np.ndarray) -> float:
    """PSNR of linear HDR images in [0, 1] (peak 1)."""
    _check_hdr_pair(output, reference)
    return psnr(output, reference, max_value=1.0)


def psnr_mu(output: np.ndarray, reference: np.ndarray) -> float:
    """PSNR of the mu-law tonemapped HDR images (peak 1)."""
    _check_hdr_pair(output, reference)
    return psnr(mu_tonemap(output), mu_tonemap(reference), max_value=1.0)


def ssim_mu(output: np.ndarray, reference: np.ndarray) -> float:
    """SSIM of the mu-law tonemapped HDR images, the mean over R, G and B."""
    _check_hdr_pair(output, reference)
    a, b = mu_tonemap(output), mu_tonemap(reference)
    return float(np.mean([ssim(a[:, :, c], b[:, :, c], max_value=1.0) for c in range(3)]))
