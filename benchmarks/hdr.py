"""Multi-exposure HDR: hdr_unet vs AHDRNet at the same CPU budget, float and int8, against OpenCV's
merges, on a held-out synthetic test set with motion, plus memory and speed per 1000x1500 frame
and the real Memorial exposure stack.

    python benchmarks/hdr.py [--minutes 30] [--qat-minutes 8] [--scenes 10] [--out benchmarks/results/hdr]

1. Trains both models side by side (one pinned core each, the same recipe: batch 8 of 64x64
   patches, L1 on mu-law, Adam) on synthetic exposures (0/+2/+4 EV, noise, camera motion, moving
   objects) of T91 + BSD200, then QAT-fine-tunes both, and exports float and int8 ``.tflite``
   at the test size.
2. Scores every model (Keras float, int8 ``.tflite``), Debevec, Robertson and the reference
   exposure alone on ``--scenes`` synthetic scenes of the Set14 photos (never trained on) at
   1000x1500, seed 2026: PSNR-mu, PSNR-l, SSIM-mu.
3. Time and peak memory per 1000x1500 frame of the float Keras models (each in a fresh process)
   and of the int8 ``.tflite`` in LiteRT (1 and 2 threads).
4. Memorial (Debevec's church, 16 exposures): three exposures 3 stops apart as input, Debevec's
   merge of all 16 (calibrated response) as reference.

Writes ``results.md``, ``results.json`` and ``scene_*.png`` to ``--out``. Skips, saying why, when
the shared datasets are absent.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from jobs import mobile_sr_command, run_side_by_side
from mobile_sr.benchmark.host import benchmark_host
from mobile_sr.core.files import atomic_write_bytes
from mobile_sr.core.images import find_images, load_rgb
from mobile_sr.data.locations import shared_datasets_dir
from mobile_sr.export import export_run
from mobile_sr.runs import load_trained_model, read_run_config
from mobile_sr.tasks.hdr.data import HDRScene, hdr_domain, load_exposure_stack, synthetic_scenes
from mobile_sr.tasks.hdr.evaluation import (
    evaluate_scenes,
    keras_merger,
    opencv_merger,
    reference_exposure_merger,
    save_hdr_figure,
)
from mobile_sr.tasks.hdr.runner import TFLiteMerger

MODELS = ("hdr_unet", "ahdrnet")
RECIPE = ["--batch-size", "8", "--patch-size", "64"]
TEST_SEED = 2026


def _train(args, train_data: Path, runs_dir: Path) -> None:
    run_side_by_side({
        model: mobile_sr_command("train", "--model", model, "--data", str(train_data), "--minutes", str(args.minutes),
                                 "--threads", "1", "--out", str(runs_dir / model), "--overwrite", *RECIPE)
        for model in MODELS
    }, args.out)
    run_side_by_side({
        f"{model}-qat": mobile_sr_command("qat", "--run", str(runs_dir / model), "--minutes", str(args.qat_minutes),
                                          "--threads", "1", "--out", str(runs_dir / f"{model}-qat"), "--overwrite")
        for model in MODELS
    }, args.out)


def _size_multiple(run_dir: Path) -> int:
    return read_run_config(run_dir).model_config.size_multiple


def _keras_frame_cost(run_dir: Path, size: tuple[int, int]) -> dict:
    """Time and peak memory of one float Keras frame, measured in a fresh process. A 64x64 call
    first sets up TensorFlow's kernels and thread pools, so the memory is the frame's alone."""
    code = (
        "import json, time, numpy as np\n"
        "from mobile_sr.benchmark.host_worker import current_rss_mb, peak_rss_mb\n"
        "from mobile_sr.runs import load_trained_model\n"
        f"model, _ = load_trained_model({str(run_dir)!r})\n"
        f"inputs = [np.random.default_rng(i).uniform(0, 1, (1, {size[0]}, {size[1]}, 6)).astype(np.float32) for i in range(3)]\n"
        "model([x[:, :64, :64] for x in inputs], training=False)\n"
        "base = current_rss_mb()\n"
        "times = []\n"
        "for _ in range(3):\n"
        "    start = time.perf_counter(); model(inputs, training=False).numpy(); times.append(time.perf_counter() - start)\n"
        "print(json.dumps({'seconds_median': float(np.median(times)), 'peak_memory_mb': peak_rss_mb() - base}))\n"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def _memorial(root: Path) -> HDRScene | None:
    """Three exposures 3 stops apart (1/64, 1/8, 1 s) and Debevec's merge of all 16 (calibrated
    response) as reference, scaled to the inputs' convention: it matches the middle exposure's
    gamma-2.2 linearisation (median ratio over its well-exposed pixels)."""
    folder = root / "hdr/memorial"
    if not folder.is_dir():
        return None
    images, times = load_exposure_stack(folder)
    bgr = [np.ascontiguousarray(image[:, :, ::-1]) for image in images]
    seconds = np.asarray(times, np.float32)
    response = cv2.createCalibrateDebevec().process(bgr, seconds)
    radiance = cv2.createMergeDebevec().process(bgr, seconds, response)[:, :, ::-1]
    chosen = [times.index(t) for t in (1 / 64, 1 / 8, 1.0)]
    relative_times = tuple(times[i] / times[chosen[0]] for i in chosen)
    ldrs = tuple(images[i].astype(np.float32) / 255.0 for i in chosen)
    well_exposed = (ldrs[1] > 0.1) & (ldrs[1] < 0.9) & (radiance > 0)
    factor = float(np.median(hdr_domain(ldrs[1], relative_times[1])[well_exposed] / radiance[well_exposed]))
    return HDRScene("memorial", ldrs, relative_times, np.clip(radiance * factor, 0, None).astype(np.float32))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0, help="float training budget per model")
    parser.add_argument("--qat-minutes", type=float, default=8.0)
    parser.add_argument("--scenes", type=int, default=10)
    parser.add_argument("--size", default="1000x1500", help="test scene HxW")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/hdr"))
    parser.add_argument("--skip-training", action="store_true", help="evaluate the runs already in --out")
    args = parser.parse_args()
    root = shared_datasets_dir()
    if root is None or not (root / "sr/train").is_dir():
        print("SKIPPED: shared datasets not found (set MOBILE_SR_DATA or place them at ../shared/datasets)")
        return
    size = tuple(int(v) for v in args.size.split("x"))
    args.out.mkdir(parents=True, exist_ok=True)
    runs_dir = args.out / "runs"
    if not args.skip_training:
        _train(args, root / "sr/train", runs_dir)

    test_photos = [(path.stem, load_rgb(path)) for path in find_images(root / "sr/test/Set14")]
    scenes = synthetic_scenes(test_photos, count=args.scenes, size=size, seed=TEST_SEED)
    # Keras costs first: after a TFLite conversion in this process, a child's peak resident memory
    # grows (hdr_unet: 1.3 to 2.2 GB) though nothing it allocates changes
    costs = {f"{model} float (Keras)": _keras_frame_cost(runs_dir / model, size) for model in MODELS}
    mergers = {}
    for model in MODELS:
        float_model, _ = load_trained_model(runs_dir / model)
        mergers[f"{model} float"] = keras_merger(float_model, size_multiple=_size_multiple(runs_dir / model))
        exported = export_run(run_dir=runs_dir / f"{model}-qat", mode="int8", input_size=size,
                              out_path=args.out / "export" / f"{model}_int8_{args.size}.tflite")
        mergers[f"{model} int8"] = TFLiteMerger(exported.path)
        for timing in benchmark_host([exported.path], threads=[1, 2], runs=5, warmup=1, cross_check=False):
            costs[f"{model} int8 (LiteRT, {timing['threads']} thread{'s' * (timing['threads'] > 1)})"] = {
                "seconds_median": timing["latency_ms_median"] / 1000, "peak_memory_mb": timing["peak_memory_mb"]}
    mergers.update({"debevec": opencv_merger("debevec"), "robertson": opencv_merger("robertson"),
                    "reference exposure": reference_exposure_merger})

    results = {"minutes": args.minutes, "qat_minutes": args.qat_minutes, "recipe": RECIPE, "size": args.size,
               "scenes": args.scenes, "test": {}, "memorial": {}, "costs": costs}
    for name, merge in mergers.items():
        start = time.perf_counter()
        report = evaluate_scenes(merge, scenes, model=name, dataset="synthetic-Set14")
        results["test"][name] = {**report.to_dict(), "seconds": round(time.perf_counter() - start, 1)}
        print(f"{name}: PSNR-mu {report.mean('psnr_mu'):.3f} dB, PSNR-l {report.mean('psnr_l'):.3f} dB", flush=True)
    save_hdr_figure(scenes[0], {name: mergers[name](scenes[0]) for name in ("hdr_unet int8", "ahdrnet float", "debevec")},
                    args.out / f"scene_{scenes[0].name}.png")

    memorial = _memorial(root)
    if memorial is not None:
        for name, merge in mergers.items():
            results["memorial"][name] = evaluate_scenes(merge, [memorial], model=name, dataset="memorial").to_dict()
        save_hdr_figure(memorial, {name: mergers[name](memorial) for name in ("hdr_unet int8", "debevec")},
                        args.out / "scene_memorial.png")

    lines = [f"# Multi-exposure HDR, {args.minutes} min float + {args.qat_minutes} min QAT per model", "",
             f"Synthetic test set: {args.scenes} scenes of the Set14 photos at {args.size}, 0/+2/+4 EV, motion, seed {TEST_SEED}.", "",
             "| merger | PSNR-mu | PSNR-l | SSIM-mu | Memorial PSNR-mu |", "|---|---|---|---|---|"]
    for name, row in results["test"].items():
        memorial_cell = f"{results['memorial'][name]['mean_psnr_mu']:.2f}" if name in results["memorial"] else "-"
        lines.append(f"| {name} | {row['mean_psnr_mu']:.3f} | {row['mean_psnr_l']:.3f} | {row['mean_ssim_mu']:.4f} | {memorial_cell} |")
    lines += ["", f"| model, {args.size} frame | time per frame (s) | peak memory (MB) |", "|---|---|---|"]
    lines += [f"| {name} | {cost['seconds_median']:.2f} | {cost['peak_memory_mb']:.0f} |" for name, cost in costs.items()]
    report_md = "\n".join(lines) + "\n"
    atomic_write_bytes(args.out / "results.md", report_md.encode())
    atomic_write_bytes(args.out / "results.json", (json.dumps(results, indent=2) + "\n").encode())
    print(report_md)


if __name__ == "__main__":
    main()
