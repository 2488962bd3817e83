"""The quantization ladder: float -> PTQ int8 -> QAT int8 -> QAT int8 with weight clipping and the
symmetric regularizer, for SCSRN and ABPN x3, every stage measured on Set5 and Set14.

    python benchmarks/quantization_ladder.py [--float-runs benchmarks/results/float_training/runs]
        [--qat-minutes 10] [--qat-models scsrn,abpn] [--out benchmarks/results/quantization_ladder]

Starts from the float runs of ``float_training.py``. Each model gets four QAT runs, plain and with
clipping + regularizer, each started from data-aware rounding (mobile-sr's default) and from
nearest rounding (plain tfmot QAT's start, and the SCSRN paper's): the same budget, seed and data,
side by side on pinned cores (``jobs.py``). Every int8 figure is
measured on the exported 360x640 ``.tflite`` in the LiteRT interpreter (whole images, by resizing
its input tensor); "float" is the float32 ``.tflite``, "QAT (Keras)" the fake-quantized Keras
model (the paper's "QAT" column). Two more columns show what weight quantization alone costs
(float activations, conv weights rounded to the nearest point of their channel's int8 grid, with
the max-abs step, and with the MSE-optimal clip QAT+clip starts from): what clipping could win at
most. ``--qat-models`` names the models whose QAT runs are trained again (after a change to one
model); the others reuse theirs in ``--out``. Writes ``ladder.md``, ``ladder.json`` and
``weight_histograms.png`` (conv weights in units of their channel's int8 step, before and after
QAT with clipping).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from jobs import mobile_sr_command, run_side_by_side
from mobile_sr.core.files import atomic_write_bytes
from mobile_sr.core.plots import pyplot, save_figure
from mobile_sr.data import shared_datasets_dir
from mobile_sr.export import export_run
from mobile_sr.quantization.weights import asymmetry, conv_kernels, int8_grid, mse_optimal_thresholds
from mobile_sr.runs import SUMMARY_FILE, WEIGHTS_FILE, load_trained_model
from mobile_sr.tasks.sr.data import load_sr_pairs
from mobile_sr.tasks.sr.evaluation import evaluate_pairs, keras_upscaler
from mobile_sr.tasks.sr.runner import TFLiteUpscaler

MODELS = ("scsrn", "abpn")
TEST_SETS = ("Set5", "Set14")
SCALE = 3
# MSE-optimal clip, regularizer 1e-2 (the qat defaults); each from data-aware rounding (ours) and from
# nearest rounding (plain tfmot QAT's start, and the paper's)
VARIANTS = {"qat": ["--plain"], "qat_clip": [],
            "qat_nearest": ["--plain", "--rounding", "nearest"], "qat_clip_nearest": ["--rounding", "nearest"]}
STAGES = ("float", "weights_int8", "weights_int8_clip", "ptq_int8", "qat_keras", "qat_int8", "qat_clip_keras",
          "qat_clip_int8")
NEAREST_STAGES = ("qat_nearest_keras", "qat_nearest_int8", "qat_clip_nearest_keras", "qat_clip_nearest_int8")


def _round_weights(model, *, clip: bool) -> None:
    """Put every conv kernel of ``model`` on its per-channel int8 grid by nearest rounding: with
    the max-abs step, or clipped to the MSE-optimal threshold first."""
    for kernel in conv_kernels(model):
        values = kernel.numpy().reshape(-1, kernel.shape[-1]).astype(np.float64)
        thresholds = mse_optimal_thresholds(values) if clip else np.abs(values).max(axis=0)
        kernel.assign(int8_grid(values, thresholds).reshape(kernel.shape).astype(np.float32))


def _kernel_steps(model) -> np.ndarray:
    """Conv weights divided by their channel's symmetric int8 step (max|w_c| / 127)."""
    values = []
    for kernel in conv_kernels(model):
        weights = kernel.numpy().reshape(-1, kernel.shape[-1])
        values.append((weights / (np.abs(weights).max(axis=0) / 127.0)).ravel())
    return np.concatenate(values)


def _plot_histograms(models: dict, path: Path) -> None:
    plt = pyplot()
    figure, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4), squeeze=False)
    for axis, (name, versions) in zip(axes[0], models.items(), strict=True):
        for label, model in versions.items():
            axis.hist(_kernel_steps(model), bins=255, range=(-127, 127), histtype="step", label=label, density=True)
        axis.set(title=f"{name}: conv weights / channel int8 step", xlabel="int8 level", yscale="log")
        axis.legend(fontsize=8)
    save_figure(figure, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--float-runs", type=Path, default=Path("benchmarks/results/float_training/runs"))
    parser.add_argument("--qat-minutes", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/quantization_ladder"))
    parser.add_argument("--qat-models", default=",".join(MODELS),
                        help="comma-separated models whose QAT runs to train; the others reuse the runs in --out")
    parser.add_argument("--skip-training", action="store_true", help="reuse the QAT runs already in --out")
    args = parser.parse_args()
    retrained = [] if args.skip_training else [m for m in args.qat_models.split(",") if m]
    unknown = sorted(set(retrained) - set(MODELS))
    if unknown:
        raise SystemExit(f"--qat-models: unknown {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    root = shared_datasets_dir()
    if root is None or not all((root / "sr/test" / s).is_dir() for s in TEST_SETS):
        print(f"SKIPPED: shared datasets with {' and '.join(TEST_SETS)} not found (set MOBILE_SR_DATA or place them "
              "at ../shared/datasets)")
        return
    test_pairs = {s: load_sr_pairs(root / "sr/test" / s, SCALE, split="val")[1] for s in TEST_SETS}  # before the QAT budget
    float_runs = {m: args.float_runs / f"{m}-x{SCALE}" for m in MODELS}
    missing = [str(p) for p in float_runs.values() if not (p / WEIGHTS_FILE).is_file()]
    if missing:
        raise SystemExit(f"float runs missing: {', '.join(missing)}; run benchmarks/float_training.py first")
    runs_dir, export_dir = args.out / "runs", args.out / "export"
    args.out.mkdir(parents=True, exist_ok=True)

    qat_runs = {(m, v): runs_dir / f"{m}-x{SCALE}-{v}" for m in MODELS for v in VARIANTS}
    if retrained:
        run_side_by_side({
            f"{m}-{v}": mobile_sr_command("qat", "--run", str(float_runs[m]), "--minutes", str(args.qat_minutes),
                                          "--threads", "1", "--out", str(qat_runs[m, v]), "--overwrite", *VARIANTS[v])
            for (m, v) in qat_runs if m in retrained
        }, args.out)
    missing = [str(p) for p in qat_runs.values() if not (p / WEIGHTS_FILE).is_file()]
    if missing:
        raise SystemExit(f"QAT runs missing: {', '.join(missing)}; name their models in --qat-models")

    def score(upscale) -> dict[str, float]:
        return {s: round(evaluate_pairs(upscale, pairs, model="m", dataset=s, scale=SCALE).mean_psnr_y, 4)
                for s, pairs in test_pairs.items()}

    def exported(run_dir: Path, mode: str) -> TFLiteUpscaler:
        path = export_dir / f"{run_dir.name}_{mode}_360x640.tflite"
        result = export_run(run_dir=run_dir, mode=mode, input_size=(360, 640), out_path=path, log=print)
        sizes[f"{run_dir.name}_{mode}"] = result.report["size_bytes"]
        return TFLiteUpscaler(result.path)

    results, sizes, histogram_models, weight_stats, kept = {}, {}, {}, {}, {}
    for model in MODELS:
        row = {"float": score(exported(float_runs[model], "float")),
               "ptq_int8": score(exported(float_runs[model], "int8"))}
        for stage, clip in (("weights_int8", False), ("weights_int8_clip", True)):
            rounded, _ = load_trained_model(float_runs[model])
            _round_weights(rounded, clip=clip)
            row[stage] = score(keras_upscaler(rounded))
        float_model, _ = load_trained_model(float_runs[model])
        histogram_models[model] = {"float": float_model}
        weight_stats[model] = {"float": float(np.mean([asymmetry(k.numpy()) for k in conv_kernels(float_model)]))}
        for variant in VARIANTS:
            qat_model, _ = load_trained_model(qat_runs[model, variant])
            row[f"{variant}_keras"] = score(keras_upscaler(qat_model))
            row[f"{variant}_int8"] = score(exported(qat_runs[model, variant], "int8"))
            histogram_models[model][variant] = qat_model
            weight_stats[model][variant] = float(np.mean([asymmetry(k.numpy()) for k in conv_kernels(qat_model)]))
            summary = json.loads((qat_runs[model, variant] / SUMMARY_FILE).read_text())
            if "kept_step" in summary:  # runs from before QAT kept its best weights have none
                kept[f"{model}-{variant}"] = {key: summary[key] for key in ("kept_step", "steps", "val_psnr_y", "final_val_psnr_y")}
        results[model] = row
        print(json.dumps({model: row}), flush=True)

    def table(headers: list[str], stages: tuple[str, ...]) -> list[str]:
        lines = ["| model | " + " | ".join(headers) + " |", "|---" * (len(headers) + 1) + "|"]
        for model, row in results.items():
            cells = []
            for stage in stages:
                values = " / ".join(f"{row[stage][s]:.3f}" for s in TEST_SETS)
                delta = "" if stage == "float" else " (" + " / ".join(f"{row[stage][s] - row['float'][s]:+.3f}" for s in TEST_SETS) + ")"
                cells.append(values + delta)
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
        return lines

    def clipping_gain(model: str, suffix: str) -> str:
        row = results[model]
        return " / ".join(f"{row[f'qat_clip{suffix}_int8'][s] - row[f'qat{suffix}_int8'][s]:+.3f}" for s in TEST_SETS)

    lines = [f"# Quantization ladder x{SCALE} ({args.qat_minutes} min QAT per variant)", "",
             "PSNR-Y in dB, Set5 / Set14; in brackets the loss against float. QAT starts from data-aware rounding.", "",
             *table(["float (.tflite)", "weights int8 (nearest)", "weights int8 (MSE clip, nearest)", "PTQ int8", "QAT (Keras)",
                     "QAT int8", "QAT+clip (Keras)", "QAT+clip int8"], STAGES),
             "", "## QAT from nearest rounding (plain tfmot QAT's start, and the paper's)", "",
             *table(["QAT (Keras)", "QAT int8", "QAT+clip (Keras)", "QAT+clip int8"], NEAREST_STAGES),
             "", "What clipping + regularizer win over plain QAT (int8, Set5 / Set14): " +
             "; ".join(f"{m}: {clipping_gain(m, '')} from data-aware rounding, {clipping_gain(m, '_nearest')} from nearest"
                       for m in results)]
    lines += ["", "Mean per-channel weight asymmetry ((max+min)/max(max-min, max|w|))^2: " +
              "; ".join(f"{m}: " + ", ".join(f"{k} {v:.4f}" for k, v in stats.items()) for m, stats in weight_stats.items()),
              "", "QAT weights kept (best validation, step 0 = the calibrated start): " +
              "; ".join(f"{name} step {k['kept_step']} of {k['steps']} ({k['val_psnr_y']:.3f} dB; last step "
                        f"{k['final_val_psnr_y']:.3f})" for name, k in kept.items()),
              "", "int8 .tflite sizes (bytes): " + ", ".join(f"{k} {v}" for k, v in sizes.items() if k.endswith("int8"))]
    report = "\n".join(lines) + "\n"
    atomic_write_bytes(args.out / "ladder.md", report.encode())
    atomic_write_bytes(args.out / "ladder.json", (json.dumps(
        {"psnr": results, "weight_asymmetry": weight_stats, "qat_kept": kept, "sizes": sizes, "qat_minutes": args.qat_minutes}, indent=2) + "\n").encode())
    _plot_histograms(histogram_models, args.out / "weight_histograms.png")
    print(report)


if __name__ == "__main__":
    main()
