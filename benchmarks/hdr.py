"""Multi-exposure HDR on real and synthetic brackets: hdr_unet vs AHDRNet at the same CPU budget,
float and int8, against OpenCV's merges.

    python benchmarks/hdr.py [--minutes 30 | --steps N] [--qat-minutes 8 | --qat-steps N] [--scenes 10]
                             [--out benchmarks/results/hdr] [--skip-training]

1. Training data: a folder of links (no copies) to five of the seven real radiance maps of
   ``../shared/datasets/hdr/radiance`` and to the BSD200 photos; the synthetic camera
   (``REAL_CAMERA``: varied response curves, 1-3 EV gaps, dim and static scenes too, noise, JPEG,
   white balance, motion) makes the brackets. A step budget (``--steps``) makes the runs
   independent of the machine's load. Both models train side by side (one pinned core each, the same recipe:
   batch 8 of 64x64 patches, L1 on mu-law, Adam), then are QAT-fine-tuned and exported to int8.
2. Scores every model (Keras float, int8 ``.tflite``), Debevec, Robertson and the reference
   exposure alone, PSNR-mu / PSNR-l / SSIM-mu, on:
   - **Memorial** (Debevec's church, 16 exposures): three exposures 1, 2 and 3 EV apart around
     1/8 s (``MEMORIAL_MIDDLE``), prepared as ``merge`` prepares a real bracket (the response estimated from the three),
     against Debevec's merge of all 16 (calibrated response); also with the exposures taken as
     gamma 2.2, the protocol of the first Memorial figures;
   - **held-out radiance**: the two radiance maps not trained on, exposed by ``HELD_OUT_CAMERA``,
     whose response (sRGB) no training camera has;
   - **synthetic test set** (issue 5): ``--scenes`` scenes of the Set14 photos at 1000x1500,
     0/+2/+4 EV, gamma 2.2, motion, seed 2026.
3. pingpong (a real handheld bracket with moving people, no reference): a figure of the inputs,
   hdr_unet float and int8, Debevec, Robertson and Mertens, to judge ghosting by eye.
4. Time and peak memory per 1000x1500 frame of the float Keras models (each in a fresh process)
   and of the int8 ``.tflite`` in LiteRT (1 and 2 threads).

Writes ``results.md``, ``results.json`` and figures (``*.png``) to ``--out``. Skips, saying why,
when the shared datasets are absent.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from jobs import mobile_sr_command, run_side_by_side, shared_datasets_or_skip
from mobile_sr.benchmark.host import benchmark_host
from mobile_sr.core.files import atomic_write_bytes
from mobile_sr.core.images import IMAGE_EXTENSIONS, find_images, load_rgb
from mobile_sr.export import export_run
from mobile_sr.runs import SUMMARY_FILE, load_trained_model, read_run_config
from mobile_sr.tasks.hdr.camera import HELD_OUT_CAMERA, synthetic_scenes
from mobile_sr.tasks.hdr.data import bracket_folder_scene, stack_scenes
from mobile_sr.tasks.hdr.evaluation import (
    evaluate_scenes,
    keras_merger,
    opencv_merger,
    reference_exposure_merger,
    save_hdr_figure,
)
from mobile_sr.tasks.hdr.radiance import read_radiance
from mobile_sr.tasks.hdr.response import PowerResponse
from mobile_sr.tasks.hdr.runner import TFLiteMerger

MODELS = ("hdr_unet", "ahdrnet")
RECIPE = ["--batch-size", "8", "--patch-size", "64"]
TEST_SEED = 2026
HELD_OUT_MAPS = ("Desk", "Tree")  # 16 and 13 stops of range; the other five are trained on
HELD_OUT_SCENES, HELD_OUT_SIZE = 8, (512, 768)
MEMORIAL_MIDDLE = 1 / 8  # seconds: the 3-EV bracket is then 1/64, 1/8 and 1 s, that of the first figures


def _training_folder(root: Path, folder: Path) -> Path:
    """Links to the training radiance maps and the BSD200 photos (the datasets stay where they
    are; T91's small crops add little to 1-3 EV brackets)."""
    folder.mkdir(parents=True, exist_ok=True)
    maps = [p for p in sorted((root / "hdr/radiance").glob("*.exr")) if p.stem not in HELD_OUT_MAPS]
    photos = [p for p in sorted((root / "sr/train/BSD200").rglob("*")) if p.suffix.lower() in IMAGE_EXTENSIONS]
    for source in maps + photos:
        link = folder / f"{source.parent.name}_{source.name}"
        if not link.exists():
            link.symlink_to(source)
    return folder


def _train(args, train_data: Path, runs_dir: Path) -> None:
    budget = ["--steps", str(args.steps)] if args.steps else ["--minutes", str(args.minutes)]
    qat_budget = ["--steps", str(args.qat_steps)] if args.qat_steps else ["--minutes", str(args.qat_minutes)]
    run_side_by_side({
        model: mobile_sr_command("train", "--model", model, "--data", str(train_data), *budget,
                                 "--threads", "1", "--out", str(runs_dir / model), "--overwrite", *RECIPE)
        for model in MODELS
    }, args.out)
    run_side_by_side({
        f"{model}-qat": mobile_sr_command("qat", "--run", str(runs_dir / model), *qat_budget,
                                          "--threads", "1", "--out", str(runs_dir / f"{model}-qat"), "--overwrite")
        for model in MODELS
    }, args.out)


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


def _test_sets(root: Path, args, size: tuple[int, int]) -> dict[str, list]:
    memorial = root / "hdr/memorial"
    held_out = [(path.stem, read_radiance(path)) for path in sorted((root / "hdr/radiance").glob("*.exr"))
                if path.stem in HELD_OUT_MAPS]
    test_photos = [(path.stem, load_rgb(path)) for path in find_images(root / "sr/test/Set14")]
    return {
        "memorial": stack_scenes(memorial, middle_seconds=MEMORIAL_MIDDLE),
        "memorial, gamma 2.2": stack_scenes(memorial, response=PowerResponse(2.2), middle_seconds=MEMORIAL_MIDDLE),
        "held-out radiance": synthetic_scenes(held_out, count=HELD_OUT_SCENES, size=HELD_OUT_SIZE, seed=TEST_SEED,
                                              camera=HELD_OUT_CAMERA),
        "synthetic (issue 5)": synthetic_scenes(test_photos, count=args.scenes, size=size, seed=TEST_SEED),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0, help="float training budget per model")
    parser.add_argument("--steps", type=int, default=None, help="float training step budget per model (replaces --minutes)")
    parser.add_argument("--qat-minutes", type=float, default=8.0)
    parser.add_argument("--qat-steps", type=int, default=None, help="QAT step budget (replaces --qat-minutes)")
    parser.add_argument("--scenes", type=int, default=10)
    parser.add_argument("--size", default="1000x1500", help="synthetic test scene and export HxW")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/hdr"))
    parser.add_argument("--skip-training", action="store_true", help="evaluate the runs already in --out")
    args = parser.parse_args()
    root = shared_datasets_or_skip("hdr/radiance")
    if root is None:
        return
    size = tuple(int(v) for v in args.size.split("x"))
    args.out.mkdir(parents=True, exist_ok=True)
    runs_dir = args.out / "runs"
    if not args.skip_training:
        _train(args, _training_folder(root, args.out / "train_data"), runs_dir)

    test_sets = _test_sets(root, args, size)
    # Keras costs first: after a TFLite conversion in this process, a child's peak resident memory
    # grows (hdr_unet: 1.3 to 2.2 GB) though nothing it allocates changes
    costs = {f"{model} float (Keras)": _keras_frame_cost(runs_dir / model, size) for model in MODELS}
    mergers = {}
    for model in MODELS:
        float_model, _ = load_trained_model(runs_dir / model)
        multiple = read_run_config(runs_dir / model).model_config.size_multiple
        mergers[f"{model} float"] = keras_merger(float_model, size_multiple=multiple)
        exported = export_run(run_dir=runs_dir / f"{model}-qat", mode="int8", input_size=size,
                              out_path=args.out / "export" / f"{model}_int8_{args.size}.tflite")
        mergers[f"{model} int8"] = TFLiteMerger(exported.path)
        for timing in benchmark_host([exported.path], threads=[1, 2], runs=5, warmup=1, cross_check=False):
            costs[f"{model} int8 (LiteRT, {timing['threads']} thread{'s' * (timing['threads'] > 1)})"] = {
                "seconds_median": timing["latency_ms_median"] / 1000, "peak_memory_mb": timing["peak_memory_mb"]}
    mergers.update({"debevec": opencv_merger("debevec"), "robertson": opencv_merger("robertson"),
                    "reference exposure": reference_exposure_merger})

    results = {"runs": {name: read_run_config(runs_dir / name).train.to_dict() | {"steps_done": _steps_done(runs_dir / name)}
                        for model in MODELS for name in (model, f"{model}-qat")}, "recipe": RECIPE, "size": args.size,
               "held_out_maps": HELD_OUT_MAPS, "sets": {}, "costs": costs}
    for set_name, scenes in test_sets.items():
        results["sets"][set_name] = {}
        for name, merge in mergers.items():
            start = time.perf_counter()
            report = evaluate_scenes(merge, scenes, model=name, dataset=set_name)
            results["sets"][set_name][name] = {**report.to_dict(), "seconds": round(time.perf_counter() - start, 1)}
            print(f"{set_name}, {name}: PSNR-mu {report.mean('psnr_mu'):.3f} dB, PSNR-l {report.mean('psnr_l'):.3f} dB",
                  flush=True)
        shown = ("hdr_unet float", "hdr_unet int8", "debevec", "robertson")
        for scene in scenes if set_name.startswith("memorial") else scenes[:1]:
            save_hdr_figure(scene, {name: mergers[name](scene) for name in shown},
                            args.out / f"{set_name.replace(' ', '_').replace(',', '')}_{scene.name}.png")
    pingpong = root / "hdr/pingpong"
    if pingpong.is_dir():
        scene = bracket_folder_scene(pingpong)
        save_hdr_figure(scene, {name: mergers[name](scene) for name in ("hdr_unet float", "hdr_unet int8", "debevec",
                                                                          "robertson")}, args.out / "pingpong.png")
    report_md = _markdown(args, results)
    atomic_write_bytes(args.out / "results.md", report_md.encode())
    atomic_write_bytes(args.out / "results.json", (json.dumps(results, indent=2) + "\n").encode())
    print(report_md)


def _steps_done(run_dir: Path) -> int:
    return json.loads((run_dir / SUMMARY_FILE).read_text())["steps"]


def _markdown(args, results: dict) -> str:
    trained = ", ".join(f"{name} {run['steps_done']} steps" for name, run in results["runs"].items())
    lines = ["# Multi-exposure HDR, real and synthetic brackets", "", f"Runs: {trained}.", ""]
    for set_name, rows in results["sets"].items():
        lines += [f"## {set_name}", "", "| merger | PSNR-mu | PSNR-l | SSIM-mu | per scene PSNR-mu |", "|---|---|---|---|---|"]
        for name, row in rows.items():
            per_scene = ", ".join(f"{scene['name']} {scene['psnr_mu']:.2f}" for scene in row["scenes"]) \
                if len(row["scenes"]) <= 3 else ""
            lines.append(f"| {name} | {row['mean_psnr_mu']:.3f} | {row['mean_psnr_l']:.3f} | {row['mean_ssim_mu']:.4f} | "
                         f"{per_scene} |")
        lines.append("")
    lines += [f"| model, {args.size} frame | time per frame (s) | peak memory (MB) |", "|---|---|---|"]
    lines += [f"| {name} | {cost['seconds_median']:.2f} | {cost['peak_memory_mb']:.0f} |" for name, cost in results["costs"].items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
