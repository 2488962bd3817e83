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
from mobile_sr.tasks.base import EvalOptions, EvalSubject, file_name_part
from mobile_sr.tasks.sr.data import SRPair, load_sr_pairs
from mobile_sr.tasks.sr.resize import bicubic_upscale
from mobile_sr.tiling import MAX_WHOLE_IMAGE_PIXELS, keras_tiling

# Scoring an HR image above this many pixels takes seconds to minutes (SSIM's five filters, in
# strips), so a line says it has started
SCORING_NOTE_PIXELS = 16_000_000

Upscaler = Callable[[np.ndarray], np.ndarray]  # uint8 LR RGB -> uint8 SR RGB


@dataclass(frozen=True)
class ImageScore:
    name: str
    psnr_y: float
    ssim_y: float
    # bicubic's on the same image, where the scored upscaler is not bicubic itself
    bicubic_psnr_y: float | None = None
    bicubic_ssim_y: float | None = None

    def to_dict(self) -> dict:
        return {key: round(value, 4 if "psnr" in key else 5) if isinstance(value, float) else value
                for key, value in asdict(self).items() if value is not None}


@dataclass(frozen=True)
class EvalReport:
    model: str
    dataset: str
    scale: int
    images: list[ImageScore] = field(default_factory=list)
    runtime: str | None = None  # what ran a .tflite (litert, openvino); None for a Keras model or bicubic

    @property
    def mean_psnr_y(self) -> float:
        return float(np.mean([image.psnr_y for image in self.images]))

    @property
    def mean_ssim_y(self) -> float:
        return float(np.mean([image.ssim_y for image in self.images]))

    @property
    def compares_bicubic(self) -> bool:
        return bool(self.images) and all(image.bicubic_psnr_y is not None for image in self.images)

    @property
    def mean_bicubic_psnr_y(self) -> float:
        return float(np.mean([image.bicubic_psnr_y for image in self.images]))

    @property
    def mean_bicubic_ssim_y(self) -> float:
        return float(np.mean([image.bicubic_ssim_y for image in self.images]))

    def to_dict(self) -> dict:
        bicubic = {"mean_bicubic_psnr_y": round(self.mean_bicubic_psnr_y, 4),
                   "mean_bicubic_ssim_y": round(self.mean_bicubic_ssim_y, 5)} if self.compares_bicubic else {}
        return {
            "model": self.model,
            "dataset": self.dataset,
            "scale": self.scale,
            **({"runtime": self.runtime} if self.runtime else {}),
            "mean_psnr_y": round(self.mean_psnr_y, 4),
            "mean_ssim_y": round(self.mean_ssim_y, 5),
            **bicubic,
            "images": [image.to_dict() for image in self.images],
        }


def bicubic_upscaler(scale: int) -> Upscaler:
    return lambda lr: bicubic_upscale(lr, scale)


def keras_upscaler(model, *, max_pixels: int = MAX_WHOLE_IMAGE_PIXELS, log: Callable[[str], None] | None = None) -> Upscaler:
    """Run a Keras SR model (RGB in [0, 255]) on one image: whole, or one of more than
    ``max_pixels`` pixels in seamless tiles (:mod:`mobile_sr.tiling`; progress to ``log``)."""
    apply = keras_tiling(model, max_pixels=max_pixels, log=log)

    def run(lr: np.ndarray) -> np.ndarray:
        return np.asarray(model(lr[None].astype(np.float32), training=False))[0]

    return lambda lr: apply(run, [lr], finish=to_uint8)


def evaluate_pairs(
    upscale: Upscaler, pairs: list[SRPair], *, model: str, dataset: str, scale: int,
    progress: Callable[[str], None] | None = None, compare_bicubic: bool = False, runtime: str | None = None,
) -> EvalReport:
    """Score ``upscale`` on each pair (with ``compare_bicubic``, bicubic too, per image); ``runtime``
    names what ran a .tflite upscaler, for the report."""
    scores = []
    for index, stored_pair in enumerate(pairs, 1):
        pair = stored_pair.in_memory()  # one pair at a time: a large validation set never all in memory
        sr = upscale(pair.lr)
        if sr.shape != pair.hr.shape:
            raise ValueError(f"{model} returned {sr.shape} for {pair.name}, expected {pair.hr.shape}")
        if progress and pair.hr.shape[0] * pair.hr.shape[1] > SCORING_NOTE_PIXELS:
            progress(f"  [{index}/{len(pairs)}] {pair.name}: scoring {pair.hr.shape[1]}x{pair.hr.shape[0]}...")
        bicubic = {}
        if compare_bicubic:
            upscaled = bicubic_upscale(pair.lr, scale)
            bicubic = {"bicubic_psnr_y": psnr_y(upscaled, pair.hr, scale), "bicubic_ssim_y": ssim_y(upscaled, pair.hr, scale)}
        scores.append(ImageScore(pair.name, psnr_y(sr, pair.hr, scale), ssim_y(sr, pair.hr, scale), **bicubic))
        if progress:
            progress(f"  [{index}/{len(pairs)}] {pair.name}: {scores[-1].psnr_y:.2f} dB")
    return EvalReport(model=model, dataset=dataset, scale=scale, images=scores, runtime=runtime)


def write_report(report: EvalReport | list[EvalReport], json_path: Path) -> None:
    """Write one report as a JSON object (several, e.g. one per scale, as a JSON list)."""
    write_json(json_path, [r.to_dict() for r in report] if isinstance(report, list) else report.to_dict())


def write_crops(
    report: EvalReport, upscale: Upscaler, pairs: list[SRPair], png_path: Path
) -> None:
    """Side-by-side crops (bicubic / model / HR) of the worst and best image of ``report``, each
    panel titled with its own PSNR-Y on that image."""
    by_name = {pair.name: pair for pair in pairs}
    ranked = sorted(report.images, key=lambda image: image.psnr_y)
    chosen = [("worst", ranked[0])] + ([("best", ranked[-1])] if len(ranked) > 1 else [])
    rows = []
    for label, score in chosen:
        pair = by_name[score.name]
        # bicubic evaluated on its own has one panel for both
        upscaled = {"bicubic": bicubic_upscale(pair.lr, report.scale), report.model: upscale(pair.lr)}
        panels = {f"{name} {psnr_y(image, pair.hr, report.scale):.2f} dB": image for name, image in upscaled.items()}
        rows.append((f"{label}: {score.name}", {**panels, "HR": pair.hr}))
    save_crop_comparison(rows, png_path)


def format_report(report: EvalReport, *, per_image: bool = True) -> str:
    """Per image (with ``per_image``; next to bicubic's where the report has them) and the means."""
    lines = []
    if per_image:
        width = max(len(image.name) for image in report.images)
        compared = report.compares_bicubic
        if compared:
            lines.append(f"  {'':<{width}}  {report.model:<23}  {'bicubic':<23}  gain")
        for image in report.images:
            line = f"  {image.name:<{width}}  {image.psnr_y:7.3f} dB  SSIM {image.ssim_y:.4f}"
            if compared:
                line += (f"  {image.bicubic_psnr_y:7.3f} dB  SSIM {image.bicubic_ssim_y:.4f}  "
                         f"{image.psnr_y - image.bicubic_psnr_y:+.3f} dB")
            lines.append(line)
    model = report.model if report.runtime is None else f"{report.model} [{report.runtime}]"
    summary = (f"{model} on {report.dataset} x{report.scale}: PSNR-Y {report.mean_psnr_y:.3f} dB, "
               f"SSIM-Y {report.mean_ssim_y:.4f} ({len(report.images)} images)")
    if report.compares_bicubic:
        summary += (f"; bicubic {report.mean_bicubic_psnr_y:.3f} dB, SSIM-Y {report.mean_bicubic_ssim_y:.4f} "
                    f"({report.mean_psnr_y - report.mean_bicubic_psnr_y:+.3f} dB)")
    lines.append(summary)
    return "\n".join(lines)


DEFAULT_BASELINE_SCALES = [3]


def evaluate_subject(subject: EvalSubject, options: EvalOptions) -> list[EvalReport]:
    """PSNR/SSIM-Y of a run, a .tflite or bicubic on ``options.data`` at each scale (a model: its
    own), printed, and written with a crops PNG per scale to ``options.json_path`` (several
    scales: a list) or, without it, to a report per dataset and scale in ``options.report_dir``."""
    if subject.path is not None:
        from mobile_sr.tasks.sr.runner import TFLiteUpscaler

        upscaler = TFLiteUpscaler(subject.path, tile=options.tile, runtime=options.runtime, log=options.log)
        fixed_scale, what = upscaler.scale, str(subject.path)
    elif subject.model is not None:
        upscaler = keras_upscaler(subject.model, log=options.log)
        fixed_scale, what = subject.model_config.scale, f"the model in {subject.run_dir}"
    else:
        fixed_scale = None
    if fixed_scale is not None and options.scales not in (None, [fixed_scale]):
        raise OptionError(f"{what} is x{fixed_scale}; drop --scale or pass --scale {fixed_scale}")
    scales = [fixed_scale] if fixed_scale is not None else options.scales or DEFAULT_BASELINE_SCALES
    reports, written = [], []
    for scale in scales:
        dataset, pairs = load_sr_pairs(options.data, scale, split="val")
        report_path = options.writable_report_path(dataset, scale)
        upscale = bicubic_upscaler(scale) if fixed_scale is None else upscaler
        report = evaluate_pairs(upscale, pairs, model=subject.name, dataset=dataset, scale=scale,
                                compare_bicubic=fixed_scale is not None,
                                runtime=options.runtime if subject.path is not None else None)
        options.log(format_report(report, per_image=not options.quiet))
        reports.append(report)
        if report_path is None:
            continue
        if options.json_path is None:  # a report of its own, named after the dataset and scale
            write_report(report, report_path)
            crops = report_path.with_name(f"{report_path.stem}_crops.png")
            written.append(report_path)
        else:
            crops = report_path.with_name(f"{report_path.stem}_{file_name_part(dataset)}_x{scale}_crops.png")
        write_crops(report, upscale, pairs, crops)
        written.append(crops)
    if options.json_path is not None:
        write_report(reports[0] if len(reports) == 1 else reports, options.json_path)
        written.insert(0, options.json_path)
    if written:
        options.log(wrote_line(written))
    return reports


def wrote_line(paths: list[Path]) -> str:
    """What an evaluation wrote: the first file by its path, those next to it by their names."""
    names = [str(paths[0]), *(path.name for path in paths[1:])]
    return f"wrote {', '.join(names[:-1])} and {names[-1]}" if len(names) > 1 else f"wrote {names[0]}"
