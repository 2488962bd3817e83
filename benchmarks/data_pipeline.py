"""The SR training data pipeline: resident memory against data set size, and its speed against a
cached batch.

    python benchmarks/data_pipeline.py [--data DIR] [--images 1000] [--steps 300] [--rounds 3]
                                       [--precision auto] [--out benchmarks/results/data_pipeline]
                                       [--quick]

1. Makes ``--images`` synthetic 2K images (1404x2040 PNGs of smooth random texture, DIV2K's
   size) in ``--data`` (default ``<out>/synthetic_2k``) where missing, and decodes them into the
   training cache (``mobile-sr prepare``; ``$MOBILE_SR_CACHE``, by default ``<data>-cache``).
2. The CPU cost of one 64x64 x3 LR/HR patch by how its pixels are got: a band read of the stored
   decoded images (what training does), decoding the whole HR PNG, or decoding a BasicSR-style
   480x480 sub-image pair; and of a whole batch of 16 through ``patch_dataset``.
3. Peak resident memory (the process's high-water mark) of ``mobile-sr train`` on the first tenth
   of the images and on all of them.
4. Seconds per SCSRN x3 step (in ``--precision``, by default what training picks here) fed by
   the pipeline and by one cached batch
   (:func:`mobile_sr.training.measure_step_time`), with the peak resident memory of its process:
   on the first tenth with every image decoded in memory (the former pipeline) and from the
   training cache, and ``--rounds`` times on all images from the training cache.

Writes ``results.json`` and ``results.md`` to ``--out``. ``--quick`` uses 40 images, 60 steps and one
round. :func:`training_memory`, :func:`step_time` and :func:`synthesize_images` are for other
benchmarks to reuse.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from jobs import mobile_sr_command
from mobile_sr.core.files import atomic_write_bytes
from mobile_sr.core.images import save_png
from mobile_sr.core.progress import Progress

SCALE = 3
SIZE_2K = (1404, 2040)  # DIV2K's most common HR size
SUB_IMAGE = 480  # BasicSR's extract_subimages crop for DIV2K


def synthetic_image(height: int, width: int, seed: int) -> np.ndarray:
    """Smooth random texture as ``tests.helpers.textured_image`` makes it (separable sinusoids per
    channel), plus mild noise so that the PNGs are not unrealistically small."""
    rng = np.random.default_rng(seed)
    channels = []
    for _ in range(3):
        along_x = np.sin(np.arange(width) / rng.uniform(3, 9) + rng.uniform(0, 6))
        along_y = np.cos(np.arange(height) / rng.uniform(3, 9))
        channels.append(127 + 100 * np.outer(along_y, along_x))
    noise = rng.normal(0, 4, (height, width, 3))
    return np.clip(np.stack(channels, axis=2) + noise, 0, 255).astype(np.uint8)


def synthesize_images(folder: Path, count: int, *, size: tuple[int, int] = SIZE_2K) -> list[Path]:
    """``folder/0001.png`` ... of ``count`` synthetic images (existing ones are kept)."""
    paths = [folder / f"{index:04d}.png" for index in range(1, count + 1)]
    missing = [path for path in paths if not path.is_file()]
    progress = Progress(len(missing), f"synthesized in {folder}", print)
    for path in missing:
        save_png(path, synthetic_image(*size, seed=int(path.stem)))
        progress.advance()
    return paths


def subset(paths: list[Path], folder: Path) -> Path:
    """A folder of links to ``paths`` (the training cache keys the linked files, so it is shared)."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in paths:
        link = folder / path.name
        if not link.exists():
            link.symlink_to(path.resolve())
    return folder


def _run_measured(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """``(peak resident MB, seconds, output)`` of a child process; its output is echoed live."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, **(env or {})})
    lines = []
    for line in process.stdout:
        print("   ", line, end="", flush=True)
        lines.append(line)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}):\n{''.join(lines[-20:])}")
    return usage.ru_maxrss / 1024, time.perf_counter() - start, "".join(lines)


def training_memory(data: Path, *, steps: int, run_dir: Path, scale: int = SCALE, model: str = "scsrn") -> dict:
    """Peak resident memory (MB) and speed of ``mobile-sr train`` on ``data`` (prepared
    beforehand, so that only training is measured)."""
    _run_measured(mobile_sr_command("prepare", "--data", str(data), "--scale", str(scale)))
    peak, seconds, _ = _run_measured(mobile_sr_command(
        "train", "--model", model, "--data", str(data), "--scale", str(scale), "--steps", str(steps),
        "--out", str(run_dir), "--overwrite"))
    summary = json.loads((run_dir / "summary.json").read_text())
    return {"data": str(data), "images": sum(1 for _ in data.iterdir()), "steps": steps, "peak_rss_mb": round(peak),
            "steps_per_s": summary["steps_per_s"], "seconds": round(seconds, 1)}


def _step_time_worker(data: str, steps: int, source: str, precision: str) -> None:
    """Prints :func:`measure_step_time` of SCSRN x3 in ``precision`` on ``data``: its images read
    from the training cache (``stored``), or all decoded in memory (``memory``, as the pipeline
    before the cache)."""
    from mobile_sr.tasks.sr.data import load_sr_pairs, stored_sr_pairs
    from mobile_sr.training import measure_step_time
    from mobile_sr.training.precision import resolve_precision

    _, pairs = (stored_sr_pairs if source == "stored" else load_sr_pairs)(data, SCALE)
    print(json.dumps(measure_step_time("scsrn", pairs, scale=SCALE, steps=steps, precision=resolve_precision(precision))))


def step_time(data: Path, *, steps: int, source: str = "stored", precision: str = "auto") -> dict:
    """Seconds per step from the pipeline and from a cached batch, and the peak resident memory,
    of SCSRN x3 steps on ``data`` in a fresh process (``source``: see :func:`_step_time_worker`)."""
    peak, _, output = _run_measured([sys.executable, __file__, "--worker", source, "--data", str(data),
                                     "--steps", str(steps), "--precision", precision])
    return {"data": str(data), "images": sum(1 for _ in data.iterdir()), "source": source, "peak_rss_mb": round(peak),
            **json.loads(output.strip().splitlines()[-1])}


def _decode(path: Path) -> np.ndarray:
    """OpenCV's decode alone: the least decoding on demand costs (``load_rgb`` also checks the file)."""
    return cv2.imread(str(path), cv2.IMREAD_COLOR)


def patch_read_costs(folder: Path, samples: int = 40) -> dict[str, float]:
    """Milliseconds of CPU per 64x64 x3 LR/HR patch, by how its pixels are got: a band read of
    the stored images, decoding the whole HR PNG (on-demand decoding; its LR PNG comes on top), or
    decoding a BasicSR-style 480x480 HR and 160x160 LR sub-image."""
    from mobile_sr.tasks.sr.data import stored_sr_pairs
    from mobile_sr.tasks.sr.patches import PatchSampler

    _, pairs = stored_sr_pairs(folder, SCALE, log=lambda _: None)
    sampler = PatchSampler(pairs, patch_size=64, batch_size=1, seed=0)
    hr_paths = sorted(folder.glob("*.png"))
    picks = np.random.default_rng(0).integers(len(pairs), size=samples)

    def per_patch(read) -> float:
        start = time.process_time()
        for index in picks:
            read(int(index))
        return round(1000 * (time.process_time() - start) / samples, 2)

    with tempfile.TemporaryDirectory() as scratch:
        sub_images = []
        for index, pair in enumerate(pairs[:8]):
            paths = (Path(scratch, f"{index}_hr.png"), Path(scratch, f"{index}_lr.png"))
            save_png(paths[0], pair.hr[:SUB_IMAGE, :SUB_IMAGE])
            save_png(paths[1], pair.lr[: SUB_IMAGE // SCALE, : SUB_IMAGE // SCALE])
            sub_images.append(paths)
        return {
            "band read of the stored decoded images (this pipeline)": per_patch(lambda i: sampler.patch(i, 100, 200)),
            "decode the whole HR PNG (decoding on demand)": per_patch(lambda i: _decode(hr_paths[i])),
            "decode a 480x480 HR + 160x160 LR sub-image PNG (BasicSR)": per_patch(
                lambda i: [_decode(path) for path in sub_images[i % len(sub_images)]]),
        }


def pipeline_cpu_per_batch(folder: Path, batches: int = 100) -> float:
    """Milliseconds of CPU (all threads) per batch of 16 64x64 x3 patches through the whole
    ``patch_dataset``, on its own: what it takes from the train step's cores."""
    from mobile_sr.data.pipeline import patch_dataset
    from mobile_sr.tasks.sr.data import stored_sr_pairs
    from mobile_sr.tasks.sr.patches import PatchSampler

    _, pairs = stored_sr_pairs(folder, SCALE, log=lambda _: None)
    batch_iterator = iter(patch_dataset(PatchSampler(pairs, patch_size=64, batch_size=16, seed=0)))
    for _ in range(10):  # warm-up: tf.data's threads and autotuning
        next(batch_iterator)
    start = time.process_time()
    for _ in range(batches):
        next(batch_iterator)
    return round(1000 * (time.process_time() - start) / batches, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="folder of the synthetic 2K images, made or completed there "
                        "(default: <out>/synthetic_2k)")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=300, help="steps per measurement")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/data_pipeline"))
    parser.add_argument("--rounds", type=int, default=3, help="step-time measurements on all images (outside load varies)")
    parser.add_argument("--quick", action="store_true", help="40 images, 60 steps, 1 round")
    parser.add_argument("--precision", default="auto", choices=["auto", "float32", "mixed_bfloat16", "mixed_float16"],
                        help="of the timed train steps (auto: what training picks on this machine)")
    parser.add_argument("--worker", choices=["stored", "memory"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _step_time_worker(str(args.data), args.steps, args.worker, args.precision)
        return
    if args.quick:
        args.images, args.steps, args.rounds = 40, 60, 1
    args.data = args.data or args.out / "synthetic_2k"
    os.environ.setdefault("MOBILE_SR_CACHE", str(args.data.with_name(f"{args.data.name}-cache")))
    paths = synthesize_images(args.data, args.images)
    few_count = max(2, args.images // 10)  # two at least: one is held out for validation
    few = subset(paths[:few_count], args.out / f"first_{few_count}")
    results = {"scale": SCALE, "images": args.images, "size": SIZE_2K, "cache": os.environ["MOBILE_SR_CACHE"]}
    _, prepare_seconds, _ = _run_measured(mobile_sr_command("prepare", "--data", str(args.data), "--scale", str(SCALE)))
    results["prepare_seconds"] = round(prepare_seconds, 1)
    results["patch_ms"] = patch_read_costs(args.data)
    results["pipeline_cpu_ms_per_batch"] = pipeline_cpu_per_batch(args.data)
    results["train"] = [training_memory(folder, steps=args.steps, run_dir=args.out / "runs" / folder.name)
                        for folder in (few, args.data)]
    results["step_time"] = [step_time(folder, steps=args.steps, source=source, precision=args.precision)
                            for folder, source in ((few, "memory"), (few, "stored"), *[(args.data, "stored")] * args.rounds)]
    results["median_pipeline_overhead"] = float(np.median([row["pipeline_overhead"] for row in results["step_time"][2:]]))

    lines = [f"# SR data pipeline: x{SCALE}, {args.images} synthetic {SIZE_2K[0]}x{SIZE_2K[1]} images", "",
             f"Preparing the training cache (decode, bicubic x1/{SCALE}, store; once): {results['prepare_seconds']} s", "",
             "| how a patch's pixels are got | CPU ms per 64x64 x3 patch |", "|---|---|"]
    lines += [f"| {name} | {ms} |" for name, ms in results["patch_ms"].items()]
    lines += ["", f"The whole pipeline: {results['pipeline_cpu_ms_per_batch']} ms of CPU per batch of 16 (all threads)."]
    lines += ["", f"`mobile-sr train` ({args.steps} steps, validation included):", "",
              "| images | peak RSS (MB) | steps/s |", "|---|---|---|"]
    lines += [f"| {row['images']} | {row['peak_rss_mb']} | {row['steps_per_s']} |" for row in results["train"]]
    lines += ["", f"SCSRN x{SCALE} steps (batch 16 of 64x64 LR, {results['step_time'][0]['precision']}, all cores), "
              f"`measure_step_time`, {args.steps} steps each:", "",
              "| images | source | peak RSS (MB) | s/step pipeline | s/step cached batch | pipeline overhead |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {row['images']} | {'all decoded in memory' if row['source'] == 'memory' else 'training cache'} | "
              f"{row['peak_rss_mb']} | {row['seconds_per_step_pipeline']:.4f} | {row['seconds_per_step_cached']:.4f} | "
              f"{100 * row['pipeline_overhead']:+.1f}% |" for row in results["step_time"]]
    lines += ["", f"Median pipeline overhead on all {args.images} images, {args.rounds} round(s): "
              f"{100 * results['median_pipeline_overhead']:+.1f}%"]
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out / "results.json", (json.dumps(results, indent=2) + "\n").encode())
    atomic_write_bytes(args.out / "results.md", ("\n".join(lines) + "\n").encode())
    print("\n".join(lines))


if __name__ == "__main__":
    main()
