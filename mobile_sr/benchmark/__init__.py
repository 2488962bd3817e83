"""Per-frame latency of .tflite models: on this host in LiteRT and OpenVINO, and on Android phones over adb,
reported in one schema (:mod:`mobile_sr.benchmark.schema`). :func:`run_benchmark` is the entry
point the CLI and the benchmarks share."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

DEFAULT_REPORT = Path("bench.json")  # where the comparison goes without a JSON path


def run_benchmark(models: list[Path], *, android: bool = False, threads: list[int] = (1,), runs: int = 30,
                  warmup: int = 3, seconds: float | None = None, xnnpack: tuple[bool, ...] = (True,),
                  runtimes: tuple[str, ...] = ("litert",), serial: str | None = None, delegate: str = "xnnpack",
                  benchmark_binary: Path | None = None, use_apk: bool = False, nnapi_accelerator: str | None = None,
                  op_profiling: bool = False, check_frame: str | None = None,
                  json_path: Path | None = None, compare: list[Path] = (),
                  log: Callable[[str], None] = print) -> list[dict]:
    """Time ``models`` on this host (``runtimes``, ``xnnpack``, ``seconds`` apply) or on a phone (``serial``,
    ``delegate``, ``benchmark_binary``, ``use_apk``, ``nnapi_accelerator``, ``op_profiling``,
    ``check_frame`` apply), print the table, and write the results to ``json_path`` with a CSV next
    to it (and, with a phone's ``op_profiling``, the per-node-type profile as ``<json>_ops.csv``). With
    ``compare`` (eval reports of the same models) also a Markdown table and a PSNR-vs-latency PNG
    with the challenge score, next to ``json_path`` (or ``bench.json``). The files are written
    all or none (see :func:`mobile_sr.core.files.write_all_or_none`)."""
    from mobile_sr.benchmark.schema import op_profile_csv_path, to_csv, to_op_profile_csv, to_table
    from mobile_sr.core.files import atomic_write_bytes, write_all_or_none, write_json

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
            op_profiling=op_profiling, runs=runs, warmup_runs=warmup, check_frame=check_frame, log=log,
        )
    else:
        from mobile_sr.benchmark.host import benchmark_host

        results = benchmark_host(list(models), threads=list(threads), xnnpack=tuple(xnnpack), runtimes=tuple(runtimes),
                                 runs=runs, warmup=warmup, seconds=seconds, log=log)
    log(to_table(results))
    base = json_path or DEFAULT_REPORT
    outputs = [] if json_path is None else [json_path, json_path.with_suffix(".csv")]
    ops_csv = op_profile_csv_path(json_path) if json_path is not None and android and op_profiling else None
    if ops_csv is not None:
        outputs.append(ops_csv)
    if psnr is not None:
        outputs += [base.with_suffix(".md"), base.with_suffix(".png")]
    if not outputs:
        return results

    def write(staged: dict[Path, Path]) -> str | None:
        if json_path is not None:
            write_json(staged[json_path], results)
            atomic_write_bytes(staged[json_path.with_suffix(".csv")], to_csv(results).encode())
        if ops_csv is not None:
            atomic_write_bytes(staged[ops_csv], to_op_profile_csv(results).encode())
        if psnr is None:
            return None
        from mobile_sr.benchmark.report import write_comparison

        return write_comparison(results, psnr, staged[base.with_suffix(".md")], staged[base.with_suffix(".png")])

    markdown = write_all_or_none(outputs, write)
    if json_path is not None:
        written = [json_path.with_suffix(".csv").name, *([ops_csv.name] if ops_csv else [])]
        log(f"wrote {json_path} and {' and '.join(written)}")
    if markdown is not None:
        log(markdown + f"wrote {base.with_suffix('.md')} and {base.with_suffix('.png')}")
    return results
