"""Per-frame latency of .tflite models on this host, in the LiteRT interpreter.

Each (model, threads, XNNPACK on/off) configuration runs in a fresh process
(:mod:`mobile_sr.benchmark.host_worker`): warm-up, then N timed ``invoke()`` calls or a time
budget; median / p90 / min per frame, the peak memory the model adds, the model's MACs per frame
and the achieved GMAC/s. The same configuration is cross-checked with LiteRT's own
``litert-benchmark`` (the CompiledModel API, installed with ai-edge-litert), which times a whole
``run`` call with its buffers; both are reported.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from mobile_sr.errors import TFLiteError
from mobile_sr.tflite import MAX_THREADS, is_dynamic, load_interpreter

AGREEMENT_TOLERANCE = 0.10


def host_info() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "machine": platform.machine(), "system": platform.system(),
            "python": platform.python_version()}


def parse_threads(text: str) -> list[int]:
    """``1,2,all`` -> [1, 2, cpu_count] (duplicates removed, order kept)."""
    threads = []
    for part in text.split(","):
        part = part.strip().lower()
        # isascii: isdigit() also accepts digits such as '²' that int() refuses
        value = os.cpu_count() or 1 if part == "all" else int(part) if part.isascii() and part.isdigit() else 0
        if not 1 <= value <= MAX_THREADS:
            raise ValueError(f"'{text}' is not a list of thread counts such as 1,2,all: each a whole number from 1 "
                             f"to {MAX_THREADS} (4 per core, at least 256: more only contend for the cores), or "
                             f"'all' (this machine's {os.cpu_count() or 1} cores)")
        if value not in threads:
            threads.append(value)
    return threads


def count_macs(path: Path) -> int:
    """Multiply-accumulates of one inference at the model's input size (convs and dense layers),
    from the shapes stored in the file: no tensors are allocated (the builtin conv kernels refuse
    to prepare im2col buffers over 2^31 elements, e.g. AHDRNet at 1000x1500)."""
    from ai_edge_litert.interpreter import OpResolverType, Interpreter

    from mobile_sr.native_logs import silenced_native_stderr

    load_interpreter(path, expect=None)  # validates the file with a clear error
    with silenced_native_stderr():
        interpreter = Interpreter(model_path=str(path),
                                  experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    shapes = {t["index"]: [int(v) for v in t["shape"]] for t in interpreter.get_tensor_details()}
    total = 0
    for op in interpreter._get_ops_details():
        name = op["op_name"]
        if name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV"):
            continue
        out = shapes[op["outputs"][0]]
        if name == "CONV_2D":  # filter: [out_c, kh, kw, in_c]
            total += int(np.prod(out)) * int(np.prod(shapes[op["inputs"][1]][1:]))
        elif name == "DEPTHWISE_CONV_2D":  # filter: [1, kh, kw, out_c]
            filter_shape = shapes[op["inputs"][1]]
            total += int(np.prod(out)) * filter_shape[1] * filter_shape[2]
        elif name == "FULLY_CONNECTED":  # filter: [out, in]
            total += int(np.prod(out)) * shapes[op["inputs"][1]][1]
        else:  # TRANSPOSE_CONV: inputs (output_shape, filter [out_c, kh, kw, in_c], input)
            filter_shape = shapes[op["inputs"][1]]
            total += int(np.prod(shapes[op["inputs"][2]])) * filter_shape[0] * filter_shape[1] * filter_shape[2]
    return total


def _require_fixed_size(path: Path) -> None:
    """Refuse a model exported with a dynamic input size: the interpreter would time it at 1x1."""
    if any(is_dynamic(detail) for detail in load_interpreter(path, expect=None).get_input_details()):
        raise TFLiteError(f"{path} has a dynamic input size, which would be timed at 1x1; "
                          "export it with a fixed --input-size (e.g. 360x640) to benchmark it")


def _run_worker(path: Path, *, threads: int, xnnpack: bool, runs: int, warmup: int, seconds: float | None) -> dict:
    command = [sys.executable, "-m", "mobile_sr.benchmark.host_worker", str(path), "--threads", str(threads),
               "--xnnpack", str(int(xnnpack)), "--runs", str(runs), "--warmup", str(warmup)]
    if seconds is not None:
        command += ["--seconds", str(seconds)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        reason = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise TFLiteError(f"{path}: the benchmark run failed ({reason})")
    return json.loads(result.stdout)


def litert_benchmark(path: Path, *, threads: int, runs: int, warmup: int) -> dict | None:
    """LiteRT's own ``litert-benchmark`` (CompiledModel API, CPU with XNNPACK); None if absent."""
    executable = shutil.which("litert-benchmark")
    if executable is None:
        return None
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "result.json"
        result = subprocess.run([executable, "--model", str(path), "--num_threads", str(threads), "--num_runs", str(runs),
                                 "--warmup_runs", str(warmup), "--result_json", str(output)], capture_output=True, text=True)
        if result.returncode or not output.is_file():
            return {"error": (result.stderr.strip().splitlines() or ["failed"])[-1]}
        return json.loads(output.read_text())["latency"]


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def benchmark_host(
    models: list[Path], *, threads: list[int], xnnpack: tuple[bool, ...] = (True,), runs: int = 30,
    warmup: int = 3, seconds: float | None = None, cross_check: bool = True, log: Callable[[str], None] = print,
) -> list[dict]:
    """Time every model at every thread count (and XNNPACK setting); one result dict each."""
    models = [Path(path) for path in models]
    for path in models:  # every model before timing any
        _require_fixed_size(path)
    host = host_info()
    results = []
    for path in models:
        macs = count_macs(path)
        for use_xnnpack in xnnpack:
            for thread_count in threads:
                measured = _run_worker(path, threads=thread_count, xnnpack=use_xnnpack, runs=runs, warmup=warmup, seconds=seconds)
                latencies = measured["latencies_ms"]
                median = statistics.median(latencies)
                result = {
                    "model": path.name, "target": "host", "host": host,
                    "delegate": "xnnpack" if use_xnnpack else "builtin", "threads": thread_count,
                    "input_shape": measured["input_shape"], "latency_ms_median": round(median, 3),
                    "latency_ms_p90": round(_percentile(latencies, 90), 3), "latency_ms_min": round(min(latencies), 3),
                    "latency_ms_mean": round(statistics.mean(latencies), 3), "runs": len(latencies), "macs": macs,
                    "gmacs_per_s": round(macs / median / 1e6, 2),
                    "gmacs_per_s_per_core": round(macs / median / 1e6 / thread_count, 2),
                    "peak_memory_mb": round(measured["peak_memory_mb"], 1),
                }
                if cross_check and use_xnnpack:
                    result.update(_cross_check(path, thread_count, len(latencies), warmup, median))
                results.append(result)
                log(format_row(result))
    return results


def _cross_check(path: Path, threads: int, runs: int, warmup: int, median: float) -> dict:
    theirs = litert_benchmark(path, threads=threads, runs=runs, warmup=warmup)
    if theirs is None:
        return {"litert_benchmark": "not installed"}
    if "error" in theirs:
        return {"litert_benchmark": f"failed: {theirs['error']}"}
    ratio = theirs["median_ms"] / median
    agreement = abs(ratio - 1.0) <= AGREEMENT_TOLERANCE
    note = "agree within 10%" if agreement else (
        "differ: litert-benchmark times CompiledModel.run with its own buffer handling, this harness the "
        "interpreter's invoke() on a fresh process; the interpreter median is what an app calling invoke() sees"
    )
    return {"litert_benchmark_median_ms": theirs["median_ms"], "litert_benchmark_ratio": round(ratio, 3),
            "litert_benchmark_note": note}


COLUMNS = ("model", "delegate", "threads", "input_shape", "latency_ms_median", "latency_ms_p90", "latency_ms_min",
           "runs", "macs", "gmacs_per_s", "gmacs_per_s_per_core", "peak_memory_mb", "litert_benchmark_median_ms")


def format_row(result: dict) -> str:
    extra = ""
    if "litert_benchmark_median_ms" in result:
        extra = f" | litert-benchmark {result['litert_benchmark_median_ms']:.1f} ms ({result['litert_benchmark_note']})"
    return (f"{result['model']} [{result['delegate']}, {result['threads']} thread(s)]: median "
            f"{result['latency_ms_median']:.1f} ms, p90 {result['latency_ms_p90']:.1f}, min {result['latency_ms_min']:.1f} "
            f"({result['runs']} runs); {result['macs'] / 1e9:.2f} GMAC -> {result['gmacs_per_s']:.1f} GMAC/s; "
            f"peak memory +{result['peak_memory_mb']:.0f} MB{extra}")


def to_csv(results: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[*COLUMNS, "target", "host_cpu"], extrasaction="ignore")
    writer.writeheader()
    for result in results:
        writer.writerow({**result, "input_shape": "x".join(map(str, result["input_shape"])),
                         "host_cpu": result.get("host", {}).get("cpu", "")})
    return buffer.getvalue()


def _cell(value, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def to_table(results: list[dict]) -> str:
    """Markdown table of host or Android results (fields a target lacks show as '-')."""
    header = "| model | target | delegate | threads | input | median ms | p90 ms | min ms | GMAC | GMAC/s/core | peak MB |"
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for r in results:
        macs = None if r.get("macs") is None else r["macs"] / 1e9
        lines.append(
            f"| {r['model']} | {r['target']} | {r['delegate']} | {r['threads']} | {'x'.join(map(str, r['input_shape']))} | "
            f"{_cell(r['latency_ms_median'])} | {_cell(r.get('latency_ms_p90'))} | {_cell(r.get('latency_ms_min'))} | "
            f"{_cell(macs, 2)} | {_cell(r.get('gmacs_per_s_per_core'))} | {_cell(r.get('peak_memory_mb'))} |"
        )
    return "\n".join(lines)


def op_profile(path: Path, *, threads: int = 1, runs: int = 15, warmup: int = 2, xnnpack: bool = True) -> list[dict]:
    """Share of the frame time spent in each op type, on this host.

    The Python interpreter has no op profiler, so the graph is timed by prefixes: model k keeps the
    first k operators (the k-th output becomes the graph output), and op k costs the median time
    of prefix k minus that of prefix k-1. Operators run in order in a plain SR graph, so the
    differences add up to the whole frame.
    """
    from ai_edge_litert.tools import flatbuffer_utils

    _require_fixed_size(path)
    model = flatbuffer_utils.read_model(str(path))
    subgraph = model.subgraphs[0]
    operators = list(subgraph.operators)
    names = [flatbuffer_utils.opcode_to_name(model, op.opcodeIndex) for op in operators]
    previous, rows = 0.0, []
    with tempfile.TemporaryDirectory() as folder:
        for count in range(1, len(operators) + 1):
            subgraph.operators = operators[:count]
            subgraph.outputs = [operators[count - 1].outputs[0]]
            prefix = Path(folder) / f"prefix{count}.tflite"
            flatbuffer_utils.write_model(model, str(prefix))
            measured = _run_worker(prefix, threads=threads, xnnpack=xnnpack, runs=runs, warmup=warmup, seconds=None)
            total = statistics.median(measured["latencies_ms"])
            rows.append({"index": count - 1, "op": names[count - 1], "ms": max(0.0, total - previous)})
            previous = max(previous, total)
    by_type: dict[str, dict] = {}
    for row in rows:
        entry = by_type.setdefault(row["op"], {"op": row["op"], "count": 0, "ms": 0.0})
        entry["count"] += 1
        entry["ms"] += row["ms"]
    frame = sum(entry["ms"] for entry in by_type.values()) or 1.0
    return sorted(({**e, "ms": round(e["ms"], 2), "share": round(e["ms"] / frame, 4)} for e in by_type.values()),
                  key=lambda e: -e["ms"])
