"""The best SCSRN for a latency budget: a depth x width grid of SCSRN x3 trained at equal CPU time,
exported to int8 and timed against ABPN in one run.

    python benchmarks/scsrn_grid.py [--feature-convs 2,3,4] [--channels 32,48,64] [--minutes 8]
        [--rounds 3] [--runs 20] [--budget 0.6] [--out benchmarks/results/scsrn_grid]

1. Trains SCSRN x3 at every depth (feature convs) x width (channels) of the grid, and ABPN x3, for
   ``--minutes`` each, with the data and recipe of ``float_training.py`` in the default precision:
   one pinned core and one TensorFlow thread per job, as many jobs at a time as there are cores
   (``jobs.py``). Equal CPU time, so a deeper or wider net pays for its slower steps with fewer.
2. Exports each run to int8 (post-training, 360x640, as ``mobile-sr export --int8``) and scores the
   ``.tflite`` in LiteRT on Set5 and Set14 (PSNR-Y), and the float model beside it.
3. Times every int8 frame (360x640 -> 1080x1920, XNNPACK, 1 thread) in ``--rounds`` rounds over all
   models of ``--runs`` runs each, and takes each model's median over its rounds, so that load from
   elsewhere hits all alike; each latency is also given over ABPN's.
4. Reports, per test set, the Pareto front of int8 PSNR against latency, and the Mobile AI challenge
   score of every model; then the config with the best score (on the mean of the two sets' PSNR)
   among those whose frame costs at most ``--budget`` of ABPN's: the candidate default.

Writes ``results.json``, ``results.md`` and ``front.png`` to ``--out``; finished runs and exports
are reused. Run it on an otherwise idle machine: step 3 times single frames. Skips, saying why,
when the shared datasets are absent.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

from float_training import (
    RECIPE,
    SCALE,
    TEST_SETS,
    finished_run,
    float_and_int8_scores,
    int8_export_path,
)
from jobs import mobile_sr_command, run_side_by_side, shared_datasets_or_skip
from mobile_sr.benchmark.report import challenge_score
from mobile_sr.core.files import atomic_write_bytes
from mobile_sr.core.plots import pyplot, save_figure
from mobile_sr.runs import SUMMARY_FILE
from mobile_sr.tasks.sr.data import load_sr_pairs

BASELINE = "abpn"


def _integers(text: str) -> list[int]:
    return [int(value) for value in text.split(",") if value.strip()]


def config_name(feature_convs: int, channels: int) -> str:
    return f"scsrn_{feature_convs}x{channels}"


def train_grid(args, data: Path) -> dict[str, Path]:
    """Train (or reuse) every grid config and the baseline; ``{name: run folder}``."""
    options = {config_name(convs, channels): ["--model", "scsrn", "--option", f"feature_convs={convs}",
                                              "--channels", str(channels)]
               for convs in args.feature_convs for channels in args.channels}
    options[BASELINE] = ["--model", BASELINE]
    run_dirs = {name: args.out / "runs" / name for name in options}
    jobs = {name: mobile_sr_command("train", *model_options, "--scale", str(SCALE), "--data", str(data),
                                    "--minutes", str(args.minutes), "--threads", "1", "--out", str(run_dirs[name]),
                                    "--overwrite", *RECIPE)
            for name, model_options in options.items() if not finished_run(run_dirs[name], minutes=args.minutes)}
    if jobs:
        run_side_by_side(jobs, args.out)
    return run_dirs


def score_grid(run_dirs: dict[str, Path], test_pairs: dict, folder: Path) -> dict[str, dict]:
    """Float and int8 PSNR-Y of each run, with its training summary; scores are cached per run in
    ``folder``, next to the int8 exports."""
    folder.mkdir(parents=True, exist_ok=True)
    scores = {}
    for name, run_dir in run_dirs.items():
        cached = folder / f"{name}_scores.json"
        if not (cached.is_file() and int8_export_path(run_dir, folder).is_file()):
            atomic_write_bytes(cached, json.dumps(float_and_int8_scores(run_dir, test_pairs, folder)).encode())
        summary = json.loads((run_dir / SUMMARY_FILE).read_text())
        scores[name] = {**json.loads(cached.read_text()), "steps": summary["steps"], "parameters": summary["parameters"],
                        "steps_per_s": summary["steps_per_s"]}
        print(f"{name}: {summary['steps']} steps, int8 "
              + ", ".join(f"{s} {scores[name]['int8'][s]:.3f}" for s in TEST_SETS), flush=True)
    return scores


def time_int8(paths: dict[str, Path], *, rounds: int, runs: int) -> dict[str, dict]:
    """Median int8 frame time (ms, 1 thread) of each model over ``rounds`` rounds, all models once
    a round, with its MACs."""
    from mobile_sr.benchmark.host import benchmark_host

    medians: dict[str, list[float]] = {name: [] for name in paths}
    macs = {}
    for round_index in range(rounds):
        results = {r["model"]: r for r in benchmark_host(list(paths.values()), threads=[1], runs=runs, warmup=3,
                                                         cross_check=False, log=lambda _: None)}
        for name, path in paths.items():
            medians[name].append(results[path.name]["latency_ms_median"])
            macs[name] = results[path.name]["macs"]
        print(f"timing round {round_index + 1}/{rounds}: "
              + ", ".join(f"{name} {medians[name][-1]:.1f} ms" for name in paths), flush=True)
    return {name: {"ms": round(statistics.median(values), 2), "ms_per_round": values, "gmac": round(macs[name] / 1e9, 2)}
            for name, values in medians.items()}


def pareto_front(points: dict[str, tuple[float, float]]) -> list[str]:
    """Names of the ``(latency, PSNR)`` points that no other point beats on both, fastest first."""
    front, best = [], -math.inf
    for name, (_, psnr) in sorted(points.items(), key=lambda item: (item[1][0], -item[1][1])):
        if psnr > best:
            front.append(name)
            best = psnr
    return front


def analyse(scores: dict[str, dict], latency: dict[str, dict], budget: float) -> dict:
    baseline_ms = latency[BASELINE]["ms"]
    rows = {}
    for name, score in scores.items():
        mean_psnr = statistics.mean(score["int8"][s] for s in TEST_SETS)
        rows[name] = {**score, **latency[name], "over_abpn": round(latency[name]["ms"] / baseline_ms, 3),
                      "log10_score": {s: round(math.log10(challenge_score(score["int8"][s], latency[name]["ms"])), 3)
                                      for s in TEST_SETS},
                      "log10_score_mean_psnr": round(math.log10(challenge_score(mean_psnr, latency[name]["ms"])), 3)}
    fronts = {s: pareto_front({name: (row["ms"], row["int8"][s]) for name, row in rows.items()}) for s in TEST_SETS}
    within = [name for name, row in rows.items() if name != BASELINE and row["over_abpn"] <= budget]
    best_within = max(within, key=lambda name: rows[name]["log10_score_mean_psnr"]) if within else None
    best_overall = max(rows, key=lambda name: rows[name]["log10_score_mean_psnr"])
    return {"budget_over_abpn": budget, "abpn_ms": baseline_ms, "models": rows, "pareto_front": fronts,
            "best_score": best_overall, "best_score_within_budget": best_within}


def plot_front(analysis: dict, path: Path, *, minutes: float) -> None:
    plt = pyplot()
    figure, axes = plt.subplots(1, len(TEST_SETS), figsize=(6 * len(TEST_SETS), 4.5))
    rows = analysis["models"]
    chosen = analysis["best_score_within_budget"]
    for axis, test_set in zip(axes, TEST_SETS, strict=True):
        for name, row in rows.items():
            axis.scatter(row["ms"], row["int8"][test_set], color="tab:red" if name == BASELINE else "tab:blue", zorder=3)
            axis.annotate(name.removeprefix("scsrn_"), (row["ms"], row["int8"][test_set]), fontsize=8, xytext=(4, 3),
                          textcoords="offset points")
        front = analysis["pareto_front"][test_set]
        axis.plot([rows[n]["ms"] for n in front], [rows[n]["int8"][test_set] for n in front], "-", color="tab:green",
                  label="Pareto front")
        axis.axvline(analysis["budget_over_abpn"] * analysis["abpn_ms"], color="gray", linestyle="--",
                     label=f"{analysis['budget_over_abpn']:g} x ABPN's frame time")
        if chosen:
            # The challenge score is constant where PSNR grows by 0.5 dB per doubling of the latency;
            # the line may leave the points' PSNR range, which stays the plot's.
            psnrs = [r["int8"][test_set] for r in rows.values()]
            margin = 0.1 * (max(psnrs) - min(psnrs)) + 0.01
            start = rows[chosen]
            spans = [min(r["ms"] for r in rows.values()), max(r["ms"] for r in rows.values())]
            axis.plot(spans, [start["int8"][test_set] + 0.5 * math.log2(ms / start["ms"]) for ms in spans], ":",
                      color="tab:orange", label=f"equal score to {chosen.removeprefix('scsrn_')}")
            axis.set_ylim(min(psnrs) - margin, max(psnrs) + margin)
        axis.set(xlabel="int8 frame time, 360x640 -> 1080x1920, 1 thread (ms)", ylabel=f"{test_set} int8 PSNR-Y (dB)",
                 title=f"{test_set}: SCSRN depth x width, {minutes:g} CPU-min each")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    save_figure(figure, path)


def report_markdown(analysis: dict, *, minutes: float) -> str:
    rows = analysis["models"]
    lines = [f"# SCSRN x{SCALE} depth x width at {minutes:g} CPU-minutes of training each", "",
             f"int8 frame 360x640 -> 1080x1920, XNNPACK, 1 thread; ABPN {analysis['abpn_ms']:.1f} ms. Score: the Mobile AI "
             "challenge's 2^(2 PSNR) / (0.1 runtime), given as log10.", "",
             "| model | params | GMAC | steps | ms | over ABPN | " + " | ".join(f"{s} float | {s} int8" for s in TEST_SETS)
             + " | " + " | ".join(f"log10 score {s}" for s in TEST_SETS) + " |",
             "|---" * (6 + 3 * len(TEST_SETS)) + "|"]
    for name, row in sorted(rows.items(), key=lambda item: item[1]["ms"]):
        lines.append(f"| {name} | {row['parameters']} | {row['gmac']} | {row['steps']} | {row['ms']:.1f} | {row['over_abpn']:.3f} | "
                     + " | ".join(f"{row['float'][s]:.3f} | {row['int8'][s]:.3f}" for s in TEST_SETS) + " | "
                     + " | ".join(f"{row['log10_score'][s]:.2f}" for s in TEST_SETS) + " |")
    lines += ["", *(f"Pareto front on {s} (fastest first): {', '.join(front)}" for s, front in analysis["pareto_front"].items()),
              "", f"Best score overall: {analysis['best_score']}.",
              f"Best score within {analysis['budget_over_abpn']:g} x ABPN's frame time: "
              f"{analysis['best_score_within_budget'] or 'none of the grid'}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--feature-convs", type=_integers, default=[2, 3, 4], help="comma-separated depths")
    parser.add_argument("--channels", type=_integers, default=[32, 48, 64], help="comma-separated widths")
    parser.add_argument("--minutes", type=float, default=8.0, help="training budget per config, one core each")
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds over all models")
    parser.add_argument("--runs", type=int, default=20, help="timed frames per model and round")
    parser.add_argument("--budget", type=float, default=0.6, help="latency budget, as a fraction of ABPN's int8 frame time")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/scsrn_grid"))
    args = parser.parse_args()

    root = shared_datasets_or_skip()
    if root is None:
        return
    args.out.mkdir(parents=True, exist_ok=True)
    run_dirs = train_grid(args, root / "sr/train")
    test_pairs = {name: load_sr_pairs(root / "sr/test" / name, SCALE, split="val")[1] for name in TEST_SETS}
    exports = args.out / "export"
    scores = score_grid(run_dirs, test_pairs, exports)
    latency = time_int8({name: int8_export_path(run_dir, exports) for name, run_dir in run_dirs.items()},
                        rounds=args.rounds, runs=args.runs)
    analysis = {"minutes": args.minutes, "scale": SCALE, "recipe": RECIPE, **analyse(scores, latency, args.budget)}
    plot_front(analysis, args.out / "front.png", minutes=args.minutes)
    markdown = report_markdown(analysis, minutes=args.minutes)
    atomic_write_bytes(args.out / "results.md", markdown.encode())
    atomic_write_bytes(args.out / "results.json", (json.dumps(analysis, indent=2) + "\n").encode())
    print(markdown)


if __name__ == "__main__":
    main()
