"""The one benchmark-result schema of the host and the Android benchmarks: every result has the
same fields, so the JSON, the table and the CSV show the same columns for both targets; what only
one target measures goes into ``details`` (flattened into the JSON)."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mobile_sr.runtimes import DEFAULT_RUNTIME, RUNTIMES

TARGETS = ("host", "android")


@dataclass(frozen=True)
class BenchmarkResult:
    """Per-frame latency of one model on one target, delegate and thread count."""

    model: str  # the .tflite file name
    target: str  # "host" or "android"
    hardware: str  # the host's CPU, or the phone (maker, model, SoC)
    # host LiteRT: xnnpack or builtin; host OpenVINO: cpu (its CPU plugin); android: cpu, xnnpack, gpu or nnapi
    delegate: str
    threads: int
    input_shape: list[int]
    latency_ms_median: float
    latency_ms_p90: float | None
    latency_ms_min: float | None
    latency_ms_mean: float | None
    runs: int | None
    macs: int | None  # multiply-accumulates per frame (convs and dense layers)
    # memory the model adds while it runs: on the host the worker's peak resident memory over its
    # start, on a phone benchmark_model's footprint delta from its start ("overall")
    peak_memory_mb: float | None
    runtime: str = DEFAULT_RUNTIME  # what ran the .tflite: litert (a phone's benchmark_model too) or openvino
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {self.target!r}")
        if self.runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {RUNTIMES}, got {self.runtime!r}")
        overlap = set(self.details) & {*self.__dataclass_fields__, *_DERIVED}
        if overlap:
            raise ValueError(f"details repeat the schema's fields: {', '.join(sorted(overlap))}")

    @property
    def gmacs_per_s(self) -> float | None:
        return self._throughput(1)

    @property
    def gmacs_per_s_per_core(self) -> float | None:
        return self._throughput(self.threads)

    def _throughput(self, cores: int) -> float | None:
        if self.macs is None or not self.latency_ms_median:
            return None
        return round(self.macs / self.latency_ms_median / 1e6 / cores, 2)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: the schema's fields, the derived throughput, then the details."""
        fields = asdict(self)
        details = fields.pop("details")
        return {**fields, **{name: getattr(self, name) for name in _DERIVED}, **details}


_DERIVED = ("gmacs_per_s", "gmacs_per_s_per_core")
# the columns of the CSV: the schema's fields, the derived ones, the host's cross-check, the
# runtime's version and OpenVINO's agreement with LiteRT (a phone's too, with its PSNR and frame);
# a phone's delegated and CPU nodes, peak memory footprint and slowest node types
COLUMNS = (*(name for name in BenchmarkResult.__dataclass_fields__ if name != "details"), *_DERIVED,
           "litert_benchmark_median_ms", "runtime_version", "vs_litert_max_diff_lsb", "vs_litert_differing_pixels",
           "vs_litert_psnr_db", "vs_litert_frame", "delegated_nodes", "cpu_nodes", "memory_peak_mb", "top_op_types")
# the columns of the per-node-type profile CSV: the run, then a row of its op profile
OP_PROFILE_COLUMNS = ("model", "target", "hardware", "delegate", "threads", "node_type", "count", "avg_ms", "avg_pct",
                      "cdf_pct", "mem_kb", "times_called")


def _cell(value, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _agreement(result: dict) -> str | None:
    """OpenVINO's output against LiteRT's, e.g. ``max 1 LSB, 0.03% of pixels``; None where not measured."""
    if "vs_litert_max_diff_lsb" not in result:
        return None
    return f"max {result['vs_litert_max_diff_lsb']:g} LSB, {100 * result['vs_litert_differing_pixels']:.2f}% of pixels"


def format_row(result: dict) -> str:
    """One result as a progress line."""
    extra = ""
    if "litert_benchmark_median_ms" in result:
        extra = f" | litert-benchmark {result['litert_benchmark_median_ms']:.1f} ms ({result['litert_benchmark_note']})"
    agreement = _agreement(result)
    if agreement:
        extra += f" | output vs LiteRT: {agreement}"
    macs = "" if result["macs"] is None else (f"; {result['macs'] / 1e9:.2f} GMAC -> "
                                              f"{_cell(result['gmacs_per_s'])} GMAC/s")
    memory = "" if result["peak_memory_mb"] is None else f"; peak memory +{result['peak_memory_mb']:.0f} MB"
    return (f"{result['model']} [{result['runtime']} {result['delegate']}, {result['threads']} thread(s)]: median "
            f"{result['latency_ms_median']:.1f} ms, p90 {_cell(result['latency_ms_p90'])}, min "
            f"{_cell(result['latency_ms_min'])} ({result['runs']} runs){macs}{memory}{extra}")


def to_csv(results: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for result in results:
        nested = {f"{key}_{name}": value for key, values in result.items() if isinstance(values, dict)
                  for name, value in values.items()}  # e.g. memory_peak_mb
        writer.writerow({**result, **nested, "input_shape": "x".join(map(str, result["input_shape"]))})
    return buffer.getvalue()


def op_profile_csv_path(json_path: Path) -> Path:
    """Where the per-node-type profile goes next to the results' JSON: ``bench.json`` -> ``bench_ops.csv``."""
    return json_path.with_name(f"{json_path.stem}_ops.csv")


def to_op_profile_csv(results: list[dict]) -> str:
    """One row per run and node type of the runs' op profiles (``op_profile``, from a phone's
    ``--enable_op_profiling``); a run without a profile has no row."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=OP_PROFILE_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for result in results:
        for row in result.get("op_profile") or []:
            writer.writerow({**result, **row})
    return buffer.getvalue()


def to_table(results: list[dict]) -> str:
    """Markdown table of host and Android results alike (a field a run did not measure shows as '-')."""
    header = ("| model | target | hardware | runtime | delegate | threads | input | median ms | p90 ms | min ms | GMAC "
              "| GMAC/s/core | output vs LiteRT | peak MB |")
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for r in results:
        macs = None if r["macs"] is None else r["macs"] / 1e9
        lines.append(
            f"| {r['model']} | {r['target']} | {r['hardware']} | {r['runtime']} | {r['delegate']} | {r['threads']} | "
            f"{'x'.join(map(str, r['input_shape']))} | {_cell(r['latency_ms_median'])} | {_cell(r['latency_ms_p90'])} | "
            f"{_cell(r['latency_ms_min'])} | {_cell(macs, 2)} | {_cell(r['gmacs_per_s_per_core'])} | "
            f"{_agreement(r) or '-'} | {_cell(r['peak_memory_mb'])} |"
        )
    return "\n".join(lines)
