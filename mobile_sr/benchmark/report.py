"""Comparison report over benchmark results: a Markdown table and a PSNR-vs-latency plot, with the
Mobile AI challenge score ``2^(2 * PSNR) / (C * runtime)`` (C = 0.1, runtime in seconds), which
trades 0.5 dB of PSNR for half the runtime."""

from __future__ import annotations

import json
import math
from pathlib import Path

from mobile_sr.core.errors import MobileSRError
from mobile_sr.core.files import atomic_write_bytes
from mobile_sr.core.plots import pyplot, save_figure

SCORE_CONSTANT = 0.1


def challenge_score(psnr_db: float, latency_ms: float) -> float:
    return 2.0 ** (2.0 * psnr_db) / (SCORE_CONSTANT * latency_ms / 1000.0)


_EVAL_REPORT = ("an SR eval report holds an object (or a list of them, one per scale) with \"model\", \"dataset\" "
                "and \"mean_psnr_y\" (dB, a number >= 0); write one with 'mobile-sr eval --tflite MODEL --json FILE'")


def load_psnr(eval_jsons: list[Path]) -> dict[str, dict]:
    """``{model stem: {"psnr": dB, "dataset": name}}`` from ``mobile-sr eval --json`` outputs."""
    table = {}
    for path in map(Path, eval_jsons):
        try:
            reports = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise MobileSRError(f"{path}: not an eval report ({exc}); {_EVAL_REPORT}") from None
        if reports == []:
            raise MobileSRError(f"{path}: holds no eval report (an empty list); {_EVAL_REPORT}")
        for report in reports if isinstance(reports, list) else [reports]:
            psnr = report.get("mean_psnr_y") if isinstance(report, dict) else None
            # 8-bit PSNR stays far below 500 dB, where the score's 2^(2 PSNR) overflows (inf: identical images)
            valid = (isinstance(report, dict) and isinstance(report.get("model"), str) and isinstance(report.get("dataset"), str)
                     and isinstance(psnr, (int, float)) and not isinstance(psnr, bool) and (0 <= psnr < 500 or psnr == math.inf))
            if not valid:
                raise MobileSRError(f"{path}: not an eval report (got {json.dumps(report)[:80]}); {_EVAL_REPORT}")
            table[Path(report["model"]).stem] = {"psnr": float(report["mean_psnr_y"]), "dataset": report["dataset"]}
    return table


def unmatched_reports(psnr: dict[str, dict], models: list[Path]) -> tuple[list[str], list[str]]:
    """``(report models that match no benchmarked model, benchmarked models that no report matches)``,
    matched by file stem as the table does; raises when nothing matches (the table would be empty)."""
    benchmarked = {Path(model).stem: Path(model).name for model in models}
    reports_left_out = sorted(set(psnr) - set(benchmarked))
    if len(reports_left_out) == len(psnr):
        raise MobileSRError(f"the --compare reports are for {', '.join(reports_left_out)}, none of the benchmarked models "
                            f"({', '.join(sorted(benchmarked.values()))}); give the eval reports of these models "
                            "('mobile-sr eval --tflite MODEL --json FILE')")
    return reports_left_out, sorted(name for stem, name in benchmarked.items() if stem not in psnr)


def write_comparison(results: list[dict], psnr: dict[str, dict], markdown_path: Path, png_path: Path) -> str:
    """Write the table and the plot; returns the Markdown."""
    lines = ["| model | target | runtime | delegate | threads | median ms | PSNR-Y dB | dataset | score |",
             "|---|---|---|---|---|---|---|---|---|"]
    points = []
    for r in sorted(results, key=lambda r: (r["model"], r["target"], r["runtime"], r["delegate"], r["threads"])):
        quality = psnr.get(Path(r["model"]).stem)
        score = challenge_score(quality["psnr"], r["latency_ms_median"]) if quality else None
        configuration = f"| {r['model']} | {r['target']} | {r['runtime']} | {r['delegate']} | {r['threads']} |"
        lines.append(f"{configuration} {r['latency_ms_median']:.1f} | {quality['psnr']:.3f} | {quality['dataset']} | "
                     f"{score:.4g} |" if quality else f"{configuration} {r['latency_ms_median']:.1f} | - | - | - |")
        if quality:
            points.append((r, quality["psnr"]))
    markdown = "\n".join(lines) + "\n"
    atomic_write_bytes(markdown_path, markdown.encode())
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for r, value in points:
        label = f"{Path(r['model']).stem} ({r['runtime']} {r['delegate']}, {r['threads']}t)"
        axis.scatter(r["latency_ms_median"], value)
        axis.annotate(label, (r["latency_ms_median"], value), fontsize=7, xytext=(4, 3), textcoords="offset points")
    axis.set(xlabel="latency per frame (ms, median)", ylabel="PSNR-Y (dB)", title="quality vs latency")
    axis.grid(alpha=0.3)
    save_figure(figure, png_path)
    return markdown
