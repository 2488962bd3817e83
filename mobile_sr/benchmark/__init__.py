"""Per-frame latency of .tflite models: on this host in LiteRT, and on Android phones over adb,
reported in one schema (:mod:`mobile_sr.benchmark.schema`). :func:`run_benchmark` is the entry
point the CLI and the benchmarks share."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

DEFAULT_REPORT = Path("bench.json")  # where the comparison goes without a JSON path


def run_benchmark(models: list[Path], *, android: bool = False, threads: list[int] = (1,), runs: int = 30,
                  warmup: int = 3, seconds: float | None = None, xnnpack: tuple[bool, ...] = (True,),
                  serial: str | None = None, delegate: str = "xnnpack", benchmark_binary: Path | None = None,
                  use_apk: bool = False, nnapi_accelerator: str | None = None, op_profiling: bool = False,
                  json_path: Path | None = None, compare: list[Path] = (),
                  log: Callable[[str], None] = print) -> list[dict]:
    """Time ``models`` on this host (``xnnpack``, ``seconds`` apply) or on a phone (``serial``,
    ``delegate``, ``benchmark_binary``, ``use_apk``, ``nnapi_accelerator``, ``op_profiling``
    apply), print the table, and write the results to ``json_path`` with a CSV next to it. With
    ``compare`` (eval reports of the same models) also a Markdown table and a PSNR-vs-latency PNG
    with the challenge score, next to ``json_path`` (or ``bench.json``)."""
    from mobile_sr.benchmark.schema import to_csv, to_table
    from mobile_sr.core.files import atomic_write_bytes, write_json

    psnr = None
    if compare:  # read before the benchmark, which a bad report would otherwise waste
        from mobile_sr.benchmark.report import load_psnr, unmatched_reports

        psnr = load_psnr(list(compare))
        reports_left_out, models_left_out = unmatched_reports(psnr, list(models))
        if models_left_out:
            log(f"note: no --compare report for {', '.join(models_left_out)}: no PSNR in their rows")
        if reports_left_out:
            log(f"note: the --compare reports of {', '.join(reports_left_out)} match no benchmarked model: "
                "left out of the table")
    if android:
        from mobile_sr.benchmark.android import benchmark_on_android

        results = benchmark_on_android(
            models=list(models), delegate=delegate, threads=list(threads), serial=serial,
            benchmark_binary=benchmark_binary, use_apk=use_apk, nnapi_accelerator=nnapi_accelerator,
            op_profiling=op_profiling, runs=runs, warmup_runs=warmup, log=log,
        )
    else:
        from mobile_sr.benchmark.host import benchmark_host

        results = benchmark_host(list(models), threads=list(threads), xnnpack=tuple(xnnpack), runs=runs, warmup=warmup,
                                 seconds=seconds, log=log)
    log(to_table(results))
    if json_path is not None:
        write_json(json_path, results)
        atomic_write_bytes(json_path.with_suffix(".csv"), to_csv(results).encode())
        log(f"wrote {json_path} and {json_path.with_suffix('.csv').name}")
    if psnr is not None:
        from mobile_sr.benchmark.report import write_comparison

        base = json_path or DEFAULT_REPORT
        markdown = write_comparison(results, psnr, base.with_suffix(".md"), base.with_suffix(".png"))
        log(markdown + f"wrote {base.with_suffix('.md')} and {base.with_suffix('.png')}")
    return results
