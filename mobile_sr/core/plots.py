"""PNG figures people would rather look at than JSON: training curves and side-by-side crops."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from mobile_sr.core.files import atomic_write_bytes


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure, path: Path) -> None:
    """Write a figure as PNG atomically and free it; its title, if any, also as the PNG's Title
    text (what file browsers and scripts read without decoding the image)."""
    buffer = io.BytesIO()
    title = figure.get_suptitle()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Title": title} if title else None)
    pyplot().close(figure)
    atomic_write_bytes(path, buffer.getvalue())


def plot_training_curve(
    records: list[dict], path: Path, *, title: str, metric: str = "psnr_y", metric_label: str = "PSNR-Y",
    baseline: tuple[str, float] | None = None,
) -> None:
    """Loss and validation ``metric`` (a ``val_<metric>`` key of the metrics log) against step,
    with the classical ``(name, value)`` baseline as a dashed line."""
    plt = pyplot()
    train = [r for r in records if "loss" in r]
    val = [r for r in records if f"val_{metric}" in r]
    figure, (loss_axis, psnr_axis) = plt.subplots(1, 2, figsize=(11, 4))
    loss_axis.plot([r["step"] for r in train], [r["loss"] for r in train], lw=1)
    loss_axis.set(xlabel="step", ylabel="training loss", yscale="log", title="loss")
    psnr_axis.plot([r["step"] for r in val], [r[f"val_{metric}"] for r in val], "o-", ms=3, label="model")
    if baseline is not None:
        psnr_axis.axhline(baseline[1], color="gray", ls="--", label=f"{baseline[0]} {baseline[1]:.2f} dB")
    psnr_axis.set(xlabel="step", ylabel=f"{metric_label} (dB)", title="validation")
    psnr_axis.legend()
    for axis in (loss_axis, psnr_axis):
        axis.grid(alpha=0.3)
    figure.suptitle(title)
    save_figure(figure, path)


def _most_different_window(a: np.ndarray, b: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left corner of the ``size`` window where ``a`` and ``b`` differ most (on a coarse grid)."""
    error = np.abs(a.astype(np.float32) - b.astype(np.float32)).mean(axis=2)
    best, corner = -1.0, (0, 0)
    step = max(1, size // 4)
    for top in range(0, max(1, error.shape[0] - size + 1), step):
        for left in range(0, max(1, error.shape[1] - size + 1), step):
            value = float(error[top : top + size, left : left + size].mean())
            if value > best:
                best, corner = value, (top, left)
    return corner


def save_crop_comparison(rows: list[tuple[str, dict[str, np.ndarray]]], path: Path, *, crop: int = 96) -> None:
    """One row per image with the same crop of each named version (e.g. bicubic / model / HR).

    The crop is where the first and last version (bicubic and HR) differ most: the detail an SR
    model has to restore.
    """
    plt = pyplot()
    columns = len(rows[0][1])
    figure, axes = plt.subplots(len(rows), columns, figsize=(3 * columns, 3.2 * len(rows)), squeeze=False)
    for row_axes, (title, versions) in zip(axes, rows, strict=True):
        images = list(versions.values())
        size = min(crop, *images[0].shape[:2])
        top, left = _most_different_window(images[0], images[-1], size)
        for axis, (label, image) in zip(row_axes, versions.items(), strict=True):
            axis.imshow(image[top : top + size, left : left + size], interpolation="nearest")
            axis.set_title(f"{title}\n{label}", fontsize=9)
            axis.axis("off")
    save_figure(figure, path)
