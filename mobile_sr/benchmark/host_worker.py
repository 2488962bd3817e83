"""One host latency measurement in a fresh process (``python -m mobile_sr.benchmark.host_worker``),
so that its peak memory is the model's alone and runs do not share caches or thread pools.

Prints one JSON object: per-run latencies in ms and the peak resident memory added by the model.
Imports LiteRT, and OpenVINO for ``--runtime openvino``, but no TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

from ai_edge_litert.interpreter import Interpreter, OpResolverType

from mobile_sr.core.native_logs import silenced_native_stderr
from mobile_sr.runtimes import RUNTIMES, LiteRTRuntime, OpenVINORuntime, import_openvino, random_frame


def _status_mb(field: str) -> float | None:
    """A memory line of /proc/self/status in MB; None where /proc is missing."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM, not ru_maxrss: on Linux ru_maxrss keeps the
    parent's resident memory at fork through exec, so a worker started by a process holding
    TensorFlow would report the parent's 700 MB as its own."""
    peak = _status_mb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB


def current_rss_mb() -> float:
    """Resident memory now (the baseline: the process peak may lie above it, left by the
    imports, and would hide the model's memory); the peak where /proc is missing."""
    current = _status_mb("VmRSS")
    return current if current is not None else peak_rss_mb()


def _load(model: str, *, runtime: str, threads: int, xnnpack: bool):
    """The model in ``runtime``; LiteRT with or without XNNPACK as asked (no fallback: a graph
    XNNPACK refuses fails, rather than being timed without it)."""
    if runtime == "openvino":
        return OpenVINORuntime(model, threads=threads)
    resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    with silenced_native_stderr():
        interpreter = Interpreter(model_path=model, num_threads=threads, experimental_op_resolver_type=resolver)
        interpreter.allocate_tensors()
    return LiteRTRuntime(model, interpreter)


def measure(model: str, *, runtime: str, threads: int, xnnpack: bool, runs: int, warmup: int,
            seconds: float | None) -> dict:
    if runtime == "openvino":
        import_openvino()  # before the baseline, as LiteRT's: the import is not the model's memory
    baseline = current_rss_mb()
    loaded = _load(model, runtime=runtime, threads=threads, xnnpack=xnnpack)
    # one LR image, or an HDR model's exposures: the frame the runtimes' outputs are compared on
    for tensor, frame in zip(loaded.inputs, random_frame(loaded.inputs), strict=True):
        loaded.set_input(tensor, frame)
    for _ in range(warmup):
        loaded.invoke()
    latencies = []
    deadline = None if seconds is None else time.perf_counter() + seconds
    while True:  # `runs` runs, or with a time budget as many as fit (at least 3)
        start = time.perf_counter()
        loaded.invoke()
        latencies.append((time.perf_counter() - start) * 1000.0)
        if deadline is None and len(latencies) >= runs:
            break
        if deadline is not None and time.perf_counter() >= deadline and len(latencies) >= 3:
            break
    return {"latencies_ms": latencies, "peak_memory_mb": peak_rss_mb() - baseline,
            "input_shape": [int(v) for v in loaded.inputs[0]["shape"]]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--runtime", choices=RUNTIMES, required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--xnnpack", type=int, choices=(0, 1), required=True)
    parser.add_argument("--runs", type=int, required=True)
    parser.add_argument("--warmup", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=None)
    args = parser.parse_args(argv)
    result = measure(args.model, runtime=args.runtime, threads=args.threads, xnnpack=bool(args.xnnpack), runs=args.runs,
                     warmup=args.warmup, seconds=args.seconds)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
