"""Float training: speed per precision and with XLA, the input pipeline, resident memory against
data set size, PSNR per precision at equal time and steps, the default SCSRN's time to quality,
and SCSRN vs ABPN x3 with the same recipe and CPU time.

    python benchmarks/float_training.py [--parts throughput,memory,precision,quality,models]
        [--threads 1] [--rounds 5] [--throughput-steps 20] [--memory-images 1000]
        [--memory-steps 60] [--precision-minutes 10] [--quality-minutes 19.4] [--minutes 50]
        [--out benchmarks/results/float_training]

1. ``throughput``: SCSRN x3 train steps (batch 16 of 64x64 LR patches, ``--threads`` TensorFlow
   threads) on one cached batch in each precision (float32, mixed_bfloat16, and mixed_float16
   where a GPU runs it), each with XLA off and on, all timed interleaved in one process
   (``--rounds`` rounds of ``--throughput-steps`` steps; medians), so that load from elsewhere hits
   them alike. Then, per model, steps fed by the real input pipeline against a cached batch.
2. ``memory``: peak resident memory of ``mobile-sr train`` (a fresh process, ``--memory-steps``
   steps) against data set size, on 10, 100, ... up to ``--memory-images`` synthetic 2K images
   made in ``--memory-data`` (``data_pipeline.py`` makes them the same way, and measures the
   pipeline itself in more detail).
3. ``precision``: SCSRN x3 trained on T91 + BSD200 in float32 and in mixed_bfloat16 (same seed and
   data), validated on Set5 along the way: both at once for ``--precision-minutes`` (equal time;
   unpinned, so that uneven load on one core hits both), then both for the steps the float32 run
   reached (equal steps). Each run is scored on Set5 and Set14 in float and as int8 (PTQ export,
   run in LiteRT). The validations give PSNR against training minutes (``precision_curves.png``).
4. ``quality``: the default SCSRN x3 in the default precision for ``--quality-minutes`` with the
   step and the cosine learning-rate schedule, side by side on pinned cores, one thread each,
   validated on Set5 along the way: each process's CPU time (start, validations and saving
   included), when Set5 first reached 33.0 dB, and Set5 / Set14 in float and int8 at the end
   against issue 21's targets (33.0 / 29.5 dB in 20 CPU-minutes; ``time_to_quality.png``).
5. ``models``: SCSRN and ABPN x3 for ``--minutes`` each in the default precision, side by side on
   pinned cores (``jobs.py``), scored with bicubic on Set5 and Set14: the float runs
   ``quantization_ladder.py`` starts from.

Writes ``results.json``, ``results.md`` and the figures (``precision_curves.png``,
``time_to_quality.png``, ``psnr.png``, crops) to ``--out``; parts not run keep their earlier
results there, and finished runs are reused.
Skips, saying why, when the shared datasets are absent.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path

from jobs import mobile_sr_command, run_side_by_side, shared_datasets_or_skip
from mobile_sr.core.files import atomic_write_bytes
from mobile_sr.core.plots import pyplot, save_figure
from mobile_sr.runs import METRICS_FILE, SUMMARY_FILE, load_trained_model, read_run_config
from mobile_sr.tasks.sr.data import load_sr_pairs
from mobile_sr.tasks.sr.evaluation import bicubic_upscaler, evaluate_pairs, keras_upscaler, write_crops

PARTS = ("throughput", "memory", "precision", "quality", "models")
MODELS = ("scsrn", "abpn")
TEST_SETS = ("Set5", "Set14")
SCALE = 3
BATCH = 16
# The recipe every run shares (beyond the CLI defaults: batch 16, 64x64 LR patches, L1, Adam 1e-3
# with step decay at 50/75/90% of the budget, weight EMA 0.999).
RECIPE = ["--l2-finetune", "0.1", "--seed", "0"]
COMPARED = ("float32", "mixed_bfloat16")  # the precisions trained against each other
QUALITY_TARGETS = {"Set5": 33.0, "Set14": 29.5}  # issue 21's time to quality, x3 PSNR-Y
SCHEDULES = ("step", "cosine")


def measure_throughput(args, train_pairs) -> dict:
    from mobile_sr.core.backend import tf
    from mobile_sr.data.pipeline import patch_dataset
    from mobile_sr.tasks.sr.patches import PatchSampler
    from mobile_sr.training import measure_step_time
    from mobile_sr.training.precision import AUTO, resolve_precision
    from mobile_sr.training.step import seconds_per_step, sr_train_step

    precisions = [*COMPARED, *(["mixed_float16"] if tf.config.list_physical_devices("GPU") else [])]
    batch = next(iter(patch_dataset(PatchSampler(train_pairs, patch_size=64, batch_size=BATCH, seed=0))))
    steps = {(precision, jit): sr_train_step("scsrn", scale=SCALE, batch_size=BATCH, precision=precision, jit_compile=jit)
             for precision in precisions for jit in (False, True)}
    seconds = seconds_per_step({key: (lambda step=step: step(*batch)) for key, step in steps.items()},
                               rounds=args.rounds, steps=args.throughput_steps)
    baseline = seconds["float32", False]
    variants = [{"precision": precision, "xla": jit, "steps_per_s": round(1.0 / value, 3),
                 "speedup_over_float32": round(baseline / value, 3)} for (precision, jit), value in seconds.items()]
    for row in variants:
        print(f"scsrn {row['precision']}{' + XLA' if row['xla'] else ''}: {row['steps_per_s']:.2f} steps/s, "
              f"x{row['speedup_over_float32']:.2f} float32's", flush=True)
    default = resolve_precision(AUTO)
    pipeline = [measure_step_time(model, train_pairs, scale=SCALE, batch_size=BATCH, precision=default,
                                  steps=args.rounds * args.throughput_steps, rounds=args.rounds) for model in MODELS]
    return {"threads": args.threads, "batch_size": BATCH, "patch_size": 64, "rounds": args.rounds,
            "steps_per_round": args.throughput_steps, "variants": variants, "pipeline": pipeline}


def measure_memory(args) -> list[dict]:
    from data_pipeline import subset, synthesize_images, training_memory

    args.memory_data = args.memory_data or args.out / "memory" / "synthetic_2k"
    os.environ.setdefault("MOBILE_SR_CACHE", str(args.memory_data.with_name(f"{args.memory_data.name}-cache")))
    paths = synthesize_images(args.memory_data, args.memory_images)
    counts = sorted({*(10**power for power in range(1, 7) if 10**power < args.memory_images), args.memory_images})
    rows = []
    for count in counts:
        folder = args.memory_data if count == len(paths) else subset(paths[:count], args.out / "memory" / f"first_{count}")
        rows.append(training_memory(folder, steps=args.memory_steps, run_dir=args.out / "memory" / "runs" / str(count)))
        print(f"{count} images: peak RSS {rows[-1]['peak_rss_mb']} MB", flush=True)
    return rows


def _train_at_once(jobs: dict[str, list[str]], log_dir: Path) -> None:
    """Run the commands in ``jobs`` at the same time, unpinned, and wait for all."""
    running = {name: subprocess.Popen(command, stdout=(log_dir / f"{name}.log").open("w"), stderr=subprocess.STDOUT)
               for name, command in jobs.items()}
    for name, command in jobs.items():
        print(f"started {name}: {' '.join(command)}", flush=True)
    failed = [name for name, process in running.items() if process.wait()]
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}; see the logs in {log_dir}")


def validation_curve(run_dir: Path) -> list[tuple[float, float]]:
    """``(training minutes, validation PSNR)`` of each validation of a run."""
    records = [json.loads(line) for line in (run_dir / METRICS_FILE).read_text().splitlines()]
    minutes = {r["step"]: r["elapsed_s"] / 60 for r in records if "elapsed_s" in r}
    return [(round(minutes[r["step"]], 2), r["val_psnr_y"]) for r in records if "val_psnr_y" in r and r["step"] in minutes]


def int8_export_path(run_dir: Path, out: Path) -> Path:
    return out / f"{run_dir.name}_int8.tflite"


def float_and_int8_scores(run_dir: Path, test_pairs: dict, out: Path) -> dict:
    """Float and int8 (PTQ export at 360x640 to :func:`int8_export_path`, run in LiteRT) PSNR-Y of
    a run on each test set."""
    from mobile_sr.export import export_run
    from mobile_sr.tasks.sr.runner import TFLiteUpscaler

    model, _ = load_trained_model(run_dir)
    int8 = export_run(run_dir=run_dir, mode="int8", input_size=(360, 640), out_path=int8_export_path(run_dir, out), log=print)
    upscalers = {"float": keras_upscaler(model), "int8": TFLiteUpscaler(int8.path)}
    return {kind: {name: round(evaluate_pairs(upscale, pairs, model=run_dir.name, dataset=name, scale=SCALE).mean_psnr_y, 4)
                   for name, pairs in test_pairs.items()} for kind, upscale in upscalers.items()}


def compare_precisions(args, data: Path, root: Path, test_pairs: dict) -> dict:
    folder = args.out / "precision"
    folder.mkdir(parents=True, exist_ok=True)

    def train(budget: list[str], label: str) -> dict[str, Path]:
        run_dirs = {precision: folder / f"scsrn-x{SCALE}-{precision}-{label}" for precision in COMPARED}
        jobs = {f"train_{run_dir.name}": mobile_sr_command(
            "train", "--model", "scsrn", "--scale", str(SCALE), "--data", str(data), "--val-data", str(root / "sr/test/Set5"),
            *budget, "--threads", str(args.threads), "--precision", precision, "--out", str(run_dir), "--overwrite", *RECIPE)
            for precision, run_dir in run_dirs.items() if not (run_dir / SUMMARY_FILE).is_file()}
        if jobs:
            _train_at_once(jobs, folder)
        return run_dirs

    equal_time = train(["--minutes", str(args.precision_minutes)], f"{args.precision_minutes:g}min")
    steps = json.loads((equal_time["float32"] / SUMMARY_FILE).read_text())["steps"]
    equal_steps = train(["--steps", str(steps)], f"{steps}steps")
    results = {}
    for comparison, run_dirs in (("equal_time", equal_time), ("equal_steps", equal_steps)):
        for precision, run_dir in run_dirs.items():
            summary = json.loads((run_dir / SUMMARY_FILE).read_text())
            results.setdefault(comparison, {})[precision] = {
                "run": str(run_dir), "steps": summary["steps"], "train_seconds": summary["train_seconds"],
                "steps_per_s": summary["steps_per_s"], **float_and_int8_scores(run_dir, test_pairs, folder),
                "set5_curve": validation_curve(run_dir)}
            print(json.dumps({comparison: {precision: results[comparison][precision]["float"]}}), flush=True)
    return {"minutes": args.precision_minutes, "steps": steps, "threads": args.threads, **results}


def time_to_quality(args, data: Path, root: Path, test_pairs: dict) -> dict:
    """The default SCSRN x3 in the default precision, trained for ``--quality-minutes`` with each
    learning-rate schedule side by side, each on its own pinned core with one thread, validated on
    Set5 along the way: the CPU time of its whole process (start, validations and saving
    included), the first training minute its Set5 PSNR reached the target, and its float and
    int8 PSNR at the end."""
    folder = args.out / "quality"
    folder.mkdir(parents=True, exist_ok=True)
    run_dirs = {schedule: folder / f"scsrn-x{SCALE}-{schedule}" for schedule in SCHEDULES}
    jobs = {schedule: mobile_sr_command(
        "train", "--model", "scsrn", "--scale", str(SCALE), "--data", str(data), "--val-data", str(root / "sr/test/Set5"),
        "--minutes", str(args.quality_minutes), "--lr-schedule", schedule, "--threads", "1", "--out", str(run_dir),
        "--overwrite", *RECIPE)
        for schedule, run_dir in run_dirs.items() if not finished_run(run_dir, minutes=args.quality_minutes)}
    cpu_path = folder / "cpu_seconds.json"
    cpu_seconds = json.loads(cpu_path.read_text()) if cpu_path.is_file() else {}
    if jobs:
        cpu_seconds.update(run_side_by_side(jobs, folder, poll_seconds=10))
        atomic_write_bytes(cpu_path, json.dumps(cpu_seconds).encode())
    results = {"minutes": args.quality_minutes, "targets": QUALITY_TARGETS, "runs": {}}
    for schedule, run_dir in run_dirs.items():
        summary = json.loads((run_dir / SUMMARY_FILE).read_text())
        curve = validation_curve(run_dir)
        scores = float_and_int8_scores(run_dir, test_pairs, folder)
        results["runs"][schedule] = {
            "run": str(run_dir), "steps": summary["steps"], "steps_per_s": summary["steps_per_s"],
            "train_seconds": summary["train_seconds"], "cpu_minutes": round(cpu_seconds[schedule] / 60, 2), **scores,
            "set5_curve": curve,
            "first_minute_set5_target": next((minute for minute, psnr in curve if psnr >= QUALITY_TARGETS["Set5"]), None),
            "reached": {kind: all(scores[kind][s] >= target for s, target in QUALITY_TARGETS.items()) for kind in scores}}
        print(json.dumps({schedule: {key: results["runs"][schedule][key] for key in ("cpu_minutes", "float", "int8")}}),
              flush=True)
    return results


def finished_run(run_dir: Path, *, minutes: float) -> bool:
    """Whether ``run_dir`` holds a finished run of ``minutes`` (then it is reused)."""
    return (run_dir / SUMMARY_FILE).is_file() and read_run_config(run_dir).train.minutes == minutes


def compare_models(args, data: Path, test_pairs: dict) -> dict:
    run_dirs = {model: args.out / "runs" / f"{model}-x{SCALE}" for model in MODELS}
    jobs = {f"train_{model}": mobile_sr_command(
        "train", "--model", model, "--scale", str(SCALE), "--data", str(data), "--minutes", str(args.minutes),
        "--threads", "1", "--out", str(run_dir), "--overwrite", *RECIPE)
        for model, run_dir in run_dirs.items() if not finished_run(run_dir, minutes=args.minutes)}
    if jobs:
        run_side_by_side(jobs, args.out)
    upscalers = {"bicubic": bicubic_upscaler(SCALE)}
    results = {"minutes": args.minutes, "psnr": {}, "ssim": {}, "runs": {}}
    for model, run_dir in run_dirs.items():
        keras_model, _ = load_trained_model(run_dir)
        upscalers[model] = keras_upscaler(keras_model)
        results["runs"][model] = {**json.loads((run_dir / SUMMARY_FILE).read_text()),
                                  "train_config": read_run_config(run_dir).train.to_dict()}
    for name, upscale in upscalers.items():
        results["psnr"][name], results["ssim"][name] = {}, {}
        for test_set, pairs in test_pairs.items():
            report = evaluate_pairs(upscale, pairs, model=name, dataset=test_set, scale=SCALE)
            results["psnr"][name][test_set] = round(report.mean_psnr_y, 3)
            results["ssim"][name][test_set] = round(report.mean_ssim_y, 4)
            if name != "bicubic":
                write_crops(report, upscale, pairs, args.out / f"crops_{name}_{test_set}.png")
    return results


def _plot_models(results: dict, path: Path) -> None:
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


def _plot_time_to_quality(results: dict, path: Path) -> None:
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(7, 4))
    for schedule, run in results["runs"].items():
        minutes, psnr = zip(*run["set5_curve"], strict=True)
        axis.plot(minutes, psnr, marker=".", label=f"{schedule} schedule: {run['steps']} steps, {run['cpu_minutes']:.1f} CPU-min "
                  f"in all; Set5 / Set14 {run['float']['Set5']:.3f} / {run['float']['Set14']:.3f}")
    axis.axhline(QUALITY_TARGETS["Set5"], color="gray", linestyle="--", label=f"target {QUALITY_TARGETS['Set5']} dB")
    axis.set(xlabel="training minutes, one core (validation excluded)", ylabel="Set5 PSNR-Y (dB), EMA weights, float",
             title=f"SCSRN x{SCALE} default, time to quality")
    axis.set_ylim(QUALITY_TARGETS["Set5"] - 1.0, None)
    axis.legend(fontsize=7)
    save_figure(figure, path)


def _plot_precision_curves(results: dict, path: Path) -> None:
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(7, 4))
    for comparison, style in (("equal_time", "-"), ("equal_steps", "--")):
        for precision, run in results[comparison].items():
            minutes, psnr = zip(*run["set5_curve"], strict=True)
            axis.plot(minutes, psnr, style, marker=".", label=f"{precision}, {run['steps']} steps")
    axis.set(xlabel="training minutes (validation excluded)", ylabel="Set5 PSNR-Y (dB), EMA weights",
             title=f"SCSRN x{SCALE} on T91 + BSD200, {results['threads']} thread(s)")
    axis.legend()
    save_figure(figure, path)


def report_markdown(results: dict) -> str:
    lines = [f"# Float training, SCSRN x{SCALE}", ""]
    if "throughput" in results:
        speed = results["throughput"]
        lines += [f"## Steps/s (batch {speed['batch_size']} of 64x64, cached batch, {speed['threads']} thread(s), "
                  f"medians of {speed['rounds']} interleaved rounds)", "",
                  "| precision | XLA | steps/s | vs float32 |", "|---|---|---|---|"]
        lines += [f"| {v['precision']} | {'on' if v['xla'] else 'off'} | {v['steps_per_s']:.2f} | "
                  f"x{v['speedup_over_float32']:.2f} |" for v in speed["variants"]]
        lines += ["", "| model | precision | s/step pipeline | s/step cached batch | pipeline overhead |", "|---|---|---|---|---|"]
        lines += [f"| {t['model']} | {t['precision']} | {t['seconds_per_step_pipeline']:.4f} | "
                  f"{t['seconds_per_step_cached']:.4f} | {100 * t['pipeline_overhead']:+.1f}% |" for t in speed["pipeline"]]
    if "memory" in results:
        lines += ["", "## Peak resident memory of `mobile-sr train` against data set size (synthetic 2K images)", "",
                  "| images | peak RSS (MB) | steps/s |", "|---|---|---|"]
        lines += [f"| {row['images']} | {row['peak_rss_mb']} | {row['steps_per_s']} |" for row in results["memory"]]
    if "precision" in results:
        compared = results["precision"]
        lines += ["", f"## float32 vs mixed_bfloat16 ({compared['threads']} thread(s) each; equal time: "
                  f"{compared['minutes']:g} min each, at once; equal steps: {compared['steps']})", "",
                  "| budget | precision | steps | steps/s | Set5 float | Set14 float | Set5 int8 | Set14 int8 |",
                  "|---|---|---|---|---|---|---|---|"]
        for comparison in ("equal_time", "equal_steps"):
            for precision, run in compared[comparison].items():
                lines.append(f"| {comparison.replace('_', ' ')} | {precision} | {run['steps']} | {run['steps_per_s']} | "
                             + " | ".join(f"{run[kind][s]:.3f}" for kind in ("float", "int8") for s in TEST_SETS) + " |")
    if "quality" in results:
        quality = results["quality"]
        lines += ["", f"## Time to quality: the default SCSRN, {quality['minutes']:g} training minutes on one core "
                  f"(targets: " + ", ".join(f"{s} {t} dB" for s, t in quality["targets"].items()) + ")", "",
                  "| schedule | steps | CPU-min in all | Set5 float | Set14 float | Set5 int8 | Set14 int8 | "
                  "Set5 target first reached (min) |", "|---|---|---|---|---|---|---|---|"]
        for schedule, run in quality["runs"].items():
            lines.append(f"| {schedule} | {run['steps']} | {run['cpu_minutes']:.2f} | "
                         + " | ".join(f"{run[kind][s]:.3f}" for kind in ("float", "int8") for s in TEST_SETS)
                         + f" | {run['first_minute_set5_target'] if run['first_minute_set5_target'] is not None else '-'} |")
    if "models" in results:
        models = results["models"]
        lines += ["", f"## SCSRN vs ABPN, {models['minutes']} min each", "",
                  "| model | params | steps | steps/s | Set5 PSNR / SSIM | Set14 PSNR / SSIM |", "|---|---|---|---|---|---|"]
        for name in ["bicubic", *MODELS]:
            run = models["runs"].get(name, {})
            cells = [f"{models['psnr'][name][s]:.2f} / {models['ssim'][name][s]:.4f}" for s in TEST_SETS]
            lines.append(f"| {name} | {run.get('parameters', '-')} | {run.get('steps', '-')} | {run.get('steps_per_s', '-')} | "
                         + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow threads of throughput and precision runs")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    parser.add_argument("--throughput-steps", type=int, default=20, help="steps per variant and round")
    parser.add_argument("--memory-data", type=Path, help="where the synthetic 2K images are made or completed "
                        "(default: <out>/memory/synthetic_2k; data_pipeline.py's --data may share them)")
    parser.add_argument("--memory-images", type=int, default=1000, help="the largest data set")
    parser.add_argument("--memory-steps", type=int, default=60, help="training steps per memory measurement")
    parser.add_argument("--precision-minutes", type=float, default=10.0, help="equal-time budget per precision")
    parser.add_argument("--quality-minutes", type=float, default=19.4,
                        help="time-to-quality training budget; the process's start, validations and saving come on top "
                        "(19.4: 19.5 CPU-minutes in all here)")
    parser.add_argument("--minutes", type=float, default=50.0, help="training budget per model (at most 60)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/float_training"))
    args = parser.parse_args()
    parts = [part.strip() for part in args.parts.split(",") if part.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}; the parts: {', '.join(PARTS)}")

    root = shared_datasets_or_skip()
    if root is None:
        return
    from mobile_sr.core.backend import tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    results_path = args.out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    results["scale"] = SCALE
    data = root / "sr/train"
    test_pairs = {name: load_sr_pairs(root / "sr/test" / name, SCALE, split="val")[1] for name in TEST_SETS}
    if "throughput" in parts:
        results["throughput"] = measure_throughput(args, load_sr_pairs(data, SCALE)[1])
    if "memory" in parts:
        results["memory"] = measure_memory(args)
    if "precision" in parts:
        results["precision"] = compare_precisions(args, data, root, test_pairs)
        _plot_precision_curves(results["precision"], args.out / "precision_curves.png")
    if "quality" in parts:
        results["quality"] = time_to_quality(args, data, root, test_pairs)
        _plot_time_to_quality(results["quality"], args.out / "time_to_quality.png")
    if "models" in parts:
        results["models"] = compare_models(args, data, test_pairs)
        _plot_models(results["models"], args.out / "psnr.png")

    markdown = report_markdown(results)
    atomic_write_bytes(args.out / "results.md", markdown.encode())
    atomic_write_bytes(results_path, (json.dumps(results, indent=2) + "\n").encode())
    print(markdown)


if __name__ == "__main__":
    main()
