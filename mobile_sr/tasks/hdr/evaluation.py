"""Multi-exposure HDR evaluation: PSNR-mu, PSNR-l and SSIM-mu per scene and mean, for any merger
(a Keras model, an int8 ``.tflite``, OpenCV's Debevec or Robertson merge, the reference exposure
alone), written as JSON plus a PNG of tonemapped inputs, output, reference and error map."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mobile_sr.core.errors import OptionError
from mobile_sr.core.files import write_json
from mobile_sr.core.images import pad_to_multiple
from mobile_sr.core.plots import pyplot, save_figure
from mobile_sr.metrics import inverse_mu_tonemap, mu_tonemap, psnr_l, psnr_mu, ssim_mu
from mobile_sr.tasks.base import EvalOptions, EvalSubject
from mobile_sr.tasks.hdr.baselines import merge_radiance, mertens_fusion
from mobile_sr.tasks.hdr.data import load_hdr_scenes
from mobile_sr.tasks.hdr.protocol import REFERENCE_EXPOSURE
from mobile_sr.tasks.hdr.scene import HDRScene, hdr_domain, network_inputs
from mobile_sr.tiling import MAX_WHOLE_IMAGE_PIXELS, keras_tiling

Merger = Callable[[HDRScene], np.ndarray]  # scene -> linear HDR in [0, 1], aligned to the reference


@dataclass(frozen=True)
class SceneScore:
    name: str
    psnr_mu: float
    psnr_l: float
    ssim_mu: float


@dataclass(frozen=True)
class HDREvalReport:
    model: str
    dataset: str
    scenes: list[SceneScore] = field(default_factory=list)
    runtime: str | None = None  # what ran a .tflite (litert, openvino); None for the other mergers

    def mean(self, metric: str) -> float:
        return float(np.mean([getattr(scene, metric) for scene in self.scenes]))

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "dataset": self.dataset,
            **({"runtime": self.runtime} if self.runtime else {}),
            "mean_psnr_mu": round(self.mean("psnr_mu"), 4),
            "mean_psnr_l": round(self.mean("psnr_l"), 4),
            "mean_ssim_mu": round(self.mean("ssim_mu"), 5),
            "scenes": [{k: (round(v, 5) if isinstance(v, float) else v) for k, v in asdict(s).items()} for s in self.scenes],
        }


def keras_merger(model, *, size_multiple: int = 1, max_pixels: int = MAX_WHOLE_IMAGE_PIXELS,
                 log: Callable[[str], None] | None = None) -> Merger:
    """Run a Keras HDR model (three 6-channel exposures -> tonemapped HDR) on a scene,
    reflect-padding it to a multiple of ``size_multiple`` (the U-Net's downsampling) and back; a
    scene of more than ``max_pixels`` pixels in seamless tiles (:mod:`mobile_sr.tiling`; progress
    to ``log``)."""
    apply = keras_tiling(model, max_pixels=max_pixels, log=log)

    def merge(scene: HDRScene) -> np.ndarray:
        def run(*ldrs: np.ndarray) -> np.ndarray:
            height, width = ldrs[0].shape[:2]
            inputs = [pad_to_multiple(x, size_multiple)[None] for x in network_inputs(ldrs, scene.exposure_times)]
            return np.asarray(model(inputs, training=False))[0, :height, :width]

        return apply(run, list(scene.ldrs), finish=lambda tonemapped: inverse_mu_tonemap(tonemapped).astype(np.float32))

    return merge


def opencv_merger(method: str, response: str = "known") -> Merger:
    """Debevec's or Robertson's merge, clipped to the [0, 1] radiance range of the references."""
    return lambda scene: np.clip(merge_radiance(scene.ldrs, scene.exposure_times, method=method, response=response), 0, 1)


def reference_exposure_merger(scene: HDRScene) -> np.ndarray:
    """The reference exposure alone, linearised: what merging has to improve on."""
    return np.clip(hdr_domain(scene.ldrs[REFERENCE_EXPOSURE], scene.exposure_times[REFERENCE_EXPOSURE]), 0, 1)


def evaluate_scenes(
    merge: Merger, scenes: list[HDRScene], *, model: str, dataset: str, progress: Callable[[str], None] | None = None,
    runtime: str | None = None,
) -> HDREvalReport:
    """Score ``merge`` on each scene; ``runtime`` names what ran a .tflite merger, for the report."""
    scores = []
    for index, scene in enumerate(scenes, 1):
        if scene.hdr is None:
            raise ValueError(f"{scene.name} has no HDR reference to score against")
        output = merge(scene)
        if output.shape != scene.hdr.shape:
            raise ValueError(f"{model} returned {output.shape} for {scene.name}, expected {scene.hdr.shape}")
        reference = scene.hdr.astype(np.float64)
        scores.append(SceneScore(scene.name, psnr_mu(output.astype(np.float64), reference),
                                 psnr_l(output.astype(np.float64), reference), ssim_mu(output.astype(np.float64), reference)))
        if progress:
            progress(f"  [{index}/{len(scenes)}] {scene.name}: PSNR-mu {scores[-1].psnr_mu:.2f} dB, PSNR-l {scores[-1].psnr_l:.2f} dB")
    return HDREvalReport(model=model, dataset=dataset, scenes=scores, runtime=runtime)


def write_hdr_report(reports: list[HDREvalReport], json_path: Path) -> None:
    write_json(json_path, [r.to_dict() for r in reports])


def format_hdr_report(report: HDREvalReport) -> str:
    model = report.model if report.runtime is None else f"{report.model} [{report.runtime}]"
    return (f"{model} on {report.dataset}: PSNR-mu {report.mean('psnr_mu'):.3f} dB, "
            f"PSNR-l {report.mean('psnr_l'):.3f} dB, SSIM-mu {report.mean('ssim_mu'):.4f} ({len(report.scenes)} scenes)")


def save_hdr_figure(scene: HDRScene, outputs: dict[str, np.ndarray], path: Path) -> None:
    """One scene: the three exposures, each merger's tonemapped output, Mertens' exposure fusion,
    and, where the scene has a reference, the outputs' PSNR-mu, the tonemapped reference and the
    first output's error map (|tonemapped difference|)."""
    plt = pyplot()
    scored = scene.hdr is not None
    panels = [(f"exposure {i + 1} (x{t:.3g})", ldr)
              for i, (ldr, t) in enumerate(zip(scene.ldrs, scene.exposure_times, strict=True))]
    panels += [(f"{name} ({psnr_mu(out.astype(np.float64), scene.hdr.astype(np.float64)):.2f} dB)" if scored else name,
                mu_tonemap(out)) for name, out in outputs.items()]
    panels.append(("Mertens fusion (LDR, not scored)" if scored else "Mertens fusion (LDR)", mertens_fusion(scene.ldrs)))
    if scored:
        panels.append(("reference (mu-law)", mu_tonemap(scene.hdr)))
    columns = 4
    rows = -(-(len(panels) + scored) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3.2 * rows), squeeze=False)
    for axis, (title, image) in zip(axes.flat, panels, strict=False):  # more axes than panels
        axis.imshow(np.clip(image, 0, 1))
        axis.set_title(title, fontsize=9)
    if scored:
        first_name, first = next(iter(outputs.items()))
        error_axis = axes.flat[len(panels)]
        shown = error_axis.imshow(np.abs(mu_tonemap(first) - mu_tonemap(scene.hdr)).mean(axis=2), cmap="inferno",
                                  vmin=0, vmax=0.2)
        error_axis.set_title(f"{first_name}: |error| (mu-law)", fontsize=9)
        figure.colorbar(shown, ax=error_axis, fraction=0.04)
    for axis in axes.flat:
        axis.axis("off")
    figure.suptitle(scene.name)
    save_figure(figure, path)


def evaluate_subject(subject: EvalSubject, options: EvalOptions) -> list[HDREvalReport]:
    """Score an HDR run or .tflite (a classical baseline: only the classical merges) on
    ``options.data``, next to OpenCV's Debevec and Robertson merges and the reference exposure
    alone; with a report path (``options.json_path``, else one per dataset in
    ``options.report_dir``) the report there and a figure of the scene the first method does worst on."""
    given = [flag for flag, value in (("--scale", options.scales), ("--tile", options.tile)) if value]
    if given:
        raise OptionError(f"{subject.source} merges HDR exposures; {' and '.join(given)} "
                          f"{'are' if len(given) > 1 else 'is'} for SR models only: drop {' and '.join(given)}")
    if subject.path is not None:
        from mobile_sr.tasks.hdr.runner import TFLiteMerger

        merger = TFLiteMerger(subject.path, runtime=options.runtime, log=options.log)
    elif subject.model is not None:
        merger = keras_merger(subject.model, size_multiple=subject.model_config.size_multiple, log=options.log)
    else:
        merger = None
    dataset, scenes = load_hdr_scenes(options.data, "val")
    report_path = options.writable_report_path(dataset)
    mergers = {} if merger is None else {subject.name: merger}
    mergers.update({"debevec": opencv_merger("debevec"), "robertson": opencv_merger("robertson"),
                    "reference exposure": reference_exposure_merger})
    if any(scene.hdr is None for scene in scenes):
        return _figures_only(mergers, scenes, dataset, report_path, options)
    progress = None if options.quiet else options.log
    reports = []
    for label, merge in mergers.items():
        if progress:  # the per-scene lines of each method under its name
            progress(f"{label} on {dataset}:")
        runtime = options.runtime if subject.path is not None and merge is merger else None
        reports.append(evaluate_scenes(merge, scenes, model=label, dataset=dataset, progress=progress, runtime=runtime))
    for report in reports:
        options.log(format_hdr_report(report))
    if report_path is not None:
        write_hdr_report(reports, report_path)
        worst = min(reports[0].scenes, key=lambda scene: scene.psnr_mu).name
        scene = next(s for s in scenes if s.name == worst)
        figure = report_path.with_name(report_path.stem + f"_{worst}.png")
        save_hdr_figure(scene, {label: mergers[label](scene) for label in list(mergers)[:3]}, figure)
        options.log(f"wrote {report_path} and {figure.name}")
    return reports


def _figures_only(mergers: dict, scenes: list[HDRScene], dataset: str, report_path: Path | None,
                  options: EvalOptions) -> list:
    """Data without reference radiance (a real bracket): nothing to score, a figure of every
    merger's output per scene, to judge by eye (ghosts, noise, halos)."""
    if report_path is None:
        raise OptionError(f"{dataset} has no reference radiance to score against: give --json FILE to write a figure "
                          "of each merge next to it, to compare them by eye")
    figures = []
    for scene in scenes:
        figure = report_path.with_name(f"{report_path.stem}_{scene.name}.png")
        save_hdr_figure(scene, {label: merge(scene) for label, merge in list(mergers.items())[:3]}, figure)
        figures.append(figure.name)
    write_json(report_path, {"dataset": dataset, "scored": False, "methods": list(mergers)[:3],
                             "scenes": [scene.name for scene in scenes], "figures": figures})
    options.log(f"{dataset}: no reference radiance, nothing scored; wrote {report_path} and {', '.join(figures)}")
    return []
