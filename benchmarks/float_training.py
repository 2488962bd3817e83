"""Float SCSRN vs ABPN x3: same recipe, same CPU-time budget, evaluated on Set5 and Set14.

    python benchmarks/float_training.py [--minutes 50] [--out benchmarks/results/float_training]

1. Training throughput for batch 16 of 64x64 LR patches, fed by the real input pipeline and by one
   cached in-memory batch (the pipeline must cost < 10%).
2. Trains both models on T91 + BSD200 (``../shared/datasets/sr/train``). By default the two runs go
   side by side, each pinned to one core with one TensorFlow thread (see ``jobs.py``), so that
   both get the same CPU time and other load on the machine hits both alike; ``--sequential``
   runs them one after the other on all cores instead.
3. Evaluates both and bicubic on Set5 and Set14 x3 and writes ``results.json``, ``results.md`` and
   ``psnr.png`` (the runs' training curves are in their run folders).

Skips, saying why, when the shared datasets are absent.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from jobs import mobile_sr_command, run_side_by_side
from mobile_sr.core.files import atomic_write_bytes
from mobile_sr.core.plots import pyplot, save_figure
from mobile_sr.data import shared_datasets_dir
from mobile_sr.runs import load_trained_model, read_run_config
from mobile_sr.tasks.sr.data import load_sr_pairs
from mobile_sr.tasks.sr.evaluation import bicubic_upscaler, evaluate_pairs, keras_upscaler, write_crops
from mobile_sr.training import measure_step_time

MODELS = ("scsrn", "abpn")
TEST_SETS = ("Set5", "Set14")
SCALE = 3
# The recipe both models share (beyond the CLI defaults: batch 16, 64x64 LR patches, L1, Adam 1e-3
# with step decay at 50/75/90% of the budget, weight EMA 0.999).
RECIPE = ["--l2-finetune", "0.1"]


def _train_all(args, data: Path, out: Path) -> None:
    jobs = {}
    for model in MODELS:
        command = mobile_sr_command(
            "train", "--model", model, "--scale", str(SCALE), "--data", str(data), "--minutes", str(args.minutes),
            "--out", str(out / "runs" / f"{model}-x{SCALE}"), "--overwrite", *RECIPE,
        )
        jobs[f"train_{model}"] = command + ([] if args.sequential else ["--threads", "1"])
    run_side_by_side(jobs, out, pin=not args.sequential)


def _plot(results: dict, path: Path) -> None:
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(7, 4))
    names = ["bicubic", *MODELS]
    width = 0.8 / len(TEST_SETS)
    for offset, test_set in enumerate(TEST_SETS):
        values = [results["psnr"][name][test_set] for name in names]
        bars = axis.bar([i + offset * width for i in range(len(names))], values, width, label=test_set)
        axis.bar_label(bars, fmt="%.2f", fontsize=8)
    axis.set_xticks([i + width / 2 for i in range(len(names))], names)
    axis.set(ylabel="PSNR-Y (dB)", title=f"float x{SCALE}, {results['minutes']} min training each")
    axis.set_ylim(26, None)
    axis.legend()
    save_figure(figure, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=50.0, help="training budget per model (at most 60)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/float_training"))
    parser.add_argument("--sequential", action="store_true", help="train one model after the other on all cores")
    parser.add_argument("--skip-training", action="store_true", help="measure throughput, then evaluate the runs already in --out")
    args = parser.parse_args()

    root = shared_datasets_dir()
    if root is None or not (root / "sr/train").is_dir():
        print("SKIPPED: shared datasets not found (set MOBILE_SR_DATA or place them at ../shared/datasets)")
        return
    args.out.mkdir(parents=True, exist_ok=True)
    data = root / "sr/train"

    throughput = []
    _, train_pairs = load_sr_pairs(data, SCALE)
    for model in MODELS:
        measured = measure_step_time(model, train_pairs, scale=SCALE)
        throughput.append(measured)
        print(f"{model}: {measured['steps_per_s_pipeline']:.2f} steps/s (batch 16 of 64x64, all cores); "
              f"input pipeline overhead {100 * measured['pipeline_overhead']:+.1f}% vs a cached batch", flush=True)
    if not args.skip_training:
        _train_all(args, data, args.out)

    results = {"scale": SCALE, "minutes": args.minutes, "recipe": RECIPE, "throughput": throughput,
               "psnr": {}, "ssim": {}, "runs": {}}
    test_pairs = {name: load_sr_pairs(root / "sr/test" / name, SCALE, split="val")[1] for name in TEST_SETS}
    upscalers = {"bicubic": bicubic_upscaler(SCALE)}
    for model in MODELS:
        run_dir = args.out / "runs" / f"{model}-x{SCALE}"
        keras_model, _ = load_trained_model(run_dir)
        upscalers[model] = keras_upscaler(keras_model)
        results["runs"][model] = {
            **json.loads((run_dir / "summary.json").read_text()),
            "train_config": read_run_config(run_dir).train.to_dict(),
        }
    for name, upscale in upscalers.items():
        results["psnr"][name], results["ssim"][name] = {}, {}
        for test_set, pairs in test_pairs.items():
            report = evaluate_pairs(upscale, pairs, model=name, dataset=test_set, scale=SCALE)
            results["psnr"][name][test_set] = round(report.mean_psnr_y, 3)
            results["ssim"][name][test_set] = round(report.mean_ssim_y, 4)
            if name != "bicubic":
                write_crops(report, upscale, pairs, args.out / f"crops_{name}_{test_set}.png")

    lines = [f"# Float x{SCALE}: SCSRN vs ABPN, {args.minutes} min each", "",
             "| model | params | steps | steps/s | Set5 PSNR / SSIM | Set14 PSNR / SSIM |", "|---|---|---|---|---|---|"]
    for name in upscalers:
        run = results["runs"].get(name, {})
        cells = [f"{results['psnr'][name][s]:.2f} / {results['ssim'][name][s]:.4f}" for s in TEST_SETS]
        lines.append(f"| {name} | {run.get('parameters', '-')} | {run.get('steps', '-')} | {run.get('steps_per_s', '-')} | "
                     + " | ".join(cells) + " |")
    if throughput:
        lines += ["", "| model | steps/s (pipeline) | s/step pipeline | s/step cached batch | overhead |", "|---|---|---|---|---|"]
        lines += [f"| {t['model']} | {t['steps_per_s_pipeline']:.2f} | {t['seconds_per_step_pipeline']:.4f} | "
                  f"{t['seconds_per_step_cached']:.4f} | {100 * t['pipeline_overhead']:+.1f}% |" for t in throughput]
    report_md = "\n".join(lines) + "\n"
    atomic_write_bytes(args.out / "results.md", report_md.encode())
    atomic_write_bytes(args.out / "results.json", (json.dumps(results, indent=2) + "\n").encode())
    _plot(results, args.out / "psnr.png")
    print(report_md)


if __name__ == "__main__":
    main()
