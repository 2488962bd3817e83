"""The per-layer quantization report (``mobile-sr diagnose``) of SCSRN, RT4KSR (x3) and hdr_unet,
each under data-aware and nearest rounding of its conv kernels.

    python benchmarks/diagnose.py [--run scsrn=RUN_DIR ...] [--minutes 10] [--out benchmarks/results/diagnose]

Each model's float run is the one ``--run`` names, else the other benchmarks' (float_training,
zoo, hdr) when present, else ``--out/runs/<model>``, trained first if missing (``--minutes``, one
pinned core each, side by side: ``jobs.py``). SR costs are scored on Set5, HDR's on the default
validation scenes (four synthetic scenes of scikit-image photos at 192x288, the held-out camera). Writes ``<model>.json`` and ``<model>.png`` (per-layer SNR and cost bars) for
each (a ``<model>.json`` already there, of the same run and newer than it, is reused), and
``diagnose.md`` / ``diagnose.json``: per layer its SNR and cost under both roundings, and how much
of the whole int8 loss the costliest layer takes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from jobs import mobile_sr_command, run_side_by_side
from mobile_sr.core.backend import tf
from mobile_sr.core.files import atomic_write_bytes
from mobile_sr.data import shared_datasets_dir
from mobile_sr.diagnose import diagnose_run
from mobile_sr.runs import WEIGHTS_FILE

RESULTS = Path("benchmarks/results")
MODELS = {  # model -> (runs of the other benchmarks, training arguments when there is none, cost data)
    "scsrn": ([RESULTS / "float_training/runs/scsrn-x3"], ["--model", "scsrn", "--scale", "3", "--data", "t91"], "set5"),
    "rt4ksr": ([RESULTS / "zoo/runs/rt4ksr-hf"], ["--model", "rt4ksr", "--scale", "3", "--data", "t91"], "set5"),
    # HDR: the default validation scenes (4 at 192x288), which score in seconds where a run's own
    # validation scenes (radiance maps) take minutes, about a hundred times per model
    "hdr_unet": ([RESULTS / "hdr/runs/hdr_unet"], ["--model", "hdr_unet"], "default"),
}


def _float_runs(given: dict[str, Path], out: Path, minutes: float) -> dict[str, Path]:
    """Each model's float run: given, another benchmark's, or trained into ``out/runs``."""
    chosen, jobs = {}, {}
    for model, (candidates, training, _) in MODELS.items():
        found = [path for path in [given.get(model), *candidates] if path is not None and (path / WEIGHTS_FILE).is_file()]
        chosen[model] = found[0] if found else out / "runs" / model
        if not found and not (chosen[model] / WEIGHTS_FILE).is_file():
            jobs[model] = mobile_sr_command("train", *training, "--minutes", str(minutes), "--threads", "1",
                                            "--out", str(chosen[model]), "--overwrite")
    if jobs:
        (out / "runs").mkdir(parents=True, exist_ok=True)
        run_side_by_side(jobs, out / "runs")
    return chosen


def _markdown(reports: dict[str, dict]) -> str:
    lines = ["# Per-layer int8 quantization (post-training, as `mobile-sr export --int8` quantizes a float run)", "",
             "SNR: of the int8 activations (LiteRT) against float on the 64 calibration patches, errors of earlier "
             "layers included. Cost: how far the metric falls below float with only that layer quantized "
             "(fake-quantized), on the cost data. Data-aware / nearest rounding of the conv kernels.", ""]
    for model, report in reports.items():
        by_rounding = {r["rounding"]: r for r in report["roundings"]}
        aware, nearest = by_rounding["data_aware"], by_rounding["nearest"]
        lines += [f"## {model} ({Path(report['run']).name}; {report['metric_label']} on {report['dataset']}: "
                  f"float {report['float']:.3f} dB)", "",
                  f"Whole model: {aware['cost_db']:.4f} dB below float from data-aware rounding, "
                  f"{nearest['cost_db']:.4f} dB from nearest. {_costliest(aware)}; {_costliest(nearest)}.", "",
                  "| layer | kind | SNR dB (data-aware / nearest) | cost dB (data-aware / nearest) |", "|---|---|---|---|"]
        for aware_layer, nearest_layer in zip(aware["layers"], nearest["layers"], strict=True):
            snr = " / ".join("exact" if layer["snr_db"] is None else f"{layer['snr_db']:.1f}"
                             for layer in (aware_layer, nearest_layer))
            lines.append(f"| {aware_layer['name']} | {aware_layer['kind']} | {snr} | "
                         f"{aware_layer['cost_db']:.4f} / {nearest_layer['cost_db']:.4f} |")
        lines.append("")
    return "\n".join(lines)


def _costliest(rounding: dict) -> str:
    """The layer that costs most alone, and its share of the whole model's loss."""
    top = max(rounding["layers"], key=lambda layer: layer["cost_db"])
    share = f"{100 * top['cost_db'] / rounding['cost_db']:.0f}%" if rounding["cost_db"] > 0 else "n/a"
    return (f"{rounding['rounding'].replace('_', '-')}: the costliest layer alone is {top['name']}, "
            f"{top['cost_db']:.4f} dB ({share} of the whole)")


def _reused(path: Path, run_dir: Path) -> dict | None:
    """The report at ``path`` when it is of ``run_dir`` and newer than its weights (a model's report
    takes from minutes to an hour), else None."""
    if not path.is_file() or path.stat().st_mtime < (run_dir / WEIGHTS_FILE).stat().st_mtime:
        return None
    report = json.loads(path.read_text())
    if Path(report["run"]).resolve() != run_dir.resolve():
        return None
    print(f"reusing {path} ({run_dir})", flush=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="append", default=[], metavar="MODEL=RUN_DIR",
                        help=f"the float run of one of {', '.join(MODELS)}; repeatable")
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget of a model without a run")
    parser.add_argument("--out", type=Path, default=RESULTS / "diagnose")
    args = parser.parse_args()
    given = dict(pair.split("=", 1) for pair in args.run if "=" in pair)
    unknown = sorted(set(given) - set(MODELS)) or [pair for pair in args.run if "=" not in pair]
    if unknown:
        raise SystemExit(f"--run: {', '.join(unknown)}: give MODEL=RUN_DIR with MODEL one of {', '.join(MODELS)}")
    root = shared_datasets_dir()
    if root is None or not (root / "sr/test/Set5").is_dir():
        print("SKIPPED: the shared datasets with Set5 not found (set MOBILE_SR_DATA or place them at ../shared/datasets)")
        return
    float_runs = _float_runs({model: Path(path) for model, path in given.items()}, args.out, args.minutes)
    tf.config.threading.set_intra_op_parallelism_threads(1)  # as the training jobs: one core's work
    tf.config.threading.set_inter_op_parallelism_threads(1)
    reports = {}
    for model, run_dir in float_runs.items():
        reports[model] = _reused(args.out / f"{model}.json", run_dir) or diagnose_run(
            run_dir=run_dir, data=MODELS[model][2], json_path=args.out / f"{model}.json", threads=1)
    summary = _markdown(reports)
    atomic_write_bytes(args.out / "diagnose.md", summary.encode())
    atomic_write_bytes(args.out / "diagnose.json", (json.dumps(reports, indent=2) + "\n").encode())
    print(summary)


if __name__ == "__main__":
    main()
