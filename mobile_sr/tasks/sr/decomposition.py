"""Structure-texture decomposition of HR images, the targets of ``attention_sr``'s two branches.

The structure is the image denoised by total-variation minimisation (Rudin-Osher-Fatemi, solved
with Chambolle's projection algorithm as ``skimage.restoration.denoise_tv_chambolle`` does): the
smooth, piecewise-flat part, edges kept. The texture is what remains, ``image - structure``
(fine detail and noise, signed). The attention SR paper uses a structure-adaptive TV variant; plain
TV is its well-known special case.

Two equal implementations on a batch ``N x H x W x C`` of pixels in [0, 255], each channel of each
image decomposed on its own: :func:`structure_texture` in numpy (for data pipelines) and
:func:`structure_texture_tf` in TensorFlow (inside a train step, on the accelerator; Chambolle's
iterations are a few elementwise passes each, slow in numpy on big batches).

The structure is rounded to multiples of 2^-16, so that for images on that grid (8-bit pixels,
any integer values) ``structure + texture == image`` holds exactly in float32.
"""

from __future__ import annotations

import numpy as np

from mobile_sr.core.errors import ImageError

# The TV weight for intensities in [0, 1] (skimage's default); the larger, the flatter the structure.
# On natural photos it moves about half the total variation into the texture.
TV_WEIGHT = 0.1
# A fixed count, not skimage's energy-based stop, so every patch gets the same function of its
# pixels; Chambolle converges slowly, and 50 steps come within a few pixel levels of the limit.
TV_ITERATIONS = 50
PIXEL_MAX = 255.0
_GRID = 2.0**16


def _chambolle(image, weight: float, iterations: int, concat, sqrt):
    """TV denoising over axes 1 and 2 of ``image``, written with arithmetic and slicing only
    (``concat``, ``sqrt`` from numpy or TensorFlow). The dual field ``p`` lives on the forward
    differences; ``image + div(p)`` is the denoised image (as in skimage's Chambolle, step 1/4)."""
    step = 0.25

    def forward_differences(values):
        zero_row, zero_column = values[:, -1:] * 0, values[:, :, -1:] * 0
        return (concat([values[:, 1:] - values[:, :-1], zero_row], 1),
                concat([values[:, :, 1:] - values[:, :, :-1], zero_column], 2))

    def divergence(rows, columns):
        return (concat([rows[:, :1], rows[:, 1:] - rows[:, :-1]], 1)
                + concat([columns[:, :, :1], columns[:, :, 1:] - columns[:, :, :-1]], 2))

    rows, columns = image * 0, image * 0
    denoised = image
    for _ in range(iterations - 1):
        gradient_rows, gradient_columns = forward_differences(denoised)
        norm = 1.0 + sqrt(gradient_rows**2 + gradient_columns**2) * (step / weight)
        rows = (rows - step * gradient_rows) / norm
        columns = (columns - step * gradient_columns) / norm
        denoised = image - divergence(rows, columns)
    return denoised


def _check(shape) -> None:
    if len(shape) != 4:
        raise ImageError(f"expected a batch N x H x W x C of images, got shape {tuple(shape)}; add a batch axis")


def structure_texture(
    images: np.ndarray, *, weight: float = TV_WEIGHT, iterations: int = TV_ITERATIONS,
) -> tuple[np.ndarray, np.ndarray]:
    """``(structure, texture)`` of a batch of images in [0, 255] (uint8 or float), float32, with
    ``structure + texture == images``; ``weight`` is relative to intensities in [0, 1]."""
    _check(images.shape)
    image = np.asarray(images, np.float32) / np.float32(PIXEL_MAX)
    smooth = _chambolle(image, weight, iterations, np.concatenate, np.sqrt)
    structure = (np.round(smooth * np.float32(PIXEL_MAX * _GRID)) / np.float32(_GRID)).astype(np.float32)
    return structure, np.asarray(images, np.float32) - structure


def structure_texture_tf(images, *, weight: float = TV_WEIGHT, iterations: int = TV_ITERATIONS):
    """:func:`structure_texture` on a float32 tensor, in TensorFlow (graph- and GPU-friendly)."""
    from mobile_sr.core.backend import tf

    _check(images.shape)
    images = tf.convert_to_tensor(images, tf.float32)
    smooth = _chambolle(images / PIXEL_MAX, weight, iterations, lambda parts, axis: tf.concat(parts, axis), tf.sqrt)
    structure = tf.round(smooth * (PIXEL_MAX * _GRID)) / _GRID
    return structure, images - structure
