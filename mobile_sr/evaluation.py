"""Standard SR evaluation: PSNR/SSIM on Y with ``scale`` pixels shaved, per image and mean, for any
upscaler (bicubic, a Keras model, later a .tflite interpreter), written as JSON plus a PNG of
side-by-side crops for the worst and best images."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from mobile_sr.data.sr import SRPair
from mobile_sr.images import atomic_write_bytes
from mobile_sr.metrics import psnr_y, ssim_y, to_uint8
from mobile_sr.plots import save_crop_comparison
from mobile_sr.resize import bicubic_upscale

Upscaler = Callable[[np.ndarray], np.ndarray]  # uint8 LR RGB -> uint8 SR RGB


@dataclass(frozen=True)
class ImageScore:
    name: str
    psnr_y: float
    ssim_y: float


@dataclass(frozen=True)
class EvalReport:
    model: str
    dataset: str
    scale: int
    images: list[ImageScore] = field(default_factory=list)

    @property
    def mean_psnr_y(self) -> float:
        return float(np.mean([image.psnr_y for image in self.images]))

    @property
    def mean_ssim_y(self) -> float:
        return float(np.mean([image.ssim_y for image in self.images]))

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "dataset": self.dataset,
            "scale": self.scale,
            "mean_psnr_y": round(self.mean_psnr_y, 4),
            "mean_ssim_y": round(self.mean_ssim_y, 5),
            "images": [
                {**asdict(image), "psnr_y": round(image.psnr_y, 4), "ssim_y": round(image.ssim_y, 5)}
                for image in self.images
            ],
        }


def bicubic_upscaler(scale: int) -> Upscaler:
    return lambda lr: bicubic_upscale(lr, scale)


def keras_upscaler(model) -> Upscaler:
    """Run a Keras SR model (RGB in [0, 255]) on one whole image."""

    def upscale(lr: np.ndarray) -> np.ndarray:
        output = model(lr[None].astype(np.float32), training=False)
        return to_uint8(np.asarray(output)[0])

    return upscale


def evaluate_pairs(
    upscale: Upscaler, pairs: list[SRPair], *, model: str, dataset: str, scale: int,
    progress: Callable[[str], None] | None = None,
) -> EvalReport:
    scores = []
    for index, pair in enumerate(pairs, 1):
        sr = upscale(pair.lr)
        if sr.shape != pair.hr.shape:
            raise ValueError(f"{model} returned {sr.shape} for {pair.name}, expected {pair.hr.shape}")
        scores.append(ImageScore(pair.name, psnr_y(sr, pair.hr, scale), ssim_y(sr, pair.hr, scale)))
        if progress:
            progress(f"  [{index}/{len(pairs)}] {pair.name}: {scores[-1].psnr_y:.2f} dB")
    return EvalReport(model=model, dataset=dataset, scale=scale, images=scores)


def write_report(report: EvalReport | list[EvalReport], json_path: Path) -> None:
    """Write one report as a JSON object (several, e.g. one per scale, as a JSON list)."""
    data = [r.to_dict() for r in report] if isinstance(report, list) else report.to_dict()
    atomic_write_bytes(json_path, (json.dumps(data, indent=2) + "\n").encode())


def write_crops(
    report: EvalReport, upscale: Upscaler, pairs: list[SRPair], png_path: Path
) -> None:
    """Side-by-side crops (bicubic / model / HR) of the worst and best image of ``report``."""
    by_name = {pair.name: pair for pair in pairs}
    ranked = sorted(report.images, key=lambda image: image.psnr_y)
    chosen = [("worst", ranked[0])] + ([("best", ranked[-1])] if len(ranked) > 1 else [])
    rows = []
    for label, score in chosen:
        pair = by_name[score.name]
        rows.append((
            f"{label}: {score.name} ({score.psnr_y:.2f} dB)",
            {
                "bicubic": bicubic_upscale(pair.lr, report.scale),
                report.model: upscale(pair.lr),
                "HR": pair.hr,
            },
        ))
    save_crop_comparison(rows, png_path)


def format_report(report: EvalReport, *, per_image: bool = True) -> str:
    lines = []
    if per_image:
        width = max(len(image.name) for image in report.images)
        lines += [f"  {image.name:<{width}}  {image.psnr_y:7.3f} dB  SSIM {image.ssim_y:.4f}" for image in report.images]
    lines.append(
        f"{report.model} on {report.dataset} x{report.scale}: PSNR-Y {report.mean_psnr_y:.3f} dB, "
        f"SSIM-Y {report.mean_ssim_y:.4f} ({len(report.images)} images)"
    )
    return "\n".join(lines)
