"""Standard SR evaluation: PSNR/SSIM on Y with ``scale`` pixels shaved, per image and mean, for any
upscaler (bicubic, a Keras model, later a .tflite interpreter), written as JSON plus a PNG of
side-by-side crops for the worst and best images."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mobile_sr.core.errors import OptionError
from mobile_sr.core.files import write_json
from mobile_sr.core.plots import save_crop_comparison
from mobile_sr.metrics import psnr_y, ssim_y, to_uint8
from mobile_sr.tasks.base import EvalOptions, EvalSubject
from mobile_sr.tasks.sr.data import SRPair, load_sr_pairs
from mobile_sr.tasks.sr.resize import bicubic_upscale

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
    write_json(json_path, [r.to_dict() for r in report] if isinstance(report, list) else report.to_dict())


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


DEFAULT_BASELINE_SCALES = [3]


def evaluate_subject(subject: EvalSubject, options: EvalOptions) -> list[EvalReport]:
    """PSNR/SSIM-Y of a run, a .tflite or bicubic on ``options.data`` at each scale (a model: its
    own), printed, and with ``options.json_path`` written with a crops PNG per scale."""
    if subject.path is not None:
        from mobile_sr.tasks.sr.runner import TFLiteUpscaler

        upscaler = TFLiteUpscaler(subject.path, tile=options.tile)
        fixed_scale, what = upscaler.scale, str(subject.path)
    elif subject.model is not None:
        upscaler = keras_upscaler(subject.model)
        fixed_scale, what = subject.model_config.scale, f"the model in {subject.run_dir}"
    else:
        fixed_scale = None
    if fixed_scale is not None and options.scales not in (None, [fixed_scale]):
        raise OptionError(f"{what} is x{fixed_scale}; drop --scale or pass --scale {fixed_scale}")
    scales = [fixed_scale] if fixed_scale is not None else options.scales or DEFAULT_BASELINE_SCALES
    reports = []
    for scale in scales:
        dataset, pairs = load_sr_pairs(options.data, scale, split="val")
        upscale = bicubic_upscaler(scale) if fixed_scale is None else upscaler
        report = evaluate_pairs(upscale, pairs, model=subject.name, dataset=dataset, scale=scale)
        options.log(format_report(report, per_image=not options.quiet))
        reports.append(report)
        if options.json_path is not None:
            suffix = f"_{dataset}_x{scale}_crops.png"
            write_crops(report, upscale, pairs, options.json_path.with_name(options.json_path.stem + suffix))
    if options.json_path is not None:
        write_report(reports[0] if len(reports) == 1 else reports, options.json_path)
        options.log(f"wrote {options.json_path}")
    return reports
