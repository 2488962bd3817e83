"""LiteRT against OpenVINO on the same int8 .tflite files: latency per frame, output agreement
and PSNR.

    python benchmarks/runtimes.py [MODEL.tflite ...] [--threads 1] [--runs 20] [--rounds 3]
        [--data set5] [--out benchmarks/results/runtimes]

By default the QAT + clipping int8 SCSRN and ABPN x3 at 360x640 that ``quantization_ladder.py``
exports; any fixed-size SR ``.tflite`` files otherwise (e.g. from ``mobile-sr export --int8``).
Each round times every model in both runtimes (``mobile-sr bench --runtime both``: a fresh
process per configuration, the same random frame, ``--threads`` threads), so that load from
other processes on a shared machine hits both runtimes alike; the table gives the median over the
rounds of each round's median, the speed-up, and how far OpenVINO's output is from LiteRT's on
that frame. Then each model is evaluated on ``--data`` in both runtimes (PSNR-Y, as
``mobile-sr eval --tflite --runtime``). Outputs: ``runtimes.md`` and ``runtimes.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

from mobile_sr.benchmark.host import benchmark_host, host_info
from mobile_sr.core.files import atomic_write_bytes
from mobile_sr.evaluation import evaluate
from mobile_sr.runtimes import RUNTIMES, runtime_version

LADDER_EXPORT = Path("benchmarks/results/quantization_ladder/export")
DEFAULT_MODELS = [LADDER_EXPORT / "scsrn-x3-qat_clip_int8_360x640.tflite", LADDER_EXPORT / "abpn-x3-qat_clip_int8_360x640.tflite"]


def time_rounds(models: list[Path], *, threads: int, runs: int, rounds: int) -> tuple[list[dict], list[dict]]:
    """``(one row per model, every result)``: each round times every model in both runtimes."""
    results = []
    for round_index in range(rounds):
        print(f"round {round_index + 1}/{rounds}", flush=True)
        for result in benchmark_host(models, threads=[threads], runtimes=RUNTIMES, runs=runs, warmup=3, cross_check=False):
            results.append({**result, "round": round_index + 1})
    rows = []
    for path in models:
        medians = {runtime: [r["latency_ms_median"] for r in results if r["model"] == path.name and r["runtime"] == runtime]
                   for runtime in RUNTIMES}
        litert, openvino = (statistics.median(medians[runtime]) for runtime in RUNTIMES)
        # the agreement is measured once per benchmark, on the same frame every round
        agreement = next(r for r in results if r["model"] == path.name and r["runtime"] == "openvino")
        rows.append({"model": path.name, "input": "x".join(map(str, agreement["input_shape"])), "litert_ms": round(litert, 1), "openvino_ms": round(openvino, 1),
                     "speedup": round(litert / openvino, 2), "round_medians_ms": medians,
                     "vs_litert_max_diff_lsb": agreement["vs_litert_max_diff_lsb"],
                     "vs_litert_differing_pixels": agreement["vs_litert_differing_pixels"]})
    return rows, results


def psnr_rows(models: list[Path], datasets: list[str]) -> list[dict]:
    """Mean PSNR-Y of every model on every dataset in both runtimes."""
    rows = []
    for path in models:
        for data in datasets:
            scores = {}
            for runtime in RUNTIMES:
                (report,) = evaluate(data=data, tflite_path=path, runtime=runtime, quiet=True)
                scores[runtime] = report.mean_psnr_y
            rows.append({"model": path.name, "dataset": report.dataset, **{f"{r}_psnr_y": round(scores[r], 4) for r in RUNTIMES},
                         "difference_db": round(scores["openvino"] - scores["litert"], 4)})
    return rows


def markdown(latency: list[dict], psnr: list[dict], *, threads: int, runs: int, rounds: int, load: list[float]) -> str:
    host = host_info()
    lines = [f"# LiteRT vs OpenVINO on the host ({threads} thread{'s' if threads > 1 else ''})", "",
             f"Host: {host['cpu']}, {host['cores']} cores (1-minute load average {load[0]:.1f} before the timing, "
             f"{load[1]:.1f} after: other processes share the cores); ai-edge-litert {runtime_version('litert')} "
             f"(XNNPACK), openvino {runtime_version('openvino')} (CPU plugin). Median over {rounds} rounds of each "
             f"round's median of {runs} frames; the output agreement is on the timed random frame.", "",
             "| model | input | LiteRT ms | OpenVINO ms | speed-up | max diff (LSB) | pixels that differ |",
             "|---|---|---|---|---|---|---|"]
    for row in latency:
        lines.append(f"| {row['model']} | {row['input']} | {row['litert_ms']:.1f} | {row['openvino_ms']:.1f} | "
                     f"x{row['speedup']:.2f} | {row['vs_litert_max_diff_lsb']:g} | "
                     f"{100 * row['vs_litert_differing_pixels']:.3f}% |")
    if psnr:
        lines += ["", "| model | dataset | LiteRT PSNR-Y dB | OpenVINO PSNR-Y dB | difference dB |", "|---|---|---|---|---|"]
        lines += [f"| {row['model']} | {row['dataset']} | {row['litert_psnr_y']:.4f} | {row['openvino_psnr_y']:.4f} | "
                  f"{row['difference_db']:+.4f} |" for row in psnr]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", type=Path, default=DEFAULT_MODELS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data", default="set5", help="Comma-separated datasets to evaluate PSNR on ('' for none).")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/runtimes"))
    args = parser.parse_args()
    missing = [str(path) for path in args.models if not path.is_file()]
    if missing:
        raise SystemExit(f"missing models: {', '.join(missing)}; give .tflite files (e.g. from 'mobile-sr export --int8'), "
                         "or run benchmarks/quantization_ladder.py first")
    args.out.mkdir(parents=True, exist_ok=True)

    load = [os.getloadavg()[0]]
    latency, results = time_rounds(args.models, threads=args.threads, runs=args.runs, rounds=args.rounds)
    load.append(os.getloadavg()[0])
    psnr = psnr_rows(args.models, [name for name in args.data.split(",") if name])
    text = markdown(latency, psnr, threads=args.threads, runs=args.runs, rounds=args.rounds, load=load)
    atomic_write_bytes(args.out / "runtimes.md", text.encode())
    report = {"command": " ".join(["python3", *sys.argv]), "load_average": load, "latency": latency, "psnr": psnr,
              "results": results}
    atomic_write_bytes(args.out / "runtimes.json", (json.dumps(report, indent=2) + "\n").encode())
    print(text + f"wrote {args.out / 'runtimes.md'} and runtimes.json")


if __name__ == "__main__":
    main()
