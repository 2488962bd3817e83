"""Per-frame latency of .tflite models on this host, in the LiteRT interpreter and in OpenVINO
(:mod:`mobile_sr.runtimes`).

Each (model, runtime, threads, XNNPACK on/off for LiteRT) configuration runs in a fresh process
(:mod:`mobile_sr.benchmark.host_worker`): warm-up, then N timed ``invoke()`` calls or a time
budget, on one random frame; median / p90 / min per frame, the peak memory the model adds, the
model's MACs per frame and the achieved GMAC/s. LiteRT's XNNPACK configurations are cross-checked
with LiteRT's own ``litert-benchmark`` (the CompiledModel API, installed with ai-edge-litert),
which times a whole ``run`` call with its buffers; both are reported. OpenVINO's results say how
far its output is from LiteRT's on that frame.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mobile_sr.benchmark.schema import BenchmarkResult, format_row
from mobile_sr.core.errors import TFLiteError
from mobile_sr.runtimes import (
    DEFAULT_RUNTIME,
    RUNTIMES,
    import_openvino,
    load_runtime,
    output_agreement,
    random_frame,
    runtime_version,
)
from mobile_sr.tflite import MAX_THREADS, count_macs, error_reason, is_dynamic, load_interpreter

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


def _require_fixed_size(path: Path) -> None:
    """Refuse a model exported with a dynamic input size: the interpreter would time it at 1x1."""
    if any(is_dynamic(detail) for detail in load_interpreter(path).get_input_details()):
        raise TFLiteError(f"{path} has a dynamic input size, which would be timed at 1x1; "
                          "export it with a fixed --input-size (e.g. 360x640) to benchmark it")


def _run_worker(path: Path, *, runtime: str, threads: int, xnnpack: bool, runs: int, warmup: int,
                seconds: float | None) -> dict:
    command = [sys.executable, "-m", "mobile_sr.benchmark.host_worker", str(path), "--runtime", runtime,
               "--threads", str(threads), "--xnnpack", str(int(xnnpack)), "--runs", str(runs), "--warmup", str(warmup)]
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
    models: list[Path], *, threads: list[int], xnnpack: tuple[bool, ...] = (True,),
    runtimes: tuple[str, ...] = (DEFAULT_RUNTIME,), runs: int = 30, warmup: int = 3, seconds: float | None = None,
    cross_check: bool = True, log: Callable[[str], None] = print,
) -> list[dict]:
    """Time every model in every runtime (LiteRT: with each XNNPACK setting) at every thread
    count; one result each, as the dict of :class:`~mobile_sr.benchmark.schema.BenchmarkResult`,
    the runtimes of a model next to each other. OpenVINO's results hold its output's agreement
    with LiteRT's (:func:`runtime_agreement`)."""
    models = [Path(path) for path in models]
    if "openvino" in runtimes:
        import_openvino()  # missing: say so before timing anything
    for path in models:  # every model before timing any
        _require_fixed_size(path)
    host = host_info()
    configurations = [(runtime, use_xnnpack) for runtime in RUNTIMES if runtime in runtimes
                      for use_xnnpack in (xnnpack if runtime == "litert" else (False,))]
    results = []
    for path in models:
        macs = count_macs(path)
        agreement = runtime_agreement(path) if "openvino" in runtimes else {}
        for runtime, use_xnnpack in configurations:
            for thread_count in threads:
                measured = _run_worker(path, runtime=runtime, threads=thread_count, xnnpack=use_xnnpack, runs=runs,
                                       warmup=warmup, seconds=seconds)
                latencies = measured["latencies_ms"]
                median = statistics.median(latencies)
                details = {"host": host, "runtime_version": runtime_version(runtime)}
                if runtime == "openvino":
                    details.update(agreement)
                if cross_check and runtime == "litert" and use_xnnpack:
                    details.update(_cross_check(path, thread_count, len(latencies), warmup, median))
                result = BenchmarkResult(
                    model=path.name, target="host", hardware=host["cpu"],
                    delegate=("xnnpack" if use_xnnpack else "builtin") if runtime == "litert" else "cpu",
                    threads=thread_count, input_shape=measured["input_shape"], latency_ms_median=round(median, 3),
                    latency_ms_p90=round(_percentile(latencies, 90), 3), latency_ms_min=round(min(latencies), 3),
                    latency_ms_mean=round(statistics.mean(latencies), 3), runs=len(latencies), macs=macs,
                    peak_memory_mb=round(measured["peak_memory_mb"], 1), runtime=runtime, details=details,
                ).to_dict()
                results.append(result)
                log(format_row(result))
    return results


def runtime_agreement(path: Path) -> dict:
    """How far OpenVINO's output is from LiteRT's on the frame the benchmark times (the same
    random values): ``vs_litert_max_diff_lsb``, the largest difference in steps of the output's
    quantization (a float output: in 1/255 of its task's value range), and
    ``vs_litert_differing_pixels``, the fraction of output pixels where any channel differs."""
    outputs = []
    for name in RUNTIMES:
        runtime = load_runtime(path, runtime=name)
        for tensor, frame in zip(runtime.inputs, random_frame(runtime.inputs), strict=True):
            runtime.set_input(tensor, frame)
        try:
            runtime.invoke()
        except (ValueError, RuntimeError) as exc:
            raise TFLiteError(f"{path}: {runtime.title} cannot run the model ({error_reason(exc)})") from None
        outputs.append(runtime.get_output(runtime.outputs[0]))
    lsb = 1.0
    if not np.issubdtype(outputs[0].dtype, np.integer):
        from mobile_sr.tasks import task_of_graph

        low, high = task_of_graph(path).value_range
        lsb = (high - low) / 255
    agreement = output_agreement(*outputs, lsb)
    return {"vs_litert_max_diff_lsb": agreement["max_diff_lsb"], "vs_litert_differing_pixels": agreement["differing_pixels"]}


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
            measured = _run_worker(prefix, runtime="litert", threads=threads, xnnpack=xnnpack, runs=runs, warmup=warmup,
                                   seconds=None)
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
