"""16x8 export (int16 activations, int8 weights) against float and int8 of the same run: RT4KSR x3
on Set5 and Set14, hdr_unet on a small synthetic set, and the host latency of each ``.tflite``.

    python benchmarks/int16x8.py [--rt4ksr-run DIR] [--rt4ksr-qat-run DIR] [--hdr-run DIR] [--minutes 15]
        [--hdr-size 256x384] [--hdr-scenes 6] [--runs 20] [--out benchmarks/results/int16x8]

1. RT4KSR x3: the float run ``--rt4ksr-run``, else one trained ``--minutes`` on T91 + BSD200 with
   the high-frequency loss on one thread (``mobile-sr train --model rt4ksr --scale 3 --data
   train291 --hf-loss 0.1 --minutes M --threads 1``), exported at 360x640 to float32, int8 (from
   ``--rt4ksr-qat-run`` where given, else post-training quantization of the float run) and 16x8;
   PSNR/SSIM-Y on Set5 and Set14 x3 of the Keras float model and of each ``.tflite`` (whole
   images), and each quantized model's difference to the float ``.tflite``.
2. hdr_unet: the float run ``--hdr-run``, else one trained ``--minutes`` on the scikit-image
   photos, exported at ``--hdr-size`` to float32, int8 (post-training) and 16x8; PSNR-mu, PSNR-l
   and SSIM-mu on ``--hdr-scenes`` synthetic scenes of the Set14 photos (the fixed camera of
   issue 5, seed 2026).
3. Host latency of every ``.tflite`` in LiteRT at 1 thread (XNNPACK where it takes the graph):
   the median of ``--runs`` frames, all timed in one run so that their ratios compare, with the
   machine's load average before and after.

Writes ``int16x8.md`` and ``int16x8.json`` (with each quantized model's accelerator readiness)
and the exported models (``export/``; an export there of the same run and mode, newer than the
run, is reused) to ``--out``. Skips, saying why, when the shared datasets are absent.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from jobs import mobile_sr_command, run_side_by_side, shared_datasets_or_skip
from mobile_sr.benchmark.host import benchmark_host
from mobile_sr.core.files import atomic_write_bytes
from mobile_sr.core.images import find_images, load_rgb
from mobile_sr.export import export_run
from mobile_sr.readiness import summary_lines
from mobile_sr.runs import WEIGHTS_FILE, load_trained_model, read_run_config
from mobile_sr.tasks.hdr.camera import synthetic_scenes
from mobile_sr.tasks.hdr.evaluation import evaluate_scenes, keras_merger
from mobile_sr.tasks.hdr.runner import TFLiteMerger
from mobile_sr.tasks.sr.data import load_sr_pairs
from mobile_sr.tasks.sr.evaluation import evaluate_pairs, keras_upscaler
from mobile_sr.tasks.sr.runner import TFLiteUpscaler

SCALE = 3
SR_SIZE = (360, 640)  # the challenge's LR frame
TEST_SETS = ("Set5", "Set14")
HDR_SEED = 2026
HF_LOSS_WEIGHT = 0.1  # as benchmarks/zoo.py trains RT4KSR
MODES = ("float", "int8", "int16x8")
TARGET_DB = 0.05  # 16x8 may lose at most this much PSNR against float


def _markdown_table(header: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|---" * len(header) + "|",
            *("| " + " | ".join(map(str, row)) + " |" for row in rows)]


def _ensure_run(run_dir: Path | None, name: str, arguments: list[str], out: Path) -> Path:
    """``run_dir``, or the run ``name`` in ``out/runs`` trained with ``arguments`` unless it is there."""
    if run_dir is not None:
        return run_dir
    run_dir = out / "runs" / name
    if not (run_dir / WEIGHTS_FILE).is_file():
        run_side_by_side({name: mobile_sr_command("train", *arguments, "--threads", "1", "--out", str(run_dir),
                                                  "--overwrite")}, out, poll_seconds=30.0)
    return run_dir


def _export(run_dir: Path, mode: str, size: tuple[int, int], out: Path, name: str) -> Path:
    """The run exported as ``mode`` into ``out/export``; an export there of the same run and mode,
    newer than the run's weights, is reused (converting takes minutes)."""
    path = out / "export" / f"{name}_{mode}_{size[0]}x{size[1]}.tflite"
    report_path = path.with_suffix(".json")
    if path.is_file() and report_path.is_file():
        report = json.loads(report_path.read_text())
        if (Path(report["run"]).resolve() == run_dir.resolve() and report["mode"] == mode
                and path.stat().st_mtime > (run_dir / WEIGHTS_FILE).stat().st_mtime):
            print(f"reusing {path}", flush=True)
            return path
    return export_run(run_dir=run_dir, mode=mode, input_size=size, out_path=path).path


def _readiness(path: Path) -> dict:
    return json.loads(path.with_suffix(".json").read_text())["readiness"]


def rt4ksr(args, root: Path) -> tuple[dict, dict[str, Path]]:
    float_run = _ensure_run(args.rt4ksr_run, "rt4ksr-x3", [
        "--model", "rt4ksr", "--scale", str(SCALE), "--data", str(root / "sr/train"), "--hf-loss", str(HF_LOSS_WEIGHT),
        "--minutes", str(args.minutes)], args.out)
    sources = {"float": float_run, "int8": args.rt4ksr_qat_run or float_run, "int16x8": float_run}
    models = {mode: _export(sources[mode], mode, SR_SIZE, args.out, "rt4ksr") for mode in MODES}
    pairs = {s: load_sr_pairs(root / "sr/test" / s, SCALE, split="val")[1] for s in TEST_SETS}
    upscalers = {"float (Keras)": keras_upscaler(load_trained_model(float_run)[0]),
                 **{mode: TFLiteUpscaler(path) for mode, path in models.items()}}
    scores = {}
    for name, upscale in upscalers.items():
        reports = {s: evaluate_pairs(upscale, pairs[s], model=name, dataset=s, scale=SCALE) for s in TEST_SETS}
        scores[name] = {s: {"psnr": round(r.mean_psnr_y, 4), "ssim": round(r.mean_ssim_y, 5)} for s, r in reports.items()}
        print(f"RT4KSR {name}: " + ", ".join(f"{s} {scores[name][s]['psnr']:.3f} dB" for s in TEST_SETS), flush=True)
    loss = {mode: {s: round(scores[mode][s]["psnr"] - scores["float"][s]["psnr"], 4) for s in TEST_SETS}
            for mode in ("int8", "int16x8")}
    summary = json.loads((float_run / "summary.json").read_text())
    return {"float_run": str(float_run), "int8_from": "qat" if args.rt4ksr_qat_run else "post-training",
            "train_steps": summary.get("steps"), "scores": scores, "difference_to_float_db": loss,
            "meets_target": all(v >= -TARGET_DB for v in loss["int16x8"].values()),
            "readiness": {mode: _readiness(models[mode]) for mode in ("int8", "int16x8")}}, models


def hdr_unet(args, root: Path) -> tuple[dict, dict[str, Path]]:
    float_run = _ensure_run(args.hdr_run, "hdr_unet", ["--model", "hdr_unet", "--minutes", str(args.minutes)], args.out)
    size = tuple(int(v) for v in args.hdr_size.split("x"))
    models = {mode: _export(float_run, mode, size, args.out, "hdr_unet") for mode in MODES}
    photos = [(path.stem, load_rgb(path)) for path in find_images(root / "sr/test/Set14")]
    scenes = synthetic_scenes(photos, count=args.hdr_scenes, size=size, seed=HDR_SEED)
    multiple = read_run_config(float_run).model_config.size_multiple
    mergers = {"float (Keras)": keras_merger(load_trained_model(float_run)[0], size_multiple=multiple),
               **{mode: TFLiteMerger(path) for mode, path in models.items()}}
    scores = {}
    for name, merge in mergers.items():
        report = evaluate_scenes(merge, scenes, model=name, dataset="synthetic")
        scores[name] = {metric: round(report.mean(metric), 4) for metric in ("psnr_mu", "psnr_l", "ssim_mu")}
        print(f"hdr_unet {name}: PSNR-mu {scores[name]['psnr_mu']:.3f} dB", flush=True)
    loss = {mode: {metric: round(scores[mode][metric] - scores["float"][metric], 4) for metric in ("psnr_mu", "psnr_l")}
            for mode in ("int8", "int16x8")}
    return {"float_run": str(float_run), "size": args.hdr_size, "scenes": args.hdr_scenes, "scores": scores,
            "difference_to_float_db": loss,
            "readiness": {mode: _readiness(models[mode]) for mode in ("int8", "int16x8")}}, models


def latency(models: dict[str, Path], runs: int) -> dict[str, dict]:
    timings = benchmark_host(list(models.values()), threads=[1], runs=runs, cross_check=False)
    by_file = {timing["model"]: timing for timing in timings}
    return {name: {"median_ms": round(by_file[path.name]["latency_ms_median"], 2),
                   "delegate": by_file[path.name]["delegate"]} for name, path in models.items()}


def _markdown(args, results: dict) -> str:
    sr, hdr, times = results["rt4ksr"], results["hdr_unet"], results["latency_1_thread"]
    load = results["load_average_1_5_15_min"]
    lines = ["# 16x8 (int16 activations, int8 weights) against float and int8", "",
             f"## RT4KSR x{SCALE}, {SR_SIZE[0]}x{SR_SIZE[1]} export, whole images", "",
             f"Float run `{sr['float_run']}` ({sr['train_steps']} steps); int8 by {sr['int8_from']} quantization.", "",
             *_markdown_table(["model", *(f"{s} PSNR / SSIM" for s in TEST_SETS), *(f"{s} vs float" for s in TEST_SETS),
                               "ms / frame (1 thread)"],
                              [[name, *(f"{row[s]['psnr']:.3f} / {row[s]['ssim']:.4f}" for s in TEST_SETS),
                                *(f"{sr['difference_to_float_db'][name][s]:+.3f}" if name in sr['difference_to_float_db']
                                  else "" for s in TEST_SETS),
                                f"{times[f'rt4ksr {name}']['median_ms']:.1f}" if f"rt4ksr {name}" in times else ""]
                               for name, row in sr["scores"].items()]),
             "", f"16x8 within {TARGET_DB} dB of float on both sets: **{'yes' if sr['meets_target'] else 'no'}**.",
             f"16x8 / int8 host latency: {times['rt4ksr int16x8']['median_ms'] / times['rt4ksr int8']['median_ms']:.1f}x.",
             "", f"Latency timed at 1 thread in one run; load average (1, 5, 15 min) {load['before']} before, "
             f"{load['after']} after: compare the ratios, not the times across machines.",
             "", f"## hdr_unet, {hdr['scenes']} synthetic scenes at {hdr['size']}", "",
             *_markdown_table(["model", "PSNR-mu", "PSNR-l", "SSIM-mu", "PSNR-mu vs float", "ms / frame (1 thread)"],
                              [[name, f"{row['psnr_mu']:.3f}", f"{row['psnr_l']:.3f}", f"{row['ssim_mu']:.4f}",
                                f"{hdr['difference_to_float_db'][name]['psnr_mu']:+.3f}"
                                if name in hdr["difference_to_float_db"] else "",
                                f"{times[f'hdr_unet {name}']['median_ms']:.1f}" if f"hdr_unet {name}" in times else ""]
                               for name, row in hdr["scores"].items()]),
             "", "## Accelerator readiness of the RT4KSR exports", ""]
    for mode in ("int8", "int16x8"):
        lines += [f"{mode}:", "", "```", *summary_lines(sr["readiness"][mode]), "```", ""]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rt4ksr-run", type=Path, default=None, help="float RT4KSR x3 run (default: train one)")
    parser.add_argument("--rt4ksr-qat-run", type=Path, default=None, help="its QAT run, for int8 (default: post-training)")
    parser.add_argument("--hdr-run", type=Path, default=None, help="float hdr_unet run (default: train one)")
    parser.add_argument("--minutes", type=float, default=15.0, help="training budget of a run not given")
    parser.add_argument("--hdr-size", default="256x384", help="hdr_unet export and scene HxW")
    parser.add_argument("--hdr-scenes", type=int, default=6)
    parser.add_argument("--runs", type=int, default=20, help="timed frames per model")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/int16x8"))
    args = parser.parse_args()
    root = shared_datasets_or_skip()
    if root is None:
        return
    args.out.mkdir(parents=True, exist_ok=True)
    sr, sr_models = rt4ksr(args, root)
    hdr, hdr_models = hdr_unet(args, root)
    models = {**{f"rt4ksr {mode}": path for mode, path in sr_models.items()},
              **{f"hdr_unet {mode}": path for mode, path in hdr_models.items()}}
    load_before = os.getloadavg()  # the machines are shared: the load says how far the times compare
    times = latency(models, args.runs)
    results = {"rt4ksr": sr, "hdr_unet": hdr, "latency_1_thread": times,
               "load_average_1_5_15_min": {"before": [round(v, 2) for v in load_before],
                                           "after": [round(v, 2) for v in os.getloadavg()]}}
    markdown = _markdown(args, results)
    atomic_write_bytes(args.out / "int16x8.md", markdown.encode())
    atomic_write_bytes(args.out / "int16x8.json", (json.dumps(results, indent=2) + "\n").encode())
    print(markdown, flush=True)


if __name__ == "__main__":
    main()
