"""Per-frame latency of the int8 and float SCSRN and ABPN x3 (360x640 -> 1080x1920) on this host.

    python benchmarks/latency.py [--models benchmarks/results/quantization_ladder/export]
        [--runs 30] [--out benchmarks/results/latency]

Times, in one run, the QAT+clip int8 and the float .tflite of both models exported by
``quantization_ladder.py`` (plus the post-training int8 ones), at 1 and 2 threads with XNNPACK,
and reports the SCSRN/ABPN latency ratio, the int8/float speed-up and GMAC/s per core, then the
op-type profile of the int8 SCSRN and a depth x width sweep of SCSRN (untrained weights through
the same int8 export path, 1 thread) that shows what sets the int8 latency. With the ladder's PSNR
it writes the comparison table and the PSNR-vs-latency plot. Outputs: ``latency.md``,
``latency.json``, ``latency.csv``, ``comparison.md``, ``comparison.png``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from mobile_sr.benchmark.host import benchmark_host, op_profile
from mobile_sr.benchmark.report import write_comparison
from mobile_sr.benchmark.schema import to_csv, to_table
from mobile_sr.core.files import atomic_write_bytes
from mobile_sr.export import convert
from mobile_sr.models import build_model, get_model_spec
from mobile_sr.quantization.qat import quantize_for_training

MODELS = {
    "scsrn_int8": "scsrn-x3-qat_clip_int8_360x640.tflite",
    "abpn_int8": "abpn-x3-qat_clip_int8_360x640.tflite",
    "scsrn_float": "scsrn-x3_float_360x640.tflite",
    "abpn_float": "abpn-x3_float_360x640.tflite",
    "scsrn_ptq_int8": "scsrn-x3_int8_360x640.tflite",
    "abpn_ptq_int8": "abpn-x3_int8_360x640.tflite",
}
LADDER_STAGE = {"scsrn_int8": "qat_clip_int8", "abpn_int8": "qat_clip_int8", "scsrn_float": "float",
                "abpn_float": "float", "scsrn_ptq_int8": "ptq_int8", "abpn_ptq_int8": "ptq_int8"}
SWEEP_FEATURE_CONVS = (3, 4, 5)
SWEEP_CHANNELS = (24, 28, 32, 40, 48)


def _untrained_int8(name: str, folder: Path, **config) -> Path:
    """The model with untrained weights through the int8 export path (the QAT graph at its
    calibrated start) at 360x640: its latency does not depend on the weights' values."""
    spec = get_model_spec(name)
    model = build_model(name, spec.config_class(scale=3, **config))
    calibration = np.random.default_rng(0).uniform(0, 255, (8, 48, 48, 3)).astype(np.float32)
    quantized = quantize_for_training(model, calibration, value_range=spec.value_range)
    path = folder / (f"{name}_" + "_".join(f"{k}{v}" for k, v in config.items()) + ".tflite")
    path.write_bytes(convert(quantized, mode="int8", input_size=(360, 640)))
    return path


def shape_sweep(runs: int) -> dict:
    """int8 latency (1 thread) of SCSRN for every feature-conv count and width of the sweep, and of
    the default ABPN, all untrained and timed in one run."""
    with tempfile.TemporaryDirectory() as folder:
        abpn = _untrained_int8("abpn", Path(folder))
        grid = {(convs, channels): _untrained_int8("scsrn", Path(folder), channels=channels, feature_convs=convs)
                for convs in SWEEP_FEATURE_CONVS for channels in SWEEP_CHANNELS}
        results = benchmark_host([abpn, *grid.values()], threads=[1], runs=runs, warmup=3, cross_check=False,
                                 log=lambda _: None)
    by_name = {r["model"]: r for r in results}
    abpn_ms = by_name[abpn.name]["latency_ms_median"]
    return {"abpn_ms": abpn_ms, "scsrn": [
        {"feature_convs": convs, "channels": channels, "ms": by_name[path.name]["latency_ms_median"],
         "gmac": round(by_name[path.name]["macs"] / 1e9, 2),
         "over_abpn": round(by_name[path.name]["latency_ms_median"] / abpn_ms, 3)}
        for (convs, channels), path in grid.items()]}


def sweep_table(sweep: dict) -> list[str]:
    cells = {(row["feature_convs"], row["channels"]): row for row in sweep["scsrn"]}
    lines = ["| feature convs | " + " | ".join(f"{c} ch" for c in SWEEP_CHANNELS) + " |",
             "|---" * (len(SWEEP_CHANNELS) + 1) + "|"]
    for convs in SWEEP_FEATURE_CONVS:
        lines.append(f"| {convs} | " + " | ".join(
            f"{cells[convs, c]['ms']:.1f} ms ({cells[convs, c]['over_abpn']:.2f}, {cells[convs, c]['gmac']:.1f} GMAC)"
            for c in SWEEP_CHANNELS) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, default=Path("benchmarks/results/quantization_ladder/export"))
    parser.add_argument("--ladder", type=Path, default=Path("benchmarks/results/quantization_ladder/ladder.json"))
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/latency"))
    args = parser.parse_args()
    paths = {key: args.models / name for key, name in MODELS.items()}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise SystemExit(f"missing models: {', '.join(missing)}; run benchmarks/quantization_ladder.py first")
    args.out.mkdir(parents=True, exist_ok=True)

    results = benchmark_host(list(paths.values()), threads=[1, 2], runs=args.runs, warmup=3)
    by_key = {(key, r["threads"]): r for key, path in paths.items() for r in results if r["model"] == path.name}

    def median(key: str, threads: int) -> float:
        return by_key[key, threads]["latency_ms_median"]

    summary = {}
    for threads in (1, 2):
        summary[f"{threads}_thread"] = {
            "scsrn_over_abpn_int8": round(median("scsrn_int8", threads) / median("abpn_int8", threads), 3),
            "scsrn_over_abpn_float": round(median("scsrn_float", threads) / median("abpn_float", threads), 3),
            "int8_speedup_scsrn": round(median("scsrn_float", threads) / median("scsrn_int8", threads), 3),
            "int8_speedup_abpn": round(median("abpn_float", threads) / median("abpn_int8", threads), 3),
            "gmacs_per_s_per_core": {key: by_key[key, threads]["gmacs_per_s_per_core"] for key in MODELS},
        }
    profile = op_profile(paths["scsrn_int8"], threads=1, runs=15)
    print("timing the SCSRN depth x width sweep", flush=True)
    sweep = shape_sweep(args.runs)

    lines = ["# Host latency, x3 360x640 -> 1080x1920", "", to_table(results), ""]
    for threads in (1, 2):
        s = summary[f"{threads}_thread"]
        lines.append(f"- {threads} thread(s): SCSRN/ABPN int8 {s['scsrn_over_abpn_int8']}, float {s['scsrn_over_abpn_float']}; "
                     f"int8 speed-up over float: SCSRN x{s['int8_speedup_scsrn']}, ABPN x{s['int8_speedup_abpn']}")
    lines += ["", "## Op-type profile of the int8 SCSRN (1 thread, prefix timing)", "", "| op | count | ms | share |", "|---|---|---|---|"]
    lines += [f"| {row['op']} | {row['count']} | {row['ms']:.1f} | {100 * row['share']:.1f}% |" for row in profile]
    lines += ["", "## SCSRN int8 latency by depth and width (untrained weights, 1 thread)", "",
              f"Median ms per frame (ratio to the default ABPN's {sweep['abpn_ms']:.1f} ms in the same run, GMAC per frame).",
              "", *sweep_table(sweep)]
    lines += ["", f"Host: {results[0]['host']['cpu']}, {results[0]['host']['cores']} cores"]
    markdown = "\n".join(lines) + "\n"
    atomic_write_bytes(args.out / "latency.md", markdown.encode())
    atomic_write_bytes(args.out / "latency.json", (json.dumps({"results": results, "summary": summary, "op_profile": profile,
                                                              "shape_sweep": sweep},
                                                              indent=2) + "\n").encode())
    atomic_write_bytes(args.out / "latency.csv", to_csv(results).encode())
    if args.ladder.is_file():
        ladder = json.loads(args.ladder.read_text())["psnr"]
        psnr = {paths[key].stem: {"psnr": ladder[key.split("_")[0]][stage]["Set5"], "dataset": "Set5"}
                for key, stage in LADDER_STAGE.items()}
        print(write_comparison(results, psnr, args.out / "comparison.md", args.out / "comparison.png"))
    print(markdown)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
